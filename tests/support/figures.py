"""Print the Guarantees table from the figure rows the reliability tests recorded.

``python -m tests.support.figures FILE`` reads the JSON lines written through the ``figure`` fixture
(``$SOCIALPULSE_FIGURES``) and prints one Markdown table, in the order the tests ran.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| fault | figure | value | size | test |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        value = f"{r['value']} {r['unit']}".rstrip()
        size = "full" if r.get("full") else "reduced"
        lines.append(f"| {r['fault']} | {r['figure']} | {value} | {size} | `{r['test']}` |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.support.figures FIGURES.jsonl", file=sys.stderr)
        return 2
    path = Path(argv[0])
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
