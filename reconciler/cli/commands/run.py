"""`reconciler run`: the agent, cycle after cycle (or one cycle, --once), with its HTTP port, its events and
its write-back branch."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import click

from reconciler.agent.config import AgentConfig
from reconciler.agent.daemon import CycleResult
from reconciler.agent.memory import cap_arenas
from reconciler.agent.serve.access import parse_networks
from reconciler.agent.serve.http import tls_context
from reconciler.agent.start import Origin, Telling, make_agent, prepare
from reconciler.aws.expected_durations import expected_durations
from reconciler.cli.options import (
    EXIT_ERROR,
    EXIT_OK,
    AwsOptions,
    LeaseOptions,
    aws_options,
    guarded,
    lease_options,
    specs_arg,
)
from reconciler.cli.views.report import Summary, close, summarize
from reconciler.core.duration_text import parse_duration
from reconciler.core.errors import ReconcilerError
from reconciler.engine.apply import ApplyReport


@click.command()
@specs_arg
@click.option("--once", is_flag=True, help="Run one cycle and exit with its result.")
@click.option("--interval", default="5m", show_default=True, envvar="RECONCILER_INTERVAL",
              help="Time between cycles (30s, 5m, 1h); jitter of 10 % is added.")
@click.option("--git-url", default=None, envvar="RECONCILER_GIT_URL",
              help="Follow this git repository; SPECS is then a path inside it.")
@click.option("--git-branch", default="main", show_default=True, envvar="RECONCILER_GIT_BRANCH")
@click.option("--http-port", type=click.IntRange(0, 65535), default=None, envvar="RECONCILER_HTTP_PORT",
              help="Serve /healthz, /metrics, /status on this port (default 9090 unless --once).")
@click.option("--http-host", default="127.0.0.1", show_default=True, envvar="RECONCILER_HTTP_HOST",
              help="The address the port binds (the container image sets 0.0.0.0). Elsewhere than loopback, give it "
                   "a read token (--http-read-token-env).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, envvar="RECONCILER_STATE_DIR",
              help="Where the git clone is kept (default ~/.cache/reconciler).")
@click.option("--require-healthy", is_flag=True, envvar="RECONCILER_REQUIRE_HEALTHY",
              help="With --once: exit 1 when a Redis health check fails.")
@click.option("--pending-interval", default="30s", show_default=True, envvar="RECONCILER_PENDING_INTERVAL",
              help="While AWS is still working on a change, look again this soon (at most --interval).")
@click.option("--notify-webhook", "webhooks", multiple=True, metavar="URL", envvar="RECONCILER_NOTIFY_WEBHOOKS",
              help="POST each event (reconciler.event/v2 JSON, signed with RECONCILER_WEBHOOK_SECRET) here; "
                   "repeatable.")
@click.option("--notify", "notify", multiple=True, metavar="URL", envvar="RECONCILER_NOTIFY",
              help="Tell people: a chat or paging service by its apprise URL (slack://..., msteams://..., "
                   "pagerduty://..., mailto://..., json://...); repeatable.")
@click.option("--notify-after", type=click.IntRange(1), default=1, show_default=True,
              envvar="RECONCILER_NOTIFY_AFTER", help="Report drift only once it has lasted this many cycles.")
@click.option("--write-back-branch", default=None, metavar="BRANCH", envvar="RECONCILER_WRITE_BACK_BRANCH",
              help="With --git-url: drift the agent does not correct (observe, paused) becomes one commit on "
                   "BRANCH of the spec repository, for review.")
@click.option("--watch-events", is_flag=True, envvar="RECONCILER_WATCH_EVENTS",
              help="Reconcile a resource within seconds of AWS's own change event for it (CloudTrail through "
                   "EventBridge into an SQS queue the agent owns); the scheduled cycles go on as the safety net.")
@click.option("--http-token-env", default=None, metavar="VAR",
              help="Allow actions on the HTTP port (reconcile now, pause/resume a resource) to requests bearing the "
                   "token in this environment variable. Without it the port is read-only.")
@click.option("--http-read-token-env", default=None, metavar="VAR", envvar="RECONCILER_HTTP_READ_TOKEN_ENV",
              help="The page, /status and /events need the token in this environment variable (or the action "
                   "token): a bearer token, or a sign-in form on the page. /healthz and /metrics stay open.")
@click.option("--http-tls-cert", default=None, metavar="FILE", envvar="RECONCILER_HTTP_TLS_CERT",
              help="Serve the port over HTTPS with this certificate (PEM; with --http-tls-key). The session cookie is "
                   "then Secure.")
@click.option("--http-tls-key", default=None, metavar="FILE", envvar="RECONCILER_HTTP_TLS_KEY",
              help="The private key of --http-tls-cert (PEM).")
@click.option("--http-trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDRESS|CIDR",
              envvar="RECONCILER_HTTP_TRUSTED_PROXIES",
              help="A TLS-terminating proxy in front of the port (an Ingress, a load balancer): its "
                   "X-Forwarded-Proto: https is believed (the session cookie is then Secure). Repeatable.")
@lease_options
@aws_options
@guarded
def run(specs: Path, once: bool, interval: str, git_url: str | None, git_branch: str, http_port: int | None,
        http_host: str, state_dir: Path | None, require_healthy: bool, pending_interval: str,
        webhooks: tuple[str, ...], notify: tuple[str, ...], notify_after: int, write_back_branch: str | None,
        watch_events: bool, http_token_env: str | None, http_read_token_env: str | None, http_tls_cert: str | None,
        http_tls_key: str | None, trusted_proxies: tuple[str, ...], opts: AwsOptions, lease_opts: LeaseOptions) -> int:
    """The agent: plan and apply the `enforce` resources, check Redis, cycle after cycle."""
    cap_arenas()  # before any thread starts: a long-running process (docs/performance.md, "Memory")
    origin = Origin(specs, git_url, git_branch, state_dir, write_back_branch)
    opts.start(default_level="info", reports=once)  # the daemon's log is its output, on a terminal too
    source, environment = prepare(origin)
    seconds = parse_duration(interval)
    aws = opts.connect(environment=environment)
    http_token = _token_from("--http-token-env", http_token_env)
    http_read_token = _token_from("--http-read-token-env", http_read_token_env)
    http_tls = _tls_files(http_tls_cert, http_tls_key)
    _check_proxies(trusted_proxies)
    config = AgentConfig(interval_s=seconds, pending_interval_s=parse_duration(pending_interval, "--pending-interval"),
                         workers=opts.workers, max_destroy=opts.max_destroy, notify_after=notify_after,
                         http_token=http_token, http_read_token=http_read_token, watch_events=watch_events,
                         environment=environment, http_tls=http_tls, http_trusted_proxies=trusted_proxies)
    secret = os.environ.get("RECONCILER_WEBHOOK_SECRET")
    agent = make_agent(source, origin, aws, config, Telling(webhooks, notify, secret),
                       lease_opts.make(aws, environment and environment.name))
    if webhooks and not secret:
        click.echo("warning: --notify-webhook without RECONCILER_WEBHOOK_SECRET: events are sent unsigned", err=True)
    if once:
        result = agent.run_once()
        agent.store.events.close()
        close(opts.report, _cycle_summary(result))
        return EXIT_OK if result.ok and (result.healthy is not False or not require_healthy) else EXIT_ERROR
    return agent.run_forever(http_host, 9090 if http_port is None else http_port)


def _cycle_summary(result: CycleResult) -> Summary:
    """What one cycle of `run --once` did, as the closing report says it."""
    if result.plan is None:
        return Summary(next_step=f"Failed: {result.error}. Nothing was applied; fix it and run again.")
    summary = summarize(result.plan, result.report or ApplyReport(), expected_durations(),
                        again="run `reconciler run --once`")
    if result.healthy is False:
        summary.next_step += " The Redis health check failed: `reconciler health` shows each step."
    return summary


def _token_from(option: str, variable: str | None) -> str | None:
    """The token in environment variable `variable` (None without the option): 16 characters or more."""
    if not variable:
        return None
    token = os.environ.get(variable)
    if not token or len(token) < 16:
        raise ReconcilerError(f"{option} {variable}: the variable must hold a token of 16 characters or more")
    return token


def _tls_files(cert: str | None, key: str | None) -> tuple[str, str] | None:
    """--http-tls-cert and --http-tls-key, checked now (both or neither, readable, a matching pair)."""
    if not cert and not key:
        return None
    if not (cert and key):
        raise ReconcilerError("--http-tls-cert and --http-tls-key go together")
    try:
        tls_context(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ReconcilerError(f"--http-tls-cert {cert} / --http-tls-key {key}: cannot be used: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    return cert, key


def _check_proxies(values: tuple[str, ...]) -> None:
    try:
        parse_networks(values)
    except ValueError as exc:
        raise ReconcilerError(f"--http-trusted-proxy: {exc}") from None
