"""numpy's huge-page advice switch read back without changing it (the tests of
ebpf_nb.kernel.pages; tests/conftest.py's ``hugepages_on`` turns it on for a test)."""
from __future__ import annotations

from ebpf_nb.kernel import pages


def numpy_setting() -> bool:
    """Whether numpy advises huge pages now."""
    previous = pages._set_madvise_hugepage(True)
    pages._set_madvise_hugepage(previous)
    return previous
