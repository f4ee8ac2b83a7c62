"""`reconciler health`: each Redis cluster's data path and each site as its visitors get it, step by step."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.aws.expected_durations import expected_durations
from reconciler.checks.redis import parse_endpoint
from reconciler.checks.run import check_clusters, check_sites, sites_now
from reconciler.cli.options import EXIT_ERROR, EXIT_OK, AwsOptions, aws_options, guarded, specs_arg
from reconciler.cli.views.health import HEALTH_VIEWS
from reconciler.core.errors import ReconcilerError
from reconciler.engine.load import load_specs
from reconciler.spec.documents import Spec


@click.command()
@specs_arg
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
@aws_options
@guarded
def health(specs: Path, endpoint: str | None, names: tuple[str, ...], as_json: bool, ca_file: str | None,
           tls: bool | None, opts: AwsOptions) -> int:
    """Check each Redis cluster's data path (DNS, TCP, TLS, AUTH, PING, SET/GET/DEL) and each site as its visitors
    get it, through the distribution (DNS, TLS, redirect, content against what was published, the bucket closed)."""
    view = HEALTH_VIEWS["json" if as_json else "text"]
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
        try:
            parse_endpoint(endpoint)
        except ReconcilerError as exc:
            raise ReconcilerError(f"--endpoint: {exc}") from None
    needs_aws = opts.sandbox or bool(sites) or any(_needs_aws(s, endpoint) for s in clusters)
    aws = opts.connect(environment=spec_set.environment) if needs_aws else None
    redis = check_clusters(clusters, aws, endpoint, tls=tls, ca_file=ca_file)
    checked = check_sites(sites_now(spec_set, sites, aws), aws, durations=expected_durations(),
                          ca_file=ca_file) if sites and aws is not None else []
    click.echo(view(redis, checked))
    return EXIT_OK if all(r.healthy for r in [*redis, *checked]) else EXIT_ERROR


def _needs_aws(spec: Spec, endpoint: str | None) -> bool:
    """A cluster's check reads AWS for its live endpoint, or for its token (anything but an environment
    variable)."""
    token = spec.spec.get("authToken") or {}
    has_endpoint = endpoint or (spec.spec.get("healthCheck") or {}).get("endpoint")
    return not has_endpoint or any(k != "fromEnv" for k in token)
