"""CloudFront: the `Distribution` kind's verbs, with its Origin Access Control and the bucket policy that lets
only this distribution read its S3 origin. Beside it: the spec <-> DistributionConfig mapping (config.py),
CloudFront's calls (calls.py), the bucket policy, S3's part (policy.py), AWS's limits on invalidations
(invalidations.py), validation (validate.py) and export (export.py).

AWS facts that shape this module:
- A distribution has no name: it is found again by its ownership tags (one ListDistributions
  per cycle, shared by every spec), or by `metadata.externalId`. CreateDistributionWithTags
  is atomic, and its CallerReference is derived from the spec name, so a retried create
  cannot make a second distribution.
- UpdateDistribution takes the *whole* DistributionConfig with the ETag of the version it
  was based on (IfMatch); a stale ETag fails with PreconditionFailed: re-read, retry once.
- Changes deploy for minutes (Status InProgress); AWS accepts further updates meanwhile, so
  they never wait; apply does not wait for the deployment unless asked (--wait).
- Deleting needs the distribution disabled *and* deployed first: disable (one step), then, in a
  later cycle once Deployed, delete.
- Invalidations: a repeated CallerReference with the same paths returns the existing
  invalidation instead of creating one, so (paths, revision) -> CallerReference makes
  issuing idempotent. Which pairs were issued is recorded in the tag
  `reconciler:invalidations` (short hashes), so planning needs no call per invalidation
  (ListInvalidations does not return CallerReferences).
- Invalidations stay within AWS's limits in progress (invalidations.py): what does not fit now waits
  for a later cycle, shown as pending; one that could never fit is refused at `validate`.
- OACs cannot be tagged: the agent's OAC is named `reconciler-<spec name>`. AWS refuses to delete an
  OAC a distribution still uses (OriginAccessControlInUse): it is deleted only once none does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.core.diff import Field, diff_fields
from reconciler.core.types import NAME_TAG, FieldChange, Live, Step, owned_by
from reconciler.kinds import register
from reconciler.kinds.base import Resource
from reconciler.kinds.distribution.calls import (
    delete_oac_unless_used,
    ensure_oac,
    find_distribution,
    invalidate,
    list_oacs,
    read_tags,
    update_config,
    update_tags,
)
from reconciler.kinds.distribution.config import (
    CONFIG_FIELDS,
    DEFAULT_CACHE_POLICY,
    DEFAULT_VIEWER_POLICY,
    INTERNAL_TAGS,
    OAC_TAG,
    behavior_shape,
    cache_policy_name,
    config_state,
    invalidation_hash,
    invalidation_key,
    invalidation_shape,
    issued_hashes,
    oac_name,
    recorded_oac,
)
from reconciler.kinds.distribution.export import export_distributions
from reconciler.kinds.distribution.policy import bucket_policy, normalise_policy, put_bucket_policy, read_bucket_policy
from reconciler.kinds.distribution.validate import check_distribution, create_args, create_requests
from reconciler.kinds.interfaces import EventMatched, Exportable, IamScoped, Validated
from reconciler.kinds.tags import observed_tags

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.spec.documents import Spec

log = structlog.get_logger()
# MANAGED_CACHE_POLICIES (name -> id) lives in cdn.py, with their TTLs: the site check and the sandbox's edge
# read them too.

# What AWS assigns, in the shapes AWS gives them (requests() builds the calls before they exist)
_PLACEHOLDER_OAC, _PLACEHOLDER_ID, _PLACEHOLDER_ACCOUNT = "E0000000000000", "E0000000000000", "000000000000"


@register
class Distribution(Resource, Validated, IamScoped, EventMatched, Exportable):
    """A CloudFront distribution serving an S3 bucket through Origin Access Control."""

    kind = "Distribution"
    tagging_type = "cloudfront:distribution"  # its type in the Resource Groups Tagging API
    # UpdateDistribution {id}, TagResource {resource: ARN}; the bucket policy it manages: PutBucketPolicy
    event_keys = {"cloudfront.amazonaws.com": ("id", "resource"), "s3.amazonaws.com": ("bucketName",)}
    service = "cloudfront"
    order = 30
    takes = {"create": "cloudfront.deploy", "update": "cloudfront.deploy"}
    fields = (
        Field("enabled", default=True, api="Enabled"),
        Field("comment", default="", api="Comment"),
        Field("origin", api="Origins, OriginAccessControlId"),
        Field("bucketPolicy", api="s3:PutBucketPolicy on the origin bucket"),
        Field("defaultRootObject", default="", api="DefaultRootObject"),
        Field("aliases", default=[], mode="set", api="Aliases"),
        Field("certificateArn", default=None, api="ViewerCertificate"),
        Field("priceClass", default="PriceClass_All", api="PriceClass"),
        Field("viewerProtocolPolicy", default=DEFAULT_VIEWER_POLICY, api="DefaultCacheBehavior.ViewerProtocolPolicy"),
        Field("cachePolicy", default=DEFAULT_CACHE_POLICY, api="DefaultCacheBehavior.CachePolicyId"),
        Field("behaviors", default=[], api="CacheBehaviors (ordered)"),
        Field("invalidations", mode="keyed", key=invalidation_key, prune=False, api="CreateInvalidation"),
        Field("tags", default={}, mode="map", api="Tags"),
    )
    iam_actions = (
        "cloudfront:ListDistributions", "cloudfront:GetDistribution", "cloudfront:GetDistributionConfig",
        "cloudfront:ListTagsForResource", "cloudfront:ListOriginAccessControls",
        "cloudfront:CreateDistribution", "cloudfront:UpdateDistribution",
        "cloudfront:DeleteDistribution", "cloudfront:TagResource", "cloudfront:UntagResource",
        "cloudfront:CreateOriginAccessControl", "cloudfront:DeleteOriginAccessControl",
        "cloudfront:GetOriginAccessControl", "cloudfront:CreateInvalidation", "cloudfront:ListInvalidations",
        "cloudfront:GetInvalidation",
        "s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
    )
    # A distribution's id is random: its writes are allowed on distributions tagged as the agent's; the
    # create carries those tags in the request; Origin Access Controls cannot be tagged.
    iam_tagged = ("cloudfront:UpdateDistribution", "cloudfront:DeleteDistribution", "cloudfront:TagResource",
                  "cloudfront:UntagResource", "cloudfront:CreateInvalidation")
    # CreateDistributionWithTags needs cloudfront:TagResource too, on a distribution that has no tags yet: allowed by
    # the tags in the request
    iam_request_tagged = ("cloudfront:CreateDistribution", "cloudfront:TagResource")
    iam_unscoped = ("cloudfront:CreateOriginAccessControl", "cloudfront:DeleteOriginAccessControl")

    @classmethod
    def iam_resources(cls, spec: Spec | None) -> dict[str, list[str]]:
        bucket = spec.spec["origin"]["bucket"] if spec else "*"
        return {"s3": [f"arn:aws:s3:::{bucket}"]}  # the origin bucket's policy

    check_spec = staticmethod(check_distribution)  # the optional interfaces, from the kind's own modules
    requests = create_requests
    export = staticmethod(export_distributions)

    # ------------------------------------------------------------------ spec

    @property
    def bucket(self) -> str:
        return str(self.spec.spec["origin"]["bucket"])

    @property
    def oac(self) -> str:
        """The Origin Access Control's name: an existing one the spec names, or the agent's own."""
        return str(self.spec.spec["origin"].get("originAccessControl") or oac_name(self.name, self.spec.environment))

    def dependencies(self) -> list[str]:
        return [f"Bucket/{self.bucket}"]

    def event_ids(self, live: Live | None) -> set[str]:
        return (super().event_ids(live) - {self.name}) | {self.bucket}  # its id, not its spec name

    def desired(self, arn: str | None = None) -> dict[str, Any]:
        spec = self.spec.spec
        state = super().desired()
        state["origin"] = {"bucket": self.bucket, "accessControl": self.oac}
        state["bucketPolicy"] = (normalise_policy(bucket_policy(self.bucket, arn)) if arn
                                 else "(allows only this distribution; its ARN is known after apply)")
        state["cachePolicy"] = cache_policy_name(spec.get("cachePolicy", DEFAULT_CACHE_POLICY))
        state["behaviors"] = [behavior_shape(b) for b in spec.get("behaviors") or []]
        state["invalidations"] = [invalidation_shape(e) for e in spec.get("invalidations") or []]
        return state

    def diff(self, live: Live | None) -> list[FieldChange]:
        desired = self.desired(live.extra["arn"] if live else None)
        return diff_fields(self.fields, desired, live.state if live else {}, stated=self.spec.spec.keys())

    # ------------------------------------------------------------------ observe

    def observe(self, aws: Aws) -> Live | None:
        cf = aws.client("cloudfront")
        answer = self._from_listing(aws)
        if answer is not None:
            summary, tags = answer["Distribution"], answer["tags"]
        else:
            found = self._find(aws)
            if found is None:
                return None
            summary, tags = found
            answer = cf.get_distribution_config(Id=summary["Id"])
        config = answer.get("DistributionConfig") or summary["DistributionConfig"]
        oacs = recorded_oac(config, tags) or aws.cached("cloudfront:oacs", lambda: list_oacs(cf))
        state = config_state(config, oacs)
        state["bucketPolicy"] = read_bucket_policy(aws.client("s3"), self.bucket)
        issued = issued_hashes(tags)
        state["invalidations"] = [e for e in self.desired()["invalidations"] if invalidation_hash(e) in issued]
        visible = {k: v for k, v in tags.items() if k not in INTERNAL_TAGS}
        state["tags"] = visible
        status = summary.get("Status", "Deployed")
        modified = summary.get("LastModifiedTime")
        return Live(id=summary["Id"], state=state, tags=tags,
                    pending=None if status == "Deployed" else f"deployment {status}",
                    pending_since=modified.isoformat() if status != "Deployed" and hasattr(modified, "isoformat")
                    else None,
                    extra={"arn": summary["ARN"], "etag": answer["ETag"], "config": config, "issued": issued,
                           "domain": summary.get("DomainName")})

    def _from_listing(self, aws: Aws) -> dict[str, Any] | None:
        """GetDistribution (its config, state and ETag in one answer) of the distribution the cycle's bulk
        tag listing names for this spec; None when the listing does not settle it (then: _find)."""
        if self.spec.metadata.external_id:
            return None
        listed = [(arn, tags) for arn in aws.listed_arns() or [] if arn.startswith("arn:aws:cloudfront:")
                  and (tags := aws.listed_tags(self.ref, arn)) is not None and tags.get(NAME_TAG) == self.name
                  and owned_by(tags, self.spec.environment)]
        if len(listed) != 1:
            return None
        arn, _ = listed[0]
        cf = aws.client("cloudfront")
        try:
            answer = cf.get_distribution(Id=arn.rsplit("/", 1)[-1])
        except cf.exceptions.NoSuchDistribution:
            return None  # deleted since the listing was taken
        hashes = {invalidation_hash(e) for e in self.desired()["invalidations"]}
        answer["tags"] = observed_tags(aws, self.ref, arn, lambda: read_tags(aws, arn),
                                            agrees=lambda tags: hashes <= issued_hashes(tags))
        return answer

    def _find(self, aws: Aws) -> tuple[dict[str, Any], dict[str, str]] | None:
        """This spec's distribution: by externalId, else by its ownership tags; never by guessing."""
        return find_distribution(aws, self.name, self.spec.metadata.external_id, self.spec.environment)


    # ------------------------------------------------------------------ create / update / delete

    def create(self, aws: Aws) -> None:
        cf = aws.client("cloudfront")
        oac_id = ensure_oac(self, cf)
        created = cf.create_distribution_with_tags(**create_args(self, oac_id, aws.region or "us-east-1"))[
            "Distribution"]
        put_bucket_policy(aws.client("s3"), self.bucket, created["ARN"])

    def update(self, aws: Aws, live: Live, changes: Sequence[FieldChange]) -> None:
        cf = aws.client("cloudfront")
        fields = {c.path.split(".", 2)[1].split("[", 1)[0] for c in changes}
        config_fields = fields & CONFIG_FIELDS
        if config_fields:
            oac_id = ensure_oac(self, cf) if "origin" in config_fields else None
            update_config(self, cf, live, config_fields, oac_id, aws.region or "us-east-1")
            if oac_id:  # recorded: later cycles name the OAC without listing them all
                cf.tag_resource(Resource=live.extra["arn"], Tags={"Items": [
                    {"Key": OAC_TAG, "Value": f"{oac_id}:{self.oac}"}]})
        if "bucketPolicy" in fields:
            put_bucket_policy(aws.client("s3"), self.bucket, live.extra["arn"])
        tag_changes = [c for c in changes if c.path.startswith("spec.tags.")]
        if tag_changes:
            update_tags(cf, live.extra["arn"], tag_changes)
        new = [c.after for c in changes if c.path.startswith("spec.invalidations[") and c.after]
        if new:
            invalidate(self, cf, live, new)

    def delete(self, aws: Aws, live: Live) -> None:
        """The bucket policy that allowed it and the agent's Origin Access Control (once no distribution uses it),
        then DeleteDistribution (AWS takes it once the distribution is disabled and Deployed). The distribution
        goes last: it is what finds the rest again, so an agent killed half-way finishes the job next time."""
        cf = aws.client("cloudfront")
        if normalise_policy(live.state.get("bucketPolicy")) == normalise_policy(
                bucket_policy(self.bucket, live.extra["arn"])):
            aws.client("s3").delete_bucket_policy(Bucket=self.bucket)
        for oac_id, name in list_oacs(cf).items():
            if name == oac_name(self.name, self.spec.environment):
                delete_oac_unless_used(self, cf, oac_id, live.id)
        etag = cf.get_distribution_config(Id=live.id)["ETag"]
        cf.delete_distribution(Id=live.id, IfMatch=etag)

    def steps(self, aws: Aws, action: str, live: Live | None, changes: Sequence[FieldChange]) -> list[Step]:
        """AWS accepts updates while a distribution deploys, so they never wait; deleting does:
        disable, wait until that is Deployed (later cycles), then delete."""
        if action != "delete" or live is None:
            steps = super().steps(aws, action, live, changes)
            for step in steps:
                step.wait = None
            return steps
        cf = lambda: aws.client("cloudfront")  # noqa: E731
        steps = []
        config = live.extra["config"]
        origins = (config.get("Origins") or {}).get("Items") or []
        if config.get("Enabled") or any(o.get("OriginAccessControlId") for o in origins):
            detached = dict(config, Enabled=False, Origins={**config["Origins"], "Items": [
                {**o, "OriginAccessControlId": ""} for o in origins]})
            steps.append(Step("UpdateDistribution: disable, and detach the Origin Access Control (deploys for "
                              "minutes)", lambda: cf().update_distribution(
                                  Id=live.id, IfMatch=live.extra["etag"], DistributionConfig=detached), settles=True,
                              takes="cloudfront.deploy"))
        deploying = live.pending if live.pending and not steps else None
        steps.append(Step(f"delete the bucket policy and the Origin Access Control, then DeleteDistribution {live.id}",
                          lambda: self.delete(aws, live), wait=deploying and f"{deploying} (the disable must be "
                                                                              "Deployed before AWS deletes it)"))
        return steps

    def plan_notes(self, action: str, live: Live | None) -> list[str]:
        if action == "create" and self.spec.spec.get("invalidations"):
            return ["a new distribution has nothing cached: its invalidations are recorded, not issued"]
        if action == "delete":
            return ["the distribution is disabled first, and deleted once that is deployed (may take a cycle)"]
        return []


# ---------------------------------------------------------------------- spec <-> config


# ---------------------------------------------------------------------- calls


