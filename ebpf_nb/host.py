"""Facts about the machine eBPF runs on, and ``doctor()``: one row per check with its fix.

Every path is rooted in a :class:`HostPaths` so checks can be tested against a fake tree.
"""
from __future__ import annotations

import functools
import gzip
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .advice import AdviceTable
from .errors import HostError, PrivilegeError

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
SETUP_FIX = "run `make setup` as root (it installs and mounts what eBPF needs)"


@dataclass(frozen=True)
class HostPaths:
    """Where the kernel's pseudo files live (override the roots to test with fake files)."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    lib_modules: Path = Path("/lib/modules")
    release: str = field(default_factory=platform.release)

    @property
    def tracefs_candidates(self) -> list[Path]:
        return [self.sys / "kernel/tracing", self.sys / "kernel/debug/tracing"]


DEFAULT = HostPaths()


@dataclass(frozen=True)
class Check:
    """The outcome of one host check."""

    check: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # works, with a caveat

    @property
    def status(self) -> str:
        return "OK" if self.ok and not self.warning else ("warning" if self.ok else "problem")


# --- single facts --------------------------------------------------------------------------------

def effective_capabilities(paths: HostPaths = DEFAULT) -> int:
    """The process's effective capability bits, from /proc/self/status."""
    for line in (paths.proc / "self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def has_bpf_privileges(paths: HostPaths = DEFAULT) -> bool:
    """True when this process may load tracing programs (CAP_BPF+CAP_PERFMON, or CAP_SYS_ADMIN)."""
    caps = effective_capabilities(paths)
    has: Callable[[int], bool] = lambda bit: bool(caps >> bit & 1)
    return has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON))


def tracefs_path(paths: HostPaths = DEFAULT) -> Path | None:
    """The mounted tracefs directory (the one holding ``trace_pipe``), or None."""
    return next((p for p in paths.tracefs_candidates if (p / "trace_pipe").exists()), None)


def kernel_config(paths: HostPaths = DEFAULT) -> dict[str, str]:
    """The running kernel's config from /proc/config.gz or /boot (empty when neither exists)."""
    gz = paths.proc / "config.gz"
    boot = Path("/boot") / f"config-{paths.release}"
    try:
        text = gzip.decompress(gz.read_bytes()).decode() if gz.exists() else boot.read_text()
    except OSError:
        return {}
    config = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            config[key] = value
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            config[line[2:-len(" is not set")]] = "n"
    return config


def kprobes_available(paths: HostPaths = DEFAULT) -> bool:
    """True when the kernel has kprobes (CONFIG_KPROBES)."""
    tracefs = tracefs_path(paths)
    if tracefs is not None:
        return (tracefs / "kprobe_events").exists()
    return kernel_config(paths).get("CONFIG_KPROBES") == "y"


def btf_available(paths: HostPaths = DEFAULT) -> bool:
    """True when the kernel exposes its BTF (needed by CO-RE and fentry)."""
    return (paths.sys / "kernel/btf/vmlinux").exists()


def headers_release(paths: HostPaths = DEFAULT) -> str | None:
    """The kernel release the headers in /lib/modules/$(uname -r)/build were made for."""
    build = paths.lib_modules / paths.release / "build"
    for rel in ("include/config/kernel.release", "include/generated/utsrelease.h"):
        f = build / rel
        if f.exists():
            text = f.read_text().strip()
            return text.split('"')[1] if '"' in text else text
    return None


@functools.cache
def fentry_supported() -> bool:
    """Load a tiny fentry program once to learn whether this kernel accepts fentry/fexit."""
    from .capture import capture_stderr
    try:
        from bcc import BPF
    except ImportError:
        return False
    try:
        with capture_stderr():
            b = BPF(text="KFUNC_PROBE(vfs_read) { return 0; }")
            b.cleanup()
        return True
    except Exception:  # noqa: BLE001 - BCC raises bare Exception: any failure means no fentry
        return False


# --- requirements raised as errors ---------------------------------------------------------------

def require_privileges(paths: HostPaths = DEFAULT) -> None:
    """Raise :class:`PrivilegeError` unless this process may load BPF programs."""
    if not has_bpf_privileges(paths):
        raise PrivilegeError(
            "loading eBPF programs needs root (or CAP_BPF and CAP_PERFMON)",
            hint="start Jupyter as root (`sudo make lab`) or use the VM, where the kernel has them.")


