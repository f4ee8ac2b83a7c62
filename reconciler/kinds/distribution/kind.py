"""CloudFront: the `Distribution` kind, with its Origin Access Control and the bucket policy
that lets only this distribution read its S3 origin.

Over 500 lines because one module per AWS service is the contract (DESIGN.md, "Resources"): the
whole-config updates, the spec <-> DistributionConfig mapping, export and the OAC change together.

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

import copy
import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.aws import constraints
from reconciler.aws.caching import MANAGED_CACHE_POLICIES
from reconciler.aws.client import error_code
from reconciler.core.diff import Field, diff_fields
from reconciler.core.errors import ReconcilerError
from reconciler.core.types import NAME_TAG, FieldChange, Live, NotYet, Request, Step, owned_by
from reconciler.kinds import register
from reconciler.kinds.base import Resource, tag_changes
from reconciler.kinds.distribution import invalidations as limits

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.exported import Exported
    from reconciler.spec.documents import Path_, Spec

log = structlog.get_logger()
# MANAGED_CACHE_POLICIES (name -> id) lives in cdn.py, with their TTLs: the site check and the sandbox's edge
# read them too.

_POLICY_NAMES = {v: k for k, v in MANAGED_CACHE_POLICIES.items()}
DEFAULT_CACHE_POLICY = "Managed-CachingOptimized"
DEFAULT_VIEWER_POLICY = "redirect-to-https"
INVALIDATIONS_TAG = "reconciler:invalidations"
OAC_TAG = "reconciler:oac"  # <id>:<name> of the origin's Origin Access Control, as the agent set it
INTERNAL_TAGS = (INVALIDATIONS_TAG, OAC_TAG)
_GET_HEAD = {"Quantity": 2, "Items": ["HEAD", "GET"],
             "CachedMethods": {"Quantity": 2, "Items": ["HEAD", "GET"]}}
_LEGACY_CACHE_KEYS = ("ForwardedValues", "MinTTL", "DefaultTTL", "MaxTTL")
# What AWS assigns, in the shapes AWS gives them (requests() builds the calls before they exist)
_PLACEHOLDER_OAC, _PLACEHOLDER_ID, _PLACEHOLDER_ACCOUNT = "E0000000000000", "E0000000000000", "000000000000"


def cache_policy_name(ref: str) -> str:
    """A cache policy as plans show it: the managed name where the id is a managed one."""
    return _POLICY_NAMES.get(ref, ref)


def cache_policy_id(ref: str) -> str:
    return MANAGED_CACHE_POLICIES.get(ref, ref)


def oac_name(spec_name: str, environment: str | None = None) -> str:
    """The agent's own Origin Access Control of a distribution (names are unique in an account: an environment's
    carry its name)."""
    return f"reconciler-{environment}-{spec_name}" if environment else f"reconciler-{spec_name}"


def invalidation_key(entry: dict[str, Any]) -> str:
    """How plans name an invalidation: `2025-09-23 /index.html /about.html`."""
    return f"{entry['revision']} {' '.join(entry['paths'])}"


def invalidation_hash(entry: dict[str, Any]) -> str:
    raw = json.dumps([list(entry["paths"]), str(entry["revision"])], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:8]


def bucket_policy(bucket: str, distribution_arn: str) -> dict[str, Any]:
    """The bucket policy that lets exactly this distribution read the bucket (OAC)."""
    partition = distribution_arn.split(":")[1]
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowCloudFrontReadViaOAC",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": f"arn:{partition}:s3:::{bucket}/*",
            "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
        }],
    }


def normalise_policy(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """A policy in comparable form: what it allows or denies, not how it is labelled (Sid, Id
    and the Version date are dropped; one-element lists unwrapped; statements sorted)."""
    if document is None:
        return None

    def unwrap(value: Any) -> Any:
        if isinstance(value, list):
            value = [unwrap(v) for v in value]
            return value[0] if len(value) == 1 else sorted(value, key=json.dumps)
        if isinstance(value, dict):
            return {k: unwrap(v) for k, v in value.items()}
        return value

    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    labelled = ({k: v for k, v in s.items() if k != "Sid"} for s in statements)
    return {"Statement": sorted((unwrap(s) for s in labelled), key=json.dumps)}


@register
class Distribution(Resource):
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

    @classmethod
    def check_spec(cls, spec: Spec, specs: Sequence[Spec]) -> list[tuple[Path_, str]]:
        s, problems = spec.spec, []
        plain_http_ok = "plain-http" in spec.metadata.security_exceptions
        policies = [(("spec", "viewerProtocolPolicy"), s.get("viewerProtocolPolicy"))] + [
            (("spec", "behaviors", i, "viewerProtocolPolicy"), b.get("viewerProtocolPolicy"))
            for i, b in enumerate(s.get("behaviors") or [])]
        for path, policy in policies:
            if policy == "allow-all" and not plain_http_ok:
                problems.append((path, "'allow-all' serves the site over plain HTTP; use redirect-to-https or "
                                       "https-only, or add 'plain-http' to metadata.securityExceptions"))
        refs = [(("spec", "cachePolicy"), s.get("cachePolicy"))] + [
            (("spec", "behaviors", i, "cachePolicy"), b.get("cachePolicy"))
            for i, b in enumerate(s.get("behaviors") or [])]
        for path, ref in refs:
            if ref and ref.startswith("Managed-") and ref not in MANAGED_CACHE_POLICIES:
                problems.append((path, f"unknown managed cache policy {ref!r}; known: "
                                       + ", ".join(sorted(MANAGED_CACHE_POLICIES))))
        origin = next((o for o in specs if o.kind == "Bucket" and o.name == s["origin"]["bucket"]), None)
        if origin is None:
            problems.append((("spec", "origin", "bucket"),
                             f"no Bucket spec named {s['origin']['bucket']!r} (the origin must be declared)"))
        elif origin.metadata.state == "absent" and spec.metadata.state != "absent":
            problems.append((("spec", "origin", "bucket"),
                             f"the Bucket {origin.name!r} is tombstoned (state: absent): a distribution that stays "
                             "cannot serve from it; tombstone the distribution too, or keep the bucket"))
        comment = constraints.distribution_comment(s.get("comment") or "")
        if comment:
            problems.append((("spec", "comment"), comment.said()))
        if s.get("aliases") and not s.get("certificateArn"):
            problems.append((("spec", "aliases"), "aliases need spec.certificateArn (an ACM certificate in "
                                                  "us-east-1 covering them)"))
        if spec.metadata.adopt and not spec.metadata.external_id:
            problems.append((("metadata", "adopt"), "adopting a distribution needs metadata.externalId "
                                                    "(its id, e.g. E2QWRUHEXAMPLE): a distribution has no name"))
        keys = [invalidation_key(_invalidation(e)) for e in s.get("invalidations") or []]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                problems.append((("spec", "invalidations", i), f"duplicate invalidation {key!r}"))
            too_large = limits.too_large(s["invalidations"][i]["paths"])
            if too_large:
                problems.append((("spec", "invalidations", i, "paths"), too_large))
        paths = [b["pathPattern"] for b in s.get("behaviors") or []]
        for i, p in enumerate(paths):
            if p in paths[:i]:
                problems.append((("spec", "behaviors", i, "pathPattern"), f"duplicate path pattern {p!r}"))
        return problems

    def desired(self, arn: str | None = None) -> dict[str, Any]:
        spec = self.spec.spec
        state = super().desired()
        state["origin"] = {"bucket": self.bucket, "accessControl": self.oac}
        state["bucketPolicy"] = (normalise_policy(bucket_policy(self.bucket, arn)) if arn
                                 else "(allows only this distribution; its ARN is known after apply)")
        state["cachePolicy"] = cache_policy_name(spec.get("cachePolicy", DEFAULT_CACHE_POLICY))
        state["behaviors"] = [_behavior(b) for b in spec.get("behaviors") or []]
        state["invalidations"] = [_invalidation(e) for e in spec.get("invalidations") or []]
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
        oacs = _recorded_oac(config, tags) or aws.cached("cloudfront:oacs", lambda: _list_oacs(cf))
        state = _config_state(config, oacs)
        state["bucketPolicy"] = _read_bucket_policy(aws.client("s3"), self.bucket)
        issued = _issued(tags)
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
        answer["tags"] = self.observed_tags(aws, arn, lambda: _tags(aws, arn),
                                            agrees=lambda tags: hashes <= _issued(tags))
        return answer

    def _find(self, aws: Aws) -> tuple[dict[str, Any], dict[str, str]] | None:
        """This spec's distribution: by externalId, else by its ownership tags; never by guessing."""
        return find_distribution(aws, self.name, self.spec.metadata.external_id, self.spec.environment)


    # ------------------------------------------------------------------ create / update / delete

    def create(self, aws: Aws) -> None:
        cf = aws.client("cloudfront")
        oac_id = self._ensure_oac(cf)
        created = cf.create_distribution_with_tags(**self._create_args(oac_id, aws.region or "us-east-1"))[
            "Distribution"]
        _put_bucket_policy(aws.client("s3"), self.bucket, created["ARN"])

    def _create_args(self, oac_id: str, region: str) -> dict[str, Any]:
        reference = oac_name(self.name, self.spec.environment)  # one per spec and environment: a retry finds it
        config = _apply_fields({"CallerReference": reference}, self.desired(), _ALL_CONFIG_FIELDS, oac_id, region)
        tags = {**self.desired()["tags"]}
        hashes = [invalidation_hash(e) for e in self.desired()["invalidations"]]
        if hashes:  # a new distribution has an empty cache: its invalidations are moot
            tags[INVALIDATIONS_TAG] = ".".join(hashes)
        tags[OAC_TAG] = f"{oac_id}:{self.oac}"
        return {"DistributionConfigWithTags": {
            "DistributionConfig": config, "Tags": {"Items": [{"Key": k, "Value": v} for k, v in tags.items()]}}}

    def requests(self) -> list[Request]:
        """CreateDistributionWithTags as create() sends it (an Origin Access Control's id in place of the one AWS
        assigns), and the bucket policy that lets it read its origin (for a distribution of this account)."""
        args = self._create_args(_PLACEHOLDER_OAC, "us-east-1")
        tags = {t["Key"]: t["Value"] for t in args["DistributionConfigWithTags"]["Tags"]["Items"]}
        arn = f"arn:aws:cloudfront::{_PLACEHOLDER_ACCOUNT}:distribution/{_PLACEHOLDER_ID}"
        policy = json.dumps(bucket_policy(self.bucket, arn))
        return [Request("cloudfront", "CreateDistributionWithTags", args, tags=tags),
                Request("s3", "PutBucketPolicy", {"Bucket": self.bucket, "Policy": policy}, where=("spec", "origin"))]

    def update(self, aws: Aws, live: Live, changes: Sequence[FieldChange]) -> None:
        cf = aws.client("cloudfront")
        fields = {c.path.split(".", 2)[1].split("[", 1)[0] for c in changes}
        config_fields = fields & _ALL_CONFIG_FIELDS
        if config_fields:
            oac_id = self._ensure_oac(cf) if "origin" in config_fields else None
            self._update_config(cf, live, config_fields, oac_id, aws.region or "us-east-1")
            if oac_id:  # recorded: later cycles name the OAC without listing them all
                cf.tag_resource(Resource=live.extra["arn"], Tags={"Items": [
                    {"Key": OAC_TAG, "Value": f"{oac_id}:{self.oac}"}]})
        if "bucketPolicy" in fields:
            _put_bucket_policy(aws.client("s3"), self.bucket, live.extra["arn"])
        tag_changes = [c for c in changes if c.path.startswith("spec.tags.")]
        if tag_changes:
            _update_tags(cf, live.extra["arn"], tag_changes)
        new = [c.after for c in changes if c.path.startswith("spec.invalidations[") and c.after]
        if new:
            self._invalidate(cf, live, new)

    def _update_config(self, cf: Any, live: Live, fields: set[str], oac_id: str | None, region: str) -> None:
        """UpdateDistribution with IfMatch; on a stale ETag re-read and retry once."""
        base, etag = live.extra["config"], live.extra["etag"]
        for attempt in (1, 2):
            config = _apply_fields(base, self.desired(live.extra["arn"]), fields, oac_id, region)
            try:
                cf.update_distribution(Id=live.id, IfMatch=etag, DistributionConfig=config)
                return
            except cf.exceptions.ClientError as exc:
                if error_code(exc) != "PreconditionFailed" or attempt == 2:
                    raise
            fresh = cf.get_distribution_config(Id=live.id)
            base, etag = fresh["DistributionConfig"], fresh["ETag"]

    def _invalidate(self, cf: Any, live: Live, entries: list[dict[str, Any]]) -> None:
        """Issue each new invalidation that AWS's limits in progress leave room for, record what was issued,
        and leave the rest pending for a later cycle."""
        issued = set(live.extra.get("issued") or ())
        room, held = limits.Room(cf, live.id), None
        for entry in entries:
            held = room.refusal(entry["paths"])
            if held:
                break
            digest = invalidation_hash(entry)
            cf.create_invalidation(DistributionId=live.id, InvalidationBatch={
                "Paths": {"Quantity": len(entry["paths"]), "Items": list(entry["paths"])},
                "CallerReference": f"reconciler-{self.name}-{digest}"})
            room.take(entry["paths"])
            issued.add(digest)
        wanted = [invalidation_hash(e) for e in self.desired()["invalidations"]]
        record = ".".join(h for h in wanted if h in issued)
        if record != ".".join(h for h in wanted if h in (live.extra.get("issued") or ())):
            cf.tag_resource(Resource=live.extra["arn"], Tags={"Items": [{"Key": INVALIDATIONS_TAG, "Value": record}]})
        if held:
            raise NotYet(held)

    def _ensure_oac(self, cf: Any) -> str:
        """The OAC for this distribution: the one the spec names, or the agent's own (created)."""
        name = self.oac
        for oac_id, existing in _list_oacs(cf).items():
            if existing == name:
                return oac_id
        if name != oac_name(self.name, self.spec.environment):
            raise ReconcilerError(f"ListOriginAccessControls: no Origin Access Control named {name!r} "
                                  "(spec.origin.originAccessControl)")
        return str(cf.create_origin_access_control(OriginAccessControlConfig={
            "Name": name, "Description": f"Managed by reconciler for Distribution/{self.name}",
            "SigningProtocol": "sigv4", "SigningBehavior": "always",
            "OriginAccessControlOriginType": "s3"})["OriginAccessControl"]["Id"])

    def delete(self, aws: Aws, live: Live) -> None:
        """The bucket policy that allowed it and the agent's Origin Access Control (once no distribution uses it),
        then DeleteDistribution (AWS takes it once the distribution is disabled and Deployed). The distribution
        goes last: it is what finds the rest again, so an agent killed half-way finishes the job next time."""
        cf = aws.client("cloudfront")
        if normalise_policy(live.state.get("bucketPolicy")) == normalise_policy(
                bucket_policy(self.bucket, live.extra["arn"])):
            aws.client("s3").delete_bucket_policy(Bucket=self.bucket)
        for oac_id, name in _list_oacs(cf).items():
            if name == oac_name(self.name, self.spec.environment):
                self._delete_oac_unless_used(cf, oac_id, live.id)
        etag = cf.get_distribution_config(Id=live.id)["ETag"]
        cf.delete_distribution(Id=live.id, IfMatch=etag)

    def _delete_oac_unless_used(self, cf: Any, oac_id: str, leaving: str) -> None:
        """The agent's OAC, once no distribution's origin uses it (AWS: OriginAccessControlInUse otherwise);
        `leaving`: the distribution being deleted (detached from it by the disable step)."""
        users = [d["Id"] for d in _list_distributions(cf) if d["Id"] != leaving
                 and any(o.get("OriginAccessControlId") == oac_id for o in d.get("Origins", {}).get("Items") or [])]
        if users:
            log.warning("apply.oac_kept", kind=self.kind, name=self.name, oac=oac_id, used_by=users,
                        reason="another distribution's origin uses it; AWS refuses to delete an OAC in use")
            return
        try:
            cf.delete_origin_access_control(Id=oac_id, IfMatch=cf.get_origin_access_control(Id=oac_id)["ETag"])
        except cf.exceptions.ClientError as exc:
            if error_code(exc) != "OriginAccessControlInUse":  # taken into use since the listing: kept
                raise
            log.warning("apply.oac_kept", kind=self.kind, name=self.name, oac=oac_id, reason=str(exc))

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

    @classmethod
    def export(cls, aws: Aws, options: dict[str, Any]) -> list[Exported]:
        from reconciler.kinds.exported import Exported, spec_name, user_tags

        cf = aws.client("cloudfront")
        oacs = _list_oacs(cf)
        out = []
        for summary in _list_distributions(cf):
            config = cf.get_distribution_config(Id=summary["Id"])["DistributionConfig"]
            tags = {t["Key"]: t["Value"] for t in
                    cf.list_tags_for_resource(Resource=summary["ARN"])["Tags"].get("Items") or []}
            fallback = f"dist-{summary['Id'].lower()}"
            name = tags.get(NAME_TAG) or spec_name(config.get("Comment") or "", fallback)
            item = Exported("Distribution", name, {}, tags, external_id=summary["Id"])
            origins = config.get("Origins", {}).get("Items") or []
            s3_origins = [o for o in origins if ".s3." in o["DomainName"] or ".s3-" in o["DomainName"]]
            if len(origins) != 1 or not s3_origins:
                item.warnings.append(f"spec.origin: only a single S3 origin can be expressed; this one has "
                                     f"{len(origins)} origin(s) ({', '.join(o['DomainName'] for o in origins)}): "
                                     "not exported")
                item.skipped = True
                out.append(item)
                continue
            state = _config_state(config, oacs)
            item.spec = _export_spec(state, config, item, name)
            item.requires.append(("Bucket", state["origin"]["bucket"]))
            if user_tags(tags):
                item.spec["tags"] = user_tags(tags)
            out.append(item)
        return out

    def plan_notes(self, action: str, live: Live | None) -> list[str]:
        if action == "create" and self.spec.spec.get("invalidations"):
            return ["a new distribution has nothing cached: its invalidations are recorded, not issued"]
        if action == "delete":
            return ["the distribution is disabled first, and deleted once that is deployed (may take a cycle)"]
        return []


