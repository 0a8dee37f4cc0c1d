"""What every reader of a kernel object shares: ``with`` closes it, and so does the collector."""
from __future__ import annotations

import abc
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing.Self is 3.11+; the package supports 3.10
    from typing_extensions import Self


class Closing(abc.ABC):
    """A reader holding fds or mappings: closed at the end of a ``with`` block, by
    :meth:`close` (which must be safe to call twice and on a half-built reader), or at the
    latest when it is garbage-collected."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything the reader holds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # half-built or interpreter shutting down
            self.close()
