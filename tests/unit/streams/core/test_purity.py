"""The layers import the right way: ``streams.core`` is pure, and no tool is imported by the
worker.

``streams.core`` may not import faust, aiokafka, aiohttp, prometheus_client or rocksdict,
directly or through anything it imports; it may not import ``streams.worker``,
``streams.export``, ``streams.store``, ``streams.tools`` or ``streams.report`` either (its dedup
index takes a page store as an argument). ``streams.worker``, ``streams.export`` and ``agents``
never import ``streams.tools`` or ``streams.report`` (tools drive the worker, never the reverse),
and ``streams.report``, which reads Prometheus only, imports neither the worker nor Kafka.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
STREAMS = ROOT / "streams"
RUNTIME = ("faust", "aiokafka", "aiohttp", "prometheus_client", "rocksdict")


def _modules(package: Path) -> list[str]:
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for p in package.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names (absolute imports only)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_importing_the_core_loads_no_runtime_library() -> None:
    """Transitively: a fresh interpreter imports every core module, then looks at sys.modules."""
    core = _modules(STREAMS / "core")
    assert len(core) >= 10, core
    code = (f"import sys\nfor m in {core!r}: __import__(m)\n"
            f"print(sorted({{n.split('.')[0] for n in sys.modules}} & {set(RUNTIME)!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert out == "[]", f"streams.core loads {out}"


@pytest.mark.parametrize("path", sorted((STREAMS / "core").rglob("*.py")), ids=lambda p: p.name)
def test_a_core_module_imports_nothing_outside_the_core(path: Path) -> None:
    banned = (*RUNTIME, "streams.worker", "streams.export", "streams.tools", "streams.store",
              "streams.report", "agents")
    bad = sorted(m for m in _imports(path) if m.split(".")[0] in RUNTIME
                 or any(m == b or m.startswith(b + ".") for b in banned))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize(
    "path",
    sorted([*(STREAMS / "worker").rglob("*.py"), *(STREAMS / "export").rglob("*.py"),
            *(ROOT / "agents").rglob("*.py")]),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_the_runtime_never_imports_a_tool(path: Path) -> None:
    bad = sorted(m for m in _imports(path) for tool in ("streams.tools", "streams.report")
                 if m == tool or m.startswith(tool + "."))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", sorted((STREAMS / "report").rglob("*.py")),
                         ids=lambda p: p.name)
def test_the_report_reads_prometheus_only(path: Path) -> None:
    banned = (*RUNTIME, "streams.worker", "streams.export", "streams.store", "agents")
    bad = sorted(m for m in _imports(path)
                 if any(m == b or m.startswith(b + ".") for b in banned))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_checks_see_a_forbidden_import(tmp_path: Path) -> None:
    """The AST reader finds both import forms (so the tests above can fail)."""
    probe = tmp_path / "probe.py"
    probe.write_text("import faust\nfrom prometheus_client import Counter\n"
                     "from streams.tools import cli\n")
    assert {"faust", "prometheus_client", "streams.tools.cli"} <= _imports(probe)
