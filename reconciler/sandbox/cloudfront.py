"""CloudFront in the sandbox: moto's model with AWS's deployment time and refusals.

Fidelity fixes of moto 5.2.5 (each tested):
- stored origins drop `OriginAccessControlId` and `S3OriginConfig`: kept as sent;
- `IfMatch` is ignored and the ETag never changes: a missing IfMatch is InvalidIfMatchVersion, a
  stale one PreconditionFailed (412), and every update issues a new ETag, as on AWS;
- invalidation CallerReferences are not deduplicated: AWS returns the existing invalidation for a
  repeated (CallerReference, paths) and refuses the reference with other paths
  (InvalidationBatchAlreadyExists).

AWS's time (tests/integration/sandbox/test_aws_time.py, docs/sandbox.md):
- a created or updated distribution is InProgress, then Deployed (LastModifiedTime is the change);
  AWS accepts further updates meanwhile;
- DeleteDistribution of a distribution that is enabled, or disabled but not yet Deployed:
  DistributionNotDisabled (CloudFront Developer Guide, "Delete a distribution": disable, wait until
  Deployed, then delete);
- an invalidation is InProgress, then Completed; a distribution has at most 3,000 file paths and, apart
  from them, 15 wildcard paths in invalidations InProgress (TooManyInvalidationsInProgress);
- an Origin Access Control that an origin of a distribution still uses cannot be deleted
  (OriginAccessControlInUse).

CloudFront Developer Guide, "Concurrent invalidation request maximum"; API Reference,
DeleteOriginAccessControl.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from reconciler.sandbox.clock import current

FILE_PATHS_IN_PROGRESS = 3000   # "up to 3,000 files per distribution in progress at one time"
WILDCARD_PATHS_IN_PROGRESS = 15  # "up to 15 invalidation paths in progress at one time" (with *)


def _path_counts(paths: list[str]) -> tuple[int, int]:
    """(individual file paths, wildcard paths): AWS counts them against separate limits."""
    wildcards = sum(1 for p in paths if "*" in p)
    return len(paths) - wildcards, wildcards


def _deploy(dist: Any) -> None:
    """A change starts deploying now; it is Deployed once AWS's deployment time has passed."""
    dist._rs_status = "InProgress"
    dist.last_modified_time = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    dist._rs_version = getattr(dist, "_rs_version", 0) + 1
    version = dist._rs_version

    def deployed() -> None:
        if dist._rs_version == version:
            dist._rs_status = "Deployed"

    current().after("cloudfront.deploy", deployed)


def _complete(invalidation: Any) -> None:
    """An invalidation is Completed: the edge (edge.py) drops what it covers that was cached before now."""
    invalidation.status = "Completed"
    invalidation._rs_completed = time.time()


def check_etag(dist: Any, if_match: str | None) -> None:
    """AWS's IfMatch rule: the ETag of the version a change was based on, else PreconditionFailed."""
    from moto.cloudfront.exceptions import CloudFrontException, InvalidIfMatchVersion

    if not if_match:
        raise InvalidIfMatchVersion()
    if if_match != dist.etag:
        raise CloudFrontException(
            "PreconditionFailed",
            "The precondition given in one or more of the request-header fields evaluated to false.")


def patch_moto_cloudfront() -> None:
    """Install the fixes and rules above into moto's CloudFront model (idempotent)."""
    from moto.cloudfront import models

    backend = models.CloudFrontBackend
    if getattr(backend, "_reconciler_patched", False):
        return
    backend._reconciler_patched = True  # type: ignore[attr-defined]
    models.Distribution.status = property(  # type: ignore[assignment]
        lambda self: getattr(self, "_rs_status", "Deployed"),
        lambda self, value: setattr(self, "_rs_status", value))
    models.Distribution.advance = lambda self: None  # type: ignore[method-assign]

    _patch_origins(models)
    _patch_distributions(backend)
    _patch_invalidations_and_oacs(backend)


