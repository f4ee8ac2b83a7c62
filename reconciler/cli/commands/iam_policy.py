"""`reconciler iam-policy`: the least-privilege IAM policy for exactly the calls the agent makes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.cli.options import EXIT_OK, environment_lease_name, guarded
from reconciler.engine.iam import policy, read_only_policy
from reconciler.engine.load import load_specs


@click.command("iam-policy")
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
@guarded
def iam_policy(specs: Path | None, lease_table: str, lease_name: str, read_only: bool, watch_events: bool) -> int:
    """Print a least-privilege IAM policy for exactly the calls the agent makes; with SPECS (a spec directory or
    an environment), writes and data reads are scoped to the resources they name."""
    spec_set = load_specs(specs) if specs else None
    specs_ = spec_set.specs if spec_set else None
    name = environment_lease_name(lease_name, spec_set.environment_name if spec_set else None)
    document = policy(lease_table, specs_, name, watch_events=watch_events)
    click.echo(json.dumps(read_only_policy(document) if read_only else document, indent=2))
    return EXIT_OK
