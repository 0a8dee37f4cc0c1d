"""A JupyterLab server and a headless Chromium for the browser tests.

The server runs from this virtual environment on a free 127.0.0.1 port with a random token, in a
temporary root holding a copy of the notebooks under test, with every per-user Jupyter directory
pointed into that root (nothing of the machine's own settings is read or written). The browser
is Debian's ``/usr/bin/chromium`` driven by Playwright: no browser is downloaded.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from course import REPO, course_notebooks

HERE = Path(__file__).parent
ARTIFACTS = HERE.parents[1] / "test-artifacts"
CHROMIUM = Path(os.environ.get("EBPF_NB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_SECONDS = 60


@dataclass
class LabServer:
    url: str
    token: str
    root: Path
    log: Path

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """End every session and its kernel, as closing the notebook and its kernel would."""
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(server: LabServer, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n"
                               f"{server.log.read_text()[-3000:]}")
        try:
            server.api("/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)  # polling a server that is starting: nothing to wait on instead
    raise RuntimeError(f"jupyter lab did not answer in {START_SECONDS} s:\n"
                       f"{server.log.read_text()[-3000:]}")


def _stop(server: LabServer, process: subprocess.Popen) -> None:
    """Shut the server down through its API (it stops its kernels), then make sure it is gone."""
    try:
        server.api("/api/shutdown", method="POST")
        process.wait(timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # the server's own process group, started below
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory) -> Iterator[LabServer]:
    root = tmp_path_factory.mktemp("lab")
    for notebook in HERE.glob("*.ipynb"):
        shutil.copy(notebook, root / notebook.name)
    for notebook in course_notebooks():  # opened unmodified by test_highlight.py
        target = root / notebook.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(notebook, target)
    home = root / ".home"
    news = home / "settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1")
    env.pop("EBPF_NB_DISPLAY", None)  # the kernel must find the browser on its own
    port, token = _free_port(), secrets.token_hex(24)
    # The token reaches the server in a 0600 file, never on its command line (`ps` shows that
    # to every local user, and this server's kernels are root).
    token_file = home / "token"
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    env["JUPYTER_TOKEN_FILE"] = str(token_file)
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
               "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
               "--allow-root",
               f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = LabServer(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log)
    try:
        _wait_until_up(server, process)
        yield server
    finally:
        _stop(server, process)


@pytest.fixture(scope="module")  # closed after each module: a later Playwright may start
def browser() -> Iterator[object]:
    try:
        import playwright.sync_api as playwright_api
    except ImportError:
        pytest.fail("playwright is missing: pip install playwright (make setup does)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make setup does)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def page(browser, request) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        name = request.node.name
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}-end.png"), full_page=True)
        finally:
            (ARTIFACTS / f"{name}-console.log").write_text("\n".join(console))
            context.close()
