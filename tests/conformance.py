"""A runner for AWS's documented behaviours (`../shared/aws-conformance/`, format in its README).

Each case is a list of steps: boto3 calls with the error or value AWS documents, waits measured in
AWS's seconds, reads that must match. The runner knows nothing of the sandbox: it takes a function that
makes boto3 clients and the time factor of the AWS it talks to (1 for a real account), so the same
cases run against the sandbox in the suite and, when asked, against a real account.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.exceptions
import jmespath
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The contract lives beside the project (`../shared/aws-conformance`); a verbatim copy is kept under
# tests/aws-conformance so that a checkout alone runs it (test_conformance checks the copy is exact).
SHARED = ROOT.parent / "shared" / "aws-conformance"
VENDORED = ROOT / "tests" / "aws-conformance"
POLL_S = 0.2
SLACK_S = 10.0

Clients = Callable[[str], Any]


@dataclass
class Case:
    id: str
    source: str
    quote: str
    steps: list[dict[str, Any]]
    cleanup: list[dict[str, Any]] = field(default_factory=list)
    file: str = ""


class StepFailed(AssertionError):
    """A step did not get what AWS documents."""


def corpus_dir() -> Path:
    return SHARED if SHARED.is_dir() else VENDORED


def load_cases(directory: Path | None = None) -> list[Case]:
    """Every case of the corpus, in file order."""
    cases = []
    for path in sorted((directory or corpus_dir()).glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text()) or []:
            cases.append(Case(raw["id"], raw["source"], raw["quote"], raw["steps"], raw.get("cleanup") or [],
                              path.name))
    return cases


def new_prefix() -> str:
    """A letter, 7 hex digits and '-': valid in table, group and bucket names."""
    return "c" + secrets.token_hex(4)[:7] + "-"


_NAME = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(value: Any, saved: dict[str, Any]) -> Any:
    """`{name}` -> a saved value (typed when the string is exactly `{name}`); `$seq` -> a list."""
    if isinstance(value, str):
        whole = _NAME.fullmatch(value)
        if whole and whole.group(1) in saved:
            return saved[whole.group(1)]
        return _NAME.sub(lambda m: str(saved[m.group(1)]) if m.group(1) in saved else m.group(0), value)
    if isinstance(value, list):
        return [substitute(v, saved) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$seq"}:
            seq = value["$seq"]
            return [seq["format"].replace("{i}", str(i)) for i in range(int(seq["count"]))]
        return {k: substitute(v, saved) for k, v in value.items()}
    return value


def _codes(expected: Any) -> list[str] | None:
    if expected is None:
        return None
    return ["*"] if expected == "*" else [expected] if isinstance(expected, str) else list(expected)


class Runner:
    """Runs cases against one AWS: `clients(service)` gives a boto3 client, `factor` scales AWS's time.

    Two step kinds beyond the shared format, for the project's own cases (tests/sandbox-rules/README.md):
    `anonymous` is a `call` made without credentials (`anonymous_clients(service)`: an unsigned client), and `edge`
    is a viewer's GET of a distribution's domain (`edge_get(domain, path, https)` -> (status, headers, body))."""

    def __init__(self, clients: Clients, factor: float, anonymous_clients: Clients | None = None,
                 edge_get: Callable[[str, str, bool], tuple[int, dict[str, str], bytes]] | None = None):
        self.clients = clients
        self.factor = factor
        self.anonymous_clients = anonymous_clients
        self.edge_get = edge_get
        self._made: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = self.clients(service)
        return self._made[service]

    def call(self, name: str, args: dict[str, Any]) -> Any:
        service, method = name.split(".", 1)
        return getattr(self.client(service), method)(**args)

    def run(self, case: Case, cleanup: bool = True) -> None:
        """Every step in order; raises StepFailed naming the step that did not get AWS's answer."""
        saved: dict[str, Any] = {"prefix": new_prefix()}
        try:
            for number, step in enumerate(case.steps, 1):
                try:
                    self._step(step, saved)
                except StepFailed as exc:
                    raise StepFailed(f"{case.id}, step {number} ({_describe(step)}): {exc}") from None
        finally:
            if cleanup:
                for step in case.cleanup:
                    with contextlib.suppress(Exception):  # cleanup errors are ignored (the format says so)
                        self.call(step["call"], substitute(step.get("args") or {}, saved))

    def _step(self, step: dict[str, Any], saved: dict[str, Any]) -> None:
        if "anonymous" in step:
            self._anonymous(substitute(step["anonymous"], saved))
        elif "edge" in step:
            self._edge(substitute(step["edge"], saved))
        elif "wait" in step:
            self._wait(substitute(step["wait"], saved))
        elif "expect" in step:
            self._once(substitute(step["expect"], saved), saved)
        else:
            self._once(substitute(step, saved), saved)

    def call_as(self, step: dict[str, Any], client: Any) -> tuple[bool, Any]:
        """Make the step's call with `client`; (True, answer) when it succeeded as the step expects, (False, None)
        when it failed with the step's `error`; StepFailed otherwise."""
        codes = _codes(step.get("error"))
        try:
            answer = getattr(client, step["call"].split(".", 1)[1])(**(step.get("args") or {}))
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if codes and ("*" in codes or code in codes):
                return False, None
            raise StepFailed(f"failed with {code}: {exc}") from None
        if codes:
            raise StepFailed(f"succeeded; AWS answers {' or '.join(codes)}")
        return True, answer

    def _once(self, step: dict[str, Any], saved: dict[str, Any]) -> None:
        succeeded, answer = self.call_as(step, self.client(step["call"].split(".", 1)[0]))
        if not succeeded:
            return
        if "path" in step:
            found = jmespath.search(step["path"], answer)
            if found != step["equals"]:
                raise StepFailed(f"{step['path']} is {found!r}; AWS gives {step['equals']!r}")
        for name, path in (step.get("save") or {}).items():
            saved[name] = jmespath.search(path, answer)

    def _anonymous(self, step: dict[str, Any]) -> None:
        """A call without credentials: the step's `error`, or success."""
        assert self.anonymous_clients is not None, "this runner makes no anonymous calls"
        self.call_as(step, self.anonymous_clients(step["call"].split(".", 1)[0]))

    def _edge(self, step: dict[str, Any]) -> None:
        """A viewer's GET through the edge: `status`, `headers` (each a prefix of the value), `body`."""
        assert self.edge_get is not None, "this runner reaches no edge"
        status, headers, body = self.edge_get(step["domain"], step.get("path", "/"), bool(step.get("https", True)))
        if "status" in step and status != step["status"]:
            raise StepFailed(f"GET {step.get('path', '/')} answered {status}; AWS answers {step['status']}")
        for name, prefix in (step.get("headers") or {}).items():
            if not str(headers.get(name.lower(), "")).startswith(str(prefix)):
                raise StepFailed(f"{name}: {headers.get(name.lower())!r}; AWS gives {prefix!r}...")
        if "body" in step and body.decode(errors="replace") != step["body"]:
            raise StepFailed(f"body {body[:60]!r}; AWS serves {step['body']!r}")

    def _wait(self, wait: dict[str, Any]) -> None:
        budget = float(wait["aws_seconds"]) * self.factor + SLACK_S
        deadline = time.monotonic() + budget
        last = "no answer yet"
        while True:
            codes = _codes(wait.get("error"))
            try:
                answer = self.call(wait["call"], wait.get("args") or {})
                found = jmespath.search(wait["path"], answer) if "path" in wait else None
                if not codes and found == wait["equals"]:
                    return
                last = f"{wait.get('path')} is {found!r}"
            except botocore.exceptions.ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if codes and code in codes:
                    return
                last = f"failed with {code}"
            if time.monotonic() > deadline:
                want = f"error {wait['error']}" if codes else f"{wait['path']} == {wait['equals']!r}"
                raise StepFailed(f"waited {budget:.1f}s ({wait['aws_seconds']} s of AWS's time x {self.factor}) "
                                 f"for {want}; last: {last}")
            time.sleep(POLL_S)


def _describe(step: dict[str, Any]) -> str:
    if "edge" in step:
        return f"edge GET {step['edge'].get('path', '/')}"
    for key in ("wait", "expect", "anonymous"):
        if key in step:
            return f"{key} {step[key]['call']}"
    return str(step.get("call"))


def known_exceptions(doc: Path) -> dict[str, str]:
    """Case ids that docs/sandbox.md lists as not served (id -> its row), from its 'Cases not served' table."""
    text = doc.read_text()
    section = text.split("## Cases not served", 1)
    if len(section) < 2:
        return {}
    rows = {}
    for line in section[1].split("\n## ", 1)[0].splitlines():
        match = re.match(r"\|\s*`([a-z0-9.-]+)`\s*\|", line)
        if match:
            rows[match.group(1)] = line
    return rows
