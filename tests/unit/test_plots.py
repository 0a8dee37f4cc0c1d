"""Plot functions: the Axes they return carry the frame's numbers and readable labels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ebpf_nb import plots
from ebpf_nb.errors import UsageError


def fresh_ax():
    return Figure().subplots()


def heights(ax) -> list[float]:
    return [p.get_height() for p in ax.patches]


def widths(ax) -> list[float]:
    return [p.get_width() for p in ax.patches]


def tick_texts(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


def y_labels_top_first(ax) -> list[str]:
    ticks = zip(ax.get_yticks(), ax.yaxis.get_ticklabels())
    return [label.get_text() for _, label in sorted(ticks, key=lambda t: -t[0])]


def log2_frame(counts: list[int]) -> pd.DataFrame:
    """A frame shaped like the lead's log2 histogram: bucket i holds [2**(i-1), 2**i - 1]."""
    lows = [0] + [2 ** (i - 1) for i in range(1, len(counts))]
    highs = [0] + [2 ** i - 1 for i in range(1, len(counts))]
    df = pd.DataFrame({"low": lows, "high": highs, "count": counts})
    df.attrs["kind"] = "log2_histogram"
    return df


@pytest.mark.parametrize(
    ("low", "high", "label"),
    [(0, 0, "0"), (1, 1, "1"), (2, 3, "2-3"), (16, 31, "16-31"), (512, 1023, "512-1023"),
     (1024, 2047, "1K-2K"), (2**20, 2**21 - 1, "1M-2M"), (2**30, 2**31 - 1, "1G-2G"),
     (2**39, 2**40 - 1, "512G-1T")],
)
def test_bucket_labels_read_like_bcc_ranges(low, high, label):
    assert plots.bucket_label(low, high) == label


def test_log2_hist_bars_match_counts_and_trim_empty_ends():
    counts = [0, 0, 3, 0, 7, 11, 2, 0, 0]
    ax = plots.plot_log2_hist(log2_frame(counts), ax=fresh_ax(), title="latency")
    assert heights(ax) == [3, 0, 7, 11, 2]  # the interior empty bucket stays
    assert tick_texts(ax.xaxis) == ["2-3", "4-7", "8-15", "16-31", "32-63"]
    assert ax.get_title() == "latency"
    assert ax.get_ylabel() == "count"


def test_log2_hist_without_trim_keeps_every_bucket():
    counts = [0, 1, 0, 0]
    ax = plots.plot_log2_hist(log2_frame(counts), ax=fresh_ax(), trim=False)
    assert heights(ax) == counts


def test_log2_hist_large_buckets_use_k_suffix():
    df = pd.DataFrame({"low": [512, 1024, 2048], "high": [1023, 2047, 4095], "count": [1, 5, 2]})
    ax = plots.plot_log2_hist(df, ax=fresh_ax())
    assert tick_texts(ax.xaxis) == ["512-1023", "1K-2K", "2K-4K"]
    assert heights(ax) == [1, 5, 2]


def test_log2_hist_all_zero_draws_a_note_not_bars():
    ax = plots.plot_log2_hist(log2_frame([0, 0, 0]), ax=fresh_ax())
    assert len(ax.patches) == 0
    assert [t.get_text() for t in ax.texts] == ["no values"]


def test_log2_hist_refuses_a_frame_without_buckets():
    with pytest.raises(UsageError, match="low"):
        plots.plot_log2_hist(pd.DataFrame({"key": [1], "value": [2]}), ax=fresh_ax())


def test_linear_hist_bars_at_their_slots():
    df = pd.DataFrame({"key": [0, 1, 2, 3, 4, 5], "value": [0, 4, 0, 9, 1, 0]})
    ax = plots.plot_linear_hist(df, ax=fresh_ax())
    assert heights(ax) == [4, 0, 9, 1]
    assert [p.get_x() + p.get_width() / 2 for p in ax.patches] == pytest.approx([1, 2, 3, 4])
    assert tick_texts(ax.xaxis) == ["1", "2", "3", "4"]


def test_counts_sorted_top_n_largest_on_top():
    df = pd.DataFrame({"comm": ["bash", "cat", "sshd", "ls", "vim"], "value": [5, 40, 12, 1, 7]})
    ax = plots.plot_counts(df, top=3, ax=fresh_ax())
    bars = sorted(ax.patches, key=lambda p: -p.get_y())  # top of the chart first
    assert [b.get_width() for b in bars] == [40, 12, 7]
    assert y_labels_top_first(ax) == ["cat", "sshd", "vim"]
    assert ax.get_xlabel() == "value"


def test_counts_of_per_cpu_map_rank_by_total_and_join_struct_keys():
    df = pd.DataFrame({"pid": [1, 2], "comm": ["a", "b"], "cpu0": [1, 10], "cpu1": [2, 0],
                       "total": [3, 10]})
    ax = plots.plot_counts(df, ax=fresh_ax())
    assert sorted(widths(ax), reverse=True) == [10, 3]
    assert y_labels_top_first(ax) == ["2 / b", "1 / a"]
    assert ax.get_xlabel() == "total"


def test_counts_with_explicit_key_and_bytes_labels():
    df = pd.DataFrame({"comm": [b"cat\0\0", b"ls\0"], "pid": [7, 8], "value": [1, 2]})
    ax = plots.plot_counts(df, key="comm", ax=fresh_ax())
    assert y_labels_top_first(ax) == ["ls", "cat"]