# ---------------------------------------------------------------------- spec <-> config


def _export_spec(state: dict[str, Any], config: dict[str, Any], item: Exported, name: str) -> dict[str, Any]:
    """A distribution's live state as the spec a person would write (defaults left out)."""
    spec: dict[str, Any] = {}
    if not state["enabled"]:
        spec["enabled"] = False
    if state["comment"]:
        spec["comment"] = state["comment"]
    origin: dict[str, Any] = {"bucket": state["origin"]["bucket"]}
    access = state["origin"]["accessControl"]
    if access and access != oac_name(name):
        origin["originAccessControl"] = access
    if not access:
        item.warnings.append("spec.origin: the origin uses no Origin Access Control (public bucket or "
                             "legacy OAI); adopting it switches it to an OAC the agent creates")
    spec["origin"] = origin
    for key, default in (("defaultRootObject", ""), ("priceClass", "PriceClass_All"),
                         ("viewerProtocolPolicy", DEFAULT_VIEWER_POLICY), ("cachePolicy", DEFAULT_CACHE_POLICY)):
        if state[key] not in (default, None):
            spec[key] = state[key]
    if state["aliases"]:
        spec["aliases"] = state["aliases"]
    if state["certificateArn"]:
        spec["certificateArn"] = state["certificateArn"]
    behaviors = [{k: v for k, v in b.items() if (k, v) not in (("cachePolicy", DEFAULT_CACHE_POLICY),
                                                                ("viewerProtocolPolicy", DEFAULT_VIEWER_POLICY))}
                 for b in state["behaviors"]]
    if behaviors:
        spec["behaviors"] = behaviors
    viewer = [state["viewerProtocolPolicy"], *(b["viewerProtocolPolicy"] for b in state["behaviors"])]
    if "allow-all" in viewer:
        item.exceptions.append("plain-http")
        item.warnings.append("spec.viewerProtocolPolicy: serves plain HTTP; exported as is with "
                             "securityExceptions: [plain-http]")
    if state["cachePolicy"] is None or any(b["cachePolicy"] is None for b in state["behaviors"]):
        item.warnings.append(f"spec.cachePolicy: a behavior uses legacy cache settings (no cache policy); "
                             f"adopting it switches it to {DEFAULT_CACHE_POLICY}")
        spec.pop("cachePolicy", None)
        for b in spec.get("behaviors", []):
            if b.get("cachePolicy") is None:
                b.pop("cachePolicy", None)
    unmanaged = {"CustomErrorResponses": "custom error responses", "Logging": "access logging",
                 "WebACLId": "a WAF web ACL", "Restrictions": "geo restrictions", "OriginGroups": "origin groups"}
    for key, what in unmanaged.items():
        value = config.get(key)
        present = (value.get("Quantity", 0) if isinstance(value, dict) and "Quantity" in value
                   else value.get("Enabled") if key == "Logging" and isinstance(value, dict)
                   else value.get("GeoRestriction", {}).get("RestrictionType", "none") != "none"
                   if key == "Restrictions" and isinstance(value, dict) else value)
        if present:
            item.warnings.append(f"{key}: {what} cannot be expressed in a spec yet; kept as is, "
                                 "not managed")
    return spec

