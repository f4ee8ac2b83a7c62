"""Render docs/performance.md's figures from bench/results/*.json (what the benchmarks wrote, bench/record.py).

Each `<!-- bench:NAME -->` ... `<!-- /bench -->` section of the page is replaced by the command, date, commit
and machine of bench/results/NAME.json and its report, verbatim. `python bench/report.py` rewrites the page;
`--check` exits 1 when the page differs from what the results give (tests/unit/test_docs.py runs the same)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "performance.md"
RESULTS = ROOT / "bench" / "results"
SECTION = re.compile(r"<!-- bench:(\w+) -->\n.*?<!-- /bench -->", re.DOTALL)


def results() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


def section(result: dict) -> str:
    machine, versions = result["machine"], result["versions"]
    said = (f"`{result['command']}`, {result['date']}, commit {result['commit']}, {machine['cpus']} CPUs, "
            f"Python {machine['python']}, moto {versions['moto']}:")
    return f"<!-- bench:{result['benchmark']} -->\n{said}\n\n```\n{result['output']}\n```\n<!-- /bench -->"


def render(page: str, found: dict[str, dict]) -> str:
    """The page with every bench section filled from `found` (a section without results is an error)."""
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in found:
            raise SystemExit(f"docs/performance.md shows bench:{name}, but bench/results/{name}.json is missing: "
                             f"run python bench/{name}.py")
        return section(found[name])

    return SECTION.sub(fill, page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="Only say whether the page is up to date.")
    args = parser.parse_args()
    page = PAGE.read_text()
    rendered = render(page, results())
    if args.check:
        sys.exit(0 if rendered == page else "docs/performance.md is not what bench/results gives: "
                                              "run python bench/report.py")
    PAGE.write_text(rendered)
    print(f"docs/performance.md: {len(SECTION.findall(rendered))} sections from bench/results/")


if __name__ == "__main__":
    main()
