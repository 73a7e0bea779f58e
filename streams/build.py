"""What this build is: the package version, the source revision and the versions of the runtime
it runs on, for ``socialpulse_build_info`` (Prometheus's ``*_build_info`` convention).

The revision is read from the git metadata of the source tree when the package runs from a
checkout (the files, not a ``git`` process); an installed copy without one says ``unknown``.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from streams import __version__

SOURCE_ROOT = Path(__file__).resolve().parents[1]
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """The labels of ``socialpulse_build_info``."""

    version: str
    revision: str
    faust_version: str
    python_version: str

    def labels(self) -> dict[str, str]:
        return {"version": self.version, "revision": self.revision,
                "faust_version": self.faust_version, "python_version": self.python_version}


def git_revision(root: Path = SOURCE_ROOT) -> str:
    """The commit ``root``'s checkout is at (HEAD, a branch ref, or a packed ref), else
    ``unknown``."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree or submodule: "gitdir: <path>"
            git = (root / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        loose = git / ref
        if loose.is_file():
            return loose.read_text().strip()
        common = git / "commondir"
        base = (git / common.read_text().strip()).resolve() if common.is_file() else git
        if (base / ref).is_file():
            return (base / ref).read_text().strip()
        for line in (base / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except (OSError, IndexError):
        pass
    return UNKNOWN


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def build_info() -> BuildInfo:
    return BuildInfo(__version__, git_revision(), _dist_version("faust-streaming"),
                     platform.python_version())
