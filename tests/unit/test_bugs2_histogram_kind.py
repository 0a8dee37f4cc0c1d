"""A cell's histograms are log2 or linear each by its own use, not by the word "log2" anywhere
in the cell (issue 14: a comment saying log2 made a linear histogram read as log2 buckets)."""
from __future__ import annotations

from histogram_sources import LINEAR_WITH_COMMENT

from ebpf_nb import bcc_program


def test_a_comment_saying_log2_does_not_make_a_histogram_log2():
    assert bcc_program.histogram_kinds(LINEAR_WITH_COMMENT) == {"per_cpu": "linear_histogram"}


def test_two_histograms_in_one_cell_each_get_their_own_kind():
    source = """
BPF_HISTOGRAM(sizes);
BPF_HISTOGRAM(fds);
typedef struct { u32 cpu; u64 slot; } key_t;
BPF_HISTOGRAM(lat, key_t);
TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    sizes.increment(bpf_log2l(args->count));
    fds.increment(args->fd);
    key_t key = {};
    key.slot = bpf_log2l(args->count);
    lat.atomic_increment(key);
    return 0;
}"""
    assert bcc_program.histogram_kinds(source) == {"sizes": "log2_histogram", "fds": "linear_histogram",
                                       "lat": "log2_histogram"}


def test_a_slot_variable_set_by_log2_makes_the_histogram_log2():
    source = """BPF_HISTOGRAM(dist);
int f(void *ctx) { u64 slot = bpf_log2(42); dist.increment(slot); return 0; }"""
    assert bcc_program.histogram_kinds(source) == {"dist": "log2_histogram"}


def test_a_log2l_the_cell_defines_counts_as_log2_and_a_string_does_not():
    source = r"""
static inline u32 log2l(u64 v) { u32 r = 0; while (v >>= 1) r++; return r; }
BPF_HISTOGRAM(mine);
BPF_HISTOGRAM(plain);
int f(void *ctx) {
    mine.increment(log2l(ctx ? 4096 : 1));
    u64 slot = 3;
    bpf_trace_printk("slot = bpf_log2l(slot) is not done here\n");
    plain.increment(slot);
    return 0;
}"""
    assert bcc_program.histogram_kinds(source) == {"mine": "log2_histogram",
                                                   "plain": "linear_histogram"}
