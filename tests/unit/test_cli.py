"""The ``ebpf-nb`` command: JupyterLab on the tutorial with token auth, doctor, labs build."""
from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ebpf_nb import cli

ROOT = Path(__file__).resolve().parents[2]


def test_lab_command_carries_no_token(tmp_path: Path) -> None:
    command = cli.lab_command(ROOT, "127.0.0.1", 8899, tmp_path, open_browser=False)
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert not any("token" in part.lower() for part in command)
    assert "--ServerApp.ip=127.0.0.1" in command and "--ServerApp.port=8899" in command
    assert f"--LabApp.app_settings_dir={tmp_path}" in command
    assert command[command.index("notebooks/00_setup.ipynb")] == cli.FIRST_NOTEBOOK
    assert ("--allow-root" in command) == (os.geteuid() == 0)
    assert cli.lab_url("127.0.0.1", 8899, "s3cret") == \
        "http://127.0.0.1:8899/lab/tree/notebooks/00_setup.ipynb?token=s3cret"


def test_lab_environment_passes_the_token_in_a_private_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EBPF_NB_TOKEN", "from-env")
    monkeypatch.setenv("JUPYTER_TOKEN", "would-win")
    env = cli.lab_environment(tmp_path, "the-token")
    assert "EBPF_NB_TOKEN" not in env and "JUPYTER_TOKEN" not in env
    token_file = Path(env["JUPYTER_TOKEN_FILE"])
    assert token_file.read_text() == "the-token"  # no newline: the server reads it verbatim
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert not any("the-token" in value for value in env.values())


def test_lab_settings_turn_off_the_news_prompt(tmp_path: Path) -> None:
    settings = cli.write_lab_settings(tmp_path)
    overrides = json.loads((settings / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert settings.stat().st_mode & 0o777 == 0o700


def test_lab_settings_keep_the_installed_ones(tmp_path: Path, monkeypatch) -> None:
    app_dir = tmp_path / "app"
    (app_dir / "settings").mkdir(parents=True)
    (app_dir / "settings" / "page_config.json").write_text('{"disabledExtensions": {"x": true}}')
    (app_dir / "settings" / "overrides.json").write_text(json.dumps({
        "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
        "@jupyterlab/apputils-extension:notification": {"doNotDisturbMode": True}}))
    monkeypatch.setenv("JUPYTERLAB_DIR", str(app_dir))
    (tmp_path / "run").mkdir()
    settings = cli.write_lab_settings(tmp_path / "run")
    overrides = json.loads((settings / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert overrides["@jupyterlab/apputils-extension:notification"] == {
        "doNotDisturbMode": True, "fetchNews": "false", "checkForUpdates": False}
    assert (settings / "page_config.json").read_text() == '{"disabledExtensions": {"x": true}}'


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


def _wait_for(url: str, server: subprocess.Popen, seconds: float = 90) -> int:
    deadline = time.monotonic() + seconds
    while True:
        status = _get(url)
        if status == 200 or time.monotonic() > deadline:
            return status
        assert server.poll() is None, "JupyterLab exited"
        time.sleep(0.3)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").partition("=")[::2] for item in raw if item)


def _jupyterlab_pid(parent: int) -> int:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    assert children, "ebpf-nb lab started no JupyterLab"
    return int(children[0])


def test_lab_keeps_its_token_out_of_argv_and_logs(tmp_path: Path) -> None:
    """The real server: the token works, but no process's command line, no line of the
    server's log and nothing printed to a non-terminal holds it; the news prompt is off."""
    port = _free_port()
    token = "tok-" + os.urandom(12).hex()
    env = dict(os.environ, EBPF_NB_TOKEN=token, JUPYTER_RUNTIME_DIR=str(tmp_path))
    log = tmp_path / "server.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "ebpf_nb.cli", "lab", "--port", str(port), "--no-browser"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True,
            start_new_session=True)
    try:
        first_line = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/lab/tree/notebooks/00_setup.ipynb?token=..." \
            in first_line and token not in first_line
        base = f"http://127.0.0.1:{port}/api/contents/notebooks/00_setup.ipynb"
        assert _wait_for(f"{base}?token={token}&content=0", server) == 200
        assert _get(base + "?content=0") == 403, "without the token the server refuses"
        assert _get(base + "?token=wrong&content=0") == 403
        with DIRECT.open(f"{base}?token={token}&content=0", timeout=5) as response:
            assert json.load(response)["type"] == "notebook"

        args = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True,
                              check=True).stdout
        assert "jupyterlab" in args and f"--ServerApp.port={port}" in args
        assert token not in args, "the token is visible in the process list"
        lab_env = _environ(_jupyterlab_pid(server.pid))
        assert token not in "\n".join(lab_env.values()), "kernels would inherit the token"
        token_file = Path(lab_env["JUPYTER_TOKEN_FILE"])
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert token_file.parent.stat().st_mode & 0o777 == 0o700

        settings = f"http://127.0.0.1:{port}/lab/api/settings/" \
                   f"@jupyterlab/apputils-extension:notification?token={token}"
        with DIRECT.open(settings, timeout=10) as response:
            schema = json.load(response)["schema"]
        assert schema["properties"]["fetchNews"]["default"] == "false"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    text = log.read_text()
    assert f":{port}/lab" in text, "the server log is not the one expected"
    assert token not in text, "the server's own log shows the token"
    assert not token_file.exists(), "the token file outlives the server"


def test_lab_prints_the_url_with_its_token_only_to_a_terminal() -> None:
    with socket.socket() as busy:  # JupyterLab fails at once on a port in use: no server left
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        leader, follower = pty.openpty()
        env = dict(os.environ, EBPF_NB_TOKEN="tty-token-42")
        done = subprocess.run([sys.executable, "-m", "ebpf_nb.cli", "lab", "--port", str(port),
                               "--no-browser"], cwd=ROOT, env=env, stdout=follower,
                              stderr=subprocess.DEVNULL, timeout=120, check=False)
        os.close(follower)
        printed = os.read(leader, 4096).decode()
        os.close(leader)
    assert done.returncode != 0
    assert f"http://127.0.0.1:{port}/lab/tree/notebooks/00_setup.ipynb?token=tty-token-42" \
        in printed


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
