"""`reconciler plan`: what apply would change, per target, in the format asked for. Never writes anything."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.options import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    AwsOptions,
    aws_options,
    guarded,
    spec_error_text,
    specs_arg,
)
from reconciler.cli.views.plan import PLAN_VIEWS, TextPlan
from reconciler.core.errors import ReconcilerError
from reconciler.engine.targets import plan_target, plan_targets


@click.command()
@specs_arg
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
@aws_options
@guarded
def plan(specs: Path, fmt: str, as_json: bool, changed_since: str | None, role_arn: str | None,
         detailed_exitcode: bool, opts: AwsOptions) -> int:
    """Show what apply would change. Never writes anything."""
    view = PLAN_VIEWS["json" if as_json else fmt]
    opts.start()
    targets = plan_targets(specs, changed_since)
    if not targets:
        click.echo(view.nothing(f"No environment's files changed since {changed_since}: nothing to plan."))
        return EXIT_OK
    codes, documents = [], []
    for target in targets:
        code, document = _plan_one(target, view, role_arn, detailed_exitcode, opts, several=len(targets) > 1)
        codes.append(code)
        documents.append(document)
    click.echo(view.join(documents))
    return EXIT_ERROR if EXIT_ERROR in codes else max(codes)


def _plan_one(target: Path, view: TextPlan, role_arn: str | None, detailed_exitcode: bool, opts: AwsOptions,
              several: bool) -> tuple[int, str]:
    """Plan one spec directory or environment: (exit code, the rendered plan). A spec or AWS error of one
    environment is its plan's content when there are several (and always in a pull request's comment), not the
    end of the others."""
    try:
        done = plan_target(target, opts.connect, workers=opts.workers, max_destroy=opts.max_destroy,
                           role_arn=role_arn)
    except ReconcilerError as exc:
        if not several and not view.shows_failures:
            raise
        return EXIT_ERROR, view.failed(target, spec_error_text(exc))
    rendered = view.plan(done.plan, target, done.spec_set.environment, several)
    if done.plan.has_errors:
        return EXIT_ERROR, rendered
    return (EXIT_CHANGES if detailed_exitcode and done.plan.has_changes else EXIT_OK), rendered
