"""ebpf_nb.kernel.maps without a kernel: CPU lists and row shapes."""
from __future__ import annotations

import numpy as np
import pytest

from ebpf_nb.kernel import maps as kmaps
from ebpf_nb.kernel.cpus import parse_cpu_list


def test_cpu_list_parsing():
    assert parse_cpu_list("0-3,6\n") == [0, 1, 2, 3, 6]
    assert parse_cpu_list("0") == [0]


def test_to_structured_rejects_narrow_rows():
    with pytest.raises(ValueError):
        kmaps.to_structured(np.zeros((3, 4), dtype=np.uint8), np.dtype(np.uint64))
