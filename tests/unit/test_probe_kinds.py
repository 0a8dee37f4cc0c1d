"""The probe-kind table (issue 14): parsing, conventions, the -a help and both backends' attach
tables come from one row per kind; BCC's bare Exceptions become the kit's errors in one place.
No kernel: these run anywhere the kit imports."""
from __future__ import annotations

import dataclasses

import pytest

from ebpf_nb import bcc_program, probes
from ebpf_nb.core import objects
from ebpf_nb.core import program as core_program
from ebpf_nb.errors import AttachError, HostError, UsageError
from ebpf_nb.magics import BpfMagics
from ebpf_nb.probes import (
    ALIASES,
    KINDS,
    PROBE_KINDS,
    ProbeSpec,
    convention_names,
    parse_probe,
    probe_from_convention,
)

BY_NAME = pytest.mark.parametrize("kind", PROBE_KINDS, ids=lambda k: k.name)


@BY_NAME
def test_every_row_parses_its_own_example(kind):
    spec = parse_probe(kind.example)
    assert spec.kind == kind.name and len(spec.target) == len(kind.parts)
    assert str(spec) == kind.example
    assert parse_probe(f"{kind.example}=handler") == ProbeSpec(kind.name, spec.target, "handler")


@BY_NAME
def test_a_row_with_too_few_parts_is_refused_with_its_example(kind):
    with pytest.raises(UsageError, match="malformed probe") as info:
        parse_probe(kind.name + ":")
    assert kind.example in info.value.hint


@pytest.mark.parametrize("alias, name", sorted(ALIASES.items()))
def test_aliases_parse_as_their_kind(alias, name):
    example = parse_probe(KINDS[name].example)
    assert parse_probe(":".join((alias, *example.target))) == example


def test_aliases_are_the_ones_the_kit_always_took():
    assert ALIASES == {"tp": "tracepoint", "raw_tp": "raw_tracepoint", "rawtp": "raw_tracepoint",
                       "kfunc": "fentry", "kretfunc": "fexit", "k": "kprobe", "u": "uprobe"}


def test_an_unknown_kind_lists_every_example():
    with pytest.raises(UsageError, match="unknown probe kind 'nope'") as info:
        parse_probe("nope:x")
    assert all(k.example in info.value.hint for k in PROBE_KINDS)


def test_a_path_target_keeps_its_colons_and_slashes():
    assert parse_probe("uretprobe:/opt/a:b/lib.so:sym=f").target == ("/opt/a:b/lib.so", "sym")


def test_the_attach_help_lists_every_kind_and_alias():
    help_text = next(a for a in BpfMagics.bpf.parser._actions if a.dest == "probes").help
    for kind in PROBE_KINDS:
        assert kind.spelling in help_text
    assert all(f"{alias}={name}" in help_text for alias, name in ALIASES.items())
    assert "syscall:NAME (a kprobe where kprobes exist" in help_text


@pytest.mark.parametrize("kind, prefix", [(k, p) for k in PROBE_KINDS for p in k.conventions],
                         ids=lambda v: getattr(v, "name", v))
def test_conventions_round_trip(kind, prefix):
    target = parse_probe(kind.example).target
    function = prefix + "__".join(target)
    found = probe_from_convention(function)
    assert found is not None and found.spec == ProbeSpec(kind.name, target, function)
    assert function in convention_names(found.spec)


@pytest.mark.parametrize("name", ["hello", "kprobe__", "tracepoint__only_one", "tracepoint____x",
                                  "kfunc__vmlinux__"])
def test_names_that_imply_no_probe(name):
    assert probe_from_convention(name) is None


def test_fentry_conventions_with_and_without_the_module():
    assert probe_from_convention("kfunc__vmlinux__vfs_read").spec.target == ("vfs_read",)
    assert probe_from_convention("kretfunc__vfs_read").spec.kind == "fexit"
    assert convention_names(ProbeSpec("fentry", ("vfs_read",))) == (
        "kfunc__vmlinux__vfs_read", "kfunc__vfs_read")


@BY_NAME
def test_every_kind_is_attached_by_both_backends(kind):
    if kind.attached_as:
        assert kind.name in bcc_program._RESOLVE and kind.name in core_program._RESOLVE
        assert set(kind.attached_as) <= set(KINDS) - {kind.name}
    else:
        assert kind.name in bcc_program._BCC_ATTACH and kind.name in objects.LIBBPF_ATTACH
        assert kind.bcc_prog_type in ("KPROBE", "TRACEPOINT", "RAW_TRACEPOINT", "TRACING")


def test_a_row_without_a_backend_attach_is_caught(monkeypatch):
    newcomer = dataclasses.replace(KINDS["raw_tracepoint"], name="tp_btf", aliases=())
    monkeypatch.setattr(probes, "PROBE_KINDS", (*PROBE_KINDS, newcomer))
    with pytest.raises(NotImplementedError, match="bcc backend cannot attach .*tp_btf"):
        probes.check_backend("bcc", bcc_program._BCC_ATTACH, bcc_program._RESOLVE)
    resolved = dataclasses.replace(KINDS["syscall"], name="syscall_exit")
    monkeypatch.setattr(probes, "PROBE_KINDS", (*PROBE_KINDS, resolved))
    with pytest.raises(NotImplementedError, match="core backend .*syscall_exit"):
        probes.check_backend("core", {**objects.LIBBPF_ATTACH, "syscall_exit": None},
                             core_program._RESOLVE)  # an attach call does not resolve it


