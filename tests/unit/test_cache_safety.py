"""Root's CO-RE caches are root's: folders 0700 and checked, planted files never used.

The kit runs as root and loads the objects in its cache, so a cache that another user can
write (a folder chmod 0777, one chown'ed to nobody, a link) is refused, and a cached object or
``vmlinux.h`` that someone else could have written is rebuilt, never loaded. These tests run
as root (as the suite does) to chown to nobody.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ebpf_nb.core import compile as core_compile
from ebpf_nb.core.cache import atomic_write, cache_dir, private_dir, trusted_file
from ebpf_nb.core.vmlinux import vmlinux_include_dir
from ebpf_nb.errors import HostError

NOBODY = 65534
SOURCE = ('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
          'SEC("raw_tp/sys_enter")\nint f(void *ctx) { return 0; }\n'
          'char LICENSE[] SEC("license") = "GPL";\n')


def mode(path: Path) -> int:
    return os.lstat(path).st_mode & 0o777


def test_the_cache_is_created_private(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EBPF_NB_CACHE", str(tmp_path / "fresh"))
    root = cache_dir()
    assert root == tmp_path / "fresh" and mode(root) == 0o700
    atomic_write(root / "vmlinux" / "key" / "vmlinux.h", b"x", root)
    assert mode(root / "vmlinux") == mode(root / "vmlinux" / "key") == 0o700
    assert mode(root / "vmlinux" / "key" / "vmlinux.h") == 0o600


def test_a_readable_folder_of_ours_is_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    assert private_dir(folder) == folder and mode(folder) == 0o700


@pytest.mark.parametrize("spoil, why", [
    (lambda p: os.chmod(p, 0o777), "can be written by other users (mode 0777)"),
    (lambda p: os.chmod(p, 0o730), "can be written by other users (mode 0730)"),
    (lambda p: os.chown(p, NOBODY, NOBODY), f"belongs to uid {NOBODY}"),
])
def test_a_folder_others_control_is_refused(tmp_path: Path, monkeypatch, spoil, why) -> None:
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    spoil(root)
    monkeypatch.setenv("EBPF_NB_CACHE", str(root))
    with pytest.raises(HostError) as refused:
        cache_dir()
    assert why in str(refused.value) and "rm -rf" in str(refused.value)
    with pytest.raises(HostError):
        atomic_write(root / "objects" / "x.o", b"planted?", root)
    assert not (root / "objects").exists()


def test_a_linked_cache_folder_is_refused(tmp_path: Path, monkeypatch) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("EBPF_NB_CACHE", str(tmp_path / "link"))
    with pytest.raises(HostError, match="is a symbolic link"):
        cache_dir()


def test_a_subfolder_others_can_write_is_refused(tmp_path: Path) -> None:
    root = private_dir(tmp_path / "cache")
    atomic_write(root / "objects" / "a.o", b"ours", root)
    assert trusted_file(root / "objects" / "a.o", root)
    os.chmod(root / "objects", 0o777)
    with pytest.raises(HostError, match="can be written by other users"):
        trusted_file(root / "objects" / "a.o", root)


@pytest.mark.parametrize("spoil", [
    lambda p: os.chmod(p, 0o666),
    lambda p: os.chmod(p, 0o620),
    lambda p: os.chown(p, NOBODY, NOBODY),
])
def test_a_file_others_could_write_is_not_trusted(tmp_path: Path, spoil) -> None:
    root = private_dir(tmp_path / "cache")
    path = root / "objects" / "a.o"
    atomic_write(path, b"ours", root)
    spoil(path)
    assert not trusted_file(path, root)


def test_a_link_in_the_cache_is_replaced_never_written_through(tmp_path: Path) -> None:
    root = private_dir(tmp_path / "cache")
    outside = tmp_path / "victim"
    outside.write_text("keep me")
    private_dir(root / "objects")
    (root / "objects" / "a.o").symlink_to(outside)
    assert not trusted_file(root / "objects" / "a.o", root)
    atomic_write(root / "objects" / "a.o", b"object", root)
    assert outside.read_text() == "keep me"
    assert not (root / "objects" / "a.o").is_symlink()
    assert (root / "objects" / "a.o").read_bytes() == b"object"
    assert [p.name for p in (root / "objects").iterdir()] == ["a.o"]  # no temp left


@pytest.mark.parametrize("spoil", [
    lambda p: os.chmod(p, 0o666),
    lambda p: os.chown(p, NOBODY, NOBODY),
])
def test_a_planted_object_is_rebuilt_not_loaded(tmp_path: Path, spoil) -> None:
    root = private_dir(tmp_path / "cache")
    first = core_compile.compile_cell(SOURCE, cache=root)
    planted = b"\x7fELF planted by someone else"
    first.path.write_bytes(planted)
    spoil(first.path)
    again = core_compile.compile_cell(SOURCE, cache=root)
    assert again.cached is False and again.path == first.path
    rebuilt = again.path.read_bytes()
    assert rebuilt != planted and rebuilt.startswith(b"\x7fELF") and len(rebuilt) > 500
    core_compile.check_object(rebuilt)  # a real BPF object again: a program and a license
    assert os.lstat(again.path).st_uid == os.geteuid() and mode(again.path) == 0o600
    assert core_compile.compile_cell(SOURCE, cache=root).cached is True


def test_a_planted_vmlinux_header_is_regenerated(tmp_path: Path) -> None:
    root = private_dir(tmp_path / "cache")
    header = vmlinux_include_dir(cache=root) / "vmlinux.h"
    header.write_text("#error planted\n")
    os.chmod(header, 0o666)
    assert vmlinux_include_dir(cache=root) / "vmlinux.h" == header
    assert "struct task_struct {" in header.read_text() and mode(header) == 0o600
