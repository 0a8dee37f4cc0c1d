"""The C + libbpf reference: ``benchmarks/c/reader.c`` built at bench time and run on the same
BPF program and map the Python rows use (their fds are passed to the child process).

:func:`build` compiles it with the system ``cc`` and Debian's libbpf-dev into a private
(0700) temporary directory, removed again at exit; no binary is kept or committed.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("c") / "reader.c"
_built: Path | None = None


def build() -> Path:
    """The reader binary, compiled on first use (``cc -O2 ... -lbpf -lpthread``)."""
    global _built
    if _built is not None and _built.exists():
        return _built
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler (cc) found: run `make setup` to install the toolchain")
    workdir = Path(tempfile.mkdtemp(prefix="ebpf_nb-bench-"))  # 0700, unguessable
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    binary = workdir / "reader"
    proc = subprocess.run([cc, "-O2", "-Wall", "-o", str(binary), str(SOURCE), "-lbpf",
                           "-lpthread"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"building the C reference failed:\n{proc.stderr.strip()}")
    _built = binary
    return binary


def _run(args: list[int | str], fds: tuple[int, ...], timeout: float,
         cold_columns: bool = False) -> dict:
    for fd in fds:
        os.set_inheritable(fd, True)
    env = dict(os.environ, READER_COLD_COLUMNS="1" if cold_columns else "0")
    proc = subprocess.run([str(build()), *map(str, args)], pass_fds=fds, capture_output=True,
                          text=True, timeout=timeout, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"C reference {args[0]} failed ({proc.returncode}): "
                           f"{proc.stderr.strip()}")
    return json.loads(proc.stdout)


def events(source: str, total: int, *, ring: bool, flow_control: bool = False,
           wakeup_events: int = 64, pages: int = 64, cold_columns: bool = False) -> dict:
    """Load ``source`` (the same BCC text as the Python rows), let the C reader emit ``total``
    records and read them; returns the same outcome keys as the Python rows.

    ``cold_columns``: do not touch the columns' memory before timing (see ``c/reader.c``)."""
    from bcc import BPF
    b = BPF(text=source.encode())
    try:
        fn = b.load_func(b"emit", BPF.RAW_TRACEPOINT)
        map_fd = b[b"events"].map_fd
        stats_fd = b[b"stats"].map_fd
        mode = ["ring", fn.fd, map_fd, stats_fd, total, int(flow_control)] if ring else \
            ["perf", fn.fd, map_fd, stats_fd, total, wakeup_events, pages]
        out = _run(mode, (fn.fd, map_fd, stats_fd), timeout=120 + total / 10_000,
                   cold_columns=cold_columns)
    finally:
        b.cleanup()
    received, dropped = out["received"], out["dropped"]
    return {"received": received, "submitted": out["submitted"], "dropped": dropped,
            "kernel_lost": out["lost"],
            "exact": received + dropped == out["submitted"],
            "seconds": out["seconds"], "cpu_seconds": out["cpu_seconds"],
            "rows_per_s": received / out["seconds"] if out["seconds"] else 0.0}


def hash_map(fd: int, repeat: int) -> dict:
    """Best of ``repeat`` whole-map reads (``bpf_map_lookup_batch`` + copy into columns)."""
    out = _run(["hash", fd, repeat], (fd,), timeout=300)
    out["rows_per_s"] = out["entries"] / out["seconds"] if out["seconds"] else 0.0
    return out
