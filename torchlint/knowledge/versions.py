"""Release numbers and the versions a file is linted for (its target)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


@total_ordering
@dataclass(frozen=True)
class Version:
    """``2.4`` or ``2.13.0``; a missing part counts as 0 (``2.4`` == ``2.4.0``). Local tags are dropped."""

    major: int
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> "Version | None":
        m = _VERSION.match(str(text))
        if m is None:
            return None
        return cls(int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0))

    def _key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __lt__(self, other: "Version") -> bool:
        return self._key() < other._key()

    @property
    def release(self) -> "Version":
        """The minor release (``2.13.1`` -> ``2.13``), the unit deprecations are stated in."""
        return Version(self.major, self.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}" + (f".{self.patch}" if self.patch else "")


# torchvision releases go with one torch release each: torchvision 0.(N+15) needs torch 2.N.
def torchvision_for_torch(torch: Version) -> Version | None:
    if torch.major != 2:
        return None
    return Version(0, torch.minor + 15)


def torch_for_torchvision(vision: Version) -> Version | None:
    if vision.major != 0 or vision.minor < 15:
        return None
    return Version(2, vision.minor - 15)


@dataclass(frozen=True)
class Target:
    """The releases a file is linted for, and where they came from.

    ``source`` is one of ``"config"`` (``[tool.torchlint] torch-version``),
    ``"dependencies"`` (the lowest release the project's declared dependencies
    admit), ``"newest"`` (nothing declared: the newest release torchlint knows),
    or ``"option"`` (given by the caller, as the tests do). ``where`` names the
    file it was read from, when there is one.
    """

    torch: Version
    torchvision: Version
    source: str = "newest"
    where: str | None = None

    def describe(self) -> str:
        origin = {"config": "from [tool.torchlint]", "dependencies": "from the declared dependencies",
                  "newest": "the newest known", "option": "given"}.get(self.source, self.source)
        return f"torch {self.torch}, torchvision {self.torchvision} ({origin}{f' in {self.where}' if self.where else ''})"
