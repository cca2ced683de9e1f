"""What every patch here shares: the versions it was written against, checked at install, and a replaced class
attribute that keeps its original until the last server using it uninstalls."""
from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

log = logging.getLogger("copilot.compat")


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: '4.15.1' -> (4, 15, 1); '5.0rc1' -> (5, 0)."""
    found = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in found.group().split(".")) if found else ()


@dataclass(frozen=True)
class Window:
    """Releases `low` (included) to `high` (excluded) of one distribution."""

    package: str
    low: str
    high: str

    def holds(self, version: str) -> bool:
        """Whether `version` of the package lies in this window."""
        return release(self.low) <= release(version) < release(self.high)

    def __str__(self) -> str:
        return f"{self.package} >={self.low},<{self.high}"


def supported(patch: str, windows: tuple[Window, ...], stock: str,
              version_of: Callable[[str], str] = metadata.version) -> bool:
    """Whether every distribution a patch touches is installed inside its window; if one is not, a single log line
    names the patch, the version found and what runs instead (`stock`)."""
    for window in windows:
        try:
            version = version_of(window.package)
        except metadata.PackageNotFoundError:
            version = "(not installed)"
        if not window.holds(version):
            log.warning("copilot.compat: %s %s is outside %s, so %s is not installed: %s", window.package,
                        version, window, patch, stock)
            return False
    return True


class Replacement:
    """One attribute of a dependency's class replaced while at least one server uses it, as python-socketio's
    admin.py instruments Engine.IO: the original is kept, and put back when the last server uninstalls."""

    def __init__(self, owner: Callable[[], type], name: str, new: Callable[..., Any]) -> None:
        self.owner, self.name, self.new = owner, name, new  # owner: imported only when first installed
        self.original: Callable[..., Any] | None = None
        self.users: weakref.WeakSet[Any] = weakref.WeakSet()

    def install(self, user: Any) -> None:
        """Replace the attribute (once) for `user`, a server."""
        if self.original is None:
            cls = self.owner()
            self.original = getattr(cls, self.name)
            setattr(cls, self.name, self.new)
        self.users.add(user)

    def uninstall(self, user: Any) -> None:
        """Forget `user`; the last one out puts the original back."""
        self.users.discard(user)
        if self.original is not None and not self.users:
            setattr(self.owner(), self.name, self.original)
            self.original = None