_ALL_CONFIG_FIELDS = {"enabled", "comment", "origin", "defaultRootObject", "aliases", "certificateArn",
                      "priceClass", "viewerProtocolPolicy", "cachePolicy", "behaviors"}


def _behavior(raw: dict[str, Any]) -> dict[str, Any]:
    return {"pathPattern": raw["pathPattern"],
            "cachePolicy": cache_policy_name(raw.get("cachePolicy", DEFAULT_CACHE_POLICY)),
            "viewerProtocolPolicy": raw.get("viewerProtocolPolicy", DEFAULT_VIEWER_POLICY)}


def _invalidation(raw: dict[str, Any]) -> dict[str, Any]:
    return {"paths": list(raw["paths"]), "revision": str(raw["revision"])}


def _origin_id(bucket: str) -> str:
    return f"s3-{bucket}"


def _bucket_of(domain: str) -> str:
    """`site.s3.us-east-1.amazonaws.com` -> `site`."""
    return domain.split(".s3.", 1)[0].split(".s3-", 1)[0] if ".s3" in domain else domain


def _issued(tags: dict[str, str]) -> set[str]:
    """The invalidations already issued, as the agent records them in a tag (their hashes)."""
    return set(filter(None, tags.get(INVALIDATIONS_TAG, "").split(".")))


