"""The checks `make test` runs before pytest: ruff, and mypy, strict on the public API.

A type check can go quiet without failing: a module dropped from the strict list, a flag lost,
``strict = true`` moved into an override (where mypy applies it to every module, so the rest
of the package would fail instead). These tests read pyproject.toml and run mypy with it on
stand-in modules that break the strict rules.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: mypy's own TOML reader
    import tomli as tomllib

from mypy.main import process_options
from mypy.options import PER_MODULE_OPTIONS

REPO = Path(__file__).resolve().parents[2]
MYPY = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
NOTEBOOK_MODULES = {"ebpf_nb.probes", "ebpf_nb.reading", "ebpf_nb.plots", "ebpf_nb.widgets"}
UNTYPED = "def parse(text):\n    return text\n"


def strict_override() -> dict[str, object]:
    (override,) = [o for o in MYPY["overrides"] if o.get("disallow_untyped_defs")]
    return override


def exported_from() -> set[str]:
    """``ebpf_nb`` and the modules its ``__init__`` imports the public names from."""
    tree = ast.parse((REPO / "ebpf_nb" / "__init__.py").read_text())
    return {"ebpf_nb"} | {f"ebpf_nb.{node.module}" for node in ast.walk(tree)
                          if isinstance(node, ast.ImportFrom) and node.level == 1}


def test_the_public_api_is_in_the_strict_list():
    public = exported_from()
    assert {"ebpf_nb.errors", "ebpf_nb.bcc_program", "ebpf_nb.program", "ebpf_nb.registry",
            "ebpf_nb.host", "ebpf_nb.magics"} <= public
    missing = (public | NOTEBOOK_MODULES) - set(strict_override()["module"])
    assert not missing, f"add {sorted(missing)} to the strict override in pyproject.toml"


def test_the_strict_override_sets_every_per_module_flag_of_mypy_strict():
    _, default = process_options(["--config-file", "", "-c", "pass"])  # mypy's defaults
    _, strict = process_options(["--config-file", "", "--strict", "-c", "pass"])
    wanted = {name: getattr(strict, name) for name in PER_MODULE_OPTIONS
              if getattr(default, name) != getattr(strict, name)}
    assert "disallow_untyped_defs" in wanted
    override = strict_override()
    wrong = {name: value for name, value in wanted.items() if override.get(name) != value}
    assert not wrong, f"set these in the strict override of pyproject.toml: {wrong}"
    assert "strict" not in override and "strict" not in MYPY, "strict = true is global in mypy"


def test_mypy_flags_an_untyped_function_in_each_strict_module_and_nowhere_else(tmp_path):
    strict = strict_override()["module"]
    package = tmp_path / "ebpf_nb"
    package.mkdir()
    expected = set()
    for module in strict:
        parts = module.split(".")[1:]
        path = package.joinpath(*parts).with_suffix(".py") if parts else package / "__init__.py"
        path.write_text(UNTYPED)
        expected.add(path.relative_to(tmp_path).as_posix())
    (package / "decode.py").write_text(UNTYPED)  # not in the strict list: allowed there
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), "ebpf_nb"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    flagged = set(re.findall(r"^(\S+\.py):\d+: error: .*\[no-untyped-def\]$", done.stdout,
                             re.MULTILINE))
    assert done.returncode == 1, done.stdout + done.stderr
    assert flagged == expected, done.stdout


def test_make_test_lints_before_pytest_and_make_lint_runs_the_same():
    def commands(target: str) -> list[str]:
        done = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True,
                              check=True, timeout=60)
        return done.stdout.splitlines()

    test = commands("test")
    ruff = next(i for i, c in enumerate(test) if "ruff check ebpf_nb tests benchmarks tools" in c)
    mypy = next(i for i, c in enumerate(test) if c.endswith("-m mypy"))
    pytest = next(i for i, c in enumerate(test) if "-m pytest" in c)
    assert ruff < pytest and mypy < pytest
    assert {test[ruff], test[mypy]} <= set(commands("lint"))
