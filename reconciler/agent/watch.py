"""AWS's own change events: the resource a person touched is reconciled within seconds (`run --watch-events`).

CloudTrail delivers every management API call to EventBridge ("AWS API Call via CloudTrail") within
seconds, in the Region of the call (CloudFront's: us-east-1). The agent keeps, in each Region it needs,
an SQS queue of its own (named after its lease, encrypted with SQS-managed keys, a policy that lets only
its rule send) and an EventBridge rule on the default bus that forwards the write calls of the services
it manages. Both carry the agent's tags. A thread per queue long-polls it; an event whose request names
a managed resource (kind by kind: `Resource.event_keys` and `event_ids`) triggers a reconcile of that
resource alone, between the scheduled cycles (which stay as the safety net).

- Events of the agent's own writes are known by their user agent (botocore sends `reconciler/<version>`,
  CloudTrail records it) and dropped: no feedback loop.
- A burst is coalesced: after the first event the queue is asked again at once; empty, the window closes
  (a lone event is reconciled without delay); else it is read until it has been quiet for QUIET_S (or for
  at most MAX_COALESCE_S), and each resource named is reconciled once.
- Malformed and foreign events are counted and dropped; nothing in an event can stop the thread.
- Messages are deleted only after they were handled: a crash redelivers them (visibility timeout); a
  stopping agent finishes its poll (at most WAIT_S) and hands back what it received.
- Only the lease holder consumes the queue; the others leave it alone.

AWS sends these events only while a CloudTrail trail logs management events in the Region; the agent
checks (DescribeTrails, GetTrailStatus) and says so, and never creates a trail.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.aws.client import USER_AGENT
from reconciler.aws.failures import describe_failure
from reconciler.aws.inflight import background_calls
from reconciler.core.types import OWNER_TAG, OWNER_VALUE, ROLE_TAG
from reconciler.kinds.interfaces import EventMatched

if TYPE_CHECKING:
    from reconciler.agent.serve.metrics import Metrics
    from reconciler.aws.client import Aws
    from reconciler.engine.changes import Change, Plan

log = structlog.get_logger()

EVENT_TYPE = "AWS API Call via CloudTrail"
GLOBAL_SOURCES = {"cloudfront.amazonaws.com": "us-east-1"}  # where AWS delivers a global service's events
EVENTS_ROLE = "events"
WAIT_S = 5           # SQS long poll: short enough that a stopping agent finishes its poll within its grace time
QUIET_S = 0.2        # a burst under way has ended when the queue stayed empty this long
QUIET_POLL_S = 0.05  # ...asked this often meanwhile (immediate receives)
MAX_COALESCE_S = 10  # ...or after this long
VISIBILITY_S = 300   # a message being handled stays hidden this long; a crash redelivers it after


@dataclass(frozen=True)
class ChangeEvent:
    """One event that named a managed resource: who changed it, how, and when AWS says it happened."""

    ref: str
    who: str
    action: str
    time: datetime | None

    def describe(self) -> str:
        when = self.time.strftime("%Y-%m-%dT%H:%M:%SZ") if self.time else "unknown time"
        return f"{self.who} ({self.action}, {when})"


@dataclass
class EventIndex:
    """Which managed resource an event names: (event source, request key, value) -> refs."""

    keys: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)

    @classmethod
    def from_plan(cls, plan: Plan) -> EventIndex:
        return cls.from_plan_changes(plan.changes)

    @classmethod
    def from_plan_changes(cls, changes: Iterable[Change]) -> EventIndex:
        index = cls()
        for change in changes:
            resource = change.resource
            if not isinstance(resource, EventMatched):
                continue
            for source, names in resource.event_keys.items():
                for key in names:
                    for value in resource.event_ids(change.live):
                        index.keys.setdefault((source, key, value), set()).add(resource.ref)
        return index

    def sources(self) -> set[str]:
        return {source for source, _, _ in self.keys}

    def match(self, source: str, params: dict[str, Any]) -> set[str]:
        found: set[str] = set()
        for key, value in params.items():
            if isinstance(value, str):
                for candidate in (value, _arn_name(value)) if value.startswith("arn:") else (value,):
                    found |= self.keys.get((source, key, candidate), set())
        return found


def _arn_name(arn: str) -> str:
    """An ARN's last part: `...:table/Users` -> `Users`, `...:replicationgroup:app-cache` -> `app-cache`
    (what the index knows of a resource created since the plan it was built from)."""
    return arn.split(":", 5)[-1].replace("/", ":").rsplit(":", 1)[-1]


def read_event(body: str, index: EventIndex) -> tuple[str, list[ChangeEvent]]:
    """("ok", touches), or (why it is dropped, []): malformed, foreign, own, read-only."""
    try:
        event = json.loads(body)
    except (ValueError, TypeError):
        return "malformed", []
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        return "malformed", []
    detail = event["detail"]
    source, name = detail.get("eventSource"), detail.get("eventName")
    if event.get("detail-type") != EVENT_TYPE or not isinstance(source, str) or not isinstance(name, str):
        return "malformed", []
    if detail.get("readOnly") is True:
        return "read-only", []
    if USER_AGENT.split("/", 1)[0] + "/" in str(detail.get("userAgent") or ""):
        return "own", []
    params = detail.get("requestParameters")
    refs = index.match(source, params) if isinstance(params, dict) else set()
    if not refs:
        return "foreign", []
    identity = detail.get("userIdentity") if isinstance(detail.get("userIdentity"), dict) else {}
    who = str(identity.get("arn") or identity.get("principalId") or identity.get("type") or "someone")
    when = _time(detail.get("eventTime") or event.get("time"))
    return "ok", [ChangeEvent(ref, who, f"{source.split('.')[0]}:{name}", when) for ref in sorted(refs)]


def source_of(body: str) -> str:
    """The AWS service an event came from (its CloudTrail eventSource's first label), for the metric."""
    try:
        source = json.loads(body)["detail"]["eventSource"]
        return str(source).split(".", 1)[0] if isinstance(source, str) else "unknown"
    except (ValueError, TypeError, KeyError):
        return "unknown"


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


# ---------------------------------------------------------------------------- the subscription


def rule_pattern(sources: Iterable[str]) -> dict[str, Any]:
    """The EventBridge pattern: CloudTrail's write calls of these services (`dynamodb.amazonaws.com`)."""
    sources = sorted(set(sources))
    return {"source": sorted({f"aws.{s.split('.', 1)[0]}" for s in sources}), "detail-type": [EVENT_TYPE],
            "detail": {"eventSource": sources}}


def regions_for(sources: Iterable[str], home: str) -> dict[str, list[str]]:
    """Region -> the event sources whose events AWS delivers there."""
    out: dict[str, list[str]] = {}
    for source in sources:
        out.setdefault(GLOBAL_SOURCES.get(source, home), []).append(source)
    return {region: sorted(found) for region, found in out.items()}


@dataclass
class Queue:
    region: str
    url: str
    arn: str
    rule_arn: str


class Subscription:
    """The agent's queue and rule in one Region, made to match what it needs (idempotent)."""

    def __init__(self, aws: Aws, name: str, region: str):
        self.aws, self.name, self.region = aws, name, region
        self.sqs = aws.client("sqs", region=region)
        self.events = aws.client("events", region=region)

    def ensure(self, sources: list[str]) -> Queue:
        tags = {OWNER_TAG: OWNER_VALUE, ROLE_TAG: EVENTS_ROLE}
        try:
            url = self.sqs.get_queue_url(QueueName=self.name)["QueueUrl"]
        except self.sqs.exceptions.QueueDoesNotExist:
            url = self.sqs.create_queue(QueueName=self.name, tags=tags, Attributes={
                "SqsManagedSseEnabled": "true", "VisibilityTimeout": str(VISIBILITY_S),
                "MessageRetentionPeriod": str(4 * 24 * 3600)})["QueueUrl"]
            log.info("events.queue_created", queue=self.name, region=self.region)
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule_arn = self.events.put_rule(
            Name=self.name, EventPattern=json.dumps(rule_pattern(sources)), State="ENABLED",
            Description="reconciler: AWS API calls on the resources the agent manages, to its queue",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["RuleArn"]
        self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"SqsManagedSseEnabled": "true", "Policy": json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "OnlyTheAgentsRule", "Effect": "Allow",
                           "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
                           "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]})})
        self.events.put_targets(Rule=self.name, Targets=[{"Id": "agent-queue", "Arn": queue_arn}])
        return Queue(self.region, url, queue_arn, rule_arn)


def trail_status(aws: Aws) -> dict[str, Any]:
    """Whether a CloudTrail trail logs management events in the agent's Region (no trail: no events)."""
    ct = aws.client("cloudtrail")
    for trail in ct.describe_trails(includeShadowTrails=True).get("trailList", []):
        if not (trail.get("IsMultiRegionTrail") or trail.get("HomeRegion") == aws.region):
            continue
        if ct.get_trail_status(Name=trail["TrailARN"]).get("IsLogging") and _logs_management_events(ct, trail):
            return {"state": "logging", "trail": trail["Name"]}
    return {"state": "none", "message": f"no CloudTrail trail logs management events in {aws.region}: AWS sends "
                                        "no change events there, and the scheduled cycles alone find drift"}


def _logs_management_events(ct: Any, trail: dict[str, Any]) -> bool:
    try:
        selectors = ct.get_event_selectors(TrailName=trail["TrailARN"])
    except Exception:
        return True  # a trail logs management events unless its selectors say otherwise
    if selectors.get("AdvancedEventSelectors"):
        return any(any(f.get("Field") == "eventCategory" and "Management" in (f.get("Equals") or [])
                       for f in s.get("FieldSelectors", [])) for s in selectors["AdvancedEventSelectors"])
    basic = selectors.get("EventSelectors") or [{}]
    return any(s.get("IncludeManagementEvents", True) and s.get("ReadWriteType", "All") in ("All", "WriteOnly")
               for s in basic)


# ---------------------------------------------------------------------------- the poller


class Poller:
    """Long-polls one queue in its own thread; hands each burst's touched resources to `handle`."""

    def __init__(self, aws: Aws, queue: Queue, index: Callable[[], EventIndex],
                 handle: Callable[[list[ChangeEvent]], None], may_consume: Callable[[], bool], metrics: Metrics,
                 stop: threading.Event, wait_s: int = WAIT_S):
        self.aws, self.queue, self.index, self.handle = aws, queue, index, handle
        self.may_consume, self.metrics, self.stop, self.wait_s = may_consume, metrics, stop, wait_s
        self.sqs = aws.client("sqs", region=queue.region)
        self.received = 0
        self.last_event: str | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"events-{queue.region}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            if not self.may_consume():
                self.stop.wait(5)  # a follower leaves the events to the lease holder
                continue
            try:
                self.poll_once()
                failures, self.error = 0, None
            except Exception as exc:  # never let one bad poll end the watching
                failures += 1
                self.error = describe_failure(exc, f"the event queue {self.queue.url}", "reading")
                log.warning("events.poll_failed", queue=self.queue.url, error=self.error)
                self.stop.wait(min(60, 2 ** failures))

    def poll_once(self) -> int:
        """One burst: receive, coalesce, handle, delete. Returns the messages handled."""
        messages = self._receive(self.wait_s)
        if not messages:
            return 0
        if self.stop.is_set():  # stopping: hand them back at once, for the next start (or another agent)
            self._release(messages)
            return 0
        messages += self._rest_of_burst(len(messages))
        index, touches = self.index(), []
        for message in messages:
            body = message.get("Body", "")
            self.metrics.events_received.labels(source=source_of(body)).inc()
            verdict, found = read_event(body, index)
            if verdict != "ok":
                self.metrics.events_dropped.labels(reason=verdict).inc()
                log.info("events.dropped", reason=verdict, message_id=message.get("MessageId"))
            touches += found
        self.received += len(messages)
        self.last_event = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if touches:
            self.handle(touches)
        self._delete(messages)  # only now: a crash before this redelivers them
        return len(messages)

    def _rest_of_burst(self, have: int) -> list[dict[str, Any]]:
        """The window closes as soon as the queue is empty (one immediate receive); while a burst goes on, until it
        has been quiet for QUIET_S, or MAX_COALESCE_S has passed."""
        more = self._receive(0)
        if not more:
            return []
        started = quiet_since = time.monotonic()
        while have + len(more) < 1000 and time.monotonic() - started < MAX_COALESCE_S and not self.stop.is_set():
            found = self._receive(0)
            if found:
                more += found
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET_S:
                break
            else:
                self.stop.wait(QUIET_POLL_S)
        return more

    def _receive(self, wait_s: int) -> list[dict[str, Any]]:
        with background_calls():  # the queue's calls are the watcher's, not a reconcile's
            return list(self.sqs.receive_message(QueueUrl=self.queue.url, MaxNumberOfMessages=10,
                                                 WaitTimeSeconds=wait_s, VisibilityTimeout=VISIBILITY_S)
                        .get("Messages") or [])

    def join(self, timeout: float) -> None:
        """Wait for the poll under way (the agent is stopping: no message is left in flight)."""
        self.thread.join(timeout)

    def _release(self, messages: list[dict[str, Any]]) -> None:
        with background_calls():
            self._batches("change_message_visibility_batch", messages, VisibilityTimeout=0)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        with background_calls():
            self._batches("delete_message_batch", messages)

    def _batches(self, call: str, messages: list[dict[str, Any]], **extra: Any) -> None:
        for start in range(0, len(messages), 10):
            getattr(self.sqs, call)(QueueUrl=self.queue.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], **extra}
                for i, m in enumerate(messages[start:start + 10])])