def test_the_backends_tables_pass_the_check():
    probes.check_backend("bcc", bcc_program._BCC_ATTACH, bcc_program._RESOLVE)
    probes.check_backend("core", objects.LIBBPF_ATTACH, core_program._RESOLVE)


# --- BCC's bare Exceptions, wrapped once ---------------------------------------------------------

def bcc_exception(text: str) -> Exception:
    """What BCC raises: a bare Exception with its words."""
    return Exception(text)


def _failing(exception: Exception):
    """What a BCC failure wrapped by _bcc_errors is made into: (cause, exception, output)."""
    seen = []

    def failure(cause, err, output):
        seen.append((cause, err, output))
        return AttachError("made")

    with pytest.raises(AttachError, match="made") as info, bcc_program._bcc_errors(failure):
        raise exception
    assert info.value.__suppress_context__
    return seen[0]


@pytest.mark.parametrize("text, cause", [
    ("Need super-user privileges to run", "not permitted"),
    ("could not determine address of symbol nope in /bin/true", "no target"),
    ("Failed to attach BPF program b'f' to kprobe b'nope', it's not traceable", "no target"),
    ("Failed to attach BPF to raw tracepoint", "no target"),
    ("Failed to load BPF program b'f': Invalid argument", None),
])
def test_bcc_words_are_classified_in_one_table(text, cause):
    found, err, _ = _failing(bcc_exception(text))
    assert (found, str(err)) == (cause, text)


def test_the_exception_wins_over_fd2_output_and_output_is_passed_on():
    import os

    def failure(cause, err, output):
        return AttachError(f"{cause}|{output.strip()}")

    with (pytest.raises(AttachError, match=r"^no target\|fatal: kernel headers here$"),
          bcc_program._bcc_errors(failure)):
        os.write(2, b"fatal: kernel headers here\n")
        raise bcc_exception("could not determine address of symbol x in y")


def test_the_kits_own_errors_pass_unchanged():
    mine = UsageError("mine")
    with (pytest.raises(UsageError) as info,
          bcc_program._bcc_errors(lambda *a: AttachError("not this"))):
        raise mine
    assert info.value is mine


def test_a_failure_builder_may_raise_a_plainer_error():
    def failure(cause, err, output):
        raise HostError("not root")

    with pytest.raises(HostError, match="not root") as info, bcc_program._bcc_errors(failure):
        raise bcc_exception("Need super-user privileges to run")
    assert info.value.__suppress_context__


@pytest.mark.parametrize("spec, text, reason, hint", [
    (ProbeSpec("kprobe", ("nope",), "f"),
     "Failed to attach BPF program b'f' to kprobe b'nope', it's not traceable",
     "no such kernel function (or it cannot be probed)", "grep -w nope /proc/kallsyms"),
    (ProbeSpec("raw_tracepoint", ("nope",), "f"), "Failed to attach BPF to raw tracepoint",
     "no such raw tracepoint", "ls /sys/kernel/tracing/events/*/"),
    (ProbeSpec("uprobe", ("/bin/true", "nope"), "f"),
     "could not determine address of symbol nope in /bin/true",
     "the file or symbol does not exist", "nm -D PATH | grep SYMBOL"),
    (ProbeSpec("uprobe", ("/bin/true", "x"), "f"), "Failed to attach BPF to uprobe",
     "Failed to attach BPF to uprobe", "nm -D PATH | grep SYMBOL"),
    (ProbeSpec("fentry", ("vfs_read",), "f"), "Failed to attach BPF to entry kernel func",
     "Failed to attach BPF to entry kernel func", None),
])
def test_attach_failures_keep_their_messages_and_hints(spec, text, reason, hint):
    cause, err, output = _failing(bcc_exception(text))
    error = bcc_program._attach_error(spec, cause, err, output)
    assert error.message == f"could not attach f to {':'.join((spec.kind, *spec.target))}: {reason}"
    assert (hint in error.hint) if hint else error.hint is None


def test_a_refused_tail_call_slot_is_an_attach_error_naming_it(monkeypatch):
    """BCC's table update raises a bare Exception; tail_calls let it through before."""
    from types import SimpleNamespace

    from ebpf_nb.constants import MapType
    from ebpf_nb.program import MapLayout

    class RefusingTable:
        def __setitem__(self, key, value):
            raise bcc_exception("Could not update table: Invalid argument")

    prog = object.__new__(bcc_program.BpfProgram)
    prog.functions = ["entry", "target"]
    prog._plan = [ProbeSpec("tracepoint", ("syscalls", "sys_enter_getppid"), "entry")]
    prog._bpf = {b"jumps": RefusingTable()}
    prog._layout = lambda name: MapLayout(name, MapType.PROG_ARRAY, -1, None, None, 4)
    prog._load = lambda fn, prog_type: SimpleNamespace(fd=-1)
    with pytest.raises(AttachError, match=r"could not put target in jumps\[2\]: Could not update"):
        prog.tail_calls("jumps", {2: "target"})
