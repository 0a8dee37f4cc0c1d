"""CO-RE pieces that need clang and the kernel's BTF file but load nothing into the kernel."""
from __future__ import annotations

import numpy as np
import pytest

from ebpf_nb.core import compile as core_compile
from ebpf_nb.core.btf_types import Btf
from ebpf_nb.core.cache import kernel_key
from ebpf_nb.core.program import _infer_event_struct, instructions_frame
from ebpf_nb.core.vmlinux import vmlinux_include_dir
from ebpf_nb.errors import CompileError, UsageError

HEADER = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
"""
LICENSE = 'char LICENSE[] SEC("license") = "GPL";\n'

LAYOUTS = HEADER + """
struct inner { unsigned short port; char tag[4]; };
struct event {
    int pid;
    char comm[16];
    unsigned char raw[3];
    struct inner in;
    union { unsigned int u; int i; };
    unsigned long long ts;
    int matrix[2][3];
    void *ptr;
};
enum color { RED, GREEN = 5 };
const volatile int threshold = 7;
const volatile char label[8] = "abc";
const volatile enum color colour = RED;
const volatile unsigned char flag = 1;
SEC("tracepoint/syscalls/sys_enter_execve")
int on_exec(void *ctx) { return threshold + label[0] + colour + flag; }
""" + LICENSE


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("core-cache")


def object_btf(compiled) -> Btf:
    """The raw .BTF section of an object file, parsed (what libbpf fixes up at open time)."""
    data = compiled.path.read_bytes()
    import struct
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_off = headers[shstrndx][4]
    for h in headers:
        start = names_off + h[0]
        if data[start:data.index(b"\0", start)] == b".BTF":
            return Btf(data[h[4]:h[4] + h[5]])
    raise AssertionError("no .BTF section")


def test_vmlinux_header_is_generated_once_per_kernel(cache):
    first = vmlinux_include_dir(cache=cache)
    header = first / "vmlinux.h"
    assert header.stat().st_size > 100_000
    assert "struct task_struct {" in header.read_text()
    mtime = header.stat().st_mtime_ns
    assert vmlinux_include_dir(cache=cache) == first
    assert header.stat().st_mtime_ns == mtime
    assert first.name == kernel_key()


def test_compile_is_cached_by_source_and_flags(cache):
    src = HEADER + 'SEC("raw_tp/sys_enter")\nint f(void *ctx) { return 0; }\n' + LICENSE
    first = core_compile.compile_cell(src, cache=cache)
    again = core_compile.compile_cell(src, cache=cache)
    other = core_compile.compile_cell(src, defines={"X": "1"}, cache=cache)
    assert (first.cached, again.cached, other.cached) == (False, True, False)
    assert again.path == first.path != other.path
    assert "-D__TARGET_ARCH_x86" in first.flags or "-D__TARGET_ARCH_arm64" in first.flags


def test_clang_error_names_the_cells_line_and_column(cache):
    src = HEADER + "\nSEC(\"raw_tp/sys_enter\")\nint f(void *ctx) {\n    return nope;\n}\n" + LICENSE
    with pytest.raises(CompileError) as info:
        core_compile.compile_cell(src, cache=cache)
    err = info.value
    assert (err.line, err.column) == (6, 12)
    assert "use of undeclared identifier 'nope'" in err.message
    assert err.message.startswith("the C code does not compile: line 6, column 12:")
    assert "line 6, column 12: error:" in err.details and "return nope;" in err.details


def test_clash_with_a_kernel_type_says_to_rename(cache):
    src = HEADER + "struct task_struct { int x; };\n" + LICENSE
    with pytest.raises(CompileError, match="line 3, column 8: redefinition of 'task_struct'") \
            as info:
        core_compile.compile_cell(src, cache=cache)
    assert "rename yours" in info.value.hint


def test_missing_license_is_said_plainly(cache):
    src = HEADER + 'SEC("raw_tp/sys_enter")\nint f(void *ctx) { return 0; }\n'
    with pytest.raises(CompileError, match="no license") as info:
        core_compile.compile_cell(src, cache=cache)
    assert 'SEC("license")' in info.value.hint


def test_missing_sec_is_said_plainly(cache):
    src = HEADER + "int f(void *ctx) { return 0; }\n" + LICENSE
    with pytest.raises(CompileError, match=r"no BPF program: no function is in a SEC\(\)"):
        core_compile.compile_cell(src, cache=cache)


def test_appended_type_keepers_do_not_move_lines():
    src = "struct a { int x; };\nstruct b { int y; }; // last line without newline"
    out = core_compile.source_to_compile(src)
    assert out.startswith(src + "\n")
    assert out.count("\n") == src.count("\n") + 1 + 2
    assert "__ebpf_nb_type_a" in out and "__ebpf_nb_type_b" in out


def test_btf_gives_numpy_layouts_of_cell_structs(cache):
    btf = object_btf(core_compile.compile_cell(LAYOUTS, cache=cache))
    dt = btf.dtype(btf.find("event"))
    assert dt.itemsize == 80
    assert dt.names == ("pid", "comm", "raw", "in", "u", "i", "ts", "matrix", "ptr")
    assert dt["pid"] == np.dtype("i4") and dt.fields["pid"][1] == 0
    assert dt["comm"] == np.dtype("S16") and dt.fields["comm"][1] == 4
    assert dt["raw"].subdtype == (np.dtype("u1"), (3,))
    assert dt["in"].names == ("port", "tag") and dt["in"]["tag"] == np.dtype("S4")
    assert dt.fields["u"][1] == dt.fields["i"][1]  # anonymous union: overlapping fields
    assert dt["ts"] == np.dtype("u8") and dt.fields["ts"][1] == 40
    assert dt["matrix"].subdtype == (np.dtype("i4"), (2, 3))
    assert dt["ptr"] == np.dtype("u8")
    # a record built in C layout reads back through the dtype
    rec = np.zeros(1, dt)
    rec["comm"] = b"bash"
    rec["in"]["port"] = 8080
    assert rec.tobytes()[4:8] == b"bash"


def test_btf_encodes_globals_from_text(cache):
    btf = object_btf(core_compile.compile_cell(LAYOUTS, cache=cache))
    # the .rodata datasec in a .o has its variables (offsets are fixed up by libbpf at open)
    sec = btf.find(".rodata", "datasec")
    assert sec is not None
    types = {btf[v].name: btf[v].size_or_type for v, _, _ in btf[sec].extra}
    assert btf.encode(types["threshold"], "-2") == (-2).to_bytes(4, "little", signed=True)
    assert btf.encode(types["threshold"], "0x10") == (16).to_bytes(4, "little")
    assert btf.encode(types["label"], "hi") == b"hi\0\0\0\0\0\0"
    assert btf.encode(types["colour"], "GREEN") == (5).to_bytes(4, "little")
    assert btf.encode(types["flag"], "true") == b"\x01"
    with pytest.raises(UsageError, match="too long"):
        btf.encode(types["label"], "much too long")
    with pytest.raises(UsageError, match="does not fit"):
        btf.encode(types["flag"], 300)
    with pytest.raises(UsageError, match="not a number"):
        btf.encode(types["threshold"], "seven")


@pytest.mark.parametrize("code, expected", [
    ("struct event *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);", "event"),
    ("e = bpf_ringbuf_reserve(&rb, sizeof(struct data_t), 0);", "data_t"),
    ("struct ev e = {}; bpf_ringbuf_output(&rb, &e, sizeof(e), 0);", "ev"),
    ("struct ev e = {}; bpf_perf_event_output(ctx, &rb, BPF_F_CURRENT_CPU, &e, sizeof(e));",
     "ev"),
])
def test_event_struct_is_read_off_the_c(code, expected):
    src = "struct other { int a; };\nstruct decoy { int b; };\n" + code
    assert _infer_event_struct(src, "rb") == expected
    assert _infer_event_struct(src, "elsewhere") is None


def test_event_struct_falls_back_to_the_only_struct():
    assert _infer_event_struct("struct only { int a; };", "rb") == "only"


def test_instructions_frame_parses_bpftool_listing():
    listing = """int hello(void * ctx):
