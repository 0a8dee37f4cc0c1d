"""Whether live widgets can be seen here: the one test the views and progress bars share.

Detection, in order: the environment variable ``EBPF_NB_DISPLAY`` (``text`` or ``widgets``);
no IPython kernel (plain Python, terminal IPython) -> no; a widget frontend has opened
ipywidgets' control comm -> yes; else the request being executed allows stdin -> yes
(JupyterLab, Notebook and VS Code allow it; nbclient, nbconvert and papermill do not). Nothing
is imported until asked, and ipywidgets only inside an IPython kernel.
"""
from __future__ import annotations

import os

__all__ = ["has_widget_frontend"]


def has_widget_frontend() -> bool:
    """True when live widgets can be seen: see the module docstring for how it is decided."""
    choice = os.environ.get("EBPF_NB_DISPLAY", "").strip().lower()
    if choice in ("text", "widgets"):
        return choice == "widgets"
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return False
    try:
        import ipywidgets
    except ImportError:
        return False
    if getattr(ipywidgets.Widget, "_control_comm", None) is not None:
        return True
    return bool(getattr(kernel, "_allow_stdin", False))
