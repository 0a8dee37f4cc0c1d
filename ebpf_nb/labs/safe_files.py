"""Files of a class folder, read and written without following a student's symbolic links.

:func:`find_submissions` walks the folder without entering linked folders and reports links as
refused; :func:`read_regular_file` opens with ``O_NOFOLLOW`` and reads only regular files;
:func:`write_csv` writes through ``mkstemp`` + ``rename`` (a symlink at the target is replaced,
never written through) with every text cell made safe for spreadsheets.
"""
from __future__ import annotations

import csv
import io
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")  # OWASP's CSV injection list


def spreadsheet_safe(value: object) -> object:
    """``value``, with a ``'`` in front when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str):
        value = value.replace("\x00", "")
        if value.startswith(FORMULA_STARTS):
            return "'" + value
    return value


def find_submissions(directory: Path) -> Iterator[tuple[Path, str]]:
    """Every ``*.ipynb`` under ``directory`` as (path, "" or why it is refused), sorted.

    Symbolic links (to files or folders) are refused, never followed; checkpoint copies are
    skipped."""
    found: list[tuple[Path, str]] = []
    for top, folders, files in os.walk(directory, followlinks=False):
        here = Path(top)
        for folder in list(folders):
            if folder == ".ipynb_checkpoints":
                folders.remove(folder)
            elif (here / folder).is_symlink():
                found.append((here / folder, "is a symbolic link to a folder: not graded"))
        for name in files:
            path = here / name
            if not name.endswith(".ipynb"):
                continue
            refused = "is a symbolic link: not graded" if path.is_symlink() else ""
            found.append((path, refused))
    return iter(sorted(found))


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link, a FIFO, a device)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        data = handle.read(limit + 1)
    return data


def write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, object]]) -> None:
    """Write ``rows`` as CSV to ``path`` atomically, never through a symbolic link."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: spreadsheet_safe(row.get(key, "")) for key in columns})
    folder = path.parent
    if folder.is_symlink() or not folder.is_dir():
        raise OSError(f"{folder} is not a folder (or is a symbolic link): not writing {path.name}")
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
