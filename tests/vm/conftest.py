"""tests/vm/guest/ runs inside the test VM only (tests/vm/guest_run.sh sets EBPF_NB_VM_GUEST=1):
it needs kprobes, which the CI host's kernel lacks. On the host, `make test-vm` runs it in QEMU."""
from __future__ import annotations

import os

collect_ignore = [] if os.environ.get("EBPF_NB_VM_GUEST") == "1" else ["guest"]
