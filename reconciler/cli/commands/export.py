"""`reconciler export`: specs written for live resources (to adopt a stack built by hand); no change in AWS."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.options import EXIT_OK, AwsOptions, aws_options, guarded
from reconciler.core.errors import ReconcilerError, SpecError
from reconciler.engine.export import export_stack, write
from reconciler.engine.load import load_specs
from reconciler.kinds import registry
from reconciler.spec.environments import environment_file, read_environment


@click.command()
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
@aws_options
@guarded
def export(environment: Path | None, kinds: tuple[str, ...], names: tuple[str, ...], output: Path, with_items: bool,
           item_limit: int, opts: AwsOptions) -> int:
    """Write specs for live resources (to adopt a stack built by hand). Makes no change in AWS. With ENVIRONMENT
    (envs/prod), in that environment's account and Region, as its agent sees them."""
    opts.start()
    unknown = [k for k in kinds if k not in registry.kinds()]
    if unknown:
        raise ReconcilerError(f"--kind {unknown[0]!r} is not one of {', '.join(registry.kinds())}")
    target = None
    if environment is not None:
        found = environment_file(environment)
        if found is None:
            raise ReconcilerError(f"{environment} is not an environment (no environment.yaml of kind Environment)")
        target, problems = read_environment(found)
        if target is None:
            raise SpecError(problems)
    # export reads what the agent never does (every table, every group)
    aws = opts.connect(agent_calls=False, environment=target)
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
