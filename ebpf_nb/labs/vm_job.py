"""Inside the grading VM: run the jobs of the jobs disk, write the verdicts to the results disk.

    python -I -m ebpf_nb.labs.vm_job JOBS_DEVICE RESULTS_DEVICE

Started at boot by the ``ebpf-nb-grade`` service when the host attached the jobs disk (see
:mod:`.vm`); the service powers the VM off afterwards. Each job runs in its own grading process
(:func:`.grade.run_job`: time and memory limits, its process group killed); between jobs every
process the job left behind (a daemon that escaped its group) is killed and bpffs is emptied, so
each submission starts from the same VM.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

from .grade import run_job
from .vm import HEADER, JOBS_MAGIC, RESULTS_DISK_BYTES, RESULTS_MAGIC, pack, unpack

MAX_JOBS_BYTES = 256 * 1024 * 1024


def user_processes() -> set[int]:
    """The ids of every process but kernel threads (which have no command line)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes():
                    pids.add(int(entry))
            except OSError:
                continue
    return pids


def reset(baseline: set[int]) -> None:
    """Kill what the last job left running and unpin what it pinned."""
    for pid in user_processes() - baseline - {os.getpid()}:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    bpffs = Path("/sys/fs/bpf")
    if bpffs.is_dir():
        for entry in bpffs.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    jobs_device, results_device = argv
    with open(jobs_device, "rb") as handle:
        head = handle.read(HEADER)
        size = int.from_bytes(head[16:HEADER], "big") if len(head) == HEADER else 0
        blob = head + handle.read(min(size, MAX_JOBS_BYTES))
    payload = unpack(blob, JOBS_MAGIC, MAX_JOBS_BYTES)
    assert isinstance(payload, dict)
    timeout, memory_mb = float(payload["timeout"]), int(payload["memory_mb"])
    baseline = user_processes()
    results: list[dict[str, object]] = []
    for entry in payload["jobs"]:
        verdicts, stopped = run_job(entry["job"], timeout, memory_mb)
        results.append({"id": entry["id"], "verdicts": verdicts, "stopped": stopped})
        print(f"ebpf-nb-grade: job {entry['id']}: {len(verdicts)} verdicts {stopped}",
              flush=True)
        # after every job, so that a VM stopped at its deadline keeps the verdicts it has
        write_results(results_device, results)
        reset(baseline)
    return 0


def write_results(results_device: str, results: list[dict[str, object]]) -> bool:
    """Write every result so far to the results disk, synced; False (nothing written) when
    they no longer fit on it: the results written last stay."""
    out = pack(RESULTS_MAGIC, {"results": results})
    if len(out) > RESULTS_DISK_BYTES:
        print("ebpf-nb-grade: the results no longer fit on the results disk", flush=True)
        return False
    with open(results_device, "r+b") as handle:
        handle.write(out)
        handle.flush()
        os.fsync(handle.fileno())
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
