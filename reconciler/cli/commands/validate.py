"""`reconciler validate`: the specs checked against the schemas, each other and what AWS refuses; no AWS call."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.options import EXIT_ERROR, EXIT_OK, guarded, print_spec_error, specs_arg
from reconciler.core.errors import SpecError
from reconciler.engine.load import load_specs
from reconciler.spec.environments import environment_roots


@click.command()
@specs_arg
@guarded
def validate(specs: Path) -> int:
    """Check specs against the schemas and each other. Makes no AWS call. Given a directory that holds
    environments (envs/), checks every one of them."""
    roots = environment_roots(specs)
    broken = 0
    for root in roots:
        try:
            spec_set = load_specs(root)
        except SpecError as exc:
            broken += 1
            print_spec_error(exc, f" of {root}" if len(roots) > 1 else "")
            continue
        where = f"{root} (environment {spec_set.environment_name}): " if spec_set.environment else ""
        click.echo(f"{where}{len(spec_set.specs)} resource(s) in {len(spec_set.files)} file(s): valid.")
    return EXIT_ERROR if broken else EXIT_OK
