"""The ``ebpf-nb`` command: ``lab``, ``doctor``, ``labs build`` and ``labs grade DIR``.

``python -m ebpf_nb.cli ...`` works the same (the Makefile uses it).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

FIRST_NOTEBOOK = "notebooks/00_setup.ipynb"


def project_root() -> Path:
    """The folder holding ``notebooks/`` and ``labs/``: the current one, else the checkout."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (candidate / "notebooks").is_dir():
            return candidate
    return Path.cwd()


NO_NEWS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                           "checkForUpdates": False}}


def lab_command(root: Path, ip: str, port: int, settings_dir: Path, open_browser: bool
                ) -> list[str]:
    """The JupyterLab command line that serves ``root`` and opens the tutorial.

    It holds no secret: the token reaches the server through ``JUPYTER_TOKEN_FILE``
    (:func:`lab_environment`), never through the process list."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
               f"--ServerApp.ip={ip}", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", f"--LabApp.app_settings_dir={settings_dir}",
               f"--ServerApp.open_browser={open_browser}", FIRST_NOTEBOOK]
    if os.geteuid() == 0:
        command.append("--allow-root")
    return command


def lab_url(ip: str, port: int, token: str) -> str:
    return f"http://{ip}:{port}/lab/tree/{FIRST_NOTEBOOK}?token={token}"


def write_lab_settings(private: Path) -> Path:
    """JupyterLab's settings folder for this run: the default one's files plus an override
    that turns off the "receive news?" prompt (and its web requests)."""
    settings = private / "settings"
    settings.mkdir(mode=0o700)
    from jupyterlab.commands import get_app_dir  # where JupyterLab would look by default
    default = Path(get_app_dir()) / "settings"
    overrides: dict[str, dict[str, object]] = {}
    if default.is_dir():
        for item in default.iterdir():
            if item.name == "overrides.json":
                overrides = json.loads(item.read_text())
            elif item.is_file():
                shutil.copy(item, settings / item.name)
    for plugin, values in NO_NEWS.items():
        overrides[plugin] = {**overrides.get(plugin, {}), **values}
    (settings / "overrides.json").write_text(json.dumps(overrides, indent=2))
    return settings


def lab_environment(private: Path, token: str) -> dict[str, str]:
    """The server's environment: the token in a 0600 file named by ``JUPYTER_TOKEN_FILE``,
    not in any variable (its kernels and terminals inherit the environment)."""
    fd, token_file = tempfile.mkstemp(dir=private, prefix="token-")
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    env = {k: v for k, v in os.environ.items() if k not in ("EBPF_NB_TOKEN", "JUPYTER_TOKEN")}
    env["JUPYTER_TOKEN_FILE"] = token_file
    return env


def cmd_lab(args: argparse.Namespace) -> int:
    root = project_root()
    token = os.environ.get("EBPF_NB_TOKEN") or secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="ebpf-nb-lab-") as private:
        env = lab_environment(Path(private), token)
        command = lab_command(root, args.ip, args.port, write_lab_settings(Path(private)),
                              not args.no_browser)
        if sys.stdout.isatty():  # the terminal of whoever started it
            print(f"JupyterLab for ebpf_nb: open {lab_url(args.ip, args.port, token)}",
                  flush=True)
        else:  # a log or a journal: never the token
            print(f"JupyterLab for ebpf_nb: open {lab_url(args.ip, args.port, '...')} "
                  "(the token is not logged: run `ebpf-nb-url` in the VM, or start "
                  "`ebpf-nb lab` in a terminal)", flush=True)
        return _serve(command, root, env)


def _serve(command: list[str], root: Path, env: dict[str, str]) -> int:
    """Run the server until it ends; SIGTERM is passed on to it, and Ctrl-C (which reaches it
    too) is left to it, so the caller's cleanup (the token file) always runs."""
    server = subprocess.Popen(command, cwd=root, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: server.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return server.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_doctor(args: argparse.Namespace) -> int:
    from .host import doctor
    table = doctor()
    print(table)  # an AdviceTable: every word, wrapped, left-aligned
    return 0  # informative: a missing feature (kprobes) is a row to read, not a failure


def cmd_labs_build(args: argparse.Namespace) -> int:
    from .labs.build import build, stale_labs
    root = Path(args.root) if args.root else project_root() / "labs"
    if args.check:
        stale = stale_labs(root)
        for path in stale:
            print(f"stale: {path} (run `ebpf-nb labs build`)")
        return 1 if stale else 0
    for path in build(root):
        print(f"wrote {path}")
    return 0


HOST_GRADING_WARNING = """\
WARNING: grading on THIS machine, as {user}. No student Python is run, but each student's
C is compiled and loaded into this kernel with full BPF rights: a hostile program can read
kernel memory, write into running processes or exhaust kernel memory. Grade in the disposable
VM instead (--vm IMAGE, see docs/grading.md)."""


def cmd_labs_grade(args: argparse.Namespace) -> int:
    from .labs.grade import grade
    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"ebpf-nb labs grade: {directory} is not a folder", file=sys.stderr)
        return 2
    if bool(args.vm) == bool(args.on_host):
        print("ebpf-nb labs grade: say where student code runs: --vm IMAGE (a disposable VM "
              "booted from a provisioned ebpf_nb disk, recommended) or --on-host (this machine's "
              "kernel; read docs/grading.md first)", file=sys.stderr)
        return 2
    runner = None
    if args.vm:
        from .labs.vm import VmGradingError, VmRunner
        runner = VmRunner(Path(args.vm), timeout=args.timeout, memory_mb=args.memory,
                          accel=args.accel, per_submission=args.vm_per_submission)
        try:
            runner.check()
        except VmGradingError as err:
            print(f"ebpf-nb labs grade: {err}", file=sys.stderr)
            return 2
    else:
        print(HOST_GRADING_WARNING.format(user="root" if os.geteuid() == 0 else "this user"),
              file=sys.stderr, flush=True)
    out = Path(args.out) if args.out else directory / "grades.csv"
    frame = grade(directory, out=out, timeout=args.timeout, memory_mb=args.memory,
                  labs_root=Path(args.labs) if args.labs else None, runner=runner)
    summary = frame.groupby("student")["points"].sum() if len(frame) else frame
    print(summary.to_string())
    print(f"wrote {out}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ebpf-nb", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)

    lab = commands.add_parser("lab", help="start JupyterLab on the tutorial (token auth)")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("--ip", default="127.0.0.1")
    lab.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    lab.set_defaults(func=cmd_lab)

    doctor = commands.add_parser("doctor", help="check that this machine can run eBPF programs")
    doctor.set_defaults(func=cmd_doctor)

    labs = commands.add_parser("labs", help="build student notebooks or grade submissions")
    labs_commands = labs.add_subparsers(dest="labs_command", required=True)
    build = labs_commands.add_parser("build", help="labs/*/solution.ipynb -> lab.ipynb")
    build.add_argument("--root", help="the labs folder (default: labs/ of the project)")
    build.add_argument("--check", action="store_true",
                       help="write nothing; fail when a student notebook is stale")
    build.set_defaults(func=cmd_labs_build)
    grade = labs_commands.add_parser(
        "grade", help="grade a folder of notebooks against the canonical labs")
    grade.add_argument("directory")
    grade.add_argument("--out", help="CSV to write (default: DIR/grades.csv)")
    grade.add_argument("--vm", metavar="IMAGE",
                       help="grade in a disposable VM booted from IMAGE, a provisioned ebpf_nb "
                            "disk (docs/grading.md): no network, every write thrown away")
    grade.add_argument("--vm-per-submission", action="store_true",
                       help="with --vm: a fresh VM for every submission (slower, no sharing)")
    grade.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto",
                       help="with --vm: KVM, QEMU's emulator (TCG), or KVM when it works")
    grade.add_argument("--on-host", action="store_true",
                       help="grade on this machine's kernel (a loud warning; docs/grading.md)")
    grade.add_argument("--timeout", type=float, default=600,
                       help="seconds per submission (default 600)")
    grade.add_argument("--memory", type=int, default=4096,
                       help="MiB of address space per grading process (default 4096)")
    grade.add_argument("--labs", help="the canonical labs folder (default: the kit's labs/)")
    grade.set_defaults(func=cmd_labs_grade)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
