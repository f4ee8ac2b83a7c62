"""The command line: parses flags, renders errors once, sets exit codes.

Over 500 lines because it is the edge for ten commands: each command's flags (click's decorators) stay
next to the few lines that call the engine; nothing here plans, applies or talks to AWS itself.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.core.durations import parse_duration
from reconciler.core.errors import ReconcilerError, SpecError

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.engine.lease import Lease

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _fail(message: str) -> None:
    click.echo(click.style("Error: ", fg="red", bold=True) + message, err=True)


def _print_spec_error(exc: SpecError, where: str = "") -> None:
    n = len(exc.problems)
    _fail(f"{n} problem{'s' if n != 1 else ''} in the specs{where}; nothing was planned or changed:")
    for problem in exc.problems:
        click.echo(f"  {problem}", err=True)


def _guarded(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Run a command; user mistakes become one clear message and exit 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except SpecError as exc:
            _print_spec_error(exc)
            code = EXIT_ERROR
        except ReconcilerError as exc:
            _fail(str(exc))
            code = EXIT_ERROR
        except KeyboardInterrupt:
            _fail("interrupted")
            code = 130
        except Exception as exc:  # a bug, not a user mistake: one line unless debugging
            if os.environ.get("RECONCILER_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} "
                  "(set RECONCILER_DEBUG=1 to see the traceback, and please report it)")
            code = EXIT_ERROR
        sys.exit(code or EXIT_OK)

    return wrapper


@dataclass
class AwsOptions:
    """The options every AWS-facing command shares."""

    sandbox: bool
    profile: str | None
    region: str | None
    retry_mode: str | None
    workers: int
    log_level: str
    log_format: str
    max_destroy: int
    rate_limits: tuple[str, ...]
    no_color: bool

    @property
    def report(self) -> bool:
        """A person reads the output: stdout is a terminal and the log is not asked to be JSON. Then a command
        ends on a report in words, and the log (stderr) keeps to warnings unless --log-level says otherwise."""
        return sys.stdout.isatty() and self.log_format != "json"

    def start(self, default_level: str = "warning", reports: bool = True) -> None:
        """Logging at --log-level (else the command's default; warning when the command `reports` on a
        terminal), in --log-format, and colour unless --no-color/NO_COLOR."""
        from reconciler.core.log import configure_logging

        color = not (self.no_color or os.environ.get("NO_COLOR"))
        if not color:
            context: click.Context | None = click.get_current_context()
            while context is not None:  # click.echo asks the innermost context
                context.color = False
                context = context.parent
        level = self.log_level or ("warning" if reports and self.report else default_level)
        json_output = {"json": True, "console": False}.get(self.log_format)
        configure_logging(level, json_output=json_output, color=None if color else False)


@dataclass
class LeaseOptions:
    """The single-writer lease of `run` and `apply`."""

    no_lease: bool
    lease_table: str
    lease_name: str
    lease_duration: str

    def make(self, aws: Aws, environment: str | None = None) -> Lease | None:
        """The Lease, or None when turned off. An environment's lease carries its name (`reconciler-prod`)."""
        from reconciler.engine.lease import Lease

        if self.no_lease:
            return None
        return Lease(aws, table=self.lease_table, name=_lease_name(self.lease_name, environment),
                     duration_s=parse_duration(self.lease_duration, "--lease-duration"))


def _lease_name(name: str, environment: str | None) -> str:
    """The lease (and event queue) name of an environment's agents: `<name>-<environment>`."""
    return f"{name}-{environment}" if environment else name


def _option_group(cls: type, param: str, options: list[Callable[..., Any]]) -> Callable[..., Any]:
    """A decorator adding `options` whose values the command receives as one `param: cls` object."""
    names = [f.name for f in fields(cls)]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **{param: cls(**{name: kwargs.pop(name) for name in names})}, **kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


_lease_options = _option_group(LeaseOptions, "lease_opts", [
    click.option("--no-lease", is_flag=True, envvar="RECONCILER_NO_LEASE",
                 help="Apply without taking the single-writer lease (only when no agent runs on this stack)."),
    click.option("--lease-table", default="reconciler-lease", show_default=True, envvar="RECONCILER_LEASE_TABLE",
                 help="DynamoDB table holding the lease (the agent creates it when absent)."),
    click.option("--lease-name", default="reconciler", show_default=True, envvar="RECONCILER_LEASE_NAME",
                 help="The lease's key: agents sharing it never apply at the same time (one per stack)."),
    click.option("--lease-duration", default="60s", show_default=True, envvar="RECONCILER_LEASE_DURATION",
                 help="How long a lease outlives its holder's last renewal (renewed every third of it)."),
])


