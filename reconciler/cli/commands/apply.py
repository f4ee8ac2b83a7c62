"""`reconciler apply`: plan, show the plan, ask, apply it under the agents' lease; with --wait, carry it through
until AWS has finished."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from reconciler.aws.expected_durations import expected_durations
from reconciler.cli.options import (
    EXIT_ERROR,
    EXIT_OK,
    AwsOptions,
    LeaseOptions,
    aws_options,
    fail,
    guarded,
    lease_options,
    specs_arg,
)
from reconciler.cli.views.plan import render_plan
from reconciler.cli.views.report import close, render_report, summarize
from reconciler.core.errors import ReconcilerError
from reconciler.core.vocabulary import Action
from reconciler.engine.apply import ApplyReport, apply_plan
from reconciler.engine.converge import Converging, carry_through, holding_lease
from reconciler.engine.plan import planned
from reconciler.engine.targets import plan_target


@click.command()
@specs_arg
@click.option("--auto-approve", is_flag=True, help="Apply without asking (for scripts and CI).")
@click.option("--wait", "wait_s", type=click.IntRange(1), default=None, is_flag=False, flag_value=1800,
              help="Carry the changes through (up to SECONDS, default 1800): wait while AWS works, then take the "
                   "next steps, until everything is applied and deployed.")
@lease_options
@aws_options
@guarded
def apply(specs: Path, auto_approve: bool, wait_s: int | None, opts: AwsOptions, lease_opts: LeaseOptions) -> int:
    """Plan, show the plan, ask, and apply it."""
    opts.start()
    # a hand-run apply: `manual: true` windows let it through
    done = plan_target(specs, opts.connect, workers=opts.workers, max_destroy=opts.max_destroy, manual=True)
    result, spec_set, aws = done.plan, done.spec_set, done.aws
    click.echo(render_plan(result))
    if not any(c.applicable or c.refused or c.action == Action.ERROR for c in result.changes):
        close(opts.report, summarize(result, ApplyReport(), expected_durations(), again="run `reconciler apply`"))
        return EXIT_OK
    if any(c.applicable for c in result.changes) and not auto_approve and not _approved():
        click.echo("Apply cancelled.")
        return EXIT_ERROR
    lease = lease_opts.make(aws, spec_set.environment_name)
    with holding_lease(lease, _say_waiting(lease.name if lease else "")) as still_held:
        report = apply_plan(result, aws, should_stop=lambda: not still_held())
        if not opts.report:  # on a terminal, the closing report says it
            click.echo()
            click.echo(render_report(report))
        waiting: list[str] = []
        if wait_s and report.outcomes and still_held():
            how = Converging(replan=lambda: planned(spec_set, aws, workers=opts.workers,
                                                    max_destroy=opts.max_destroy, manual=True),
                             still_held=still_held, on_progress=_progress_line(), on_settled=_end_progress_line,
                             on_report=lambda more: None if opts.report else click.echo(render_report(more)))
            waiting = carry_through(report, aws, wait_s, how)
        lease_lost = not still_held()
    busy = {w.split(" ")[0] for w in waiting}  # --wait: what AWS still works on at the timeout; the rest is done
    finished = frozenset(c.ref for c in result.changes if c.ref not in busy) if wait_s else frozenset()
    close(opts.report, summarize(result, report, expected_durations(), finished=finished,
                                 again=f"run `reconciler apply{' --wait' if wait_s else ''}`"))
    if lease_lost:
        fail("the lease could not be renewed during apply: the changes not listed above were not applied")
        return EXIT_ERROR
    if waiting:
        fail(f"still in progress after {wait_s}s: {', '.join(waiting)}")
        return EXIT_ERROR
    if wait_s and report.outcomes and report.ok and not opts.report:
        click.echo("All changes are applied and deployed.")
    return EXIT_OK if report.ok else EXIT_ERROR


def _approved() -> bool:
    """Asked on a terminal; anywhere else --auto-approve is needed."""
    if not sys.stdin.isatty():
        raise ReconcilerError("apply needs --auto-approve when not run on a terminal")
    click.echo()
    return click.prompt("Do you want to perform these actions? Only 'yes' will be accepted",
                        default="", show_default=False) == "yes"


def _say_waiting(name: str) -> Callable[[str, float], None]:
    def waiting(holder: str, seconds: float) -> None:
        click.echo(f"Waiting for the lease {name!r}: {holder} holds it; if it does not renew it within "
                   f"{seconds:g}s it has stopped and this apply takes over (Ctrl-C to give up)...", err=True)
    return waiting


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


def _end_progress_line() -> None:
    if sys.stdout.isatty():
        click.echo()
