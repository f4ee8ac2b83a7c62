"""A local AWS (moto on loopback) that keeps AWS's time and answers with AWS's errors.

Nothing here is used against a real account.
"""

from reconciler.sandbox.clock import TYPICAL_DURATIONS, AwsTime, parse_aws_time
from reconciler.sandbox.requests import is_read
from reconciler.sandbox.server import DEFAULT_AWS_TIME, ISOLATE, SANDBOX_REGION, Sandbox, enter_sandbox

__all__ = ["DEFAULT_AWS_TIME", "ISOLATE", "SANDBOX_REGION", "TYPICAL_DURATIONS", "AwsTime", "Sandbox", "enter_sandbox",
           "is_read", "parse_aws_time"]