def _aws_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared AWS options; the command receives them as one `opts: AwsOptions`."""
    options = [
        click.option("--sandbox", is_flag=True,
                     help="Start an embedded local AWS (moto) instead of using a real account."),
        click.option("--profile", envvar="AWS_PROFILE", default=None, help="AWS profile."),
        click.option("--region", default=None, help="AWS region (default: AWS_REGION / profile)."),
        click.option("--retry-mode", type=click.Choice(["standard", "adaptive"]), default=None,
                     help="botocore retry mode (default: AWS_RETRY_MODE or standard; the agent paces requests "
                          "itself, see --rate-limit)."),
        click.option("--workers", type=click.IntRange(1, 128), default=16, show_default=True,
                     envvar="RECONCILER_WORKERS", help="Concurrent AWS reads."),
        click.option("--log-level", default=None, envvar="RECONCILER_LOG_LEVEL",
                     type=click.Choice(["debug", "info", "warning", "error"]),
                     help="Log level (default: warning; info for `run` unless it reports on a terminal)."),
        click.option("--log-format", type=click.Choice(["auto", "console", "json"]), default="auto",
                     show_default=True, envvar="RECONCILER_LOG_FORMAT",
                     help="The log on stderr: JSON lines, key=value lines for a person, or auto (key=value on a "
                          "terminal). json also turns off the closing report: its summary is the `cycle.summary` "
                          "event."),
        click.option("--max-destroy", type=click.IntRange(0), default=3, show_default=True,
                     envvar="RECONCILER_MAX_DESTROY",
                     help="Refuse all deletes/replaces of a run that has more of them than this."),
        click.option("--rate-limit", "rate_limits", multiple=True, metavar="SERVICE=RATE[:BURST]",
                     envvar="RECONCILER_RATE_LIMITS",
                     help="Requests per second (and burst) for one AWS service, e.g. cloudfront=2:4; 0 = no "
                          "limit. Repeatable; defaults stay below AWS's documented limits (docs/agent.md)."),
        click.option("--no-color", is_flag=True, help="No colour in output or logs (NO_COLOR in the environment "
                                                      "does the same)."),
    ]
    return _option_group(AwsOptions, "opts", options)(fn)


_specs_arg = click.argument("specs", default="specs", type=click.Path(path_type=Path),
                            envvar="RECONCILER_SPECS")


def _connect(opts: AwsOptions, agent_calls: bool = True, environment: Any = None, role_arn: str | None = None) -> Any:
    """The Aws handle; with --sandbox, start one first and say so loudly. `agent_calls`: the command makes only
    the agent's calls (those of its IAM policy), so its clients load botocore's models trimmed to them (a
    fifth of a plan's CPU; the daemon's memory: models.py). With an `environment`: its Region, its role
    (`role_arn` instead when given; "none": the credentials as they are), and its account, checked before
    anything else."""
    from reconciler.aws.client import Aws
    from reconciler.aws.ratelimit import RateLimiter, parse_limits

    limiter = RateLimiter(parse_limits(opts.rate_limits))
    profile, region = opts.profile, opts.region
    wanted = environment.aws.region if environment is not None else None
    if wanted and region and region != wanted:
        raise ReconcilerError(f"--region {region}, but {environment.file} puts environment {environment.name!r} "
                              f"in {wanted}; leave --region out")
    if opts.sandbox:
        try:
            from reconciler.sandbox import enter_sandbox
        except ImportError as exc:
            raise ReconcilerError(
                "--sandbox needs the sandbox extra: pip install 'reconciler[sandbox]'") from exc
        try:
            box = enter_sandbox(os.environ)  # lives as long as this process
        except ValueError as exc:
            raise ReconcilerError(f"RECONCILER_SANDBOX_TIME: {exc}") from None
        pace = "instant" if box.clock.factor == 0 else f"AWS's typical durations x {box.clock.factor:g}"
        click.echo(click.style(
            f"SANDBOX: using a local AWS (moto) at {box.endpoint} (AWS time: {pace}; RECONCILER_SANDBOX_TIME "
            "sets it).\nNo real AWS account is touched; everything in it is gone when this command exits.",
            fg="yellow", bold=True), err=True)
        profile, region = None, None
    aws = Aws(profile=profile, region=wanted or region, retry_mode=opts.retry_mode, pool_size=max(10, opts.workers),
              limiter=limiter)
    aws.check_configured()
    if agent_calls:
        from reconciler.aws.trimmed import use_trimmed
        from reconciler.core.statedir import state_dir
        from reconciler.engine.iam import agent_actions

        use_trimmed(aws.session, agent_actions(), state_dir() / "models")  # before any client
    if environment is not None:
        _reach(aws, environment, role_arn)
    return aws


def _reach(aws: Any, environment: Any, role_arn: str | None) -> None:
    """Assume the environment's role and check its account (environments.reach), saying what was reached."""
    import dataclasses

    import structlog

    from reconciler.spec.environments import reach

    if role_arn is not None:
        target = dataclasses.replace(environment.aws, role_arn=None if role_arn.lower() == "none" else role_arn)
        environment = dataclasses.replace(environment, aws=target)
    identity = reach(aws, environment)
    structlog.get_logger().info("environment.reached", environment=environment.name, region=aws.region,
                                account=identity and identity["Account"], arn=identity and identity["Arn"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reconciler")
def cli() -> None:
    """Keep a small AWS web stack exactly as its YAML says."""


@cli.command()
@_specs_arg
@_guarded
def validate(specs: Path) -> int:
    """Check specs against the schemas and each other. Makes no AWS call. Given a directory that holds
    environments (envs/), checks every one of them."""
    from reconciler.spec.environments import environment_file, find_environments

    roots = [specs] if environment_file(specs) else find_environments(specs) or [specs]
    broken = 0
    for root in roots:
        try:
            spec_set = load_specs(root)
        except SpecError as exc:
            broken += 1
            _print_spec_error(exc, f" of {root}" if len(roots) > 1 else "")
            continue
        where = f"{root} (environment {spec_set.environment_name}): " if spec_set.environment else ""
        click.echo(f"{where}{len(spec_set.specs)} resource(s) in {len(spec_set.files)} file(s): valid.")
    return EXIT_ERROR if broken else EXIT_OK


def _plan(spec_set: Any, aws: Any, opts: AwsOptions, manual: bool = False) -> Any:
    from reconciler.engine.plan import enforce_budget, enforce_windows, make_plan

    return enforce_windows(enforce_budget(make_plan(spec_set, aws, workers=opts.workers), opts.max_destroy),
                           spec_set, manual=manual)


def _plan_targets(root: Path, changed_since: str | None) -> list[Path]:
    """What `plan ROOT` plans: ROOT itself, or each environment under it; with --changed-since, only those whose
    files changed since that revision (an environment that does not load is planned: its errors are news)."""
    from reconciler.spec.environments import changed_files, environment_file, find_environments, inputs_of, touched

    roots = [root] if environment_file(root) else find_environments(root) or [root]
    if changed_since is None:
        return roots
    changed = changed_files(changed_since, root)
    out = []
    for target in roots:
        try:
            spec_set = load_specs(target)
        except SpecError:
            out.append(target)
            continue
        content = [s.source_dir / s.spec["content"]["directory"] for s in spec_set.by_kind("Bucket")
                   if isinstance(s.spec.get("content"), dict) and s.spec["content"].get("directory")]
        inputs = (inputs_of(spec_set.environment, content) if spec_set.environment
                  else [target.resolve(), *(d.resolve() for d in content)])
        if touched(inputs, changed):
            out.append(target)
    return out


@cli.command()
@_specs_arg
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True,
              help="text for a terminal, json (reconciler.plan/v1) for tools, markdown for a pull request comment.")
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@click.option("--changed-since", metavar="REV", default=None,
              help="Plan only the environments under SPECS whose files (document, bases, own specs, published "
                   "content) changed since this git revision (a pull request's base).")
@click.option("--role-arn", metavar="ARN|none", default=None, envvar="RECONCILER_ROLE_ARN",
              help="Assume this role instead of the environment's aws.roleArn (a read-only role for CI); none: use "
                   "the credentials as they are. The account is checked either way.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there are no changes, 2 when there are, 1 on error.")
@_aws_options
@_guarded
def plan(specs: Path, fmt: str, as_json: bool, changed_since: str | None, role_arn: str | None,
         detailed_exitcode: bool, opts: AwsOptions) -> int:
    """Show what apply would change. Never writes anything."""
    fmt = "json" if as_json else fmt
    opts.start()
    targets = _plan_targets(specs, changed_since)
    if not targets:
        click.echo(_nothing_changed(fmt, changed_since))
        return EXIT_OK
    codes, documents = [], []
    for target in targets:
        code, document = _plan_one(target, fmt, role_arn, detailed_exitcode, opts, several=len(targets) > 1)
        codes.append(code)
        documents.append(document)
    if fmt == "json":
        click.echo(documents[0] if len(documents) == 1 else "[\n" + ",\n".join(documents) + "\n]")
    else:
        click.echo("\n".join(documents))
    return EXIT_ERROR if EXIT_ERROR in codes else max(codes)


def _nothing_changed(fmt: str, rev: str | None) -> str:
    said = f"No environment's files changed since {rev}: nothing to plan."
    return {"json": "[]", "markdown": f"### reconciler plan\n\n{said}\n"}.get(fmt, said)


def _plan_one(target: Path, fmt: str, role_arn: str | None, detailed_exitcode: bool, opts: AwsOptions,
              several: bool) -> tuple[int, str]:
    """Plan one spec directory or environment: (exit code, the rendered plan). A spec or AWS error of one
    environment is its plan's content when there are several, not the end of the others."""
    from reconciler.engine.render import plan_json, render_markdown, render_plan

    try:
        spec_set = load_specs(target)  # a broken spec set stops here, before any AWS call
        aws = _connect(opts, environment=spec_set.environment, role_arn=role_arn)
        result = _plan(spec_set, aws, opts)
    except ReconcilerError as exc:
        if not several and fmt != "markdown":
            raise
        message = "\n".join([f"{len(exc.problems)} problem(s) in the specs:", *(f"  {p}" for p in exc.problems)]
                            ) if isinstance(exc, SpecError) else str(exc)
        return EXIT_ERROR, _failed_plan(target, fmt, message)
    env = spec_set.environment
    if fmt == "json":
        document = plan_json(result)
        if env is not None:
            import json

            from reconciler.core.plainjson import dumps

            document = dumps({**json.loads(document), "environment": env.to_json()}, indent=2)
        rendered = document
    elif fmt == "markdown":
        title = (f"reconciler plan: environment `{env.name}` ({env.file})" if env is not None
                 else f"reconciler plan: `{target}`")
        rendered = render_markdown(result, title)
    else:
        rendered = render_plan(result)
        if several or env is not None:
            rendered = click.style(f"== {target}" + (f" (environment {env.name}, account {env.aws.account_id})"
                                                      if env is not None and env.aws.account_id else "")
                                   + " ==", bold=True) + "\n" + rendered
    if result.has_errors:
        return EXIT_ERROR, rendered
    return (EXIT_CHANGES if detailed_exitcode and result.has_changes else EXIT_OK), rendered


def _failed_plan(target: Path, fmt: str, message: str) -> str:
    import json

    if fmt == "json":
        return json.dumps({"target": str(target), "error": message}, indent=2)
    if fmt == "markdown":
        return f"### reconciler plan: `{target}`\n\n**Could not be planned.**\n\n```\n{message}\n```\n"
    return click.style(f"== {target} ==", bold=True) + "\n" + click.style("Error: ", fg="red", bold=True) + message


@cli.command()
@_specs_arg
@click.option("--auto-approve", is_flag=True, help="Apply without asking (for scripts and CI).")
@click.option("--wait", "wait_s", type=click.IntRange(1), default=None, is_flag=False, flag_value=1800,
              help="Carry the changes through (up to SECONDS, default 1800): wait while AWS works, then take the "
                   "next steps, until everything is applied and deployed.")
@_lease_options
@_aws_options
@_guarded
def apply(specs: Path, auto_approve: bool, wait_s: int | None, opts: AwsOptions, lease_opts: LeaseOptions) -> int:
    """Plan, show the plan, ask, and apply it."""
    from reconciler.aws.expected import agent_durations
    from reconciler.engine.apply import ApplyReport, apply_plan
    from reconciler.engine.render import render_plan, render_report
    from reconciler.engine.summary import summarize

    opts.start()
    spec_set = load_specs(specs)
    aws = _connect(opts, environment=spec_set.environment)
    result = _plan(spec_set, aws, opts, manual=True)  # a hand-run apply: `manual: true` windows let it through
    click.echo(render_plan(result))
    if not any(c.applicable or c.refused or c.action == "error" for c in result.changes):
        _close(opts, summarize(result, ApplyReport(), agent_durations(), again="run `reconciler apply`"))
        return EXIT_OK
    if any(c.applicable for c in result.changes) and not auto_approve:
        if not sys.stdin.isatty():
            raise ReconcilerError("apply needs --auto-approve when not run on a terminal")
        click.echo()
        if click.prompt("Do you want to perform these actions? Only 'yes' will be accepted",
                        default="", show_default=False) != "yes":
            click.echo("Apply cancelled.")
            return EXIT_ERROR
    with _holding_lease(aws, lease_opts, spec_set.environment_name) as still_held:
        report = apply_plan(result, aws, should_stop=lambda: not still_held())
        if not opts.report:  # on a terminal, the closing report says it
            click.echo()
            click.echo(render_report(report))
        waiting: list[str] = []
        if wait_s and report.outcomes and still_held():
            waiting = _carry_through(spec_set, aws, opts, report, wait_s, still_held)
        lease_lost = not still_held()
    busy = {w.split(" ")[0] for w in waiting}  # --wait: what AWS still works on at the timeout; the rest is done
    finished = frozenset(c.ref for c in result.changes if c.ref not in busy) if wait_s else frozenset()
    _close(opts, summarize(result, report, agent_durations(), finished=finished,
                           again=f"run `reconciler apply{' --wait' if wait_s else ''}`"))
    if lease_lost:
        _fail("the lease could not be renewed during apply: the changes not listed above were not applied")
        return EXIT_ERROR
    if waiting:
        _fail(f"still in progress after {wait_s}s: {', '.join(waiting)}")
        return EXIT_ERROR
    if wait_s and report.outcomes and report.ok and not opts.report:
        click.echo("All changes are applied and deployed.")
    return EXIT_OK if report.ok else EXIT_ERROR


def _carry_through(spec_set: Any, aws: Any, opts: AwsOptions, report: Any, wait_s: int,
                   still_held: Callable[[], bool]) -> list[str]:
    """apply --wait: wait until AWS has finished, plan again, apply the next steps; until nothing is
    left or `wait_s` has passed. Returns what is still in progress at the timeout."""
    from reconciler.aws.client import aws_time_factor
    from reconciler.aws.expected import agent_durations
    from reconciler.engine.apply import apply_plan, wait_until_settled
    from reconciler.engine.plan import Plan
    from reconciler.engine.render import render_report

    deadline = time.monotonic() + wait_s
    progress, poll = _progress_line(), min(10.0, max(0.25, 10 * aws_time_factor()))  # 10 s of AWS's time
    last: list[str] = []
    while True:
        waiting = wait_until_settled(report, aws, max(1.0, deadline - time.monotonic()), progress, poll_s=poll,
                                     durations=agent_durations())
        if sys.stdout.isatty():
            click.echo()
        if waiting or not still_held():
            return waiting
        follow_up = _plan(spec_set, aws, opts, manual=True)
        broken = [c for c in follow_up.changes if c.action == "error" or c.refused]
        if broken:  # what a later plan cannot do is this apply's failure too (it says so, and exits 1)
            more = apply_plan(Plan(broken), aws, should_stop=lambda: not still_held())
            if not opts.report:
                click.echo(render_report(more))
            report.outcomes += more.outcomes
            return []
        todo = [c for c in follow_up.changes if c.applicable]
        if not todo:
            return []
        if time.monotonic() > deadline:
            return [c.ref for c in todo]
        held = [c for c in todo if c.steps and c.steps[0].wait]
        if len(held) == len(todo):  # an AWS rule holds every next step (one TTL change an hour): wait for it
            progress("Waiting for AWS: " + "; ".join(f"{c.ref}: {c.steps[0].wait}" for c in held))
            time.sleep(poll)
            continue
        again = sorted(f"{c.ref} {[f.path for f in c.effective_fields]} {[st.description for st in c.steps]}"
                       for c in todo)
        if again == last:  # applied, settled, and the same difference is back: AWS keeps another value
            return [f"{c.ref} (applied, but AWS still reports {', '.join(f.path for f in c.effective_fields)} "
                    "differently; not sent again)" for c in todo]
        last = again
        more = apply_plan(follow_up, aws, should_stop=lambda: not still_held())
        if not opts.report:
            click.echo(render_report(more))
        report.outcomes += more.outcomes
        if not more.ok:
            return []


@contextlib.contextmanager
def _holding_lease(aws: Any, lease_opts: LeaseOptions, environment: str | None) -> Iterator[Callable[[], bool]]:
    """Hold the agents' lease while applying, when agents use one (its table exists); refuse to
    write while a live agent holds it. Yields a check that the lease is still held."""
    from reconciler.engine.lease import Heartbeat

    lease = lease_opts.make(aws, environment)
    if lease is None or not lease.table_exists():
        yield lambda: True
        return
    def waiting(holder: str, seconds: float) -> None:
        click.echo(f"Waiting for the lease {lease.name!r}: {holder} holds it; if it does not renew it within "
                   f"{seconds:g}s it has stopped and this apply takes over (Ctrl-C to give up)...", err=True)

    if not lease.acquire_or_watch(on_wait=waiting):
        raise ReconcilerError(
            f"the agent {lease.holder} holds the lease {lease.name!r} (DynamoDB table {lease.table}) and renews "
            "it: it applies the specs it follows, and two writers would undo each other. Commit the change for "
            "it to apply, or stop it first (or pass --no-lease if that agent manages a different stack).")
    heartbeat = Heartbeat(lease).start()
    try:
        yield lambda: lease.held
    finally:
        heartbeat.stop()  # and release


def _progress_line() -> Callable[[str], None]:
    """Progress on a terminal: one line rewritten in place (padded over the longer line before it: click drops
    ANSI's erase-line when colour is off); elsewhere, one line per poll."""
    width = [0]

    def show(message: str) -> None:
        if sys.stdout.isatty():
            click.echo("\r" + message.ljust(width[0]), nl=False)
            width[0] = len(message)
        else:
            click.echo(message)
    return show




@cli.command()
@_specs_arg
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
@_lease_options
@_aws_options
@_guarded
def run(specs: Path, once: bool, interval: str, git_url: str | None, git_branch: str, http_port: int | None,
        http_host: str, state_dir: Path | None, require_healthy: bool, pending_interval: str,
        webhooks: tuple[str, ...], notify: tuple[str, ...], notify_after: int, write_back_branch: str | None,
        watch_events: bool, http_token_env: str | None, http_read_token_env: str | None, http_tls_cert: str | None,
        http_tls_key: str | None, trusted_proxies: tuple[str, ...], opts: AwsOptions, lease_opts: LeaseOptions) -> int:
    """The agent: plan and apply the `enforce` resources, check Redis, cycle after cycle."""
    from reconciler.agent import Agent, AgentConfig, DirectorySource, GitSource
    from reconciler.agent.memory import cap_arenas
    from reconciler.agent.tell.events import Events
    from reconciler.agent.writeback import BranchWriter
    from reconciler.core.statedir import state_dir as state_dir_default

    cap_arenas()  # before any thread starts: a long-running process (docs/performance.md, "Memory")
    if state_dir is not None:  # the journal and the trimmed models go there too
        os.environ["RECONCILER_STATE_DIR"] = str(state_dir)
    opts.start(default_level="info", reports=once)  # the daemon's log is its output, on a terminal too
    seconds = parse_duration(interval)
    if git_url and specs.is_absolute():
        raise ReconcilerError("with --git-url, SPECS is a path inside the repository (e.g. specs)")
    source = (GitSource(git_url, git_branch, state_dir or state_dir_default(), str(specs)) if git_url
              else DirectorySource(specs))
    environment = _environment_at_start(source)
    aws = _connect(opts, environment=environment)
    if write_back_branch and not isinstance(source, GitSource):
        raise ReconcilerError("--write-back-branch needs --git-url: the drift is written back as a commit to the "
                              "spec repository")
    writer = BranchWriter(source, write_back_branch) if write_back_branch and isinstance(source, GitSource) else None
    http_token = _token_from("--http-token-env", http_token_env)
    http_read_token = _token_from("--http-read-token-env", http_read_token_env)
    http_tls = _tls_files(http_tls_cert, http_tls_key)
    _check_proxies(trusted_proxies)
    events = Events(state_dir or state_dir_default(), list(webhooks), os.environ.get("RECONCILER_WEBHOOK_SECRET"),
                    notify=list(notify))
    config = AgentConfig(interval_s=seconds, pending_interval_s=parse_duration(pending_interval, "--pending-interval"),
                         workers=opts.workers, max_destroy=opts.max_destroy, notify_after=notify_after,
                         http_token=http_token, http_read_token=http_read_token, watch_events=watch_events,
                         environment=environment, http_tls=http_tls, http_trusted_proxies=trusted_proxies)
    agent = Agent(source, aws, config, lease=lease_opts.make(aws, environment and environment.name), events=events,
                  writer=writer)
    if webhooks and not os.environ.get("RECONCILER_WEBHOOK_SECRET"):
        click.echo("warning: --notify-webhook without RECONCILER_WEBHOOK_SECRET: events are sent unsigned", err=True)
    if once:
        result = agent.run_once()
        events.close()
        _close(opts, _cycle_summary(result))
        return EXIT_OK if result.ok and (result.healthy is not False or not require_healthy) else EXIT_ERROR
    return agent.run_forever(http_host, 9090 if http_port is None else http_port)


def _cycle_summary(result: Any) -> Any:
    """What one cycle of `run --once` did, as the closing report says it."""
    from reconciler.aws.expected import agent_durations
    from reconciler.engine.summary import Summary, summarize

    if result.plan is None:
        return Summary(next_step=f"Failed: {result.error}. Nothing was applied; fix it and run again.")
    summary = summarize(result.plan, result.report, agent_durations(), again="run `reconciler run --once`")
    if result.healthy is False:
        summary.next_step += " The Redis health check failed: `reconciler health` shows each step."
    return summary


def _close(opts: AwsOptions, summary: Any) -> None:
    """A command's closing report: in words on a terminal (a line per resource, the counts, what next); else the
    final `cycle.summary` event of the log (an info event: `run` logs it; `apply` and `writeback` at --log-level
    info, their text on stdout says the same)."""
    import structlog

    if not opts.report:
        structlog.get_logger().info("cycle.summary", **summary.to_event())
        return
    colours = {"created": "green", "updated": "yellow", "deleted": "red", "pending": "cyan", "failed": "red",
               "not-applied": "magenta"}
    click.echo()
    for entry in summary.entries:
        click.echo(click.style(entry.line(), fg=colours[entry.bucket]))
    click.echo(click.style(summary.counts_line(), bold=True))
    click.echo(summary.lines()[-1])


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
    import ssl

    from reconciler.agent.serve.http import tls_context

    try:
        tls_context(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ReconcilerError(f"--http-tls-cert {cert} / --http-tls-key {key}: cannot be used: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    return cert, key


def _check_proxies(values: tuple[str, ...]) -> None:
    from reconciler.agent.serve.http import parse_networks

    try:
        parse_networks(values)
    except ValueError as exc:
        raise ReconcilerError(f"--http-trusted-proxy: {exc}") from None


def _environment_at_start(source: Any) -> Any:
    """The environment an agent is started for (None: a plain spec directory), read before it connects: its
    account and role decide what it may reach, for as long as it runs."""
    from reconciler.spec.environments import environment_file, read_environment

    root = source.checkout(source.fetch()) if source.supports_fallback else source.specs
    found = environment_file(root)
    if found is None:
        return None
    environment, problems = read_environment(found, source.root)
    if environment is None:
        raise SpecError(problems)
    return environment


@cli.command()
@_specs_arg
@click.option("--endpoint", default=None, metavar="HOST:PORT",
              help="Probe this endpoint instead of the cluster's live primary endpoint.")
@click.option("--name", "names", multiple=True, help="Only the CacheCluster and Distribution specs of these names "
              "(repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print every result as one JSON document.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Verify the server's TLS certificate against this CA (default: spec.healthCheck.caFile, else "
                   "the system trust store).")
@click.option("--tls/--no-tls", default=None,
              help="Speak TLS or not (default: spec.healthCheck.tls, else spec.transitEncryption).")
@_aws_options
@_guarded
def health(specs: Path, endpoint: str | None, names: tuple[str, ...], as_json: bool, ca_file: str | None,
           tls: bool | None, opts: AwsOptions) -> int:
    """Check each Redis cluster's data path (DNS, TCP, TLS, AUTH, PING, SET/GET/DEL) and each site as its visitors
    get it, through the distribution (DNS, TLS, redirect, content against what was published, the bucket closed)."""

    from reconciler.checks.redis import check_cluster, render_results

    opts.start()
    spec_set = load_specs(specs)
    clusters = [s for s in spec_set.by_kind("CacheCluster") if not names or s.name in names]
    sites = [s for s in spec_set.by_kind("Distribution") if not names or s.name in names]
    if not clusters and not sites:
        raise ReconcilerError("no CacheCluster or Distribution spec to check"
                              + (f" named {', '.join(names)}" if names else ""))
    if endpoint and len(clusters) != 1:
        raise ReconcilerError("--endpoint applies to one cluster: select it with --name")
    if endpoint:
        from reconciler.checks.redis import parse_endpoint

        try:
            parse_endpoint(endpoint)
        except ReconcilerError as exc:
            raise ReconcilerError(f"--endpoint: {exc}") from None
    needs_aws = opts.sandbox or bool(sites) or any(_needs_aws(s, endpoint) for s in clusters)
    aws = _connect(opts, environment=spec_set.environment) if needs_aws else None
    results = [check_cluster(s, aws, endpoint, tls=tls, ca_file=ca_file) for s in clusters]
    checked = _check_sites(spec_set, sites, aws, ca_file)
    if as_json:
        from reconciler.core.plainjson import dumps

        click.echo(dumps({"clusters": [r.to_json() for r in results],
                          "distributions": [r.to_json() for r in checked]}, indent=2))
    else:
        from reconciler.checks.site import render

        click.echo("\n".join(filter(None, [render_results(results) if results else "", *render(checked)])))
    return EXIT_OK if all(r.healthy for r in [*results, *checked]) else EXIT_ERROR


def _check_sites(spec_set: Any, sites: list[Any], aws: Any, ca_file: str | None) -> list[Any]:
    """The site check of each Distribution spec, its facts observed now (the distribution and its bucket);
    `ca_file` (--ca-file) verifies the edge's certificate, as it does Redis's."""
    import dataclasses

    from reconciler.aws.client import aws_time_factor
    from reconciler.aws.expected import agent_durations
    from reconciler.checks.site import check_site, facts_of
    from reconciler.checks.viewer import Edge, sandbox_edge
    from reconciler.kinds import registry

    edge, factor, out = sandbox_edge(), aws_time_factor(), []
    if ca_file:
        edge = dataclasses.replace(edge or Edge(), ca_file=ca_file)
    for spec in sites:
        distribution = registry.get("Distribution")(spec)
        buckets = [b for b in spec_set.by_kind("Bucket") if b.name == distribution.bucket]
        bucket_live = registry.get("Bucket")(buckets[0]).observe(aws) if buckets else None
        facts = facts_of(distribution, distribution.observe(aws), bucket_live, aws)
        out.append(check_site(spec, facts, aws, edge=edge, durations=agent_durations(), factor=factor))
    return out


def _needs_aws(spec: Any, endpoint: str | None) -> bool:
    token = spec.spec.get("authToken") or {}
    has_endpoint = endpoint or (spec.spec.get("healthCheck") or {}).get("endpoint")
    return not has_endpoint or any(k != "fromEnv" for k in token)


@cli.command()
@click.argument("environment", required=False, type=click.Path(path_type=Path))
@click.option("--kind", "kinds", multiple=True, help="Only this kind (repeatable): Table, Bucket, Distribution, "
              "CacheCluster.")
@click.option("--name", "names", multiple=True, help="Only resources of this name (repeatable); a distribution "
              "by its id too.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("exported"), show_default=True,
              help="Directory to write one YAML file per resource into.")
@click.option("--with-items", is_flag=True, help="Also export table items (reference data, not a backup).")
@click.option("--item-limit", type=click.IntRange(1), default=100, show_default=True,
              help="At most this many items per table, with a warning when there are more.")
@_aws_options
@_guarded
def export(environment: Path | None, kinds: tuple[str, ...], names: tuple[str, ...], output: Path, with_items: bool,
           item_limit: int, opts: AwsOptions) -> int:
    """Write specs for live resources (to adopt a stack built by hand). Makes no change in AWS. With ENVIRONMENT
    (envs/prod), in that environment's account and Region, as its agent sees them."""
    from reconciler.engine.export import export_stack, write
    from reconciler.kinds import registry

    opts.start()
    unknown = [k for k in kinds if k not in registry.kinds()]
    if unknown:
        raise ReconcilerError(f"--kind {unknown[0]!r} is not one of {', '.join(registry.kinds())}")
    target = None
    if environment is not None:
        from reconciler.spec.environments import environment_file, read_environment

        found = environment_file(environment)
        if found is None:
            raise ReconcilerError(f"{environment} is not an environment (no environment.yaml of kind Environment)")
        target, problems = read_environment(found)
        if target is None:
            raise SpecError(problems)
    # export reads what the agent never does (every table, every group)
    aws = _connect(opts, agent_calls=False, environment=target)
    items = export_stack(aws, list(kinds), list(names), {"with_items": with_items, "item_limit": item_limit,
                                                          "environment": target and target.name})
    for item in items:
        for warning in item.warnings:
            where = f"{item.kind}/{item.name}" + (f" ({item.external_id})" if item.external_id else "")
            click.echo(f"warning: {where}: {warning}", err=True)
    paths = write(items, output)
    if not paths:
        click.echo("Nothing to export.", err=True)
        return EXIT_OK
    spec_set = load_specs(output)  # what was written must validate; a failure here is a bug, said plainly
    for path in paths:
        click.echo(f"wrote {path}")
    adopt = sum(1 for i in items if not i.owned and not i.skipped)
    owned = len(spec_set.specs) - adopt
    click.echo(f"{len(spec_set.specs)} spec(s) written to {output}/: {adopt} to adopt, {owned} already managed by "
               f"reconciler. Review them, commit, then `reconciler plan {output}`: "
               + ("it shows only adopt (the ownership tags) for those." if adopt
                  else "it should show no changes."))
    return EXIT_OK


@cli.command()
@_specs_arg
@click.option("--kind", "kinds", multiple=True, help="Only resources of this kind (repeatable).")
@click.option("--name", "names", multiple=True, help="Only resources of this name (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the diff of the spec files; write nothing.")
@click.option("--allow-replacement", is_flag=True,
              help="Also write live values of fields whose spec value forces replacement (a table's keys).")
@_aws_options
@_guarded
def writeback(specs: Path, kinds: tuple[str, ...], names: tuple[str, ...], dry_run: bool, allow_replacement: bool,
              opts: AwsOptions) -> int:
    """Make the spec files state the live values of drifted fields (the console was right).

    Only those values change in the files: comments, order, quoting and layout stay. Secrets are never
    written. Makes no change in AWS.
    """
    from reconciler.engine.summary import summarize_writeback
    from reconciler.engine.writeback import write_back
    from reconciler.kinds import registry

    opts.start()
    unknown = [k for k in kinds if k not in registry.kinds()]
    if unknown:
        raise ReconcilerError(f"--kind {unknown[0]!r} is not one of {', '.join(registry.kinds())}")
    spec_set = load_specs(specs)
    aws = _connect(opts, environment=spec_set.environment)
    result = _plan(spec_set, aws, opts)
    chosen = lambda c: (not kinds or c.kind in kinds) and (not names or c.name in names)  # noqa: E731
    done = write_back(result, spec_set, specs, aws, allow_replacement=allow_replacement, only=chosen)
    summary = summarize_writeback(result, done, chosen, dry_run, str(specs))
    if not opts.report:
        for entry in done.skipped:
            click.echo(f"skipped {entry.ref} {entry.path}: {entry.reason}", err=True)
        for change in result.changes:
            if change.action == "error" and chosen(change):
                click.echo(f"error: {change.ref}: {change.error}", err=True)
    if not done.written:
        if not opts.report:
            click.echo("No drift to write back.")
        _close(opts, summary)
        return EXIT_ERROR if result.has_errors else EXIT_OK
    click.echo(done.diff(), nl=False)
    files = len(done.changed_files())
    fields_ = len(done.written)
    if not dry_run:
        done.save()
    if not opts.report:
        for entry in done.written:
            click.echo(f"wrote {entry.ref} {entry.path} in {entry.file}")
        click.echo(f"Dry run: {fields_} field(s) in {files} file(s) would be written; nothing was written."
                   if dry_run else f"Wrote {fields_} field(s) to {files} file(s). Review the diff and commit it; "
                   f"`reconciler plan {specs}` now shows no change for them.")
    _close(opts, summary)
    return EXIT_ERROR if result.has_errors else EXIT_OK


@cli.command("iam-policy")
@click.argument("specs", required=False, type=click.Path(path_type=Path))
@click.option("--lease-table", default="reconciler-lease", show_default=True, envvar="RECONCILER_LEASE_TABLE",
              help="The lease table the agents use (its statement is scoped to it).")
@click.option("--lease-name", default="reconciler", show_default=True, envvar="RECONCILER_LEASE_NAME",
              help="The agents' lease name (their event queue and rule, `run --watch-events`, are named after it; "
                   "an environment's carry its name: reconciler-prod).")
@click.option("--read-only", is_flag=True,
              help="Only what `plan` reads (a pull request's plan job): no write, no lease, no event queue.")
@click.option("--watch-events", is_flag=True,
              help="Add what `run --watch-events` needs: its event queue and rule, and the trail check.")
@_guarded
def iam_policy(specs: Path | None, lease_table: str, lease_name: str, read_only: bool, watch_events: bool) -> int:
    """Print a least-privilege IAM policy for exactly the calls the agent makes; with SPECS (a spec directory or
    an environment), writes and data reads are scoped to the resources they name."""
    import json

    from reconciler.engine.iam import policy, read_only_policy

    spec_set = load_specs(specs) if specs else None
    specs_ = spec_set.specs if spec_set else None
    name = _lease_name(lease_name, spec_set.environment_name if spec_set else None)
    document = policy(lease_table, specs_, name, watch_events=watch_events)
    click.echo(json.dumps(read_only_policy(document) if read_only else document, indent=2))
    return EXIT_OK


@cli.command("sandbox")
@click.option("--port", type=click.IntRange(0, 65535), default=4566, show_default=True,
              help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--aws-time", default=None, envvar="RECONCILER_SANDBOX_TIME", metavar="instant|aws|FACTOR",
              help="How long AWS's work takes: instant, aws (AWS's typical durations) or a factor of them "
                   "(0.01: a 10-minute cache creation takes 6 s). Default: 0.01.")
@_guarded
def sandbox_cmd(port: int, aws_time: str | None) -> int:
    """Serve a local AWS (moto) on 127.0.0.1 until stopped (Ctrl-C). It keeps AWS's time."""
    try:
        from reconciler.sandbox import DEFAULT_AWS_TIME, Sandbox, parse_aws_time
    except ImportError as exc:
        raise ReconcilerError("the sandbox needs: pip install 'reconciler[sandbox]'") from exc
    try:
        factor = parse_aws_time(aws_time or DEFAULT_AWS_TIME)
    except ValueError as exc:
        raise ReconcilerError(f"--aws-time: {exc}") from None
    box = Sandbox(port=port, aws_time=factor)
    try:
        box.start()
    except OSError as exc:
        raise ReconcilerError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    pace = "instant" if factor == 0 else f"AWS's typical durations x {factor:g}"
    click.echo(f"Sandbox AWS (moto) listening on {box.endpoint} — not a real account. AWS time: {pace}.")
    click.echo("Point the agent or the AWS CLI at it:")
    for key, value in box.environment().items():
        click.echo(f"  export {key}={value}")
    click.echo(f"Distributions' domains are served at {box.edge.address} (HTTPS and HTTP; the domain as TLS name and "
               f"Host), their certificate signed by the CA in {box.edge.ca_file}, e.g.:\n"
               f"  curl --cacert {box.edge.ca_file} --connect-to ::{box.edge.address} https://DOMAIN/")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        box.stop()
    return EXIT_OK


def load_specs(root: Path) -> Any:
    """The spec set (imported here, not at start-up: `--help` stays fast)."""
    from reconciler.engine.load import load_specs as load

    return load(root)


def main() -> None:
    cli(prog_name="reconciler")


if __name__ == "__main__":
    main()
