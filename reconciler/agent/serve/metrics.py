"""The agent's Prometheus metrics (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info


class Metrics:
    """Every metric the agent exports, on its own registry."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.cycles = Counter("reconciler_cycles", "Reconcile cycles, by result", ["result"], registry=r)
        self.cycle_duration = Histogram("reconciler_cycle_duration_seconds", "Duration of a reconcile cycle",
                                        buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600), registry=r)
        self.changes = Counter("reconciler_changes_applied", "Changes applied, by kind and action",
                               ["kind", "action"], registry=r)
        self.drift = Counter("reconciler_drift_detected", "Resources found different from their spec, by kind",
                             ["kind"], registry=r)
        self.errors = Counter("reconciler_errors", "Resources that failed to plan or apply, by kind",
                              ["kind"], registry=r)
        self.resources = Gauge("reconciler_resources", "Resources by state after the last cycle",
                               ["kind", "state"], registry=r)
        self.api_calls = Counter("reconciler_aws_api_calls", "AWS API calls, by service and operation",
                                 ["service", "operation"], registry=r)
        self.redis_healthy = Gauge("reconciler_redis_healthy", "1 healthy, 0 unhealthy, -1 skipped",
                                   ["cluster"], registry=r)
        self.redis_latency = Gauge("reconciler_redis_check_seconds", "Latency of each health-check step",
                                   ["cluster", "step"], registry=r)
        self.site_latency = Gauge("reconciler_site_check_seconds", "Latency of each site-check step, through the "
                                  "distribution", ["distribution", "step"], registry=r)
        self.site_healthy = Gauge("reconciler_site_healthy", "1 healthy, 0.5 stale (on its way out), 0 unhealthy, "
                                  "-1 skipped", ["distribution"], registry=r)
        self.revision = Info("reconciler_applied_revision", "The revision the last successful cycle applied",
                             registry=r)
        self.spec_errors = Counter("reconciler_spec_errors", "Cycles whose specs failed to load", registry=r)
        self.throttles = Counter("reconciler_aws_throttles", "Throttled answers from AWS, by service",
                                 ["service"], registry=r)
        self.rate_limited = Counter("reconciler_rate_limited_requests",
                                    "Requests that waited for the client-side rate limiter, by service",
                                    ["service"], registry=r)
        self.rate_limit_wait = Counter("reconciler_rate_limit_wait_seconds",
                                       "Time spent waiting for the client-side rate limiter, by service",
                                       ["service"], registry=r)
        self.lease_leader = Gauge("reconciler_lease_leader", "1 while this agent holds the single-writer lease",
                                  registry=r)
        self.events_received = Counter("reconciler_events_received", "AWS change events received, by the AWS "
                                       "service that sent them (`unknown` for a malformed one)", ["source"],
                                       registry=r)
        self.events_dropped = Counter("reconciler_events_dropped", "Events received and dropped, by why: malformed, "
                                      "foreign (names no managed resource), own (the agent's own write), read-only",
                                      ["reason"], registry=r)
        self.event_reconciles = Counter("reconciler_event_reconciles", "Reconciles of one resource started by an "
                                        "event, by kind and result", ["kind", "result"], registry=r)
        self.event_latency = Histogram("reconciler_event_correction_seconds", "From AWS's event (the change) to "
                                       "the drift corrected", buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300),
                                       registry=r)
        self.correction_seconds = Histogram("reconciler_drift_correction_seconds", "From a drift correction sent "
                                            "to AWS having finished it", buckets=(1, 5, 15, 30, 60, 120, 300, 600,
                                                                                  1200, 1800, 3600), registry=r)
        self.last_cycle = Gauge("reconciler_last_cycle_timestamp_seconds", "When the last cycle finished",
                                registry=r)
