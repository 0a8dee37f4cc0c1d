"""Shared fixtures. ``tests/unit`` holds the pure tests (no kernel, no root: ``make test-fast``);
every test of ``tests/kernel`` loads real programs and gets the ``kernel`` marker here. Where the
kernel cannot be used (not root, no tracefs) kernel tests FAIL with the fix, never skip, so CI
cannot pass without them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ebpf_nb import host

KERNEL_TESTS = Path(__file__).resolve().parent / "kernel"
UNIT_TESTS = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The folder decides: tests/kernel is marked ``kernel``; a ``kernel`` mark in tests/unit is
    a test in the wrong folder."""
    misplaced = []
    for item in items:
        path = Path(item.path).resolve()
        if path.is_relative_to(KERNEL_TESTS):
            item.add_marker(pytest.mark.kernel)
        elif path.is_relative_to(UNIT_TESTS) and item.get_closest_marker("kernel") is not None:
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError("kernel tests belong in tests/kernel: " + ", ".join(misplaced))


def _kernel_started_by_launcher(item: pytest.Item) -> bool:
    """In a VM guest, tests/kernel/test_notebooks.py runs as the JupyterLab account: the notebooks'
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


@pytest.fixture
def hugepages_on():
    """numpy's huge-page advice on for the test (the setting before is put back after)."""
    from ebpf_nb.kernel import pages
    if pages._set_madvise_hugepage is None:
        pytest.skip("this numpy has no madvise switch")
    previous = pages._set_madvise_hugepage(True)
    yield
    pages._set_madvise_hugepage(previous)


@pytest.fixture
def library_opens(monkeypatch):
    """``count(module)``: forget ``module.LIBRARY`` (a :class:`ebpf_nb.kernel.sharedlib.
    LazyLibrary`) and return the list that gets one item each time it opens its library."""
    def count(module) -> list[int]:
        opened: list[int] = []
        real = module._open_library

        def counting():
            opened.append(1)
            return real()

        monkeypatch.setattr(module.LIBRARY, "_value", None)
        monkeypatch.setattr(module, "_open_library", counting)
        return opened
    return count
