"""BTF -> numpy dtypes: the layouts of a CO-RE object's map keys, values and event structs.

The raw BTF of the object (as libbpf fixed it up at open time) is parsed here in Python: a
header, a table of types, a string section (see the kernel's Documentation/bpf/btf.rst). From
it come numpy structured dtypes whose field names are the C fields:

- integers, enums, pointers and floats -> numpy scalars of the same size and signedness;
- ``char NAME[N]`` -> ``S{N}`` bytes (the DataFrame layer turns them into ``str``);
- other arrays -> sub-array fields; nested structs -> nested structured dtypes;
- unions -> overlapping fields (all at offset 0); anonymous struct/union members are flattened
  into their parent as C does; bit-fields have no numpy form and are left out.

It also finds the ``.rodata`` variables (``const volatile`` globals) with their offsets, sizes
and types, and encodes a Python value for one of them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ebpf_nb.errors import UsageError

BTF_MAGIC = 0xEB9F
(INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC,
 FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(1, 20)
_MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)
KIND_NAMES = {INT: "int", PTR: "ptr", ARRAY: "array", STRUCT: "struct", UNION: "union",
              ENUM: "enum", FWD: "fwd", TYPEDEF: "typedef", VOLATILE: "volatile",
              CONST: "const", RESTRICT: "restrict", FUNC: "func", FUNC_PROTO: "func_proto",
              VAR: "var", DATASEC: "datasec", FLOAT: "float", DECL_TAG: "decl_tag",
              TYPE_TAG: "type_tag", ENUM64: "enum64"}
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4


@dataclass(frozen=True)
class BtfType:
    """One BTF type: kind, name, size or referenced type, and the kind's extra data."""

    id: int
    kind: int
    name: str
    size_or_type: int
    kind_flag: bool
    vlen: int
    extra: tuple  # INT: (encoding, bit_offset, bits); ARRAY: (elem, index, n);
    # STRUCT/UNION: ((name, type, bit_offset, bitfield_size), ...); ENUM: ((name, val), ...);
    # DATASEC: ((var_type, offset, size), ...); FUNC_PROTO: ((name, type), ...)


@dataclass(frozen=True)
class GlobalVar:
    """A global variable in a data section: where it is and what type it has."""

    name: str
    type_id: int
    offset: int
    size: int


