"""The one way a command or the agent reaches AWS: the Aws handle with its rate limits and trimmed models, the
sandbox started first when asked, an environment's Region, role and account checked before anything else."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from reconciler.aws.client import Aws
from reconciler.aws.ratelimit import RateLimiter, parse_limits
from reconciler.core.errors import ReconcilerError
from reconciler.spec.environments import Environment, assume_environment


@dataclass(frozen=True)
class Connection:
    """How to reach AWS (the flags every AWS-facing command shares)."""

    sandbox: bool = False
    profile: str | None = None
    region: str | None = None
    retry_mode: str | None = None
    workers: int = 16
    rate_limits: tuple[str, ...] = field(default_factory=tuple)


def connect(connection: Connection, *, agent_calls: bool = True, environment: Environment | None = None,
            role_arn: str | None = None, on_sandbox: Callable[[str], None] | None = None) -> Aws:
    """The Aws handle. `agent_calls`: only the agent's calls are made (those of its IAM policy), so clients load
    botocore's models trimmed to them (a fifth of a plan's CPU; the daemon's memory: aws/trimmed.py). With an
    `environment`: its Region, its role (`role_arn` instead when given; "none": the credentials as they are),
    and its account, checked before anything else. With `connection.sandbox`, a local AWS is started first and
    `on_sandbox` is told, in words, what was started."""
    limiter = RateLimiter(parse_limits(connection.rate_limits))
    profile, region = connection.profile, connection.region
    wanted = environment.aws.region if environment is not None else None
    if wanted and region and region != wanted:
        raise ReconcilerError(f"--region {region}, but {environment.file} puts environment {environment.name!r} "
                              f"in {wanted}; leave --region out")
    if connection.sandbox:
        said = _start_sandbox()
        if on_sandbox is not None:
            on_sandbox(said)
        profile, region = None, None
    aws = Aws(profile=profile, region=wanted or region, retry_mode=connection.retry_mode,
              pool_size=max(10, connection.workers), limiter=limiter)
    aws.check_configured()
    if agent_calls:
        from reconciler.aws.trimmed import use_trimmed
        from reconciler.core.statedir import state_dir
        from reconciler.engine.iam import agent_actions

        use_trimmed(aws.session, agent_actions(), state_dir() / "models")  # before any client
    if environment is not None:
        _reach(aws, environment, role_arn)
    return aws


def _start_sandbox() -> str:
    """Start the embedded sandbox (it lives as long as this process); what was started, in words."""
    try:
        from reconciler.sandbox import enter_sandbox
    except ImportError as exc:
        raise ReconcilerError("--sandbox needs the sandbox extra: pip install 'reconciler[sandbox]'") from exc
    try:
        box = enter_sandbox(os.environ)
    except ValueError as exc:
        raise ReconcilerError(f"RECONCILER_SANDBOX_TIME: {exc}") from None
    pace = "instant" if box.clock.factor == 0 else f"AWS's typical durations x {box.clock.factor:g}"
    return (f"SANDBOX: using a local AWS (moto) at {box.endpoint} (AWS time: {pace}; RECONCILER_SANDBOX_TIME "
            "sets it).\nNo real AWS account is touched; everything in it is gone when this command exits.")


def _reach(aws: Aws, environment: Environment, role_arn: str | None) -> None:
    """Assume the environment's role and check its account (environments.reach), saying what was reached."""
    if role_arn is not None:
        target = dataclasses.replace(environment.aws, role_arn=None if role_arn.lower() == "none" else role_arn)
        environment = dataclasses.replace(environment, aws=target)
    identity = assume_environment(aws, environment)
    structlog.get_logger().info("environment.reached", environment=environment.name, region=aws.region,
                                account=identity and identity["Account"], arn=identity and identity["Arn"])
