"""Speed of ebpf_nb against plain BCC, on this machine: ``python -m benchmarks`` (``make bench``).

Each benchmark measures our figure and plain BCC's on the same run; events are made
deterministically with BPF_PROG_TEST_RUN on a raw tracepoint program, never by waiting for the
system to do something.
"""
