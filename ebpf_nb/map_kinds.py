"""The map-kind table: how each kind of map is read, pictured and shown live, in one place.

Every kernel map type (:class:`ebpf_nb.constants.MapType`) is in exactly one row; the histogram
rows cover no kernel type: a map is one when its declaration says so (``MapLayout.kind``, e.g.
BCC's ``BPF_HISTOGRAM`` read by ``bcc_program.histogram_kinds``) or ``table(kind=...)`` asks.
``Program.table()`` reads with the row's ``frame``, ``Program.plot()`` and ``plots.frame_kind``
draw its ``plot``, and ``widgets.top_rows`` shows its ``top_rows``. A new kind is one row here
plus its frame builder in :mod:`ebpf_nb.frames`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from . import frames
from .constants import BUFFER_MAP_TYPES, MapType
from .errors import UsageError

if TYPE_CHECKING:
    from .kernel.maps import RawMap
    from .program import MapLayout

FrameBuilder = Callable[["RawMap", "MapLayout", frames.Names], pd.DataFrame]
RowPicker = Callable[[pd.DataFrame, int], pd.DataFrame]


def largest_rows(df: pd.DataFrame, top: int) -> pd.DataFrame:
    """The ``top`` rows with the largest values (the counts of a hash map)."""
    from . import plots

    if df.empty:
        return df
    return df.sort_values(plots.value_column(df), ascending=False, kind="stable").head(top)


def nonzero_rows(df: pd.DataFrame, top: int) -> pd.DataFrame:
    """Every row whose value is not zero, in index order (the slots of an array)."""
    from . import plots

    return df[df[plots.value_column(df)] != 0]


def nonzero_buckets(df: pd.DataFrame, top: int) -> pd.DataFrame:
    """The non-empty buckets of a log2 histogram, labelled like ``16-31``."""
    from . import plots

    shown = df[df["count"] != 0]
    labels = [plots.bucket_label(lo, hi) for lo, hi in zip(shown["low"], shown["high"])]
    return pd.DataFrame({"bucket": labels, "count": shown["count"].to_numpy()})


@dataclass(frozen=True)
class MapKind:
    """One kind of map. ``frame`` is None for maps ``table()`` cannot read; ``refusal`` then
    says why (``{map}``, ``{type}`` and ``{program}`` are filled in) and ``refusal_hint`` what
    to do. ``declared`` kinds refine a row whose ``refinable`` is true."""

    name: str
    map_types: frozenset[MapType]
    frame: FrameBuilder | None
    plot: str
    top_rows: RowPicker
    refinable: bool = False
    refusal: str = ""
    refusal_hint: str | None = None

    @property
    def events(self) -> bool:
        """True for the buffer maps, whose contents are read as events, not by key."""
        return bool(self.map_types & BUFFER_MAP_TYPES)


MAP_KINDS: tuple[MapKind, ...] = (
    MapKind("array", frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.CGROUP_ARRAY,
                                MapType.ARRAY_OF_MAPS, MapType.REUSEPORT_SOCKARRAY}),
            frames.keyed_frame, "linear_histogram", nonzero_rows, refinable=True),
    MapKind("keyed", frozenset({
        MapType.UNSPEC, MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
        MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE, MapType.HASH_OF_MAPS, MapType.DEVMAP,
        MapType.SOCKMAP, MapType.CPUMAP, MapType.XSKMAP, MapType.SOCKHASH,
        MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE, MapType.SK_STORAGE,
        MapType.DEVMAP_HASH, MapType.STRUCT_OPS, MapType.INODE_STORAGE, MapType.TASK_STORAGE,
        MapType.CGRP_STORAGE, MapType.ARENA}),
            frames.keyed_frame, "counts", largest_rows, refinable=True),
    MapKind("stack_trace", frozenset({MapType.STACK_TRACE}), frames.stack_frame, "counts",
            largest_rows),
    MapKind("prog_array", frozenset({MapType.PROG_ARRAY}), frames.prog_array_frame, "counts",
            largest_rows),
    MapKind("buffer", frozenset(BUFFER_MAP_TYPES), None, "timeline", largest_rows,
            refusal="{map!r} is a {type}: its contents are events",
            refusal_hint="read it with {program}.events({map!r}, seconds=...)"),
    MapKind("queue", frozenset({MapType.QUEUE, MapType.STACK}), None, "counts", largest_rows,
            refusal="{map!r} is a {type}: user space can only pop it"),
    MapKind("unlisted", frozenset({MapType.USER_RINGBUF, MapType.BLOOM_FILTER}), None, "counts",
            largest_rows,
            refusal="{map!r} is a {type}: it has no keys, so user space cannot list it",
            refusal_hint="count what the program sees in a hash or array map and read that "
                         "with {program}.table(...)"),
    # Declared kinds: no kernel type of their own (see the module docstring).
    MapKind("log2_histogram", frozenset(), frames.log2_histogram_frame, "log2_histogram",
            nonzero_buckets),
    MapKind("linear_histogram", frozenset(), frames.linear_histogram_frame, "linear_histogram",
            nonzero_rows),
)

BY_NAME: dict[str, MapKind] = {kind.name: kind for kind in MAP_KINDS}
BY_TYPE: dict[int, MapKind] = {t: kind for kind in MAP_KINDS for t in kind.map_types}
DECLARED: dict[str, MapKind] = {kind.name: kind for kind in MAP_KINDS if not kind.map_types}


def kind_of(map_type: int, declared: str | None = None) -> MapKind:
    """The row that reads a map of ``map_type``, refined by a ``declared`` histogram kind."""
    row = BY_TYPE.get(map_type)
    if row is None:
        raise UsageError(f"map type {map_type} is not one this kit knows "
                         "(a kernel newer than the kit?)",
                         hint="each map type the kit reads has a row in ebpf_nb/map_kinds.py")
    if declared in DECLARED and row.refinable:
        return DECLARED[declared]
    return row


def kind_named(type_name: object) -> MapKind | None:
    """The row of a frame's ``attrs['map_type']`` (``"percpu_array"``, ``"BPF_MAP_TYPE_HASH"``,
    ``"log2_histogram"``); None for a name the table does not hold."""
    name = str(type_name or "").lower().removeprefix("bpf_map_type_")
    if name in DECLARED:
        return DECLARED[name]
    member = MapType.__members__.get(name.upper())
    return None if member is None else BY_TYPE.get(member)


def row_picker(df: pd.DataFrame, plot: str) -> RowPicker:
    """How a live view picks the rows of ``df``, a frame pictured as ``plot``: by its map's
    kind when that kind draws this picture, else by the declared kind that does."""
    row = kind_named(df.attrs.get("map_type"))
    if row is not None and row.plot == plot:
        return row.top_rows
    for kind in DECLARED.values():
        if kind.plot == plot:
            return kind.top_rows
    return BY_NAME["keyed"].top_rows
