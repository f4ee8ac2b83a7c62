"""A local AWS (moto on loopback) that keeps AWS's time and answers with AWS's errors.

Nothing here is used against a real account.
"""

from reconciler.sandbox.clock import DURATIONS, AwsTime, parse_aws_time
from reconciler.sandbox.server import DEFAULT_AWS_TIME, ISOLATE, SANDBOX_REGION, Sandbox, enter_sandbox, is_read

__all__ = ["DEFAULT_AWS_TIME", "DURATIONS", "ISOLATE", "SANDBOX_REGION", "AwsTime", "Sandbox", "enter_sandbox",
           "is_read", "parse_aws_time"]
