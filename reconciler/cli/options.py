"""What every command shares: the AWS and lease flags (each group handed to a command as one object), the specs
argument, exit codes, and the guard that turns a user's mistake into one clear message instead of a traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.core.duration_text import parse_duration
from reconciler.core.errors import ReconcilerError, SpecError
from reconciler.core.log import configure_logging

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.engine.lease import Lease

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def fail(message: str) -> None:
    """`Error: message` on stderr."""
    click.echo(click.style("Error: ", fg="red", bold=True) + message, err=True)


def print_spec_error(exc: SpecError, where: str = "") -> None:
    """Every problem of a spec set that did not load, one per line (file, line, field)."""
    n = len(exc.problems)
    fail(f"{n} problem{'s' if n != 1 else ''} in the specs{where}; nothing was planned or changed:")
    for problem in exc.problems:
        click.echo(f"  {problem}", err=True)


def spec_error_text(exc: ReconcilerError) -> str:
    """An error of one target, as the content of its plan when there are several."""
    if isinstance(exc, SpecError):
        return "\n".join([f"{len(exc.problems)} problem(s) in the specs:", *(f"  {p}" for p in exc.problems)])
    return str(exc)


def guarded(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Run a command; user mistakes become one clear message and exit 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except SpecError as exc:
            print_spec_error(exc)
            code = EXIT_ERROR
        except ReconcilerError as exc:
            fail(str(exc))
            code = EXIT_ERROR
        except KeyboardInterrupt:
            fail("interrupted")
            code = 130
        except Exception as exc:  # a bug, not a user mistake: one line unless debugging
            if os.environ.get("RECONCILER_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} "
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
        color = not (self.no_color or os.environ.get("NO_COLOR"))
        if not color:
            context: click.Context | None = click.get_current_context()
            while context is not None:  # click.echo asks the innermost context
                context.color = False
                context = context.parent
        level = self.log_level or ("warning" if reports and self.report else default_level)
        json_output = {"json": True, "console": False}.get(self.log_format)
        configure_logging(level, json_output=json_output, color=None if color else False)

    def connect(self, **how: Any) -> Aws:
        """The Aws handle (engine/connect.py), the sandbox's banner said on stderr when it starts one. Imported here:
        a command that calls no AWS (validate, iam-policy) never loads boto3."""
        from reconciler.engine.connect import Connection, connect

        connection = Connection(sandbox=self.sandbox, profile=self.profile, region=self.region,
                                retry_mode=self.retry_mode, workers=self.workers, rate_limits=self.rate_limits)
        return connect(connection, on_sandbox=lambda said: click.echo(click.style(said, fg="yellow", bold=True),
                                                                     err=True), **how)


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
        return Lease(aws, table=self.lease_table, name=environment_lease_name(self.lease_name, environment),
                     duration_s=parse_duration(self.lease_duration, "--lease-duration"))


def environment_lease_name(name: str, environment: str | None) -> str:
    """The lease (and event queue) name of an environment's agents: `<name>-<environment>`."""
    return f"{name}-{environment}" if environment else name


def option_group(cls: type, param: str, options: list[Callable[..., Any]]) -> Callable[..., Any]:
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


lease_options = option_group(LeaseOptions, "lease_opts", [
    click.option("--no-lease", is_flag=True, envvar="RECONCILER_NO_LEASE",
                 help="Apply without taking the single-writer lease (only when no agent runs on this stack)."),
    click.option("--lease-table", default="reconciler-lease", show_default=True, envvar="RECONCILER_LEASE_TABLE",
                 help="DynamoDB table holding the lease (the agent creates it when absent)."),
    click.option("--lease-name", default="reconciler", show_default=True, envvar="RECONCILER_LEASE_NAME",
                 help="The lease's key: agents sharing it never apply at the same time (one per stack)."),
    click.option("--lease-duration", default="60s", show_default=True, envvar="RECONCILER_LEASE_DURATION",
                 help="How long a lease outlives its holder's last renewal (renewed every third of it)."),
])

aws_options = option_group(AwsOptions, "opts", [
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
])

specs_arg = click.argument("specs", default="specs", type=click.Path(path_type=Path), envvar="RECONCILER_SPECS")

