"""``socialpulse_build_info``: the revision read from a checkout's files, whatever its layout."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from streams.build import SOURCE_ROOT, UNKNOWN, build_info, git_revision

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_a_loose_ref(tmp_path: Path) -> None:
    (tmp_path / ".git" / "refs" / "heads").mkdir(parents=True)
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "refs" / "heads" / "main").write_text(SHA + "\n")
    assert git_revision(tmp_path) == SHA


def test_a_packed_ref_and_a_detached_head(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "packed-refs").write_text(
        f"# pack-refs with: peeled\n{'f' * 40} refs/heads/other\n{SHA} refs/heads/main\n")
    assert git_revision(tmp_path) == SHA
    (tmp_path / ".git" / "HEAD").write_text(SHA + "\n")
    assert git_revision(tmp_path) == SHA


def test_no_checkout_is_unknown(tmp_path: Path) -> None:
    assert git_revision(tmp_path) == UNKNOWN


def test_this_checkout_agrees_with_git() -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=SOURCE_ROOT, capture_output=True,
                          text=True, check=False)
    if head.returncode == 0:
        assert git_revision() == head.stdout.strip()
    info = build_info()
    assert info.python_version == platform.python_version()
    assert info.faust_version != UNKNOWN