def test_labels_from_data_are_not_parsed_as_math():
    df = pd.DataFrame({"comm": ["$\\nosuchsymbol$", "a_b$c"], "value": [2, 1]})
    ax = plots.plot_counts(df, ax=fresh_ax())
    FigureCanvasAgg(ax.figure).draw()  # mathtext would raise on the unknown symbol here
    assert y_labels_top_first(ax) == ["$\\nosuchsymbol$", "a_b$c"]


def events_frame(seconds: list[float], *, as_timestamps: bool) -> pd.DataFrame:
    if as_timestamps:
        base = pd.Timestamp("2026-01-01 12:00:00")
        stamps = [base + pd.Timedelta(seconds=s) for s in seconds]
    else:
        stamps = [1_700_000_000.0 + s for s in seconds]
    df = pd.DataFrame({"pid": range(len(seconds)), "comm": ["a", "b"] * (len(seconds) // 2)
                       + ["a"] * (len(seconds) % 2), "cpu": [0, 1] * (len(seconds) // 2)
                       + [0] * (len(seconds) % 2), "timestamp": stamps})
    df.attrs.update(lost=0, interrupted=False)
    return df


@pytest.mark.parametrize("as_timestamps", [True, False])
def test_event_rate_counts_per_bin(as_timestamps):
    seconds = [0.0, 0.1, 0.2, 0.5, 1.2, 2.9, 2.95]
    df = events_frame(seconds, as_timestamps=as_timestamps)
    ax = plots.plot_event_rate(df, bin_seconds=1.0, ax=fresh_ax())
    assert heights(ax) == [4, 1, 2]
    half = plots.plot_event_rate(df, bin_seconds=0.5, ax=fresh_ax())
    assert heights(half) == [6, 2, 2, 0, 0, 4]  # per second: 3 events in the first half second
    assert sum(h * 0.5 for h in heights(half)) == len(seconds)


def test_event_rate_notes_lost_events():
    df = events_frame([0.0, 1.0], as_timestamps=False)
    df.attrs["lost"] = 17
    ax = plots.plot_event_rate(df, ax=fresh_ax())
    assert any("17 lost" in t.get_text() for t in ax.texts)


@pytest.mark.parametrize("as_timestamps", [True, False])
def test_event_timeline_places_each_event(as_timestamps):
    seconds = [0.0, 0.5, 2.0]
    df = events_frame(seconds, as_timestamps=as_timestamps)
    ax = plots.plot_event_timeline(df, y="comm", ax=fresh_ax())
    (line,) = ax.lines
    assert list(line.get_xdata()) == pytest.approx(seconds)
    assert list(line.get_ydata()) == [0, 1, 0]
    assert tick_texts(ax.yaxis) == ["a", "b"]


def test_event_timeline_default_rows_are_cpus():
    df = events_frame([0.0, 1.0, 2.0, 3.0], as_timestamps=False)
    ax = plots.plot_event_timeline(df, ax=fresh_ax())
    assert list(ax.lines[0].get_ydata()) == [0, 1, 0, 1]
    assert ax.get_ylabel() == "cpu"


def test_event_timeline_kernel_nanoseconds_column():
    df = pd.DataFrame({"ts": np.array([5_000_000_000, 5_250_000_000, 6_000_000_000])})
    ax = plots.plot_event_timeline(df, time="ts", unit="ns", ax=fresh_ax())
    assert list(ax.lines[0].get_xdata()) == pytest.approx([0.0, 0.25, 1.0])


def test_empty_events_draw_a_note():
    df = pd.DataFrame({"pid": [], "timestamp": []})
    assert [t.get_text() for t in plots.plot_event_rate(df, ax=fresh_ax()).texts] == ["no events"]


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (log2_frame([1, 2]), "log2_histogram"),
        (pd.DataFrame({"low": [1], "high": [1], "count": [1]}), "log2_histogram"),
        (events_frame([0.0, 1.0], as_timestamps=True), "rate"),
        (pd.DataFrame({"comm": ["a"], "value": [1]}), "counts"),
    ],
)
def test_frame_kind_from_attrs_and_columns(frame, kind):
    assert plots.frame_kind(frame) == kind


def test_frame_kind_array_map_is_a_linear_histogram():
    df = pd.DataFrame({"key": [0, 1], "value": [3, 4]})
    df.attrs["map_type"] = "BPF_MAP_TYPE_ARRAY"
    assert plots.frame_kind(df) == "linear_histogram"
    df.attrs["map_type"] = "BPF_MAP_TYPE_HASH"
    assert plots.frame_kind(df) == "counts"


def test_plot_frame_dispatches_and_passes_keywords():
    ax = plots.plot_frame(log2_frame([0, 2, 4]), ax=fresh_ax(), title="t")
    assert heights(ax) == [2, 4] and ax.get_title() == "t"
    ax = plots.plot_frame(pd.DataFrame({"key": [1, 2], "value": [3, 4]}), kind="linear",
                          ax=fresh_ax())
    assert heights(ax) == [3, 4]
    with pytest.raises(UsageError, match="unknown plot kind"):
        plots.plot_frame(log2_frame([1]), kind="pie")


def test_without_ax_a_new_figure_is_made():
    import matplotlib.pyplot as plt

    ax = plots.plot_frame(pd.DataFrame({"comm": ["a"], "value": [1]}))
    try:
        assert ax.figure is not None and widths(ax) == [1]
    finally:
        plt.close(ax.figure)
