"""S3 in the sandbox: moto's model with the Block Public Access rule the site's bucket relies on.

- PutBucketPolicy with a policy that makes the bucket public is refused (AccessDenied) while the bucket's
  Block Public Access has BlockPublicPolicy on; a policy already there is kept when it is turned on
  (API Reference, PublicAccessBlockConfiguration: "Setting this element to TRUE causes Amazon S3 to
  reject calls to PUT Bucket policy if the specified bucket policy allows public access. Enabling this
  setting doesn't affect existing bucket policies."). What counts as public is moto's evaluation (the
  one GetBucketPolicyStatus answers with): an Allow to any principal without a Condition.
- PutBucketTagging replaces the bucket's whole tag set, and AWS's own tags (`aws:` keys, e.g. the
  `aws:cloudformation:*` tags of a bucket CloudFormation built) must come back in it unchanged: "You can't edit
  or delete tag keys or values that begin with the aws: prefix" (AWS General Reference, "Tagging AWS
  resources", tag naming limits and requirements). A tag set that leaves one out is refused with InvalidTag
  "System Tags cannot be removed by requester", one that adds or changes one with "System tags cannot be
  added/updated by requester" (observed: cloud-custodian/cloud-custodian#2834, terraform-provider-aws#7323;
  moto refuses any `aws:` key, also an unchanged one, as S3 did in 2016: cloud-custodian#370).
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
    _keep_system_tags(backend)
    _new_bucket_defaults(backend)


def _new_bucket_defaults(backend: Any) -> None:
    """A new bucket has Block Public Access on (all four settings) and ACLs disabled (Object Ownership
    BucketOwnerEnforced), as every bucket created since April 2023: "all newly created buckets in the Region will by
    default have S3 Block Public Access enabled and access control lists (ACLs) disabled" (AWS News Blog, "Heads-Up:
    Amazon S3 Security Changes Are Coming in April of 2023"; S3 User Guide, "Blocking public access to your Amazon S3
    storage"). A request that sets Object Ownership itself (x-amz-object-ownership) still sets it after this."""
    from moto.s3.models import PublicAccessBlock

    create = backend.create_bucket

    def create_with_defaults(self: Any, bucket_name: str, region_name: str, *args: Any, **kwargs: Any) -> Any:
        bucket = create(self, bucket_name, region_name, *args, **kwargs)
        bucket.public_access_block = PublicAccessBlock(True, True, True, True)
        bucket.ownership_rule = "BucketOwnerEnforced"  # moto keeps the setting's value
        return bucket

    backend.create_bucket = create_with_defaults  # type: ignore[method-assign]


def tag_created_bucket(bucket_name: str, tags: dict[str, str]) -> None:
    """CreateBucket's own tags (CreateBucketConfiguration.Tags), which moto does not apply: "An array of tags that you
    can apply to the bucket that you're creating" (S3 API Reference, CreateBucketConfiguration)."""
    from moto.s3.models import s3_backends

    bucket = find_bucket(bucket_name)
    if bucket is None or not tags:
        return
    s3_backends[bucket.account_id][bucket.partition].put_bucket_tagging(bucket_name, tags)


def _keep_system_tags(backend: Any) -> None:
    from moto.s3.exceptions import InvalidTagError, NoSystemTags
    from moto.s3.responses import S3Response

    parse = S3Response._bucket_tagging_from_body

    def tags_as_sent(self: Any) -> dict[str, str]:
        """moto's parsing, without its refusal of every `aws:` key (the rule is the backend's, below)."""
        try:
            return parse(self)
        except NoSystemTags:
            import xmltodict

            found = xmltodict.parse(self.body)["Tagging"]["TagSet"]["Tag"]
            return {t["Key"]: t["Value"] for t in (found if isinstance(found, list) else [found])}

    put_tags = backend.put_bucket_tagging

    def put_tags_keeping_aws_own(self: Any, bucket_name: str, tags: dict[str, str]) -> None:
        bucket = self.get_bucket(bucket_name)
        current = {t["Key"]: t["Value"] for t in self.tagger.list_tags_for_resource(bucket.arn)["Tags"]}
        system = {k: v for k, v in current.items() if k.startswith("aws:")}
        if any(k not in tags for k in system):
            raise InvalidTagError("System Tags cannot be removed by requester")
        if {k: v for k, v in tags.items() if k.startswith("aws:")} != system:
            raise NoSystemTags()
        put_tags(self, bucket_name, tags)

    S3Response._bucket_tagging_from_body = tags_as_sent  # type: ignore[method-assign]
    backend.put_bucket_tagging = put_tags_keeping_aws_own  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------- anonymous reads
# A request with no signature (no Authorization header, no X-Amz-Signature in the query) is anonymous. AWS
# answers it only when the bucket allows it to everyone (S3 User Guide, "Blocking public access to your Amazon S3
# storage", and "Bucket policy examples": granting read-only permission to an anonymous user):
# - a bucket policy statement that Allows s3:GetObject to Principal "*" (or {"AWS": "*"}) on the object,
#   unless the bucket's Block Public Access has RestrictPublicBuckets on ("restricts access to a bucket with a
#   public policy to only AWS service principals and authorized users within the bucket owner's account");
# - an object ACL granting READ to AllUsers, unless IgnorePublicAcls is on ("Amazon S3 ignores all public ACLs
#   on a bucket and any objects that it contains");
# else 403 AccessDenied. moto serves anonymous requests as if signed; the sandbox's middleware asks this first.
# Statements with a Condition are not counted public (as GetBucketPolicyStatus: moto's bucket_policy_is_public).


def anonymous_read_refusal(bucket_name: str, key: str) -> str | None:
    """None when an anonymous GetObject of `key` is allowed (or there is no such bucket: moto answers that);
    else why AWS refuses it (AccessDenied)."""
    bucket = find_bucket(bucket_name)
    if bucket is None:
        return None
    block = bucket.public_access_block
    from reconciler.aws.caching import public_statement

    if public_statement(bucket.policy, bucket_name, key) and not (block and block.restrict_public_buckets):
        return None
    obj = bucket.keys.get(key)
    acl = getattr(obj, "acl", None) if obj is not None else None
    if acl is not None and acl.public_read and not (block and block.ignore_public_acls):
        return None
    return "Access Denied"


def find_bucket(name: str) -> Any:
    """The bucket of that name, in whichever of the sandbox's accounts holds it (names are global), or None."""
    from moto.s3.models import s3_backends

    for account in list(s3_backends.values()):
        bucket = account["aws"].buckets.get(name)
        if bucket is not None:
            return bucket
    return None
