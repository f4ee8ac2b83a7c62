"""Change windows, on a fixed clock: deny wins; with any allow window, changes only inside one; appliesTo;
manual; time zones."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from reconciler.spec.windows import Window, _duration, blocked

FRIDAY_19_BERLIN = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # 19:00 in Berlin (CET)
MONDAY_10_UTC = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def window(name="freeze", type="deny", schedule="0 18 * * 5", duration="62h", zone="Europe/Berlin",
           applies=("*",), manual=False) -> Window:
    return Window(name, type, schedule, _duration(duration), ZoneInfo(zone), tuple(applies), manual)


def test_a_deny_window_blocks_while_open_and_says_until_when():
    freeze = window()
    block = blocked([freeze], "Table/Users", FRIDAY_19_BERLIN)
    assert block is not None and block.window == "freeze"
    assert block.until == datetime(2026, 11, 30, 8, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # Friday 18:00 + 62 h
    assert blocked([freeze], "Table/Users", MONDAY_10_UTC) is None  # closed on Monday at 11:00 Berlin


def test_applies_to_patterns_and_manual():
    freeze = window(applies=["Table/*"], manual=True)
    assert blocked([freeze], "Distribution/website", FRIDAY_19_BERLIN) is None
    assert blocked([freeze], "Table/Users", FRIDAY_19_BERLIN) is not None
    assert blocked([freeze], "Table/Users", FRIDAY_19_BERLIN, manual=True) is None  # a hand-run apply


def test_allow_windows_let_changes_through_only_while_open_and_deny_wins():
    office = window("office", "allow", "0 9 * * 1-5", "8h", "UTC")
    assert blocked([office], "Table/Users", MONDAY_10_UTC) is None
    closed = blocked([office], "Table/Users", datetime(2026, 11, 30, 18, 0, tzinfo=UTC))
    assert closed is not None and closed.until == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    deny = window("incident", "deny", "0 10 30 11 *", "1h", "UTC")
    assert blocked([office, deny], "Table/Users", MONDAY_10_UTC).window == "incident"  # deny wins
