"""S3: the `Bucket` kind, the site's origin.

AWS facts: bucket names are global (HeadBucket 403 = someone else's); tagging replaces
the whole tag set; outside us-east-1 CreateBucket needs a LocationConstraint; a bucket
must be empty to be deleted. The bucket *policy* that lets the distribution read is
managed by the Distribution that uses the bucket (it knows the distribution's ARN).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from reconciler.aws import constraints
from reconciler.aws.failures import error_code
from reconciler.core.diff import Field
from reconciler.core.types import OWNER_TAG, FieldChange, Live, Request
from reconciler.kinds import register
from reconciler.kinds.base import Resource
from reconciler.kinds.bucket import content as site
from reconciler.kinds.bucket import intents
from reconciler.kinds.interfaces import EventMatched, Exportable, IamScoped, Validated
from reconciler.kinds.tags import tag_changes

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.exported import Exported
    from reconciler.spec.documents import Spec
    from reconciler.spec.problems import Path_

BLOCK_ALL = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
             "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


@register
class Bucket(Resource, Validated, IamScoped, EventMatched, Exportable):
    """An S3 bucket with public access blocked (reachable only through CloudFront)."""

    kind = "Bucket"
    tagging_type = "s3:bucket"  # its type in the Resource Groups Tagging API
    event_keys = {"s3.amazonaws.com": ("bucketName",)}
    service = "s3"
    order = 10
    fields = (
        Field("blockPublicAccess", default=True, api="PublicAccessBlockConfiguration (all four)"),
        Field("tags", default={}, mode="map", api="Tagging"),
    )
    iam_actions = (
        "s3:ListBucket", "s3:GetBucketTagging", "s3:GetBucketPublicAccessBlock", "s3:CreateBucket",
        "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
        "cloudfront:CreateInvalidation", "cloudfront:ListInvalidations", "cloudfront:GetInvalidation",
        "s3:PutBucketTagging", "s3:PutBucketPublicAccessBlock", "s3:DeleteBucket",
        "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",  # large files go up in parts (boto3)
        "s3:TagResource",  # CreateBucket with tags: "You must have the s3:TagResource permission" (S3 API reference)
    )
    iam_tagged = ("cloudfront:CreateInvalidation",)  # on the distribution it publishes for: the agent's own

    @classmethod
    def iam_resources(cls, spec: Spec | None) -> dict[str, list[str]]:
        name = spec.name if spec else "*"
        return {"s3": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]}

    @classmethod
    def check_spec(cls, spec: Spec, specs: Sequence[Spec]) -> list[tuple[Path_, str]]:
        problems: list[tuple[Path_, str]] = []
        named = constraints.bucket_name(spec.name)
        if named:
            problems.append((("metadata", "name"), named.said()))
        if spec.spec.get("blockPublicAccess") is False and "public-bucket" not in spec.metadata.security_exceptions:
            problems.append((("spec", "blockPublicAccess"),
                             "a public bucket is refused: the site is served through CloudFront; to allow it "
                             "anyway add 'public-bucket' to metadata.securityExceptions"))
        target = (spec.spec.get("content") or {}).get("invalidate")
        if target and not any(s.kind == "Distribution" and s.name == target for s in specs):
            problems.append((("spec", "content", "invalidate"), f"no Distribution spec named {target!r}"))
        if spec.spec.get("content") and spec.metadata.state != "absent":
            problems += _content_problems(spec)
        return problems

    # ------------------------------------------------------------------ content

    _local: dict[str, site.LocalFile] | None = None  # the directory to publish, scanned by prepare()

    @property
    def content(self) -> dict[str, Any] | None:
        return self.spec.spec.get("content")

    def prepare(self, aws: Aws) -> None:
        if self.content and self.spec.metadata.state != "absent":  # a tombstone publishes nothing
            self._local = site.scan(self.spec.source_dir, self.content, self.spec.repository)

    def _root_object(self) -> str | None:
        target = (self.content or {}).get("invalidate")
        dist = next((s for s in self.specs if s.kind == "Distribution" and s.name == target), None)
        return dist.spec.get("defaultRootObject") if dist else None

    def _publish_plan(self, live: Live | None) -> site.Publish:
        remote = live.extra["remote"] if live else site.Remote({}, {})
        return site.compute(self._local, remote, self.content or {}, self._root_object())

    def diff(self, live: Live | None) -> list[FieldChange]:
        changes = super().diff(live)
        if not self.content:
            return changes
        plan = self._publish_plan(live)
        for name, keys in (("upload", plan.new), ("update", plan.changed)):
            if keys:
                changes.append(FieldChange(f"spec.content.{name}", None, site.summary(keys)))
        if plan.deleted:
            changes.append(FieldChange("spec.content.delete", site.summary(plan.deleted), None))
        if plan.invalidate:
            changes.append(FieldChange("spec.content.invalidate", None,
                                       {"distribution": self.content.get("invalidate"), "paths": plan.invalidate}))
        return changes

    def _distribution_id(self) -> str | None:
        """The id of the distribution to invalidate, as the engine saw it in this plan (None while it does not
        exist): the kinds do not read each other, the engine hands one the other's live state."""
        target = (self.content or {}).get("invalidate")
        found = self.peer(f"Distribution/{target}") if target else None
        return found.id if found is not None and not found.deleting else None

    def _publish(self, aws: Aws, live: Live | None) -> None:
        plan = self._publish_plan(live)
        if plan.empty:
            return
        found = self._distribution_id() if plan.invalidate else None
        uploads = len(plan.new) + len(plan.changed)
        show = sys.stdout.isatty() and uploads >= 50
        with click.progressbar(length=uploads, label=f"Publishing to {self.name}", file=sys.stdout) if show \
                else contextlib.nullcontext() as bar:
            site.publish(aws.client("s3"), aws.client("cloudfront"), self.name, self._local,
                         live.extra["remote"] if live else site.Remote({}, {}), plan, found,
                         on_progress=(lambda _: bar.update(1)) if show else None)

    def observe(self, aws: Aws) -> Live | None:
        s3 = aws.client("s3")
        arn = f"arn:aws:s3:::{self.name}"
        listed = aws.listed_tags(self.ref, arn)  # listed with the agent's tag: it exists, and it is ours
        if listed is None:
            try:
                s3.head_bucket(Bucket=self.name)
            except s3.exceptions.ClientError as exc:
                if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                    return None
                if error_code(exc) in ("403", "AccessDenied"):
                    raise _taken(self.name) from exc
                raise
        tags = listed if listed is not None else _bucket_tags(s3, self.name)
        try:
            block = s3.get_public_access_block(Bucket=self.name)["PublicAccessBlockConfiguration"]
        except s3.exceptions.ClientError as exc:
            if error_code(exc) == "NoSuchBucket":
                return None  # deleted since the listing was taken
            if error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
                raise
            block = {}
        state = {"blockPublicAccess": all(block.get(k) for k in BLOCK_ALL), "tags": tags}
        deleting = self.spec.metadata.state == "absent"
        remote = (site.read_remote(s3, self.name, self._local) if self.content or deleting
                  else None)
        claimed = self.name if OWNER_TAG not in tags and intents.pending(self.ref) else None
        return Live(id=arn, state=state, tags=tags, extra={"remote": remote},
                    claimed_by=claimed)

    def create(self, aws: Aws) -> None:
        """CreateBucket with its tags in the same call (S3 takes tags at creation: the bucket is the agent's from its
        first moment), then Block Public Access and the content. A caller that may create buckets but not tag them at
        creation (no s3:TagResource: AccessDenied) creates it untagged and tags it at once, its intent journaled
        first (intents.py), so that an interruption in between never leaves a bucket the agent refuses as foreign."""
        s3, want = aws.client("s3"), self.desired()
        args = self._create_args(aws.region)
        tagged = True
        try:
            s3.create_bucket(**args)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            tagged = False  # an earlier, interrupted apply created it: tag it now
        except s3.exceptions.ClientError as exc:
            if error_code(exc) != "AccessDenied":
                raise
            intents.record(self.ref)  # about to exist untagged: say first that this bucket is ours
            args["CreateBucketConfiguration"].pop("Tags")
            if not args["CreateBucketConfiguration"]:
                del args["CreateBucketConfiguration"]
            self._create_untagged(s3, args)
            tagged = False
        except Exception:
            # The answer may be lost while the bucket was made (with its tags). The plan saw no bucket of this
            # name, so one that exists now is the one this call created.
            if not _exists(s3, self.name):
                raise
        if not tagged:
            self._mark_owned(s3, want["tags"])
        _put_block(s3, self.name, want["blockPublicAccess"])
        if self.content:
            self._publish(aws, None)

    def _create_args(self, region: str | None) -> dict[str, Any]:
        configuration: dict[str, Any] = {"Tags": [{"Key": k, "Value": v} for k, v in self.desired()["tags"].items()]}
        if region and region != "us-east-1":
            configuration["LocationConstraint"] = region
        return {"Bucket": self.name, "CreateBucketConfiguration": configuration}

    def _create_untagged(self, s3: Any, args: dict[str, Any]) -> None:
        try:
            s3.create_bucket(**args)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        except Exception:
            if not _exists(s3, self.name):
                raise

    def requests(self) -> list[Request]:
        """CreateBucket as create() sends it, its tags in the call (checked against S3's tag rules)."""
        args = self._create_args(None)
        tags = {t["Key"]: t["Value"] for t in args["CreateBucketConfiguration"]["Tags"]}
        return [Request("s3", "CreateBucket", args, tags=tags)]

    def _mark_owned(self, s3: Any, tags: dict[str, str]) -> None:
        """Tag a new bucket as the agent's before anything else. S3 cannot tag at creation, so
        if tagging keeps failing the empty bucket is deleted again: otherwise the next cycle
        would see an unowned bucket and refuse it for ever."""
        for attempt in range(3):
            try:
                _put_tags(s3, self.name, tags)
                intents.forget(self.ref)
                return
            except Exception:
                if attempt == 2:
                    with contextlib.suppress(Exception):
                        s3.delete_bucket(Bucket=self.name)
                        intents.forget(self.ref)
                    raise
                time.sleep(0.5 * (attempt + 1))

    def update(self, aws: Aws, live: Live, changes: Sequence[FieldChange]) -> None:
        s3 = aws.client("s3")
        want = self.desired()
        if any(c.path == "spec.blockPublicAccess" for c in changes):
            _put_block(s3, self.name, want["blockPublicAccess"])
        put, drop = tag_changes(changes)
        if put or drop:
            tags = {k: v for k, v in {**live.tags, **put}.items() if k not in drop}
            _put_tags(s3, self.name, tags)
            if live.claimed_by:
                intents.forget(self.ref)
        if self.content and any(c.path.startswith("spec.content.") for c in changes):
            self._publish(aws, live)

    def delete(self, aws: Aws, live: Live) -> None:
        """The objects the agent published (its manifest says which) and the manifest, then the bucket."""
        s3 = aws.client("s3")
        remote = live.extra.get("remote") or site.read_remote(s3, self.name)
        site.delete_objects(s3, self.name, [*_published(remote), site.MANIFEST_KEY, site.LAST_PUBLISH_KEY])
        s3.delete_bucket(Bucket=self.name)

    def refusal(self, action: str, live: Live | None) -> str | None:
        remote = live.extra.get("remote") if live else None
        foreign = _foreign(remote) if remote else []
        if action in ("delete", "replace") and foreign:
            return (f"the bucket holds {len(foreign)} object(s) reconciler did not publish (e.g. {foreign[0]!r}); it "
                    f"deletes only what it published. Move or delete them (aws s3 rm s3://{self.name}/ --recursive "
                    "removes everything), then apply again")
        return None

    def plan_notes(self, action: str, live: Live | None) -> list[str]:
        remote = live.extra.get("remote") if live else None
        if action == "delete" and remote is not None and not _foreign(remote):
            return [f"deletes the {len(_published(remote))} object(s) reconciler published and its manifest, "
                    "then the bucket"]
        if self.content and action != "delete" and live is not None and \
                self._publish_plan(live).invalidate == ["/*"]:
            threshold = self.content.get("invalidationThreshold", site.DEFAULT_THRESHOLD)
            return [f"more than {threshold} paths changed: one /* invalidation instead of each path"]
        return []

    @classmethod
    def export(cls, aws: Aws, options: dict[str, Any]) -> list[Exported]:
        from reconciler.kinds.exported import Exported, user_tags

        s3 = aws.client("s3")
        out = []
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            tags = _bucket_tags(s3, name)
            try:
                block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
            except s3.exceptions.ClientError as exc:
                if error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
                    raise
                block = {}
            spec: dict[str, Any] = {}
            item = Exported("Bucket", name, spec, tags)
            if not all(block.get(k) for k in BLOCK_ALL):
                spec["blockPublicAccess"] = False
                item.exceptions.append("public-bucket")
                item.warnings.append("spec.blockPublicAccess: public access is not fully blocked; exported as is "
                                     "with securityExceptions: [public-bucket]: remove both to block it")
            if user_tags(tags):
                spec["tags"] = user_tags(tags)
            out.append(item)
        return out


