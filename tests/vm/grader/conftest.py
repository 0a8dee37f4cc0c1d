"""tests/vm/grader/ boots the disposable grading VM: it runs in `make test-vm`
(tests/vagrant/inside_netns.sh sets EBPF_NB_GRADER_IMAGE to the provisioned guest's disk)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

collect_ignore = [] if os.environ.get("EBPF_NB_GRADER_IMAGE") else ["test_grade_in_vm.py"]
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "kernel"))  # the adversarial class
