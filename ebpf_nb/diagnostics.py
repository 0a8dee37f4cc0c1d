"""Turn clang diagnostics and verifier logs into short messages against the cell's own lines."""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from .errors import CompileError, VerifierError

# "/virtual/main.c:3:13: error: use of undeclared identifier 'y'" (BCC) or "prog.bpf.c:3:13: ..."
_DIAG = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?P<col>\d+): (?P<level>fatal error|error|warning|note): (?P<text>.*)$")
# verifier source annotation: "; u64 z = *v; @ main.c:18" (Linux 6.4 and later)
_VERIFIER_SOURCE = re.compile(r"^; (?P<code>.*?) @ (?P<file>[^\s:]+):(?P<line>\d+)$")
# the same before Linux 6.4: the source text alone, "; u64 z = *v;"
_PLAIN_SOURCE = re.compile(r"^; (?P<code>.*\S)$")
# BCC's rewrite of ``counts.lookup(&key)``: "bpf_map_lookup_elem((void *)bpf_pseudo_fd(1, -1), &key)"
_BCC_MAP_CALL = re.compile(r"\bbpf_map_(?P<op>\w+?)_elem\(\(void \*\)bpf_pseudo_fd\(\d+, -?\d+\),\s*")
# the student's own spelling of it: "counts.lookup("
_MAP_METHOD = re.compile(r"\b\w+\.(?P<op>lookup|update|delete)\(")
#: the name the cell's C has in line info: BCC's /virtual/main.c, the CO-RE mode's cell.c
CELL_FILES = ("main.c", "cell.c")
_PROCESSED = re.compile(r"^processed \d+ insns")
# BCC's only words when the verifier gives up (E2BIG): it prints no log, and its "at most 4096"
# is the pre-5.2 limit: "bpf: Argument list too long. Program  too large (41 insns), at most ..."
_BCC_TOO_COMPLEX = re.compile(r"^bpf: Argument list too long\. Program .*too large \((\d+) insns\)")
# harmless BTF notes the kernel prints before the instructions (e.g. for a ``void *ctx``)
_NOISE = re.compile(r"^(arg#\d+ reference type|func#\d+ )")


@dataclass(frozen=True)
class Diagnostic:
    """One compiler message, with the cell's line and column."""

    line: int
    column: int
    level: str
    text: str
    excerpt: str  # the source line and caret clang printed under the message


def parse_clang(output: str, *, main_file_suffix: str = "main.c", line_offset: int = 0) -> list[Diagnostic]:
    """Parse clang's diagnostics for the cell's file; lines are shifted by ``line_offset``."""
    lines = output.splitlines()
    found: list[Diagnostic] = []
    for i, raw in enumerate(lines):
        m = _DIAG.match(raw.strip())
        if not m or not m["file"].endswith(main_file_suffix):
            continue
        excerpt = []
        for follow in lines[i + 1:i + 3]:
            if _DIAG.match(follow.strip()) or follow.strip().endswith("generated."):
                break
            excerpt.append(follow)
        found.append(Diagnostic(int(m["line"]) - line_offset, int(m["col"]), m["level"],
                                m["text"], "\n".join(excerpt)))
    return found


