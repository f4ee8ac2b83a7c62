"""What a benchmark prints, kept: each benchmark says its figures through a Record, which prints them and writes
them, with the machine, the date, the versions and the commit, to bench/results/<name>.json. docs/performance.md
shows those files' figures (python bench/report.py renders them; tests/unit/test_docs.py fails on a figure the
committed results do not hold)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


class Record:
    """One benchmark run: the lines it prints (its report) and its figures by name."""

    def __init__(self, name: str):
        self.name = name
        self.lines: list[str] = []
        self.figures: dict[str, Any] = {}

    def say(self, text: str = "") -> None:
        """Print a line of the report (and keep it)."""
        print(text, flush=True)
        self.lines.append(text)

    def save(self) -> Path:
        """Write bench/results/<name>.json."""
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        document = {
            "benchmark": self.name,
            "command": " ".join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
            "date": dt.date.today().isoformat(),
            "commit": _commit(),
            "machine": {"cpus": os.cpu_count(), "system": platform.platform(), "python": platform.python_version()},
            "versions": {name: _version(name) for name in ("reconciler", "boto3", "botocore", "moto")},
            "figures": self.figures,
            "output": "\n".join(self.lines).strip("\n"),
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\n(written to {path.relative_to(ROOT)})", file=sys.stderr)
        return path


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _commit() -> str | None:
    """The commit measured (`+` when the work tree had changes)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "reconciler"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")
