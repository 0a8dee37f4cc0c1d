"""The macros a cell is compiled with (``-D NAME`` or ``-D NAME=VALUE``), checked in one place
for both backends."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .errors import UsageError

Defines = Mapping[str, "str | None"] | Sequence[str]
_NAME = re.compile(r"[A-Za-z_]\w*")


def parse_defines(defines: Defines) -> dict[str, str | None]:
    """``{"N": "1"}`` or ``["N=1", "FLAG"]`` (as ``-D`` gives them) -> ``{"N": "1", "FLAG": None}``;
    a name that is not a C identifier is a :class:`UsageError`."""
    pairs = (defines.items() if isinstance(defines, Mapping) else
             [(name, value if sep else None)
              for name, sep, value in (item.partition("=") for item in defines)])
    out: dict[str, str | None] = {}
    for name, value in pairs:
        if not isinstance(name, str) or not _NAME.fullmatch(name.strip()):
            raise UsageError(f"bad macro name {name!r} in -D", hint="write -D NAME or -D NAME=VALUE")
        out[name.strip()] = value
    return out


def define_flags(defines: Defines) -> list[str]:
    """The compiler flags for ``defines``: ``["-DN=1", "-DFLAG"]``."""
    return [f"-D{name}" if value is None else f"-D{name}={value}"
            for name, value in parse_defines(defines).items()]
