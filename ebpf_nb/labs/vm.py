"""Grade in a disposable VM: the jobs go in on a read-only disk, the verdicts come out on another.

The host parses every submission (no student code runs on it) and writes the jobs (the
canonical lab's steps with the student's C, no names) to a raw disk image. QEMU boots a
provisioned ebpf_nb guest image (the Vagrant VM's disk, see ``docs/grading.md``) with:

- the image opened ``snapshot=on``: every write goes to a temporary overlay that QEMU deletes
  on exit, so each run starts from the same disk and leaves it unchanged;
- no network device at all (``-nic none``);
- the jobs disk read-only (serial ``ebpfnb-job``) and an empty results disk (``ebpfnb-out``).

In the guest, the ``ebpf-nb-grade`` service (installed by ``provision.sh --vm``, started only
when the jobs disk is attached) runs :mod:`.vm_job`, which grades each job in its own grading
process, writes the verdicts to the results disk and powers the VM off. The host then reads that
disk as untrusted input: a bounded, versioned JSON blob whose verdicts count only for the jobs
it sent and the exercises of each job's canonical lab.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .grade import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, Verdicts

JOBS_MAGIC = b"EBPFNB-JOBS-1\n\0\0"  # 16 bytes, then an 8-byte big-endian length, then JSON
RESULTS_MAGIC = b"EBPFNB-VERDICT1\n"
HEADER = 24
RESULTS_DISK_BYTES = 32 * 1024 * 1024
BOOT_ALLOWANCE = {"kvm": 180.0, "tcg": 900.0}  # seconds to boot and power off, on top of jobs
MAX_FEEDBACK = 2000


class VmGradingError(RuntimeError):
    """The VM could not grade (no QEMU, a bad image, it never answered)."""


@dataclass
class VmRunner:
    """Runs grading jobs in one disposable VM booted from ``image`` (a provisioned guest disk).

    ``accel`` is ``kvm``, ``tcg`` or ``auto`` (KVM when ``/dev/kvm`` can be opened and boots,
    else TCG); ``per_submission`` boots a fresh VM for every job instead of one per batch."""
    image: Path
    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    vm_memory_mb: int = 6144
    cpus: int = 2
    accel: str = "auto"
    per_submission: bool = False
    log: object = sys.stderr
    _checked: DiskImage | None = field(default=None, init=False, repr=False)

    def check(self) -> DiskImage:
        """The image, checked once (QEMU present, ``qemu-img`` reads it, its format)."""
        if self._checked is None:
            self._checked = check_image(Path(self.image))
        return self._checked

    def __call__(self, jobs: list[dict[str, object]]) -> list[Verdicts]:
        image = self.check()
        if self.per_submission:
            results: list[Verdicts] = []
            for job in jobs:
                results.extend(self._boot(image, [job]))
            return results
        return self._boot(image, jobs)

    def _say(self, text: str) -> None:
        print(f"[ebpf-nb grade vm] {text}", file=self.log, flush=True)  # type: ignore[call-overload]

    def _boot(self, image: DiskImage, jobs: list[dict[str, object]]) -> list[Verdicts]:
        accels = ["kvm", "tcg"] if self.accel == "auto" and kvm_usable() else \
            ["tcg"] if self.accel == "auto" else [self.accel]
        for accel in accels:
            started = time.monotonic()
            answers = self._boot_with(image, jobs, accel)
            took = time.monotonic() - started
            if answers is not None:
                self._say(f"{len(jobs)} submission(s) graded in {took:.0f} s ({accel}, "
                          f"{took / max(1, len(jobs)):.1f} s each)")
                return answers
            self._say(f"the VM gave no verdicts with {accel} after {took:.0f} s")
        raise VmGradingError("the grading VM returned no verdicts (see the console log above)")

    def _boot_with(self, image: DiskImage, jobs: list[dict[str, object]], accel: str
                   ) -> list[Verdicts] | None:
        with tempfile.TemporaryDirectory(prefix="ebpf-nb-vm-") as private:
            folder = Path(private)
            jobs_disk, results_disk = folder / "jobs.img", folder / "results.img"
            write_jobs_disk(jobs_disk, jobs, self.timeout, self.memory_mb)
            with results_disk.open("wb") as handle:
                handle.truncate(RESULTS_DISK_BYTES)
            console = folder / "console.log"
            command = qemu_command(image, jobs_disk, results_disk, console, accel,
                                   self.cpus, self.vm_memory_mb)
            deadline = BOOT_ALLOWANCE[accel] + len(jobs) * (self.timeout + 30)
            self._say(f"booting {image.path.name} ({accel}, no network) for {len(jobs)} job(s)")
            with (folder / "qemu.log").open("wb") as qemu_log:
                qemu = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=qemu_log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                try:
                    qemu.wait(timeout=deadline)
                except subprocess.TimeoutExpired:
                    self._say(f"the VM did not finish within {deadline:.0f} s: stopped")
                finally:
                    if qemu.poll() is None:
                        qemu.kill()
                        qemu.wait()
            answers = read_results_disk(results_disk, len(jobs))
            if answers is None:
                tail = _tail(folder / "qemu.log") + _tail(console)
                self._say(f"QEMU exited with {qemu.returncode}; last lines:\n{tail}")
            return answers


def kvm_usable() -> bool:
    """Whether ``/dev/kvm`` can be opened for reading and writing."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


