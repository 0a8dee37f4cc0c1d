"""ebpf_nb.kernel.pages: numpy's huge-page advice is off inside small_pages() and restored after."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from hugepage_switch import numpy_setting

from ebpf_nb.kernel import pages

BIG = 64 << 20  # far above numpy's 4 MiB threshold and glibc's mmap threshold: its own mapping


def _vm_flags(arr: np.ndarray) -> list[str]:
    """The VmFlags of the mapping holding the middle of ``arr`` (/proc/self/smaps; numpy
    advises from the first page boundary on, so the first page is a mapping of its own)."""
    addr = arr.__array_interface__["data"][0] + arr.nbytes // 2
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError("no mapping holds the array")


def test_big_arrays_inside_get_no_hugepage_advice(hugepages_on):
    outside = np.ones(BIG, dtype=np.uint8)
    if "hg" not in _vm_flags(outside):
        pytest.skip("numpy does not advise huge pages on this kernel")
    # numpy's own advice is seen by the kernel: the test below can tell it apart
    with pages.small_pages():
        inside = np.ones(BIG, dtype=np.uint8)
        assert "hg" not in _vm_flags(inside)
    after = np.ones(BIG, dtype=np.uint8)
    assert "hg" in _vm_flags(after)
    assert numpy_setting() is True


def test_the_setting_before_is_restored_even_when_it_was_off(hugepages_on):
    pages._set_madvise_hugepage(False)
    with pages.small_pages():
        pass
    assert numpy_setting() is False


def test_overlapping_blocks_of_two_threads_restore_the_setting(hugepages_on):
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with pages.small_pages():
            entered.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait(5)
    with pages.small_pages():  # enters while the other thread's block is open...
        leave.set()
        thread.join(5)  # ...which ends first: the setting must stay off until ours ends
        assert numpy_setting() is False
    assert numpy_setting() is True


def test_an_exception_inside_restores_the_setting(hugepages_on):
    with pytest.raises(RuntimeError), pages.small_pages():
        raise RuntimeError("boom")
    assert numpy_setting() is True
