"""Tables of advice (``%bpf_doctor``'s) shown in full: wrapped, left-aligned, never cut with "…".

pandas shortens long cells to 50 characters and JupyterLab right-aligns them; a fix that
cannot be read is no fix. :class:`AdviceTable` is a DataFrame (filter it, compare it) whose
two displays keep every word.
"""
from __future__ import annotations

import html
import math
import textwrap

import pandas as pd

#: the widest a text column grows before its cells wrap (characters)
WRAP_AT = 60


class AdviceTable(pd.DataFrame):
    """A DataFrame shown with every word: cells wrapped at ``WRAP_AT`` characters, left-aligned.

    Selections and computations give plain DataFrames (only the whole table is advice).
    """

    @property
    def _constructor(self):
        return pd.DataFrame

    def __repr__(self) -> str:
        return wrapped_text(self)

    def _repr_html_(self) -> str:
        return wrapped_html(self)


def wrapped_text(frame: pd.DataFrame, width: int = WRAP_AT) -> str:
    """The table as plain text: header, rule, rows; long cells wrap onto more lines."""
    columns = [str(c) for c in frame.columns]
    rows = [[textwrap.wrap(_cell(v), width) or [""] for v in row]
            for row in frame.itertuples(index=False)]
    widths = [max([len(name)] + [len(piece) for row in rows for piece in row[i]])
              for i, name in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    for row in rows:
        for k in range(max(len(cell) for cell in row)):
            out.append(line([cell[k] if k < len(cell) else "" for cell in row]))
    return "\n".join(out)


def wrapped_html(frame: pd.DataFrame, width: int = WRAP_AT) -> str:
    """The table as HTML with inline styles (they beat JupyterLab's right-aligned cells)."""
    cell = ("text-align:left; vertical-align:top; white-space:normal; "
            f"overflow-wrap:break-word; max-width:{width}ch; padding:0.3em 0.8em")
    head = "".join(f'<th style="{cell}">{html.escape(str(c))}</th>' for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f'<td style="{cell}">{html.escape(_cell(v))}</td>' for v in row) + "</tr>"
        for row in frame.itertuples(index=False))
    return (f'<table class="ebpf-nb-advice" style="table-layout:auto">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _cell(value: object) -> str:
    """A cell's text; a missing value is an empty cell, not "nan" or "None"."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
