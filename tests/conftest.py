"""Shared fixtures. Tests marked ``kernel`` load real programs: where the kernel cannot be used
(not root, no tracefs) they FAIL with the fix, never skip, so CI cannot pass without them."""
from __future__ import annotations

import os

import pytest

from ebpf_nb import host


def _kernel_started_by_launcher(item: pytest.Item) -> bool:
    """In a VM guest, tests/test_notebooks.py runs as the JupyterLab account: the notebooks'
    kernels are root (the service's launcher starts them), this process is not."""
    return (bool(os.environ.get("EBPF_NB_KERNEL_RUNTIME_DIR"))
            and item.get_closest_marker("notebook_kernel") is not None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("kernel") is None or _kernel_started_by_launcher(item):
        return
    if not host.has_bpf_privileges():
        pytest.fail("kernel tests need root (CAP_BPF/CAP_PERFMON): run `make test` as root")
    if host.tracefs_path() is None:
        pytest.fail("kernel tests need tracefs: run `make setup` (it mounts it)")


@pytest.fixture
def shell():
    """A real IPython shell with the extension loaded; unloaded (everything detached) after."""
    from IPython.core.interactiveshell import InteractiveShell
    sh = InteractiveShell.instance()
    sh.run_cell("%load_ext ebpf_nb", store_history=False)
    yield sh
    sh.run_cell("%unload_ext ebpf_nb", store_history=False)
