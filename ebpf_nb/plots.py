"""Matplotlib pictures of the DataFrames that programs return.

Every function takes a DataFrame and ``ax=None`` and returns the matplotlib ``Axes`` it drew on,
so plots compose with the student's own figures. ``plot_frame`` picks the right picture from the
frame's shape and ``df.attrs``. Nothing here imports ``pyplot`` unless no ``ax`` was given, so the
functions also work on a bare ``matplotlib.figure.Figure`` from a background thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .errors import UsageError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "bucket_label",
    "plot_counts",
    "plot_event_rate",
    "plot_event_timeline",
    "plot_frame",
    "plot_linear_hist",
    "plot_log2_hist",
]

_SUFFIXES = ("", "K", "M", "G", "T", "P", "E")
_VALUE_COLUMNS = ("value", "total", "count")
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_BAR_COLOR = "#4878a8"


def _new_axes() -> Axes:
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(7, 3.5))
    return ax


def _titled_axes(ax: Axes | None, title: str | None) -> Axes:
    """``ax`` (a new figure's when ``None``), with ``title`` when one is given."""
    ax = ax if ax is not None else _new_axes()
    if title:
        ax.set_title(title)
    return ax


def _short(n: int) -> str:
    """1024-based short form of a power-of-two boundary: 1024 -> '1K', 3 -> '3'."""
    i = 0
    while n >= 1024 and n % 1024 == 0 and i < len(_SUFFIXES) - 1:
        n //= 1024
        i += 1
    return f"{n}{_SUFFIXES[i]}"


def bucket_label(low: int, high: int) -> str:
    """Readable label of a log2 bucket ``[low, high]``: ``16-31``, ``1K-2K``, ``1``."""
    low, high = int(low), int(high)
    if low == high:
        return _short(low)
    if low < 1024:
        return f"{low}-{high}"
    # Above 1K the inclusive upper bound (2047) reads worse than the next boundary (2K).
    return f"{_short(low)}-{_short(high + 1)}"


def _trim_zeros(values: np.ndarray) -> slice:
    """The slice from the first to the last non-zero value (empty when all are zero)."""
    nonzero = np.flatnonzero(values)
    if nonzero.size == 0:
        return slice(0, 0)
    return slice(int(nonzero[0]), int(nonzero[-1]) + 1)


def _empty(ax: Axes, what: str) -> Axes:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UsageError(
            f"{what} needs columns {list(columns)}; this frame has {list(df.columns)}",
        )


def plot_log2_hist(
    df: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    trim: bool = True,
    xlabel: str | None = None,
) -> Axes:
    """Bars of a log2 histogram frame (columns ``low``, ``high``, ``count``), one per bucket.

    Buckets are labelled like ``16-31`` or ``1K-2K``. With ``trim`` the empty buckets before the
    first and after the last non-empty one are left out, as BCC's ``print_log2_hist`` does.
    """
    _require(df, ("low", "high", "count"), "plot_log2_hist")
    ax = _titled_axes(ax, title)
    frame = df.sort_values("low", kind="stable")
    counts = frame["count"].to_numpy()
    if trim:
        frame = frame.iloc[_trim_zeros(counts)]
    if frame.empty:
        return _empty(ax, "values")
    labels = [bucket_label(lo, hi) for lo, hi in zip(frame["low"], frame["high"])]
    positions = np.arange(len(frame))
    ax.bar(positions, frame["count"].to_numpy(), width=0.85, color=_BAR_COLOR)
    ax.set_xticks(positions, labels, rotation=45 if len(labels) > 6 else 0, ha="right"
                  if len(labels) > 6 else "center")
    ax.set_xlabel(xlabel if xlabel is not None else df.attrs.get("unit", "bucket"))
    ax.set_ylabel("count")
    ax.margins(x=0.01)
    return ax


def plot_linear_hist(
    df: pd.DataFrame,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    key: str = "key",
    value: str | None = None,
    trim: bool = True,
    xlabel: str | None = None,
) -> Axes:
    """Bars of a linear histogram: integer ``key`` (the slot) against its ``value``.

    Slots missing from the frame are drawn as empty; with ``trim`` the empty slots before the
    first and after the last non-empty one are left out.
    """
    value = value or value_column(df)
    _require(df, (key, value), "plot_linear_hist")
    ax = _titled_axes(ax, title)
    frame = df[[key, value]].groupby(key, sort=True)[value].sum()
    if trim:
        frame = frame.iloc[_trim_zeros(frame.to_numpy())]
    if frame.empty:
        return _empty(ax, "values")
    slots = frame.index.to_numpy().astype(np.int64)
    ax.bar(slots, frame.to_numpy(), width=0.85, color=_BAR_COLOR)
    if len(slots) <= 20:
        ax.set_xticks(slots, [str(s) for s in slots])
    ax.set_xlabel(xlabel if xlabel is not None else key)
    ax.set_ylabel(value)
    return ax


def value_column(df: pd.DataFrame) -> str:
    """The column a map's numbers are in: ``value``, ``total`` (per-CPU), ``count``, or the last
    numeric one."""
    for name in _VALUE_COLUMNS:
        if name in df.columns:
            return name
    numeric = df.select_dtypes("number").columns
    if len(numeric):
        return str(numeric[-1])
    raise UsageError(f"no numeric value column to plot in {list(df.columns)}")


def _key_columns(df: pd.DataFrame, value: str) -> list[str]:
    per_cpu = {c for c in df.columns
               if isinstance(c, str) and c.startswith("cpu") and c[3:].isdigit()}
    return [c for c in df.columns if c != value and c not in _VALUE_COLUMNS and c not in per_cpu]


def _labels(df: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    if not keys:
        return [str(i) for i in df.index]
    parts = [df[k].map(_cell_text) for k in keys]
    return [" / ".join(row) for row in zip(*parts)]


def _cell_text(v: object) -> str:
    if isinstance(v, bytes):
        return v.rstrip(b"\0").decode("utf-8", "replace")
    return str(v)


def plot_counts(
    df: pd.DataFrame,
    *,
    top: int = 10,
    key: str | Sequence[str] | None = None,
    value: str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Horizontal bars of the ``top`` largest values of a counts map, largest at the top.

    ``key`` names the label column(s) (default: every column but the value and per-CPU ones);
    ``value`` the number to rank by (default ``value``, then ``total`` for per-CPU maps).
    """
    value = value or value_column(df)
    if key is None:
        keys = _key_columns(df, value)
    else:
        keys = [key] if isinstance(key, str) else list(key)
    _require(df, [*keys, value], "plot_counts")
    ax = _titled_axes(ax, title)
    if df.empty:
        return _empty(ax, "entries")
    frame = df.sort_values(value, ascending=False, kind="stable").head(top)
    labels = _labels(frame, keys)
    positions = np.arange(len(frame))[::-1]  # the largest value at the top
    ax.barh(positions, frame[value].to_numpy(), height=0.8, color=_BAR_COLOR)
    ax.set_yticks(positions, labels, parse_math=False)  # a command named "$x$" stays text
    ax.set_xlabel(value)
    if keys:
        ax.set_ylabel(" / ".join(keys), parse_math=False)
    return ax


def event_seconds(df: pd.DataFrame, time: str = "timestamp", unit: str = "s") -> np.ndarray:
    """Seconds since the first event, from a column of Timestamps or of numbers in ``unit``."""
    if time not in df.columns:
        raise UsageError(f"no time column {time!r} in {list(df.columns)}: pass time='COLUMN'")
    column = df[time]
    # (pandas-stubs refuse a class in eq(), which compares any object)
    if (pd.api.types.is_datetime64_any_dtype(column)
            or column.map(type).eq(pd.Timestamp).all()):  # type: ignore[arg-type]
        stamps = pd.to_datetime(column)
        return (stamps - stamps.min()).dt.total_seconds().to_numpy()
    if unit not in _TIME_UNITS:
        raise UsageError(f"unit must be one of {sorted(_TIME_UNITS)}, not {unit!r}")
    numbers = column.to_numpy(dtype=np.float64) * _TIME_UNITS[unit]
    return numbers - numbers.min() if numbers.size else numbers


def plot_event_timeline(
    df: pd.DataFrame,
    *,
    y: str | None = None,
    time: str = "timestamp",
    unit: str = "s",
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """One mark per event at its time. ``y`` picks the row: a number column is drawn as is, a
    text column (``comm``) gets one labelled row per value; by default rows are the CPUs."""
    ax = _titled_axes(ax, title)
    if df.empty:
        return _empty(ax, "events")
    seconds = event_seconds(df, time, unit)
    if y is None and "cpu" in df.columns:
        y = "cpu"
    if y is None:
        ax.plot(seconds, np.zeros_like(seconds), "|", markersize=20, color=_BAR_COLOR)
        ax.set_yticks([])
    elif pd.api.types.is_numeric_dtype(df[y]):
        ax.plot(seconds, df[y].to_numpy(), "o", markersize=3, color=_BAR_COLOR)
        ax.set_ylabel(y)
        if y == "cpu":
            ax.set_yticks(sorted(df[y].unique()))
    else:
        names = df[y].map(_cell_text)
        rows = {name: i for i, name in enumerate(sorted(names.unique()))}
        ax.plot(seconds, names.map(rows).to_numpy(), "|", markersize=12, color=_BAR_COLOR)
        ax.set_yticks(list(rows.values()), list(rows.keys()), parse_math=False)
        ax.set_ylabel(y)
    ax.set_xlabel("seconds since first event")
    return ax


def plot_event_rate(
    df: pd.DataFrame,
    *,
    bin_seconds: float = 1.0,
    time: str = "timestamp",
    unit: str = "s",
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Events per second, counted in bins of ``bin_seconds`` from the first event."""
    if bin_seconds <= 0:
        raise UsageError(f"bin_seconds must be positive, not {bin_seconds}")
    ax = _titled_axes(ax, title)
    if df.empty:
        return _empty(ax, "events")
    seconds = event_seconds(df, time, unit)
    n_bins = int(np.floor(seconds.max() / bin_seconds)) + 1
    counts = np.bincount((seconds // bin_seconds).astype(np.int64), minlength=n_bins)
    starts = np.arange(n_bins) * bin_seconds
    ax.bar(starts, counts / bin_seconds, width=bin_seconds * 0.9, align="edge", color=_BAR_COLOR)
    ax.set_xlabel("seconds since first event")
    ax.set_ylabel("events / s")
    lost = df.attrs.get("lost")
    if lost:
        ax.annotate(f"{lost} lost", xy=(1, 1), xycoords="axes fraction", ha="right", va="bottom",
                    color="firebrick")
    return ax


_PLOTTERS: dict[str, Callable[..., Axes]] = {
    "log2_histogram": plot_log2_hist,
    "linear_histogram": plot_linear_hist,
    "counts": plot_counts,
    "timeline": plot_event_timeline,
    "rate": plot_event_rate,
}
_ALIASES = {"log2": "log2_histogram", "hist": "log2_histogram", "linear": "linear_histogram",
            "events": "rate", "bar": "counts"}


def frame_kind(df: pd.DataFrame) -> str:
    """The picture that suits a frame: from ``df.attrs['kind']``, else from its columns."""
    kind = df.attrs.get("kind")
    if kind in _PLOTTERS or kind in _ALIASES:
        return str(_ALIASES.get(kind, kind))
    columns = set(df.columns)
    if {"low", "high", "count"} <= columns:
        return "log2_histogram"
    if "timestamp" in columns:
        return "rate"
    from .map_kinds import kind_named  # the map-kind table (it draws with these functions)

    row = kind_named(df.attrs.get("map_type"))
    if row is not None and row.plot == "linear_histogram" and _has_integer_key(df):
        return "linear_histogram"
    return "counts"


def _has_integer_key(df: pd.DataFrame) -> bool:
    return "key" in df.columns and bool(pd.api.types.is_integer_dtype(df["key"]))


def plot_frame(df: pd.DataFrame, kind: str | None = None, **kw: object) -> Axes:
    """Draw ``df`` the way its shape suggests, or as ``kind``: one of ``log2_histogram``,
    ``linear_histogram``, ``counts``, ``timeline``, ``rate``. Extra keywords go to the plot."""
    chosen = _ALIASES.get(kind, kind) if kind is not None else frame_kind(df)
    if chosen not in _PLOTTERS:
        raise UsageError(f"unknown plot kind {kind!r}: choose one of {', '.join(_PLOTTERS)}")
    return _PLOTTERS[chosen](df, **kw)