def _target_origin(config: dict[str, Any]) -> dict[str, Any] | None:
    origins = config.get("Origins", {}).get("Items") or []
    dcb = config.get("DefaultCacheBehavior", {})
    return next((o for o in origins if o["Id"] == dcb.get("TargetOriginId")), origins[0] if origins else None)


def _recorded_oac(config: dict[str, Any], tags: dict[str, str]) -> dict[str, str] | None:
    """{id: name} of the origin's OAC when the agent's tag recorded that very id (no listing needed)."""
    recorded_id, _, name = tags.get(OAC_TAG, "").partition(":")
    target = _target_origin(config) or {}
    return {recorded_id: name} if recorded_id and name and target.get("OriginAccessControlId") == recorded_id \
        else None


def _config_state(config: dict[str, Any], oacs: dict[str, str]) -> dict[str, Any]:
    """GetDistributionConfig's answer in the spec's shape (Quantity wrappers and ids resolved)."""
    dcb = config.get("DefaultCacheBehavior", {})
    target = _target_origin(config)
    origin = None
    if target:
        origin = {"bucket": _bucket_of(target["DomainName"]),
                  "accessControl": oacs.get(target.get("OriginAccessControlId") or "")}
    cert = config.get("ViewerCertificate", {})
    return {
        "enabled": bool(config.get("Enabled")),
        "comment": config.get("Comment") or "",
        "origin": origin,
        "defaultRootObject": config.get("DefaultRootObject") or "",
        "aliases": sorted(config.get("Aliases", {}).get("Items") or []),
        "certificateArn": None if cert.get("CloudFrontDefaultCertificate", True) else cert.get("ACMCertificateArn"),
        "priceClass": config.get("PriceClass") or "PriceClass_All",
        "viewerProtocolPolicy": dcb.get("ViewerProtocolPolicy"),
        "cachePolicy": cache_policy_name(dcb.get("CachePolicyId") or "") or None,
        "behaviors": [
            {"pathPattern": b["PathPattern"], "cachePolicy": cache_policy_name(b.get("CachePolicyId") or "") or None,
             "viewerProtocolPolicy": b.get("ViewerProtocolPolicy")}
            for b in config.get("CacheBehaviors", {}).get("Items") or []],
    }


