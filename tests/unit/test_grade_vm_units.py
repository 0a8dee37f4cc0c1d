"""The disposable-VM grader's host side, without a VM: what it asks QEMU for, and how it reads
the results disk, which a submission running as root in the guest could have written."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ebpf_nb.cli import main
from ebpf_nb.labs import grade as grade_module
from ebpf_nb.labs.vm import (
    HEADER,
    JOBS_MAGIC,
    RESULTS_DISK_BYTES,
    RESULTS_MAGIC,
    DiskImage,
    VmGradingError,
    VmRunner,
    pack,
    qemu_command,
    read_results_disk,
    unpack,
    verdicts_from,
    write_jobs_disk,
)

LABS = Path(__file__).resolve().parents[2] / "labs"
GOOD = {"exercise": "01.openat", "status": "pass", "message": "ok"}


@pytest.fixture
def qemu_system_present(monkeypatch) -> None:
    """The image checks need the real qemu-img (``make test`` installs it), not QEMU itself."""
    real_which = shutil.which

    def which(name: str, *args, **kwargs):
        return "/usr/bin/qemu-system-x86_64" if name == "qemu-system-x86_64" else real_which(
            name, *args, **kwargs)

    monkeypatch.setattr("ebpf_nb.labs.vm.shutil.which", which)


def test_qemu_gets_no_network_and_keeps_the_image_unchanged(tmp_path: Path, monkeypatch) -> None:
    command = qemu_command(DiskImage(tmp_path / "disk.img", "qcow2"), tmp_path / "jobs.img",
                           tmp_path / "out.img",
                           tmp_path / "console.log", "tcg", 2, 4096)
    assert command[command.index("-nic") + 1] == "none"
    assert not [a for a in command if "netdev" in a or "hostfwd" in a or "virtfs" in a]
    drives = [command[i + 1] for i, a in enumerate(command) if a == "-drive"]
    devices = [command[i + 1] for i, a in enumerate(command) if a == "-device"]
    assert len(drives) == 3
    assert "snapshot=on" in drives[0] and "format=qcow2" in drives[0]
    assert "readonly=on" in drives[1] and "id=jobs" in drives[1]
    assert "id=results" in drives[2] and "readonly" not in drives[2]
    assert devices == ["virtio-blk-pci,drive=system,bootindex=0",
                       "virtio-blk-pci,drive=jobs,serial=ebpfnb-job",
                       "virtio-blk-pci,drive=results,serial=ebpfnb-out"]


def test_a_comma_in_the_image_path_cannot_add_drive_options(tmp_path: Path) -> None:
    image = DiskImage(tmp_path / "disk.img,snapshot=off,file.locking=off", "raw")
    command = qemu_command(image, tmp_path / "jobs.img", tmp_path / "out.img",
                           tmp_path / "console.log", "tcg", 2, 4096)
    drive = next(a for a in command if "id=system" in a)
    assert drive.startswith(f"file={tmp_path}/disk.img,,snapshot=off,,file.locking=off,if=none")
    assert drive.endswith(",snapshot=on,cache=unsafe")


def test_the_image_is_probed_once_and_its_format_pinned(tmp_path: Path, monkeypatch,
                                                        qemu_system_present) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    probes = []
    real_run = subprocess.run

    def counting_run(argv, *args, **kwargs):
        probes.append(argv[0])
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr("ebpf_nb.labs.vm.subprocess.run", counting_run)
    runner = VmRunner(image)
    assert runner.check() == DiskImage(image, "raw")
    assert runner.check() is runner.check() and probes == ["qemu-img"]


def test_an_image_that_is_not_a_disk_is_refused(tmp_path: Path, qemu_system_present) -> None:
    image = tmp_path / "disk.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(image), "1M"], check=True)
    with pytest.raises(VmGradingError, match="a vmdk image; give a raw or qcow2"):
        VmRunner(image).check()
    link = tmp_path / "link.img"
    link.symlink_to(image)
    with pytest.raises(VmGradingError, match="not a regular file"):
        VmRunner(link).check()


def test_the_jobs_disk_round_trips(tmp_path: Path) -> None:
    jobs = [{"lab": "01_hello_world", "steps": []}, {"lab": "02_maps", "steps": []}]
    write_jobs_disk(tmp_path / "jobs.img", jobs, 60, 2048)
    blob = (tmp_path / "jobs.img").read_bytes()
    assert len(blob) % 512 == 0
    payload = unpack(blob, JOBS_MAGIC, len(blob))
    assert payload == {"timeout": 60, "memory_mb": 2048,
                       "jobs": [{"id": 0, "job": jobs[0]}, {"id": 1, "job": jobs[1]}]}


@pytest.mark.parametrize("blob", [
    b"", b"\0" * RESULTS_DISK_BYTES,  # the guest wrote nothing
    b"EBPFNB-VERDICT0\n" + pack(RESULTS_MAGIC, {"results": []})[16:],  # another version
    RESULTS_MAGIC + (10 ** 12).to_bytes(8, "big") + b"{}",  # a length past the disk
    RESULTS_MAGIC + (5).to_bytes(8, "big") + b"nope!",  # not JSON
])
def test_an_unreadable_results_disk_gives_no_verdicts(tmp_path: Path, blob: bytes) -> None:
    (tmp_path / "out.img").write_bytes(blob)
    assert read_results_disk(tmp_path / "out.img", 2) is None


def test_forged_results_count_only_for_the_jobs_sent() -> None:
    payload = {"results": [
        {"id": 0, "verdicts": [GOOD], "stopped": ""},
        {"id": 0, "verdicts": [{**GOOD, "status": "fail"}], "stopped": ""},  # a second answer
        {"id": 7, "verdicts": [GOOD]},  # a job that was never sent
        {"id": True, "verdicts": [GOOD]}, {"id": "1", "verdicts": [GOOD]},
        "not an object",
        {"id": 1, "verdicts": [{"exercise": ["01.openat"], "status": "pass"}, 5,
                               {"exercise": "02.count", "status": "pass",
                                "message": "x" * 10_000}],
         "stopped": {"not": "text"}},
    ]}
    first, second, third = verdicts_from(payload, 3)
    assert first == ([GOOD], "")
    assert second[0] == [{"exercise": "02.count", "status": "pass", "message": "x" * 2000}]
    assert second[1] == ""
    assert third == ([], "grading stopped: the VM returned no verdicts for this submission")
    assert verdicts_from({"results": "all pass"}, 1) is None
    assert verdicts_from(["results"], 1) is None


def test_the_results_header_is_checked_before_the_json() -> None:
    blob = pack(RESULTS_MAGIC, {"results": []})
    assert blob[:16] == RESULTS_MAGIC and int.from_bytes(blob[16:HEADER], "big") == 15
    with pytest.raises(ValueError):
        unpack(blob[:-1], RESULTS_MAGIC, 1 << 20)


def _one_submission(folder: Path) -> None:
    (folder / "alice").mkdir()
    (folder / "alice" / "01_hello_world.ipynb").write_bytes(
        (LABS / "01_hello_world" / "lab.ipynb").read_bytes())


def test_verdicts_for_other_exercises_are_ignored_and_missing_ones_are_zero(tmp_path) -> None:
    _one_submission(tmp_path)
    forged = [{"exercise": "99.bonus", "status": "pass", "message": ""},
              {"exercise": "01.openat", "status": "excellent", "message": ""}]
    frame = grade_module.grade(tmp_path, runner=lambda jobs: [(forged, "")] * len(jobs))
    assert frame.points.sum() == 0 and "99.bonus" not in set(frame.exercise)
    assert set(frame.status) == {"not run"}


def test_a_failing_runner_still_gives_a_complete_csv(tmp_path: Path) -> None:
    _one_submission(tmp_path)

    def broken(jobs: list[dict[str, object]]) -> list[tuple[list[dict[str, str]], str]]:
        raise RuntimeError("the VM did not boot")
    frame = grade_module.grade(tmp_path, runner=broken)
    assert len(frame) > 0 and frame.points.sum() == 0
    assert all("the VM did not boot" in text for text in frame.feedback)
    assert (tmp_path / "grades.csv").read_text().count("\n") == len(frame) + 1


@pytest.mark.parametrize("extra, says", [
    ([], "--vm IMAGE"), (["--on-host", "--vm", "x.img"], "--vm IMAGE"),
    (["--vm", "/nonexistent/disk.img"], "not a regular file"),
])
def test_grade_needs_one_clear_place_to_run(tmp_path: Path, capsys, extra, says) -> None:
    assert main(["labs", "grade", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "grades.csv").exists()


def test_the_guest_side_reads_the_jobs_and_writes_bounded_results(tmp_path: Path,
                                                                  monkeypatch) -> None:
    from ebpf_nb.labs import vm_job
    write_jobs_disk(tmp_path / "jobs.img", [{"lab": "x", "steps": []}] * 2, 5, 512)
    (tmp_path / "out.img").write_bytes(b"\0" * 4096)
    ran = []
    monkeypatch.setattr(vm_job, "run_job", lambda job, timeout, memory: ran.append(
        (timeout, memory)) or ([GOOD], ""))
    monkeypatch.setattr(vm_job, "reset", lambda baseline: None)
    assert vm_job.main([str(tmp_path / "jobs.img"), str(tmp_path / "out.img")]) == 0
    assert ran == [(5.0, 512)] * 2
    assert read_results_disk(tmp_path / "out.img", 2) == [([GOOD], ""), ([GOOD], "")]


def test_a_vm_stopped_mid_batch_keeps_the_verdicts_it_had(tmp_path: Path, monkeypatch) -> None:
    from ebpf_nb.labs import vm_job
    write_jobs_disk(tmp_path / "jobs.img", [{"lab": "x", "steps": []}] * 3, 5, 512)
    (tmp_path / "out.img").write_bytes(b"\0" * 4096)
    calls = []

    def run_job(job, timeout, memory):
        calls.append(job)
        if len(calls) == 2:
            raise SystemExit("the VM was stopped at its deadline")  # nothing after this runs
        return [GOOD], ""

    monkeypatch.setattr(vm_job, "run_job", run_job)
    monkeypatch.setattr(vm_job, "reset", lambda baseline: None)
    with pytest.raises(SystemExit):
        vm_job.main([str(tmp_path / "jobs.img"), str(tmp_path / "out.img")])
    first, second, third = read_results_disk(tmp_path / "out.img", 3)
    assert first == ([GOOD], "")
    assert second[0] == [] and "no verdicts" in second[1] and third == second


def test_results_that_outgrow_the_disk_leave_the_last_ones_that_fit(tmp_path: Path,
                                                                   monkeypatch) -> None:
    from ebpf_nb.labs import vm_job
    (tmp_path / "out.img").write_bytes(b"\0" * 4096)
    small = [{"id": 0, "verdicts": [GOOD], "stopped": ""}]
    assert vm_job.write_results(str(tmp_path / "out.img"), small)
    monkeypatch.setattr(vm_job, "RESULTS_DISK_BYTES", 200)
    huge = small + [{"id": 1, "verdicts": [{**GOOD, "message": "x" * 500}], "stopped": ""}]
    assert not vm_job.write_results(str(tmp_path / "out.img"), huge)
    assert read_results_disk(tmp_path / "out.img", 2)[0] == ([GOOD], "")
