"""Reading what a live view shows (tests/unit/test_widgets.py and its kernel twin): the cells of
its HTML table, the threads views run in, the PNG signature of a drawn plot."""
from __future__ import annotations

import threading
from html.parser import HTMLParser

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def read_table(markup: str) -> dict[str, list[str]]:
    """The columns of the HTML table a view shows, as text, by header."""
    parser = _Cells()
    parser.feed(markup)
    header, *rows = parser.rows
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


def view_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ebpf_nb-")]
