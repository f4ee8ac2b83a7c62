"""CloudFront's limits on invalidations in progress, which both the Distribution's declared invalidations and
the Bucket's published content stay within.

CloudFront Developer Guide, "Concurrent invalidation request maximum": "If you're invalidating files
individually, you can have invalidation requests for up to 3,000 files per distribution in progress at one
time"; "If you're using the * wildcard, you can have requests for up to 15 invalidation paths in progress at
one time", a limit "separate from the limit on invalidating files individually". Past either, AWS answers
TooManyInvalidationsInProgress. An invalidation that would not fit waits for a later cycle (`pending`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FILE_PATHS_IN_PROGRESS = 3000
WILDCARD_PATHS_IN_PROGRESS = 15


def path_counts(paths: Sequence[str]) -> tuple[int, int]:
    """(individual file paths, wildcard paths): AWS counts them against separate limits."""
    wildcards = sum(1 for p in paths if "*" in p)
    return len(paths) - wildcards, wildcards


def too_large(paths: Sequence[str]) -> str | None:
    """Why one invalidation could never be issued (more paths than AWS allows in progress), or None."""
    files, wildcards = path_counts(paths)
    if files > FILE_PATHS_IN_PROGRESS:
        return (f"{files} file paths: CloudFront allows {FILE_PATHS_IN_PROGRESS} in progress per distribution; "
                "split it, or use a wildcard path")
    if wildcards > WILDCARD_PATHS_IN_PROGRESS:
        return (f"{wildcards} wildcard paths: CloudFront allows {WILDCARD_PATHS_IN_PROGRESS} in progress per "
                "distribution")
    return None


def in_progress_paths(cf: Any, distribution_id: str) -> list[str]:
    """The paths of the distribution's invalidations still InProgress (ListInvalidations, then GetInvalidation
    for each one in progress: the listing does not carry paths)."""
    paths: list[str] = []
    for page in cf.get_paginator("list_invalidations").paginate(DistributionId=distribution_id):
        for summary in page.get("InvalidationList", {}).get("Items") or []:
            if summary.get("Status") == "InProgress":
                found = cf.get_invalidation(DistributionId=distribution_id, Id=summary["Id"])["Invalidation"]
                paths += found["InvalidationBatch"]["Paths"].get("Items") or []
    return paths


class InvalidationRoom:
    """What a distribution can still take in progress, as invalidations are issued one after another."""

    def __init__(self, cf: Any, distribution_id: str):
        files, wildcards = path_counts(in_progress_paths(cf, distribution_id))
        self.files = FILE_PATHS_IN_PROGRESS - files
        self.wildcards = WILDCARD_PATHS_IN_PROGRESS - wildcards

    def refusal(self, paths: Sequence[str]) -> str | None:
        """Why AWS would refuse these paths now (TooManyInvalidationsInProgress), or None."""
        files, wildcards = path_counts(paths)
        if files > self.files or wildcards > self.wildcards:
            return (f"CloudFront's limit of invalidations in progress ({FILE_PATHS_IN_PROGRESS} file paths, "
                    f"{WILDCARD_PATHS_IN_PROGRESS} wildcard paths per distribution): room for {max(self.files, 0)} "
                    f"and {max(self.wildcards, 0)} now; issued once earlier ones complete")
        return None

    def take(self, paths: Sequence[str]) -> None:
        files, wildcards = path_counts(paths)
        self.files -= files
        self.wildcards -= wildcards
