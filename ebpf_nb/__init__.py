"""ebpf_nb: a Jupyter teaching kit for eBPF."""
__version__ = "0.1.0"