def _apply_fields(base: dict[str, Any], want: dict[str, Any], fields: set[str], oac_id: str | None,
                  region: str) -> dict[str, Any]:
    """The DistributionConfig to send: `base` with exactly `fields` set from the spec.

    Fields not named (unmanaged or ignored ones) keep their live values.
    """
    config = copy.deepcopy(base)
    origin_id = _origin_id(want["origin"]["bucket"])
    if "origin" in fields or "Origins" not in config:
        existing = {o["Id"]: o for o in config.get("Origins", {}).get("Items") or []}
        origin = {**existing.get(origin_id, {}), "Id": origin_id,
                  "DomainName": f"{want['origin']['bucket']}.s3.{region}.amazonaws.com",
                  "OriginPath": "", "S3OriginConfig": {"OriginAccessIdentity": ""},
                  "OriginAccessControlId": oac_id or ""}
        origin.pop("CustomOriginConfig", None)
        config["Origins"] = {"Quantity": 1, "Items": [origin]}
    target = config["Origins"]["Items"][0]["Id"]
    simple = {"enabled": "Enabled", "comment": "Comment", "defaultRootObject": "DefaultRootObject",
              "priceClass": "PriceClass"}
    for name, key in simple.items():
        if name in fields or key not in config:
            config[key] = want.get(name, _DEFAULTS[name])
    if "aliases" in fields or "Aliases" not in config:
        aliases = sorted(want.get("aliases") or [])
        config["Aliases"] = {"Quantity": len(aliases), **({"Items": aliases} if aliases else {})}
    if "certificateArn" in fields or "ViewerCertificate" not in config:
        arn = want.get("certificateArn")
        config["ViewerCertificate"] = (
            {"ACMCertificateArn": arn, "SSLSupportMethod": "sni-only", "MinimumProtocolVersion": "TLSv1.2_2021"}
            if arn else {"CloudFrontDefaultCertificate": True})
    dcb = config.get("DefaultCacheBehavior") or {}
    config["DefaultCacheBehavior"] = _cache_behavior(
        dcb, target,
        want.get("viewerProtocolPolicy", DEFAULT_VIEWER_POLICY) if "viewerProtocolPolicy" in fields or not dcb
        else dcb["ViewerProtocolPolicy"],
        want.get("cachePolicy", DEFAULT_CACHE_POLICY) if "cachePolicy" in fields or not dcb
        else dcb.get("CachePolicyId"))
    if "behaviors" in fields or "CacheBehaviors" not in config:
        existing_b = {b["PathPattern"]: b for b in config.get("CacheBehaviors", {}).get("Items") or []}
        items = [dict(_cache_behavior(existing_b.get(b["pathPattern"], {}), target, b["viewerProtocolPolicy"],
                                      b["cachePolicy"]), PathPattern=b["pathPattern"])
                 for b in want.get("behaviors") or []]
        config["CacheBehaviors"] = {"Quantity": len(items), **({"Items": items} if items else {})}
    return config