def _content_problems(spec: Spec) -> list[tuple[Path_, str]]:
    """`content.directory` inside the spec repository, and nothing in it that leaves it (site.site_files): said at
    `validate`, before anything is uploaded."""
    content, where = spec.spec["content"], ("spec", "content", "directory")
    problem = site.directory_problem(spec.source_dir, content["directory"], spec.repository)
    if problem:
        return [(where, problem)]
    directory = spec.source_dir / content["directory"]
    if not directory.is_dir():
        return []  # said when it is published: that bucket's error alone
    walked = site.site_files(directory, content.get("include"))
    return [(where, f"{found}: refused (a site publishes only its own files)") for found in walked.problems]


def _published(remote: site.Remote) -> list[str]:
    """The objects the agent published that the bucket still holds."""
    return sorted(k for k in remote.etags if k in (remote.manifest.get("files") or {}))


def _foreign(remote: site.Remote) -> list[str]:
    """Objects in the bucket that the agent did not publish."""
    return sorted(k for k in remote.etags if k not in (remote.manifest.get("files") or {}))


def _taken(name: str) -> Exception:
    from reconciler.core.errors import ReconcilerError

    return ReconcilerError(f"HeadBucket failed: bucket {name!r} exists but is not readable with these "
                           "credentials (bucket names are global: it may belong to another account)")


def _exists(s3: Any, name: str) -> bool:
    try:
        s3.head_bucket(Bucket=name)
        return True
    except Exception:
        return False


def _bucket_tags(s3: Any, name: str) -> dict[str, str]:
    try:
        return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
    except s3.exceptions.ClientError as exc:
        if error_code(exc) == "NoSuchTagSet":
            return {}
        raise


def _put_block(s3: Any, name: str, block: bool) -> None:
    if block:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=BLOCK_ALL)
    else:
        s3.delete_public_access_block(Bucket=name)


def _put_tags(s3: Any, name: str, tags: dict[str, str]) -> None:
    if tags:
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
    else:
        s3.delete_bucket_tagging(Bucket=name)
