"""The docs say what the code does: the sandbox's time table lists every duration the sandbox uses."""

from __future__ import annotations

from reconciler.sandbox import DURATIONS
from tests.conftest import ROOT


def test_sandbox_time_table_matches_the_durations_in_code():
    text = (ROOT / "docs" / "sandbox.md").read_text()
    for name, duration in DURATIONS.items():
        row = f"| `{name}` | {duration.what} | {duration.seconds:g} s | {duration.seconds * 0.01:g} s |"
        assert row in text, f"docs/sandbox.md lacks or misstates {name}: {row}"
