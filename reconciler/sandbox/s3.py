"""S3 in the sandbox: moto's model with the Block Public Access rule the site's bucket relies on.

- PutBucketPolicy with a policy that makes the bucket public is refused (AccessDenied) while the bucket's
  Block Public Access has BlockPublicPolicy on; a policy already there is kept when it is turned on
  (API Reference, PublicAccessBlockConfiguration: "Setting this element to TRUE causes Amazon S3 to
  reject calls to PUT Bucket policy if the specified bucket policy allows public access. Enabling this
  setting doesn't affect existing bucket policies."). What counts as public is moto's evaluation (the
  one GetBucketPolicyStatus answers with): an Allow to any principal without a Condition.
"""

from __future__ import annotations

from typing import Any


def patch_moto_s3() -> None:
    """Install the rule above into moto's S3 model (idempotent)."""
    from moto.s3 import models
    from moto.s3.exceptions import S3AccessDeniedError
    from moto.s3.utils import bucket_policy_is_public

    backend = models.S3Backend
    if getattr(backend, "_reconciler_patched", False):
        return
    backend._reconciler_patched = True  # type: ignore[attr-defined]

    put_policy = backend.put_bucket_policy

    def put_policy_unless_blocked(self: Any, bucket_name: str, policy: bytes) -> None:
        block = self.get_bucket(bucket_name).public_access_block
        if block is not None and block.block_public_policy and bucket_policy_is_public(policy):
            raise S3AccessDeniedError()
        put_policy(self, bucket_name, policy)

    backend.put_bucket_policy = put_policy_unless_blocked  # type: ignore[method-assign]
