"""A shell trigger's output is kept bounded (issue 14).

``_TriggerRunner`` held all of a trigger's output (``proc.communicate()``): a trigger printing
200 MB grew the notebook by ~600 MB (the bytes, then the str). It now keeps the first and last
few KiB, reads the rest without storing it, and marks the cut."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ebpf_nb.reading import TRIGGER_OUTPUT_HEAD, TRIGGER_OUTPUT_TAIL, OutputKeeper, bounded_read

ROOT = Path(__file__).resolve().parents[2]


def test_the_keeper_keeps_head_and_tail_and_counts_the_rest():
    keeper = OutputKeeper(head=4, tail=3)
    for chunk in (b"ab", b"cdef", b"ghij", b"", b"k"):
        keeper.add(chunk)
    assert (bytes(keeper.head), bytes(keeper.tail)) == (b"abcd", b"ijk")
    assert keeper.total == 11 and keeper.cut == 4
    text = keeper.text()
    assert text.startswith("abcd\n[... 4 bytes of the trigger's output not kept")
    assert text.endswith("]\nijk")
    small = OutputKeeper(head=4, tail=3)
    small.add(b"abcde")
    assert small.text() == "abcde" and small.cut == 0  # nothing cut: no mark
    accent = OutputKeeper(head=1, tail=8)
    accent.add("é!".encode())  # "é" is two bytes: one in the head, one in the tail
    assert accent.text() == "é!"
    big = OutputKeeper(head=2, tail=2)
    big.add(b"x" * 10_000 + b"yz")  # one chunk larger than everything kept
    assert bytes(big.tail) == b"yz" and big.cut == 9_998


def test_a_short_output_is_kept_whole():
    out = bounded_read(lambda t: 0, trigger="printf 'one\\ntwo\\n'; exit 2")
    assert out.trigger_output == "one\ntwo\n" and out.trigger_returncode == 2
    assert out.trigger_output_cut == 0


MEASURE = r"""
import json, time
from ebpf_nb import reading

def hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

def idle(timeout):
    time.sleep(timeout)
    return 0

before = hwm_kib()
out = reading.bounded_read(idle, trigger="yes 0123456789abcdef | head -c 200000000")
print(json.dumps({"growth_kib": hwm_kib() - before, "kept": len(out.trigger_output),
                  "cut": out.trigger_output_cut, "rc": out.trigger_returncode,
                  "by": out.stopped_by, "tail": out.trigger_output[-30:]}))
"""


@pytest.mark.timeout(120)
def test_a_trigger_printing_200_mb_keeps_little_and_grows_rss_little():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=100, check=False)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0 and got["by"] == "trigger"
    kept = TRIGGER_OUTPUT_HEAD + TRIGGER_OUTPUT_TAIL
    assert got["cut"] == 200_000_000 - kept
    assert got["kept"] <= kept + 200  # what is kept, plus the one-line mark of the cut
    # the last bytes are the output's own: 200,000,000 = 17 x 11,764,705 + 15
    assert got["tail"] == "23456789abcdef\n0123456789abcde"
    assert got["growth_kib"] < 20 * 1024, f"peak RSS grew {got['growth_kib'] / 1024:.0f} MiB"
