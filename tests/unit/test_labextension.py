"""The prebuilt JupyterLab extension (``%%bpf`` cells as C) is complete and JupyterLab finds it:
installing the kit is enough, no Node.js. Its behaviour in the browser: tests/e2e/test_highlight.py.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILT = REPO / "ebpf_nb" / "labextension"
SOURCE = REPO / "labextension"


def test_the_committed_build_is_complete_and_from_this_source():
    built = json.loads((BUILT / "package.json").read_text())
    source = json.loads((SOURCE / "package.json").read_text())
    assert built["name"] == source["name"] == "ebpf-nb-highlight"
    assert built["version"] == source["version"]
    assert built["dependencies"] == source["dependencies"], "rebuild: make labextension"
    entry = BUILT / built["jupyterlab"]["_build"]["load"]
    assert entry.is_file(), f"{entry.name} is missing: make labextension"
    # the entry loads its chunks as "<id>.<hash>.js": the chunk with that hash must be shipped
    hashes = set(re.findall(r'e\+"\.([0-9a-f]{16})\.js', entry.read_text()))
    assert hashes, "the entry names no chunk"
    for digest in hashes:
        assert list(BUILT.glob(f"static/*.{digest}.js")), f"chunk {digest} is missing"


def test_jupyterlab_lists_the_extension_enabled():
    listing = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"],
                             check=True, capture_output=True, text=True, timeout=120)
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    line = next((ln for ln in text.splitlines() if "ebpf-nb-highlight" in ln), None)
    assert line, f"JupyterLab does not see the extension (pip install -e . installs it):\n{text}"
    assert "enabled" in line and "OK" in line and "(python, ebpf_nb)" in line, line