; x = f(1);
   0: (b7) r1 = 1
   1: (85) call pc+2#bpf_prog_abc_f
   2: (95) exit
int f(int a):
; return a;
   3: (bf) r0 = r1
   4: (18) r1 = map[id:7][0]+0
   6: (95) exit
"""
    df = instructions_frame(listing)
    assert list(df["pc"]) == [0, 1, 2, 3, 4, 6]
    assert list(df["function"]) == ["hello"] * 3 + ["f"] * 3
    assert df.loc[1, "instruction"] == "call pc+2#bpf_prog_abc_f"
    assert df.loc[3, "source"] == "return a;"


def test_cached_objects_are_small_and_pruned_oldest_first(cache, tmp_path):
    import os

    src = HEADER + 'SEC("raw_tp/sys_enter")\nint f(void *ctx) { return 1; }\n' + LICENSE
    obj = core_compile.compile_cell(src, cache=cache)
    assert obj.path.stat().st_size < 100_000  # DWARF stripped (vmlinux.h makes it ~600 KB)
    assert object_btf(obj).find("f", "func") is not None  # BTF kept
    for i in range(4):
        (tmp_path / f"{i}.o").write_bytes(b"x")
        os.utime(tmp_path / f"{i}.o", (i, i))
    core_compile.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("*.o")) == ["2.o", "3.o"]
