"""`reconciler sandbox`: a local AWS (moto) on 127.0.0.1 that keeps AWS's time, until stopped."""

from __future__ import annotations

import time

import click

from reconciler.cli.options import EXIT_OK, guarded
from reconciler.core.errors import ReconcilerError


@click.command("sandbox")
@click.option("--port", type=click.IntRange(0, 65535), default=4566, show_default=True,
              help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--aws-time", default=None, envvar="RECONCILER_SANDBOX_TIME", metavar="instant|aws|FACTOR",
              help="How long AWS's work takes: instant, aws (AWS's typical durations) or a factor of them "
                   "(0.01: a 10-minute cache creation takes 6 s). Default: 0.01.")
@guarded
def sandbox(port: int, aws_time: str | None) -> int:
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
