"""`reconciler writeback`: the spec files made to state the live values of drifted fields; no change in AWS."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.options import EXIT_ERROR, EXIT_OK, AwsOptions, aws_options, guarded, specs_arg
from reconciler.cli.views.report import close, summarize_writeback
from reconciler.core.errors import ReconcilerError
from reconciler.core.vocabulary import Action
from reconciler.engine.targets import plan_target
from reconciler.engine.writeback import write_back
from reconciler.kinds import registry


@click.command()
@specs_arg
@click.option("--kind", "kinds", multiple=True, help="Only resources of this kind (repeatable).")
@click.option("--name", "names", multiple=True, help="Only resources of this name (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the diff of the spec files; write nothing.")
@click.option("--allow-replacement", is_flag=True,
              help="Also write live values of fields whose spec value forces replacement (a table's keys).")
@aws_options
@guarded
def writeback(specs: Path, kinds: tuple[str, ...], names: tuple[str, ...], dry_run: bool, allow_replacement: bool,
              opts: AwsOptions) -> int:
    """Make the spec files state the live values of drifted fields (the console was right).

    Only those values change in the files: comments, order, quoting and layout stay. Secrets are never
    written. Makes no change in AWS.
    """
    opts.start()
    unknown = [k for k in kinds if k not in registry.kinds()]
    if unknown:
        raise ReconcilerError(f"--kind {unknown[0]!r} is not one of {', '.join(registry.kinds())}")
    done_plan = plan_target(specs, opts.connect, workers=opts.workers, max_destroy=opts.max_destroy)
    spec_set, aws, result = done_plan.spec_set, done_plan.aws, done_plan.plan
    chosen = lambda c: (not kinds or c.kind in kinds) and (not names or c.name in names)  # noqa: E731
    done = write_back(result, spec_set, specs, aws, allow_replacement=allow_replacement, only=chosen)
    summary = summarize_writeback(result, done, chosen, dry_run, str(specs))
    if not opts.report:
        for entry in done.skipped:
            click.echo(f"skipped {entry.ref} {entry.path}: {entry.reason}", err=True)
        for change in result.changes:
            if change.action == Action.ERROR and chosen(change):
                click.echo(f"error: {change.ref}: {change.error}", err=True)
    if not done.written:
        if not opts.report:
            click.echo("No drift to write back.")
        close(opts.report, summary)
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
    close(opts.report, summary)
    return EXIT_ERROR if result.has_errors else EXIT_OK