@dataclass(frozen=True)
class DiskImage:
    """A disk image ``qemu-img`` has read, with the format it found (given to QEMU, never probed
    again)."""
    path: Path
    format: str


def check_image(image: Path) -> DiskImage:
    """``image`` as a plain disk image QEMU can open, with its format, or a clear error."""
    if image.is_symlink() or not image.is_file():
        raise VmGradingError(f"{image}: not a regular file (give the provisioned VM's disk image)")
    if shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None:
        raise VmGradingError("qemu-system-x86_64 and qemu-img are needed: "
                             "apt install qemu-system-x86 qemu-utils")
    info = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(image)],
                          capture_output=True, text=True, check=False)
    if info.returncode != 0:
        raise VmGradingError(f"{image}: qemu-img cannot read it: {info.stderr.strip()[:200]}")
    try:
        found = json.loads(info.stdout)["format"]
    except (ValueError, KeyError, TypeError):
        found = None
    if found not in ("raw", "qcow2"):
        raise VmGradingError(f"{image}: a {found} image; give a raw or qcow2 disk image")
    return DiskImage(image, found)


def _qemu_option_value(path: Path) -> str:
    """A path as one value of a QEMU ``-drive`` option list (a comma is written twice)."""
    return str(path).replace(",", ",,")


def qemu_command(image: DiskImage, jobs_disk: Path, results_disk: Path, console: Path, accel: str,
                 cpus: int, memory_mb: int) -> list[str]:
    """QEMU's command line: the image behind a throw-away overlay, no network, two data disks."""
    cpu = "host" if accel == "kvm" else "max"
    return [
        "qemu-system-x86_64", "-accel", accel if accel == "kvm" else "tcg,thread=multi",
        "-cpu", cpu, "-smp", str(cpus), "-m", str(memory_mb),
        "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
        "-serial", f"file:{console}", "-nic", "none", "-no-reboot",
        "-machine", "q35",
        "-drive", (f"file={_qemu_option_value(image.path)},if=none,id=system,format={image.format},"
                   "snapshot=on,cache=unsafe"),
        "-device", "virtio-blk-pci,drive=system,bootindex=0",
        "-drive", f"file={jobs_disk},if=none,id=jobs,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=jobs,serial=ebpfnb-job",
        "-drive", f"file={results_disk},if=none,id=results,format=raw",
        "-device", "virtio-blk-pci,drive=results,serial=ebpfnb-out",
    ]


def pack(magic: bytes, payload: object) -> bytes:
    data = json.dumps(payload).encode()
    return magic + len(data).to_bytes(8, "big") + data


def unpack(blob: bytes, magic: bytes, limit: int) -> object:
    """The JSON after ``magic`` and its length in ``blob``; ValueError when malformed."""
    if len(blob) < HEADER or blob[:16] != magic:
        raise ValueError("no header")
    size = int.from_bytes(blob[16:HEADER], "big")
    if size > min(limit, len(blob) - HEADER):
        raise ValueError(f"length {size} out of bounds")
    return json.loads(blob[HEADER:HEADER + size])


def write_jobs_disk(path: Path, jobs: list[dict[str, object]], timeout: float,
                    memory_mb: int) -> None:
    payload = {"timeout": timeout, "memory_mb": memory_mb,
               "jobs": [{"id": i, "job": job} for i, job in enumerate(jobs)]}
    blob = pack(JOBS_MAGIC, payload)
    with path.open("wb") as handle:
        handle.write(blob)
        handle.truncate(-(-len(blob) // 512) * 512)  # whole sectors


def read_results_disk(path: Path, count: int) -> list[Verdicts] | None:
    """The verdicts for jobs 0..count-1 from the results disk (untrusted: the guest ran student
    programs as root); None when it holds no readable results at all."""
    with path.open("rb") as handle:
        blob = handle.read(RESULTS_DISK_BYTES)
    try:
        payload = unpack(blob, RESULTS_MAGIC, RESULTS_DISK_BYTES - HEADER)
    except ValueError:
        return None
    return verdicts_from(payload, count)


def verdicts_from(payload: object, count: int) -> list[Verdicts] | None:
    """Per job, the well-formed verdicts found for it; anything else in ``payload`` is ignored."""
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        return None
    found: dict[int, Verdicts] = {}
    for result in payload["results"]:
        if not isinstance(result, dict):
            continue
        job_id = result.get("id")
        if not isinstance(job_id, int) or isinstance(job_id, bool) or not 0 <= job_id < count \
                or job_id in found:
            continue
        raw = result.get("verdicts")
        verdicts = [_clean(v) for v in raw if isinstance(v, dict)] if isinstance(raw, list) else []
        stopped = result.get("stopped")
        found[job_id] = ([v for v in verdicts if v], str(stopped)[:MAX_FEEDBACK]
                         if isinstance(stopped, str) else "")
    missing = "grading stopped: the VM returned no verdicts for this submission"
    return [found.get(i, ([], missing)) for i in range(count)]


def _clean(verdict: dict[str, object]) -> dict[str, str]:
    """A verdict's three text fields, bounded; {} when a field is not text."""
    fields = {key: verdict.get(key) for key in ("exercise", "status", "message")}
    if not all(isinstance(value, str) for key, value in fields.items() if key != "message"):
        return {}
    message = fields["message"] if isinstance(fields["message"], str) else ""
    return {"exercise": str(fields["exercise"])[:200], "status": str(fields["status"])[:20],
            "message": message[:MAX_FEEDBACK]}


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:]) + "\n"
