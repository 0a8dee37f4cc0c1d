"""The ``ebpf-nb`` command: ``lab``, ``doctor``, ``labs build`` and ``labs grade DIR``.

``python -m ebpf_nb.cli ...`` works the same (the Makefile uses it).
"""
from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

FIRST_NOTEBOOK = "notebooks/00_setup.ipynb"


def project_root() -> Path:
    """The folder holding ``notebooks/`` and ``labs/``: the current one, else the checkout."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (candidate / "notebooks").is_dir():
            return candidate
    return Path.cwd()


def lab_command(root: Path, ip: str, port: int, token: str, open_browser: bool) -> list[str]:
    """The JupyterLab command line that serves ``root`` and opens the tutorial."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
               f"--ServerApp.ip={ip}", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.open_browser={open_browser}", FIRST_NOTEBOOK]
    if os.geteuid() == 0:
        command.append("--allow-root")
    return command


def lab_url(ip: str, port: int, token: str) -> str:
    return f"http://{ip}:{port}/lab/tree/{FIRST_NOTEBOOK}?token={token}"


def cmd_lab(args: argparse.Namespace) -> int:
    root = project_root()
    token = os.environ.get("EBPF_NB_TOKEN") or secrets.token_urlsafe(24)
    command = lab_command(root, args.ip, args.port, token, not args.no_browser)
    print(f"JupyterLab for ebpf_nb: open {lab_url(args.ip, args.port, token)}", flush=True)
    try:
        return subprocess.call(command, cwd=root)
    except KeyboardInterrupt:
        return 0


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


def cmd_labs_grade(args: argparse.Namespace) -> int:
    from .labs.grade import grade
    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"ebpf-nb labs grade: {directory} is not a folder", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else directory / "grades.csv"
    frame = grade(directory, out=out, timeout=args.timeout)
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
    grade = labs_commands.add_parser("grade", help="run and grade a folder of notebooks")
    grade.add_argument("directory")
    grade.add_argument("--out", help="CSV to write (default: DIR/grades.csv)")
    grade.add_argument("--timeout", type=float, default=60, help="seconds per cell")
    grade.set_defaults(func=cmd_labs_grade)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