_DEFAULTS = {"enabled": True, "comment": "", "defaultRootObject": "", "priceClass": "PriceClass_All"}


def _cache_behavior(base: dict[str, Any], target: str, viewer: str, policy: str | None) -> dict[str, Any]:
    behavior = {k: v for k, v in base.items() if k not in _LEGACY_CACHE_KEYS or not policy}
    behavior.update(TargetOriginId=target, ViewerProtocolPolicy=viewer)
    if policy:
        behavior["CachePolicyId"] = cache_policy_id(policy)
    behavior.setdefault("Compress", True)
    behavior.setdefault("AllowedMethods", _GET_HEAD)
    return behavior


# ---------------------------------------------------------------------- calls


def find_distribution(aws: Aws, name: str, external: str | None = None, environment: str | None = None
                      ) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The distribution of spec `name` (of `environment`): by externalId, else by its ownership tags."""
    cf = aws.client("cloudfront")
    if external:
        try:
            dist = cf.get_distribution(Id=external)["Distribution"]
        except cf.exceptions.NoSuchDistribution as exc:
            raise ReconcilerError(f"GetDistribution failed: metadata.externalId {external!r} "
                                  "is not a distribution of this account") from exc
        return dist, _tags(aws, dist["ARN"])
    summaries = aws.cached("cloudfront:distributions", lambda: _list_distributions(cf))
    mine = []
    for summary in summaries:
        tags = _tags(aws, summary["ARN"])
        if owned_by(tags, environment) and tags.get(NAME_TAG) == name:
            mine.append((summary, tags))
    if len(mine) > 1:
        ids = ", ".join(s["Id"] for s, _ in mine)
        raise ReconcilerError(f"ListDistributions: {len(mine)} distributions are tagged reconciler:name="
                              f"{name} ({ids}); keep one (set metadata.externalId to it) and delete the rest")
    return mine[0] if mine else None



def _list_distributions(cf: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in cf.get_paginator("list_distributions").paginate():
        out += page.get("DistributionList", {}).get("Items") or []
    return out


def _list_oacs(cf: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    args: dict[str, Any] = {}
    while True:
        page = cf.list_origin_access_controls(**args)["OriginAccessControlList"]
        out.update({o["Id"]: o["Name"] for o in page.get("Items") or []})
        if not page.get("IsTruncated") or not page.get("NextMarker"):
            return out
        args["Marker"] = page["NextMarker"]


def _tags(aws: Aws, arn: str) -> dict[str, str]:
    cf = aws.client("cloudfront")
    items = aws.cached(f"cloudfront:tags:{arn}",
                       lambda: cf.list_tags_for_resource(Resource=arn)["Tags"].get("Items") or [])
    return {t["Key"]: t["Value"] for t in items}


def _update_tags(cf: Any, arn: str, changes: Sequence[FieldChange]) -> None:
    put, drop = tag_changes(changes)
    if put:
        cf.tag_resource(Resource=arn, Tags={"Items": [{"Key": k, "Value": v} for k, v in put.items()]})
    if drop:
        cf.untag_resource(Resource=arn, TagKeys={"Items": drop})


def _read_bucket_policy(s3: Any, bucket: str) -> dict[str, Any] | None:
    try:
        return normalise_policy(json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]))
    except s3.exceptions.ClientError as exc:
        if error_code(exc) in ("NoSuchBucketPolicy", "NoSuchBucket"):
            return None
        raise


def _put_bucket_policy(s3: Any, bucket: str, arn: str) -> None:
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(bucket_policy(bucket, arn)))