def require_tracefs(paths: HostPaths = DEFAULT) -> Path:
    """The tracefs path, or :class:`HostError` saying how to mount it."""
    path = tracefs_path(paths)
    if path is None:
        raise HostError("tracefs is not mounted, so the trace pipe and tracepoints are unavailable",
                        hint="run `mount -t tracefs tracefs /sys/kernel/tracing` as root "
                             "(or `make setup`).")
    return path


def require_headers(paths: HostPaths = DEFAULT) -> None:
    """Raise :class:`HostError` when BCC has no kernel headers to compile against."""
    build = paths.lib_modules / paths.release / "build"
    if not build.exists():
        raise HostError(f"no kernel headers found for {paths.release} ({build} is missing)",
                        hint="run `make setup`, or use a CO-RE cell (%%bpf NAME --core), "
                             "which needs no headers.")


# --- the doctor ----------------------------------------------------------------------------------

def run_checks(paths: HostPaths = DEFAULT) -> list[Check]:
    """All host checks, in the order a student should fix them."""
    checks = []
    privileged = has_bpf_privileges(paths)
    checks.append(Check("privileges", privileged,
                        f"euid {os.geteuid()}, " + ("may load BPF programs" if privileged
                                                    else "lacks CAP_BPF/CAP_PERFMON"),
                        "" if privileged else "run Jupyter as root (`sudo make lab`) or use the VM"))
    tracefs = tracefs_path(paths)
    checks.append(Check("tracefs", tracefs is not None,
                        str(tracefs) if tracefs else "not mounted",
                        "" if tracefs else "mount -t tracefs tracefs /sys/kernel/tracing"))
    bpffs = os.path.ismount(paths.sys / "fs/bpf")
    checks.append(Check("bpffs", bpffs, "/sys/fs/bpf mounted" if bpffs else "not mounted",
                        "" if bpffs else "mount -t bpf bpf /sys/fs/bpf", warning=False))
    hdr = headers_release(paths)
    if hdr is None:
        checks.append(Check("kernel headers", False, "none for " + paths.release, SETUP_FIX))
    elif hdr == paths.release:
        checks.append(Check("kernel headers", True, f"{hdr} (match the running kernel)"))
    else:
        checks.append(Check("kernel headers", True,
                            f"headers are {hdr}, kernel is {paths.release}: BCC works, but "
                            "structs that changed between them read wrong values",
                            "prefer CO-RE cells (%%bpf NAME --core) for kernel structs",
                            warning=True))
    btf = btf_available(paths)
    checks.append(Check("BTF", btf, "/sys/kernel/btf/vmlinux" if btf else "missing",
                        "" if btf else "use a kernel built with CONFIG_DEBUG_INFO_BTF=y"))
    kprobes = kprobes_available(paths)
    checks.append(Check("kprobes", kprobes, "available" if kprobes else "kernel built without "
                        "CONFIG_KPROBES", "" if kprobes else "use tracepoints, raw tracepoints or "
                        "`-a syscall:NAME` (the kit picks the tracepoint); the VM has kprobes"))
    fentry = fentry_supported() if btf and privileged else False
    checks.append(Check("fentry/fexit", fentry, "available" if fentry else "this kernel refuses "
                        "fentry/fexit programs", "" if fentry else "use tp_btf, raw tracepoints or "
                        "tracepoints instead", warning=False))
    jit = _read_int(paths.proc / "sys/net/core/bpf_jit_enable")
    checks.append(Check("JIT", jit in (1, 2), {None: "unknown", 0: "off", 1: "on", 2: "on (debug)"}
                        .get(jit, str(jit)), "" if jit in (1, 2)
                        else "sysctl -w net.core.bpf_jit_enable=1"))
    try:
        import bcc
        checks.append(Check("bcc", True, f"version {getattr(bcc, '__version__', 'unknown')}"))
    except ImportError:
        checks.append(Check("bcc", False, "python bindings not importable",
                            "apt-get install python3-bpfcc and use the venv from `make setup`"))
    return checks


def doctor(paths: HostPaths = DEFAULT) -> AdviceTable:
    """One row per check: ``check``, ``status`` (OK / warning / problem), ``detail``, ``fix``;
    displayed in full (wrapped, left-aligned), never cut."""
    rows = [{"check": c.check, "status": c.status, "detail": c.detail, "fix": c.fix}
            for c in run_checks(paths)]
    return AdviceTable(rows, columns=["check", "status", "detail", "fix"])


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
