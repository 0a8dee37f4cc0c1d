"""The adversarial class of tests/kernel/test_grade_adversarial.py, graded in the disposable VM
(``ebpf-nb labs grade DIR --vm IMAGE``): the same verdicts as on the host, while no program of
the class ever loads into this host's kernel and the image is unchanged afterwards. The
untouched labs are left out of this class (``idle=False``): the host's grading test and the
guest's notebook run already grade each "not done", and under TCG each costs about 30 s."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from test_grade_adversarial import LABS, ProgramWatch, build_class, check_grades

from ebpf_nb.cli import main
from ebpf_nb.labs.answers import canonical_labs

IMAGE = Path(os.environ.get("EBPF_NB_GRADER_IMAGE", "/nonexistent"))
ACCEL = os.environ.get("EBPF_NB_GRADER_ACCEL", "auto")


def _fingerprint(path: Path) -> tuple[int, int, str]:
    with path.open("rb") as handle:
        head = hashlib.sha256(handle.read(64 << 20)).hexdigest()
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, head


@pytest.mark.timeout(5400)  # one TCG boot and the whole class, on a loaded 2-core host
def test_the_adversarial_class_is_graded_in_the_vm(tmp_path: Path, capsys) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    class_dir = build_class(tmp_path, markers, idle=False)
    before = _fingerprint(IMAGE)
    watch = ProgramWatch()
    watch.start()
    started = time.monotonic()
    try:
        assert main(["labs", "grade", str(class_dir), "--vm", str(IMAGE), "--accel", ACCEL,
                     "--timeout", "600"]) == 0
    finally:
        watch.stop.set()
        watch.join(timeout=30)
    took = time.monotonic() - started
    assert not watch.seen, "a program of the class was loaded into the host's kernel"
    assert _fingerprint(IMAGE) == before, "the grading VM changed its image"
    graded = check_grades(class_dir, tmp_path, canonical_labs(LABS), markers, idle=False)
    with capsys.disabled():
        print(f"\ngraded the adversarial class in the VM ({ACCEL}) in {took:.0f} s: "
              f"{graded} notebooks run, {took / graded:.1f} s each (boot included)")