def compile_error(output: str, *, cell_file: str) -> CompileError | None:
    """clang's output -> one ``CompileError`` about its first error, for both backends: at the
    cell's line and column when the error is in the cell's own file (``cell_file``: BCC's
    ``main.c``, the CO-RE mode's ``cell.c``), else naming the header. None when clang printed no
    error line (the caller says what failed)."""
    errors = [m for raw in output.splitlines()
              if (m := _DIAG.match(raw.strip())) and m["level"] in ("error", "fatal error")]
    if not errors:
        return None
    first, more = errors[0], (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
    line, column, text = int(first["line"]), int(first["col"]), first["text"]
    clash = "redefinition of" in text and "vmlinux.h" in output
    hint = ("vmlinux.h already defines a type of that name (it holds every kernel type): "
            "rename yours") if clash else hint_for_compile_error(text)
    if first["file"].endswith(cell_file):
        diags = parse_clang(output, main_file_suffix=cell_file)
        return CompileError(f"the C code does not compile: line {line}, column {column}: "
                            f"{text}{more}", line=line, column=column,
                            details=format_diagnostics(diags), hint=hint)
    header = first["file"].rsplit("/", 1)[-1]
    return CompileError(f"the C code does not compile: {header}:{line}:{column}: {text}{more}",
                        details=_head(output), hint=hint or (
                            "a type in the cell clashes with one of the kernel's (vmlinux.h)"
                            if header == "vmlinux.h" else None))


def _head(output: str, limit: int = 40) -> str:
    lines = output.rstrip().splitlines()
    return "\n".join(lines[:limit] + ([f"... ({len(lines) - limit} more lines)"]
                                      if len(lines) > limit else []))


def verifier_error(program: str | None, log: str, cell_source: str) -> VerifierError:
    """A verifier rejection of ``program`` -> the ``VerifierError`` both backends raise: the
    verifier's reason at the cell's line, the trimmed log, and the hints."""
    report = parse_verifier_log(log, cell_source)
    where = f" at cell line {report.cell_line}" if report.cell_line else ""
    hints = report.hints or [h for h in [hint_for_verifier(report.reason)] if h]
    return VerifierError(f"the verifier rejected {program or 'a program'}{where}: "
                         f"{report.reason}", program=program, log=log,
                         details=report.log or None, hint=" ".join(hints) or None)


def first_error(diags: list[Diagnostic]) -> Diagnostic | None:
    """The first error (or fatal error) among ``diags``."""
    return next((d for d in diags if d.level in ("error", "fatal error")), None)


def format_diagnostics(diags: list[Diagnostic], limit: int = 3) -> str:
    """Short text listing up to ``limit`` errors with their excerpt."""
    errors = [d for d in diags if d.level in ("error", "fatal error")][:limit]
    out = []
    for d in errors:
        out.append(f"line {d.line}, column {d.column}: {d.level}: {d.text}")
        if d.excerpt.strip():
            out.append(d.excerpt)
    return "\n".join(out)


def hint_for_compile_error(text: str) -> str | None:
    """A beginner's hint for the commonest clang errors."""
    if "undeclared identifier" in text:
        return "declare the variable first, or check its spelling (C is case-sensitive)."
    if "implicit declaration of function" in text:
        return ("that function does not exist in BPF C: only BPF helpers (bpf_*) and your own "
                "static functions can be called.")
    if "expected ';'" in text:
        return "a statement is missing its ';' on this line or the line before."
    if "file not found" in text:
        return "the header is not installed; run %bpf_doctor to check the kernel headers."
    return None


@dataclass(frozen=True)
class VerifierReport:
    """The essential part of a verifier rejection."""

    reason: str          # the verifier's last complaint, e.g. "R0 invalid mem access 'map_value_or_null'"
    cell_line: int | None
    log: str             # trimmed log, source annotations mapped to cell lines
    hints: list[str]


def _cell_annotation(line: str) -> re.Match[str] | None:
    """A ``; code @ file:N`` annotation about the cell's own file (not a header's)."""
    m = _VERIFIER_SOURCE.match(line.strip())
    return m if m and m["file"].rsplit("/", 1)[-1] in CELL_FILES else None


def _source_line_map(log_lines: list[str], cell_source: str) -> int | None:
    """The offset between the compiled file's lines and the cell's, found by matching source text."""
    cell_lines = cell_source.splitlines()
    offsets = []
    for raw in log_lines:
        m = _cell_annotation(raw)
        if m and m["code"].strip() and (line := _line_by_text(m["code"], cell_lines)):
            offsets.append(int(m["line"]) - line)
    return int(statistics.median(offsets)) if offsets else None


def _comparable(code: str) -> str:
    """Source text with BCC's map-call rewrite and the student's method call spelled alike."""
    code = _MAP_METHOD.sub(lambda m: m["op"] + "(", code.strip())
    code = _BCC_MAP_CALL.sub(lambda m: m["op"] + "(", code)
    return code.replace(", BPF_ANY)", ")")


def _line_by_text(code: str, cell_lines: list[str]) -> int | None:
    """The one cell line with this source text (kernels that print no line numbers), else None."""
    wanted = _comparable(code)
    matches = [i + 1 for i, ln in enumerate(cell_lines) if ln.strip() and _comparable(ln) == wanted]
    return matches[0] if len(matches) == 1 else None


def parse_verifier_log(log: str, cell_source: str, *, keep: int = 14) -> VerifierReport:
    """Trim a verifier log to its last instructions, map source lines to the cell, keep HINTs.

    Each ``; code @ file:N`` annotation becomes the cell's own text for that line (BCC's log
    quotes its rewritten C, e.g. ``bpf_map_lookup_elem((void *)bpf_pseudo_fd(1, -1), &key)`` for
    ``counts.lookup(&key)``) followed by ``<- cell line L``. Kernels before 6.4 print ``; code``
    alone: such a line is mapped when exactly one cell line has that text.
    """
    lines = [ln for ln in log.splitlines() if ln.strip()]
    hints = [ln.split("HINT:", 1)[1].strip() for ln in lines if ln.startswith("HINT:")]
    too_complex = next((m for ln in lines if (m := _BCC_TOO_COMPLEX.match(ln))), None)
    if too_complex:
        return VerifierReport(
            "too complex to verify: the verifier gave up before it had followed every path (it "
            "stops after 1 million instructions, or 8192 branches still to explore); the "
            f"program itself has {too_complex[1]} instructions", None, "", hints)
    body = [ln for ln in lines if not ln.startswith(("HINT:", "bpf: Failed"))
            and not _NOISE.match(ln)]
    offset = _source_line_map(body, cell_source)
    cell_lines = cell_source.splitlines()

    end = next((i for i, ln in enumerate(body) if _PROCESSED.match(ln)), len(body))
    reason = body[end - 1].strip() if end > 0 else "the verifier gave no reason"
    cell_line = None
    mapped = []
    for ln in body[max(0, end - keep):end + 1]:
        if re.match(r"^;\s*@ ", ln.strip()):
            continue  # an annotation with no source text
        line_no: int | None = None
        if m := _cell_annotation(ln):
            line_no = int(m["line"]) - offset if offset is not None else None
            cell_line = None  # the instructions below are the cell's, at a line not found
        elif not _VERIFIER_SOURCE.match(ln.strip()) and (plain := _PLAIN_SOURCE.match(ln.strip())):
            line_no = _line_by_text(plain["code"], cell_lines)
            cell_line = None  # an old kernel's line: the cell's or a header's, not known
        if line_no is not None and 1 <= line_no <= len(cell_lines):
            cell_line = line_no
            ln = f"; {cell_lines[line_no - 1].strip()}   <- cell line {line_no}"
        mapped.append(ln)
    return VerifierReport(reason, cell_line, "\n".join(mapped), hints)


def hint_for_verifier(reason: str) -> str | None:
    """A beginner's hint for common verifier complaints (when BCC gave none)."""
    if "map_value_or_null" in reason:
        return "check the pointer a map lookup returns against NULL before using it."
    if "variable-offset" in reason or "out of bounds" in reason or "outside of the" in reason:
        return ("check the index against the array's size before using it "
                "(if (i >= N) return 0;), so the verifier knows every access stays inside.")
    if "program is too large" in reason or "too complex" in reason or "complexity" in reason:
        return ("the verifier walks every path and gives up after 1 million instructions: "
                "bound the loop with a small constant, or split the work with tail calls.")
    if "unbounded" in reason or "back-edge" in reason or "infinite loop" in reason:
        return "loops must have a bound the verifier can see; use a constant limit."
    if "stack" in reason and ("too large" in reason.lower() or "limit" in reason):
        return "the BPF stack is 512 bytes: move big structs into a map (e.g. a per-CPU array)."
    if "read from stack" in reason:
        return ("the program reads stack bytes it never wrote: initialise the variable or "
                "struct first (e.g. with = {} or __builtin_memset).")
    if "invalid mem access 'scalar'" in reason or "invalid mem access 'inv'" in reason:
        return ("to the verifier this pointer is a plain number: read kernel memory through it "
                "with bpf_probe_read_kernel() or BPF_CORE_READ().")
    if "invalid mem access" in reason or "invalid indirect read" in reason:
        return ("read kernel memory with bpf_probe_read_kernel(), and initialise every byte of "
                "structs you pass to helpers (e.g. with = {} or __builtin_memset).")
    if "GPL" in reason:
        return "this helper is GPL-only: the program needs a GPL-compatible license."
    return None