class Btf:
    """A parsed BTF blob: look types up by id or name, make dtypes, encode globals."""

    def __init__(self, raw: bytes):
        self.types: list[BtfType | None] = [None]  # id 0 is void
        self._by_name: dict[tuple[int, str], int] = {}
        if raw:
            self._parse(raw)

    # -- parsing -------------------------------------------------------------------------
    def _parse(self, raw: bytes) -> None:
        magic, = struct.unpack_from("<H", raw, 0)
        end = "<" if magic == BTF_MAGIC else ">"
        _m, _v, _f, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            end + "HBBIIIII", raw, 0)
        strings = raw[hdr_len + str_off: hdr_len + str_off + str_len]

        def name_at(off: int) -> str:
            return strings[off:strings.index(b"\0", off)].decode(errors="replace")

        pos, stop = hdr_len + type_off, hdr_len + type_off + type_len
        while pos < stop:
            name_off, info, size_or_type = struct.unpack_from(end + "III", raw, pos)
            pos += 12
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
            extra: tuple = ()
            if kind == INT:
                val, = struct.unpack_from(end + "I", raw, pos)
                extra, pos = ((val >> 24) & 0x0F, (val >> 16) & 0xFF, val & 0xFF), pos + 4
            elif kind == ARRAY:
                extra, pos = struct.unpack_from(end + "III", raw, pos), pos + 12
            elif kind in (STRUCT, UNION):
                members = []
                for _ in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from(end + "III", raw, pos)
                    pos += 12
                    bits = (m_off >> 24) if kflag else 0
                    off = (m_off & 0xFFFFFF) if kflag else m_off
                    members.append((name_at(m_name), m_type, off, bits))
                extra = tuple(members)
            elif kind == ENUM:
                extra = tuple((name_at(n), v) for n, v in
                              (struct.unpack_from(end + "Ii", raw, pos + 8 * i)
                               for i in range(vlen)))
                pos += 8 * vlen
            elif kind == ENUM64:
                extra = tuple((name_at(n), lo | hi << 32) for n, lo, hi in
                              (struct.unpack_from(end + "III", raw, pos + 12 * i)
                               for i in range(vlen)))
                pos += 12 * vlen
            elif kind == FUNC_PROTO:
                extra = tuple((name_at(n), t) for n, t in
                              (struct.unpack_from(end + "II", raw, pos + 8 * i)
                               for i in range(vlen)))
                pos += 8 * vlen
            elif kind == VAR or kind == DECL_TAG:
                extra, pos = struct.unpack_from(end + "I", raw, pos), pos + 4
            elif kind == DATASEC:
                extra = tuple(struct.unpack_from(end + "III", raw, pos + 12 * i)
                              for i in range(vlen))
                pos += 12 * vlen
            t = BtfType(len(self.types), kind, name_at(name_off), size_or_type, kflag, vlen,
                        extra)
            self.types.append(t)
            if t.name:
                self._by_name.setdefault((kind, t.name), t.id)

    # -- lookups ---------------------------------------------------------------------------
    def __getitem__(self, type_id: int) -> BtfType:
        t = self.types[type_id]
        if t is None:
            raise KeyError("type 0 is void")
        return t

    def find(self, name: str, kind: str = "struct") -> int | None:
        """The id of the type ``kind name`` (kind: struct, union, enum, typedef, int...)."""
        codes = [k for k, v in KIND_NAMES.items() if v == kind]
        return self._by_name.get((codes[0], name)) if codes else None

    def resolve(self, type_id: int) -> int:
        """Skip typedefs and qualifiers."""
        while type_id and self[type_id].kind in _MODIFIERS:
            type_id = self[type_id].size_or_type
        return type_id

    def size_of(self, type_id: int) -> int:
        t = self[self.resolve(type_id)]
        if t.kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return t.size_or_type
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY:
            return t.extra[2] * self.size_of(t.extra[0])
        raise ValueError(f"type [{t.id}] {KIND_NAMES.get(t.kind)} has no size")

    def describe(self, type_id: int) -> str:
        """A C-like spelling of a type, for messages."""
        if not type_id:
            return "void"
        t = self[type_id]
        if t.kind in (STRUCT, UNION, ENUM, ENUM64):
            return f"{KIND_NAMES[t.kind].rstrip('64')} {t.name or '(anon)'}"
        if t.kind == PTR:
            return self.describe(t.size_or_type) + " *"
        if t.kind == ARRAY:
            return f"{self.describe(t.extra[0])}[{t.extra[2]}]"
        if t.kind in (VOLATILE, CONST, RESTRICT, TYPE_TAG):
            return f"{KIND_NAMES[t.kind]} {self.describe(t.size_or_type)}"
        return t.name or KIND_NAMES.get(t.kind, "?")

    def is_char(self, type_id: int) -> bool:
        """``char`` itself (not ``unsigned char``/``__u8``), seen through typedefs."""
        t = self[self.resolve(type_id)]
        return t.kind == INT and t.size_or_type == 1 and t.name in ("char", "signed char")

    # -- dtypes ----------------------------------------------------------------------------
    def dtype(self, type_id: int) -> np.dtype:
        """The numpy dtype with the same layout as the C type ``type_id``."""
        t = self[self.resolve(type_id)]
        if t.kind == INT:
            encoding, size = t.extra[0], t.size_or_type
            if encoding & INT_BOOL:
                return np.dtype(np.bool_) if size == 1 else np.dtype(f"u{size}")
            if size == 16:
                return np.dtype("V16")
            return np.dtype(f"{'i' if encoding & INT_SIGNED else 'u'}{size}")
        if t.kind in (ENUM, ENUM64):
            return np.dtype(f"i{t.size_or_type}")
        if t.kind == PTR:
            return np.dtype("u8")
        if t.kind == FLOAT:
            return np.dtype(f"f{t.size_or_type}")
        if t.kind == ARRAY:
            elem, _, n = t.extra
            if self.is_char(elem):
                return np.dtype(f"S{n}")
            inner = self.dtype(elem)
            if inner.subdtype is not None:  # int m[2][3] -> one (2, 3) field
                base, shape = inner.subdtype
                return np.dtype((base, (n, *shape)))
            return np.dtype((inner, (n,)))
        if t.kind in (STRUCT, UNION):
            names, formats, offsets = self._fields(t.id, 0)
            return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                             "itemsize": t.size_or_type})
        raise ValueError(f"no numpy form for {self.describe(type_id)}")

    def _fields(self, type_id: int, base: int) -> tuple[list[str], list[np.dtype], list[int]]:
        names: list[str] = []
        formats: list[np.dtype] = []
        offsets: list[int] = []
        t = self[type_id]
        for m_name, m_type, bit_off, bitfield in t.extra:
            if bitfield or bit_off % 8:
                continue  # bit-fields have no numpy form
            offset = base + (0 if t.kind == UNION else bit_off // 8)
            inner = self[self.resolve(m_type)] if m_type else None
            if not m_name and inner is not None and inner.kind in (STRUCT, UNION):
                sub = self._fields(inner.id, offset)  # anonymous member: flatten, as C does
                for n, f, o in zip(*sub):
                    if n not in names:
                        names.append(n)
                        formats.append(f)
                        offsets.append(o)
                continue
            try:
                if self.size_of(m_type) == 0:
                    continue  # flexible array member
                fmt = self.dtype(m_type)
            except ValueError:
                continue
            if m_name and m_name not in names:
                names.append(m_name)
                formats.append(fmt)
                offsets.append(offset)
        return names, formats, offsets

    # -- globals ---------------------------------------------------------------------------
    def section_vars(self, section: str) -> dict[str, GlobalVar]:
        """The variables of a data section (``.rodata``, ``.data``, ``.bss``) by name."""
        sec_id = self.find(section, "datasec")
        if sec_id is None:
            return {}
        out = {}
        for var_id, offset, size in self[sec_id].extra:
            var = self[var_id]
            out[var.name] = GlobalVar(var.name, var.size_or_type, offset, size)
        return out

    def encode(self, type_id: int, value: object) -> bytes:
        """``value`` (a Python value or its text, as from ``-G NAME=VALUE``) as the C type's bytes.

        Integers accept ``0x``/``0o``/``0b`` text; ``char[N]`` accepts a string (zero-padded);
        enums accept an enumerator name.
        """
        t = self[self.resolve(type_id)]
        size = self.size_of(type_id)
        if t.kind == ARRAY and self.is_char(t.extra[0]):
            data = value.encode() if isinstance(value, str) else bytes(value)  # type: ignore[call-overload]
            if len(data) >= size:
                raise UsageError(f"{value!r} is too long for {self.describe(type_id)}",
                                 hint=f"at most {size - 1} characters")
            return data.ljust(size, b"\0")
        if t.kind in (ENUM, ENUM64) and isinstance(value, str):
            names = dict(t.extra)
            if value in names:
                value = names[value]
        if t.kind == FLOAT:
            return np.array(float(value), dtype=f"f{size}").tobytes()  # type: ignore[arg-type]
        if t.kind in (INT, ENUM, ENUM64, PTR):
            if isinstance(value, str):
                text = value.strip().lower()
                if text in ("true", "false"):
                    number = int(text == "true")
                else:
                    try:
                        number = int(text, 0)
                    except ValueError:
                        raise UsageError(f"{value!r} is not a number for "
                                         f"{self.describe(type_id)}") from None
            else:
                number = int(value)  # type: ignore[call-overload]
            signed = t.kind != PTR and (t.kind != INT or bool(t.extra[0] & INT_SIGNED))
            try:
                return number.to_bytes(size, _native(), signed=signed and number < 0)
            except OverflowError:
                raise UsageError(f"{value!r} does not fit in {self.describe(type_id)}") from None
        raise UsageError(f"cannot set a global of type {self.describe(type_id)} from Python")


def _native() -> Literal["little", "big"]:
    import sys

    return sys.byteorder
