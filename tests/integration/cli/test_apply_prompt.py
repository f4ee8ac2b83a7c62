"""apply on a terminal asks first; only 'yes' proceeds."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import time

from tests.conftest import reconciler_command

SPEC = "apiVersion: reconciler/v1\nkind: Table\nmetadata: {name: Asked}\nspec:\n  partitionKey: {name: Id, type: S}\n"


def run_on_terminal(args: list[str], env: dict[str, str], answer: str) -> tuple[int, str]:
    main, child = pty.openpty()
    proc = subprocess.Popen([*reconciler_command(), *args], stdin=child, stdout=child, stderr=child,
                            env=env, close_fds=True)
    os.close(child)
    output, deadline, answered = b"", time.monotonic() + 60, False
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"Only 'yes' will be accepted" in output:
            os.write(main, answer.encode() + b"\n")
            answered = True
    os.close(main)
    return proc.wait(timeout=30), output.decode(errors="replace")


def test_apply_asks_and_does_nothing_unless_yes(aws, tmp_path):
    (tmp_path / "t.yaml").write_text(SPEC)
    code, out = run_on_terminal(["apply", str(tmp_path)], aws.env, "no")
    assert code == 1 and "Apply cancelled." in out
    assert aws.writes() == []
    code, out = run_on_terminal(["apply", str(tmp_path)], aws.env, "yes")
    # on a terminal it ends on the report in words: the table's line, the counts, what next
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out).replace("\r", "")
    assert code == 0 and re.search(r"\n[+*] Table/Asked: created", plain), plain
    counts = re.search(r"\n(\d) created, 0 updated, (\d) in progress with AWS, 0 failed, 0 unchanged\.", plain)
    assert counts and int(counts[1]) + int(counts[2]) == 1, plain
    assert "\x1b[" in out  # colour, because this is a terminal
    assert "Asked" in aws.client("dynamodb").list_tables()["TableNames"]


def test_apply_without_a_terminal_needs_auto_approve(aws, cli, specs):
    root = specs("t.yaml", SPEC)
    result = cli("apply", str(root), input="yes\n")
    assert result.code == 1 and "--auto-approve" in result.err
    assert "\x1b[" not in result.out  # no colour when not a terminal
    assert aws.writes() == []
