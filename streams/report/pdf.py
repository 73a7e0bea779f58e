"""The report's HTML printed to PDF by headless Chromium.

Chromium runs with a throwaway profile (``--user-data-dir`` and the XDG config and cache
directories in a temporary directory, removed afterwards), so a run leaves nothing behind and two
runs never share state. It writes the PDF next to the target under a temporary name, renamed into
place only once complete: a failed run never leaves a half-written or an older PDF looking like
the new one. Chromium logs to stderr even when all goes well; that is read only when it fails.

Nothing here reads the environment for settings: the binary and the sandbox choice are arguments
(``streams.settings`` is the one place that reads ``SOCIALPULSE_*``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from streams.report.model import ReportError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
SETUP_HINT = "scripts/setup installs Debian's chromium"
_MAX_MESSAGE = 300
# "[1234:1234:1201/060000.123456:ERROR:file.cc(42)] message": Chromium's log line prefix.
_LOG_PREFIX = re.compile(r"^\[[^\]]*?:(?P<level>[A-Z]+):(?P<source>[^\]]*)\]\s*")
# Errors Chromium logs on every run in a container, successful or not (no D-Bus there).
_NOISE_SOURCES = ("dbus/", "bus.cc", "object_proxy.cc")


def chromium_binary(binary: str | None = None) -> str:
    """The Chromium executable to run: ``binary`` (a path, or a name looked up on PATH) when
    given, else the first of ``CHROMIUM_NAMES`` found on PATH."""
    names = (binary,) if binary else CHROMIUM_NAMES
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    if binary:
        raise ReportError(f"Chromium not found at {binary!r}: {SETUP_HINT}")
    raise ReportError(f"Chromium not found on PATH (looked for {', '.join(CHROMIUM_NAMES)}): "
                      f"{SETUP_HINT}")


def html_to_pdf(
    html_path: Path,
    pdf_path: Path,
    *,
    binary: str | None = None,
    timeout_s: float = 120.0,
    sandbox: bool | None = None,
) -> None:
    """Print ``html_path`` to ``pdf_path`` (A4 landscape and margins come from the page's own
    ``@page`` rule). ``sandbox``: None keeps Chromium's sandbox except when running as root,
    where Chromium refuses to start with it; False turns it off (a container whose seccomp
    profile forbids the user namespaces the sandbox needs); True keeps it, even as root.
    Raises ``ReportError`` in one line
    when no PDF is made."""
    executable = chromium_binary(binary)
    if not html_path.is_file():
        raise ReportError(f"no HTML file to print at {html_path}")
    if not pdf_path.parent.is_dir():
        raise ReportError(f"cannot write the PDF: no directory {pdf_path.parent}")
    partial = pdf_path.with_name(f".{pdf_path.name}.partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="socialpulse-chromium-",
                                     ignore_cleanup_errors=True) as scratch:
        profile = Path(scratch)
        command = [
            executable,
            "--headless",
            "--disable-gpu",
            "--disable-dev-shm-usage",  # /dev/shm is 64 MB in a container
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--no-pdf-header-footer",
            f"--user-data-dir={profile / 'profile'}",
            f"--print-to-pdf={partial}",
        ]
        if sandbox is False or (sandbox is None and os.geteuid() == 0):
            command.append("--no-sandbox")
        command.append(html_path.resolve().as_uri())
        env = {
            **os.environ,
            "HOME": str(profile),  # fontconfig and crashpad write there; HOME may be read-only
            "XDG_CONFIG_HOME": str(profile / "config"),
            "XDG_CACHE_HOME": str(profile / "cache"),
        }
        log_path = profile / "chromium.log"
        try:
            returncode = _run(command, env, log_path, timeout_s)
            log = log_path.read_text(encoding="utf-8", errors="replace")
            if returncode != 0:
                raise ReportError(f"Chromium exited with code {returncode}: "
                                  f"{last_meaningful_line(log) or 'no message'}")
            if not partial.is_file() or partial.stat().st_size == 0:
                detail = last_meaningful_line(log)
                raise ReportError(f"Chromium wrote no PDF for {html_path}"
                                  + (f": {detail}" if detail else ""))
            with partial.open("rb") as written:
                if written.read(5) != b"%PDF-":
                    raise ReportError(f"Chromium wrote something else than a PDF for {html_path}")
            os.replace(partial, pdf_path)
        finally:
            partial.unlink(missing_ok=True)


def _run(command: list[str], env: dict[str, str], log_path: Path, timeout_s: float) -> int:
    """Run Chromium in a session of its own, output to ``log_path``; its exit code. On timeout
    the whole session (browser, renderer, GPU and crash handler processes) is killed. Output goes
    to a file, not a pipe, because a helper process that outlives the browser would hold a pipe
    open and block the read."""
    with log_path.open("wb") as log:
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
        except OSError as exc:
            raise ReportError(f"cannot start Chromium {command[0]}: {exc.strerror}") from exc
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ReportError(
                f"Chromium did not finish the PDF within {timeout_s:g} s"
            ) from None
        finally:
            _kill_session(process)


def _kill_session(process: subprocess.Popen[bytes]) -> None:
    """Kill what is left of the session Chromium leads (its own helpers only), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def last_meaningful_line(log: str) -> str:
    """The line of Chromium's output that best says why it failed: the last FATAL log message,
    else the last ERROR one (not the D-Bus noise of every run), else the last line that is no
    log message of a lower level, else the last line; without the log prefix, cut to a
    readable length."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    fatal: list[str] = []
    errors: list[str] = []
    others: list[str] = []
    for line in lines:
        prefix = _LOG_PREFIX.match(line)
        message = line[prefix.end():] if prefix else line
        if not message:
            continue
        if prefix is None:
            others.append(message)
        elif prefix.group("level") == "FATAL":
            fatal.append(message)
        elif prefix.group("level") == "ERROR" and not any(
            noise in prefix.group("source") for noise in _NOISE_SOURCES
        ):
            errors.append(message)
    chosen = (fatal or errors or others or lines or [""])[-1]
    return chosen if len(chosen) <= _MAX_MESSAGE else chosen[: _MAX_MESSAGE - 3] + "..."
