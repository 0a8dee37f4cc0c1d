"""Both backends build compile errors, verifier errors and -D macros through one function each
(diagnostics.compile_error, diagnostics.verifier_error, defines.parse_defines): same input, same
message, whichever backend's file name clang or the verifier printed."""
from __future__ import annotations

import pytest

from ebpf_nb import diagnostics
from ebpf_nb.defines import define_flags, parse_defines
from ebpf_nb.errors import UsageError

CLANG = """{file}:3:13: error: use of undeclared identifier 'y'
    u32 x = y + 1;
            ^
{file}:5:1: error: expected ';' after expression
2 errors generated.
"""


@pytest.mark.parametrize("path,cell_file", [("/virtual/main.c", "main.c"), ("cell.c", "cell.c")])
def test_a_compile_error_reads_the_same_in_both_backends(path: str, cell_file: str) -> None:
    err = diagnostics.compile_error(CLANG.format(file=path), cell_file=cell_file)
    assert err is not None
    assert err.message == ("the C code does not compile: line 3, column 13: use of undeclared "
                           "identifier 'y' (and 1 more)")
    assert (err.line, err.column) == (3, 13)
    assert "u32 x = y + 1;" in err.details and "declare the variable" in err.hint


def test_an_error_in_a_header_names_the_header_not_a_cell_line() -> None:
    out = ("/usr/include/vmlinux.h:42:8: error: redefinition of 'task_struct'\n"
           "cell.c:3:8: note: previous definition is here\n")
    err = diagnostics.compile_error(out, cell_file="cell.c")
    assert err is not None and err.line is None
    assert err.message.startswith("the C code does not compile: vmlinux.h:42:8: redefinition")
    assert "rename yours" in err.hint


def test_no_error_line_gives_none_so_the_caller_says_what_failed() -> None:
    assert diagnostics.compile_error("warning only\n1 warning generated.\n", cell_file="main.c") \
        is None


def test_a_verifier_error_names_the_program_its_cell_line_and_reason() -> None:
    source = "int f(void *ctx) {\n    u64 *v = counts.lookup(&k);\n    return *v;\n}\n"
    log = ("0: R1=ctx() R10=fp0\n; return *v; @ main.c:3\n"
           "5: (79) r0 = *(u64 *)(r0 +0)\nR0 invalid mem access 'map_value_or_null'\n"
           "processed 6 insns (limit 1000000)\n")
    err = diagnostics.verifier_error("f", log, source)
    assert err.message == ("the verifier rejected f at cell line 3: R0 invalid mem access "
                           "'map_value_or_null'")
    assert err.program == "f" and err.log == log and err.hint


@pytest.mark.parametrize("given", [["N=4", "FLAG"], {"N": "4", "FLAG": None}, [" N=4", "FLAG "]])
def test_macros_parse_alike_from_a_list_or_a_mapping(given) -> None:
    assert parse_defines(given) == {"N": "4", "FLAG": None}
    assert define_flags(given) == ["-DN=4", "-DFLAG"]


@pytest.mark.parametrize("bad", [["4N=1"], ["A-B"], ["=1"], {"": "1"}, {"x y": None}])
def test_a_macro_name_that_is_not_an_identifier_is_one_usage_error(bad) -> None:
    with pytest.raises(UsageError, match="bad macro name"):
        parse_defines(bad)


def _core_program_with_no_programs():
    from types import SimpleNamespace

    from ebpf_nb.core.program import CoreProgram
    prog = object.__new__(CoreProgram)
    prog.name, prog.source = "cell", "int f(void *ctx) { return 0; }\n"
    prog._obj = SimpleNamespace(programs={})
    return prog


@pytest.mark.parametrize("code,kind,words", [
    (1, "PrivilegeError", "not permitted (EPERM)"),
    (12, "HostError", "out of memory (ENOMEM)"),
    (22, "UsageError", "invalid argument (EINVAL)"),
])
def test_a_core_load_failure_with_no_verifier_log_is_its_errno_not_a_verifier_error(
        code: int, kind: str, words: str) -> None:
    from ebpf_nb.kernel.libbpf import LibbpfError
    log = ["libbpf: prog 'f': BPF program load failed: x", "libbpf: prog 'f': failed to load: -1"]
    err = _core_program_with_no_programs()._load_error(LibbpfError("bpf_object__load", code, log))
    assert type(err).__name__ == kind and "Verifier" not in type(err).__name__
    assert err.message == f"loading f failed: {words}" and err.errno == code
