"""Kernel constants defined once (issue 14): the two per-CPU sets used to disagree.

``kernel.maps`` read a ``percpu_cgroup_storage`` map's values as one slot per CPU, while
``program.map_frame`` (now ``frames.map_frame``), whose set lacked it, decoded those rows as one
plain value: the frame showed CPU 0's value and nothing of the others."""
from __future__ import annotations

import numpy as np

from ebpf_nb import constants
from ebpf_nb.frames import map_frame
from ebpf_nb.kernel import maps as kmaps
from ebpf_nb.program import MapLayout

PERCPU_CGROUP_STORAGE = 21  # enum bpf_map_type


def test_a_per_cpu_cgroup_storage_map_is_decoded_per_cpu():
    ncpus = 2
    keys = np.arange(3, dtype=np.uint64).view(np.uint8).reshape(3, 8)
    values = np.array([[10, 1], [20, 2], [30, 3]], dtype=np.uint64).view(np.uint8)
    raw = kmaps.RawMap(keys=keys, values=values.reshape(3, 8 * ncpus),
                       map_type=PERCPU_CGROUP_STORAGE, key_size=8, value_size=8,
                       max_entries=0, ncpus=ncpus)
    layout = MapLayout("per_cgroup", PERCPU_CGROUP_STORAGE, fd=-1, key_dtype=np.dtype("<u8"),
                       value_dtype=np.dtype("<u8"), max_entries=0)
    df = map_frame(raw, layout)
    assert list(df.columns) == ["key", "cpu0", "cpu1", "total"]
    assert df["total"].tolist() == [11, 22, 33]
    assert layout.type_name == "percpu_cgroup_storage"


def test_one_set_of_per_cpu_types_and_the_names_shown():
    assert constants.PERCPU_MAP_TYPES == {5, 6, 10, 21}
    assert constants.map_type_name(27) == "ringbuf" and constants.MapType.RINGBUF == 27
    assert constants.map_type_name(999) == "type 999"
    assert kmaps.MapInfo(1, "m", 21, 4, 8, 1, 0).percpu
    assert [constants.round8(n) for n in (0, 1, 8, 9, 16)] == [0, 8, 8, 16, 16]
