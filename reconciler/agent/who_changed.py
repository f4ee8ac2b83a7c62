"""Who changed a resource, when a cycle finds it drifted: CloudTrail's event history (LookupEvents), with or
without `--watch-events`.

One lookup per AWS service with drifted resources (by EventSource, since that service's last look, a few pages
at most), matched to the managed resources exactly as change events are (watch.EventIndex: the request's
parameters naming the resource), the agent's own calls left out (its user agent). AWS allows two lookups per
second per account and Region; the agent's rate limit for CloudTrail stays under that. A lookup that fails
(no permission, throttled) is logged once and the drift is reported without a name: never a failed cycle.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.agent.watch import EVENT_TYPE, ChangeEvent, EventIndex, read_event
from reconciler.aws.failures import describe_error

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.engine.changes import Change

log = structlog.get_logger()

FIRST_LOOK_S = 24 * 3600  # how far back the first look goes
OVERLAP_S = 300           # each look goes back this far before the last one (events recorded late)
PAGES = 4                 # at most 4 x 50 events per service and look


def touch_json(touch: ChangeEvent) -> dict[str, Any]:
    """Who changed it, as /status, the page and the events show it."""
    return {"principal": touch.who, "call": touch.action,
            **({"time": touch.time.strftime("%Y-%m-%dT%H:%M:%SZ")} if touch.time else {})}


class WhoChanged:
    """Looks up who last changed drifted resources (one agent's memory of where it last looked)."""

    def __init__(self, aws: Aws):
        self.aws = aws
        self._looked: dict[str, float] = {}  # event source -> epoch of its last look
        self._failed = False

    def who(self, changes: Iterable[Change]) -> dict[str, ChangeEvent]:
        """ref -> the latest change of someone else's found for it, for these (drifted) changes."""
        changes = list(changes)
        index = EventIndex.from_plan_changes(changes)
        found: dict[str, ChangeEvent] = {}
        for source in sorted(index.sources()):
            for record in self._records(source):
                _, touches = read_event(json.dumps({"detail-type": EVENT_TYPE, "detail": record}), index)
                for touch in touches:
                    latest = found.get(touch.ref)
                    if latest is None or (touch.time and latest.time and touch.time > latest.time):
                        found[touch.ref] = touch
        return found

    def _records(self, source: str) -> list[dict[str, Any]]:
        now = time.time()
        since = self._looked.get(source, now - FIRST_LOOK_S) - OVERLAP_S
        args: dict[str, Any] = {"LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": source}],
                                "StartTime": datetime.fromtimestamp(since, UTC), "MaxResults": 50}
        records: list[dict[str, Any]] = []
        try:
            client = self.aws.client("cloudtrail")
            for _ in range(PAGES):
                answer = client.lookup_events(**args)
                records += [json.loads(e["CloudTrailEvent"]) for e in answer.get("Events", [])
                            if e.get("CloudTrailEvent")]
                if not answer.get("NextToken"):
                    break
                args["NextToken"] = answer["NextToken"]
        except Exception as exc:  # never fail a cycle for a name
            if not self._failed:
                log.warning("who.lookup_failed", source=source, error=describe_error(exc),
                            effect="drift is reported without who changed it")
            self._failed = True
            return records
        self._failed = False
        self._looked[source] = now
        return records
