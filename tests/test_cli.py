"""The ``ebpf-nb`` command: JupyterLab on the tutorial with token auth, doctor, labs build."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ebpf_nb import cli

ROOT = Path(__file__).resolve().parents[1]


def test_lab_command_serves_the_tutorial_with_a_token() -> None:
    command = cli.lab_command(ROOT, "127.0.0.1", 8899, "s3cret", open_browser=False)
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert "--IdentityProvider.token=s3cret" in command
    assert "--ServerApp.ip=127.0.0.1" in command and "--ServerApp.port=8899" in command
    assert command[command.index("notebooks/00_setup.ipynb")] == cli.FIRST_NOTEBOOK
    assert ("--allow-root" in command) == (os.geteuid() == 0)
    assert cli.lab_url("127.0.0.1", 8899, "s3cret") == \
        "http://127.0.0.1:8899/lab/tree/notebooks/00_setup.ipynb?token=s3cret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for localhost


def _get(url: str) -> int:
    """The HTTP status of ``url``, 0 while nothing listens yet."""
    try:
        with DIRECT.open(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except urllib.error.URLError:
        return 0


def test_lab_starts_jupyterlab_on_the_first_notebook(tmp_path: Path) -> None:
    port = _free_port()
    env = dict(os.environ, EBPF_NB_TOKEN="test-token", JUPYTER_RUNTIME_DIR=str(tmp_path))
    server = subprocess.Popen([sys.executable, "-m", "ebpf_nb.cli", "lab", "--port", str(port),
                               "--no-browser"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        first_line = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/lab/tree/notebooks/00_setup.ipynb?token=test-token" \
            in first_line
        base = f"http://127.0.0.1:{port}/api/contents/notebooks/00_setup.ipynb"
        deadline = time.monotonic() + 60
        while True:
            status = _get(f"{base}?token=test-token&content=0")
            if status == 200 or time.monotonic() > deadline:
                break
            assert server.poll() is None, "JupyterLab exited"
            time.sleep(0.3)
        assert status == 200
        assert _get(base + "?content=0") == 403, "without the token the server refuses"
        with DIRECT.open(f"{base}?token=test-token&content=0", timeout=5) as response:
            assert json.load(response)["type"] == "notebook"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def test_doctor_prints_the_host_table(capsys) -> None:
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for row in ("privileges", "tracefs", "BTF", "kprobes", "bcc"):
        assert row in out


def test_labs_build_check_passes_on_the_committed_labs() -> None:
    done = subprocess.run([sys.executable, "-m", "ebpf_nb.cli", "labs", "build", "--check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_labs_build_check_fails_on_a_stale_lab(tmp_path: Path, capsys) -> None:
    lab = tmp_path / "01_x"
    lab.mkdir()
    (lab / "solution.ipynb").write_text((ROOT / "labs/01_hello_world/solution.ipynb").read_text())
    assert cli.main(["labs", "build", "--root", str(tmp_path), "--check"]) == 1
    assert "stale" in capsys.readouterr().out
    assert cli.main(["labs", "build", "--root", str(tmp_path)]) == 0
    assert cli.main(["labs", "build", "--root", str(tmp_path), "--check"]) == 0
