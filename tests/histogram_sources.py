"""C of histograms whose kind is easy to get wrong (the pure test of histogram_kinds and the
real read of the same cell)."""

# A linear histogram next to comments that say log2
LINEAR_WITH_COMMENT = """
// not a log2 histogram: one bucket per CPU
BPF_HISTOGRAM(per_cpu, int, 64);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    per_cpu.increment(bpf_get_smp_processor_id());   /* bpf_log2l would lose the CPU */
    return 0;
}
"""
