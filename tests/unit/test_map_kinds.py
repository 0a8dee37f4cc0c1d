"""The map-kind table (issue 14): every kernel map type the kit names is read by exactly one row,
and a type it does not name ends in one clear message."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ebpf_nb import map_kinds, plots, widgets
from ebpf_nb.constants import BUFFER_MAP_TYPES, KEYLESS_MAP_TYPES, MapType
from ebpf_nb.errors import UsageError
from ebpf_nb.program import MapLayout, Program


@pytest.mark.parametrize("map_type", list(MapType), ids=lambda t: t.name)
def test_every_kernel_map_type_has_exactly_one_row(map_type):
    rows = [kind.name for kind in map_kinds.MAP_KINDS if map_type in kind.map_types]
    assert len(rows) == 1, f"{map_type.name} is in rows {rows}"
    assert map_kinds.kind_of(map_type).name == rows[0]


def test_row_names_are_unique_and_declared_kinds_are_the_histograms():
    names = [kind.name for kind in map_kinds.MAP_KINDS]
    assert len(names) == len(set(names))
    assert sorted(map_kinds.DECLARED) == ["linear_histogram", "log2_histogram"]


def test_a_row_table_cannot_read_says_why():
    for kind in map_kinds.MAP_KINDS:
        assert (kind.frame is None) == bool(kind.refusal), kind.name


def test_an_unknown_map_type_is_a_clear_usage_error():
    with pytest.raises(UsageError, match="map type 99 is not one this kit knows"):
        map_kinds.kind_of(99)


def test_the_declaration_refines_only_maps_read_by_key():
    assert map_kinds.kind_of(MapType.ARRAY, "log2_histogram").name == "log2_histogram"
    assert map_kinds.kind_of(MapType.HASH, "linear_histogram").name == "linear_histogram"
    assert map_kinds.kind_of(MapType.STACK_TRACE, "log2_histogram").name == "stack_trace"
    assert map_kinds.kind_of(MapType.ARRAY, "bogus").name == "array"


class _NoKernel(Program):
    """A program whose one map has a type no row holds."""

    def _map_layouts(self):
        return {"m": MapLayout("m", 99, -1, None, None, 1)}


def test_table_of_an_unknown_map_type_names_it():
    with pytest.raises(UsageError) as err:
        _NoKernel("p", "").table("m")
    assert "type 99" in str(err.value) and not isinstance(err.value, KeyError)


@pytest.mark.parametrize(("name", "row"), [("percpu_array", "array"),
                                           ("BPF_MAP_TYPE_HASH", "keyed"),
                                           ("log2_histogram", "log2_histogram"),
                                           ("type 99", None), ("", None)])
def test_kind_named_reads_a_frames_map_type(name, row):
    kind = map_kinds.kind_named(name)
    assert (kind.name if kind else None) == row


def test_buffers_are_the_events_row():
    assert map_kinds.BY_NAME["buffer"].map_types == BUFFER_MAP_TYPES
    assert [k.name for k in map_kinds.MAP_KINDS if k.events] == ["buffer"]


def test_top_rows_and_plot_follow_the_row():
    array = pd.DataFrame({"key": np.arange(4), "value": [0, 5, 0, 2]})
    array.attrs["map_type"] = "array"
    assert plots.frame_kind(array) == "linear_histogram"
    assert widgets.top_rows(array, 1)["key"].tolist() == [1, 3]  # every non-zero slot
    hashed = array.copy()
    hashed.attrs["map_type"] = "hash"
    assert plots.frame_kind(hashed) == "counts"
    assert widgets.top_rows(hashed, 1)["key"].tolist() == [1]    # the largest


class _OneMap(Program):
    """A program whose one map ``m`` has the given type and no kernel fd behind it."""

    def __init__(self, map_type):
        super().__init__("p", "")
        self.map_type = map_type

    def _map_layouts(self):
        return {"m": MapLayout("m", self.map_type, -1, None, None, 1)}


@pytest.mark.parametrize("map_type", sorted(KEYLESS_MAP_TYPES), ids=lambda t: MapType(t).name)
def test_a_map_without_keys_is_refused_before_the_kernel_is_asked(map_type):
    # fd -1: reaching the kernel would end in an OSError (EBADF), not in the row's refusal.
    assert map_kinds.kind_of(map_type).frame is None
    with pytest.raises(UsageError, match="'m' is a "):
        _OneMap(map_type).table("m")


def test_a_user_ring_buffer_says_what_to_read_instead():
    with pytest.raises(UsageError, match="no keys, so user space cannot list it") as err:
        _OneMap(MapType.USER_RINGBUF).table("m")
    assert "p.table(" in (err.value.hint or "")
