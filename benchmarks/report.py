"""Benchmark results: one row per measurement, printed as a table and written as JSON."""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Result:
    """One benchmark: our figure, plain BCC's, the C + libbpf reference's (``c``, where there is
    one), the ratios, and the goal it is held to."""

    name: str
    unit: str                       # "rows/s", "ms", "MiB"...
    ours: float | None
    bcc: float | None
    higher_is_better: bool = True
    goal: str = ""
    compare: bool = True            # False: the two figures are shown side by side, no ratio
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    c: float | None = None          # the C + libbpf reference on the same run (rows/s)

    @property
    def ratio(self) -> float | None:
        if not self.compare or not self.ours or not self.bcc:
            return None
        return self.ours / self.bcc if self.higher_is_better else self.bcc / self.ours

    @property
    def ratio_c(self) -> float | None:
        """ebpf_nb as a fraction of the C reference (1.0 = as fast as C)."""
        if not self.ours or not self.c:
            return None
        return self.ours / self.c if self.higher_is_better else self.c / self.ours


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.2f}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.0f}k"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def table(results: list[Result]) -> str:
    head = ("benchmark", "unit", "ebpf_nb", "plain BCC", "C+libbpf", "vs BCC", "vs C", "goal",
            "met", "notes")
    rows = [head]
    for r in results:
        notes = ", ".join(f"{k}={_fmt(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v}"
                          for k, v in r.extra.items())
        rows.append((r.name, r.unit, _fmt(r.ours), _fmt(r.bcc), _fmt(r.c),
                     "-" if r.ratio is None else f"{r.ratio:.1f}x",
                     "-" if r.ratio_c is None else f"{r.ratio_c:.0%}", r.goal,
                     {True: "yes", False: "NO", None: "-"}[r.met], notes))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head) - 1)]
    lines = []
    for n, row in enumerate(rows):
        cells = [str(c).ljust(w) for c, w in zip(row, widths)] + [str(row[-1])]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  -----")
    return "\n".join(lines)


def write_json(results: list[Result], path: Path, *, quick: bool) -> None:
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "quick": quick,
        "cpus": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "results": [dict(asdict(r), ratio=r.ratio, ratio_c=r.ratio_c) for r in results],
    }
    path.write_text(json.dumps(doc, indent=2, default=float) + "\n")