def _patch_origins(models: Any) -> None:
    """An origin keeps its Origin Access Control and S3 origin config, as AWS returns them."""
    origin_init = models.Origin.__init__

    def origin_keeps_access_control(self: Any, origin: dict[str, Any]) -> None:
        origin_init(self, origin)
        self.origin_access_control_id = origin.get("OriginAccessControlId") or ""
        if "S3OriginConfig" in origin:
            self.s3_origin_config = {
                "OriginAccessIdentity": origin["S3OriginConfig"].get("OriginAccessIdentity") or ""}
    models.Origin.__init__ = origin_keeps_access_control  # type: ignore[method-assign]


def _patch_distributions(backend: Any) -> None:
    """Creates and updates deploy for AWS's time (IfMatch checked); a delete needs the distribution disabled and
    deployed."""
    from moto.cloudfront import models
    from moto.cloudfront.exceptions import CloudFrontException

    create = backend.create_distribution_with_tags

    def create_deploys(self: Any, distribution_config: dict[str, Any], tags: list[dict[str, str]]) -> Any:
        dist, location, etag = create(self, distribution_config, tags)
        _deploy(dist)
        return dist, location, etag

    update = backend.update_distribution

    def update_with_etag(self: Any, dist_config: dict[str, Any], _id: str, if_match: Any) -> Any:
        if _id in self.distributions:
            check_etag(self.distributions[_id], if_match)
        dist, location, _ = update(self, dist_config, _id, if_match)
        dist.etag = models.random_id()
        _deploy(dist)
        return dist, location, dist.etag

    delete = backend.delete_distribution

    def delete_disabled_and_deployed(self: Any, distribution_id: str, if_match: Any) -> None:
        dist = self.distributions.get(distribution_id)
        if dist is not None:
            check_etag(dist, if_match)
            enabled = dist.distribution_config.Enabled in (True, "true", "True")
            if enabled or dist.status != "Deployed":
                raise CloudFrontException(
                    "DistributionNotDisabled",
                    "The distribution you are trying to delete has not been disabled."
                    if enabled else "The distribution you are trying to delete is still being deployed "
                                    "(Status InProgress); wait until it is Deployed.")
        delete(self, distribution_id, if_match)
    backend.create_distribution_with_tags = create_deploys  # type: ignore[method-assign]
    backend.update_distribution = update_with_etag  # type: ignore[method-assign]
    backend.delete_distribution = delete_disabled_and_deployed  # type: ignore[method-assign]


def _patch_invalidations_and_oacs(backend: Any) -> None:
    """Invalidations deduplicated by CallerReference within AWS's limits in progress; an OAC in use is not deleted."""
    from moto.cloudfront.exceptions import CloudFrontException

    create_invalidation = backend.create_invalidation

    def deduplicated_invalidation(self: Any, dist_id: str, paths: list[str], caller_ref: str) -> Any:
        for existing in self.invalidations.get(dist_id, []):
            if existing.caller_ref == caller_ref:
                if sorted(existing.paths) == sorted(paths):
                    return existing
                raise CloudFrontException(
                    "InvalidationBatchAlreadyExists",
                    "The CallerReference you are using to create an invalidation batch is associated "
                    "with another invalidation batch.")
        in_progress = [p for i in self.invalidations.get(dist_id, []) if i.status == "InProgress" for p in i.paths]
        files, wildcards = _path_counts(in_progress + list(paths))
        if files > FILE_PATHS_IN_PROGRESS or wildcards > WILDCARD_PATHS_IN_PROGRESS:
            raise CloudFrontException(
                "TooManyInvalidationsInProgress",
                "Processing your request will cause you to exceed the maximum number of in-progress wildcard "
                "invalidations or individual file invalidations.")
        made = create_invalidation(self, dist_id, paths, caller_ref)
        made.status = "InProgress"
        current().after("cloudfront.invalidation", lambda: _complete(made))
        return made

    delete_oac = backend.delete_origin_access_control

    def delete_oac_unless_used(self: Any, control_id: str) -> None:
        for dist in self.distributions.values():
            if any(getattr(o, "origin_access_control_id", "") == control_id
                   for o in dist.distribution_config.Origins["Items"]):
                raise CloudFrontException(
                    "OriginAccessControlInUse",
                    "Cannot delete the origin access control because it's in use by one or more distributions.")
        delete_oac(self, control_id)

    backend.delete_origin_access_control = delete_oac_unless_used  # type: ignore[method-assign]
    backend.create_invalidation = deduplicated_invalidation  # type: ignore[method-assign]
