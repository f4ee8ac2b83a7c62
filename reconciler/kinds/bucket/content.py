"""Publishing a directory to the site bucket, and invalidating exactly what changed.

Change detection is by content: each local file's S3 ETag is computed the way S3 computes
it for the agent's own uploads (MD5 below the multipart threshold; above it, the MD5 of the
parts' MD5s plus "-N" with the agent's fixed part size), and compared with the ETags of one
paginated listing. Headers (Content-Type, Cache-Control) are not in a listing: they are kept
in a manifest object, `.reconciler/manifest.json`, read once per cycle. The manifest also
holds the paths still to be invalidated, written *before* uploading, so a crash between
upload and invalidation still invalidates on the next cycle. The manifest is readable
through the site like any object: it holds only the names, ETags and headers of files the
site already serves, and paths awaiting invalidation.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import mimetypes
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reconciler.core.errors import ReconcilerError
from reconciler.core.types import NotYet
from reconciler.kinds.distribution.invalidations import InvalidationRoom

MANIFEST_KEY = ".reconciler/manifest.json"
LAST_PUBLISH_KEY = ".reconciler/last-publish.json"  # what the last publish changed (the site check reads it)
LAST_KEYS = 10
PART_SIZE = 8 * 1024 * 1024
DEFAULT_THRESHOLD = 15
SHOWN_PATHS = 20

# Web types the standard library's table misses or gets wrong on some systems.
_WEB_TYPES = {
    ".html": "text/html", ".htm": "text/html", ".css": "text/css", ".js": "text/javascript",
    ".mjs": "text/javascript", ".json": "application/json", ".map": "application/json",
    ".webmanifest": "application/manifest+json", ".svg": "image/svg+xml", ".webp": "image/webp",
    ".avif": "image/avif", ".ico": "image/vnd.microsoft.icon", ".woff": "font/woff", ".woff2": "font/woff2",
    ".ttf": "font/ttf", ".otf": "font/otf", ".wasm": "application/wasm", ".txt": "text/plain",
    ".xml": "application/xml", ".md": "text/markdown",
}


def content_type(key: str) -> str:
    """The Content-Type for a key: the web table first, then mimetypes; text gets utf-8."""
    suffix = Path(key).suffix.lower()
    kind = _WEB_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/json", "application/xml", "image/svg+xml",
                                            "application/manifest+json"):
        kind += "; charset=utf-8"
    return kind


def cache_control(key: str, rules: dict[str, str]) -> str | None:
    """The first rule (in spec order) whose glob matches the key."""
    return next((value for glob, value in rules.items() if fnmatch.fnmatchcase(key, glob)), None)


def s3_etag(path: Path) -> str:
    """The ETag S3 gives this file when the agent uploads it (see the module docstring)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if size < PART_SIZE:
            return hashlib.md5(f.read(), usedforsecurity=False).hexdigest()
        digests = [hashlib.md5(chunk, usedforsecurity=False).digest() for chunk in iter(lambda: f.read(PART_SIZE), b"")]
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


@dataclass(frozen=True)
class LocalFile:
    key: str
    path: Path
    etag: str
    content_type: str
    cache_control: str | None

    def headers(self) -> dict[str, str | None]:
        return {"contentType": self.content_type, "cacheControl": self.cache_control}


def _excluded(key: str, globs: list[str]) -> bool:
    return key.startswith(".reconciler/") or any(fnmatch.fnmatchcase(key, g) for g in globs)


def _hidden(key: str) -> bool:
    return any(part.startswith(".") for part in key.split("/"))


def _may_hold_included(key: str, include: list[str]) -> bool:
    """A hidden directory is read only when an `include` glob could name something in it (`.well-known/*`)."""
    parts = key.split("/")

    def could(glob: str) -> bool:
        steps = glob.split("/")
        leading = len(steps) >= len(parts) and all(
            fnmatch.fnmatchcase(p, q) for p, q in zip(parts, steps[:len(parts)], strict=True))
        return leading or fnmatch.fnmatchcase(key + "/", glob)

    return any(could(g) for g in include)


@dataclass
class SiteFiles:
    """What a site directory publishes: (key, the file read for it) and why anything in it is refused."""

    files: list[tuple[str, Path]]
    problems: list[str]


def site_files(directory: Path, include: list[str] | None = None) -> SiteFiles:
    """Every file a site directory publishes, by key, without ever reading outside it: a symbolic link is followed
    only where its target lies inside the directory (a link outside, a dangling link and a loop are problems, named
    by the link's path), hidden files and directories (`.env`, `.git/`) are left out unless an `include` glob names
    them, and anything but a regular file is a problem. `directory` must exist."""
    include = list(include or [])
    base = directory.resolve(strict=True)
    found = SiteFiles([], [])

    def shown(path: Path) -> str:
        return os.path.normpath(directory / path.relative_to(base)) if path.is_relative_to(base) else str(path)

    def walk(folder: Path, prefix: str, ancestors: frozenset[Path]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            found.problems.append(f"{shown(folder)}: cannot be listed: {exc.strerror or exc}")
            return
        for entry in entries:
            key, path = prefix + entry.name, folder / entry.name
            if _hidden(key) and not any(fnmatch.fnmatchcase(key, g) for g in include) and \
                    not (entry.is_dir() and _may_hold_included(key, include)):
                continue
            real = path
            if entry.is_symlink():
                target = _link_target(path)
                if isinstance(target, str):
                    found.problems.append(f"{shown(path)} is {target}")
                    continue
                if not target.is_relative_to(base):
                    found.problems.append(f"{shown(path)} is a symbolic link to {target}, outside the site directory")
                    continue
                real = target
            if real.is_dir():
                if real in ancestors:
                    found.problems.append(f"{shown(path)} is a symbolic link loop (it leads back to "
                                          f"{shown(real)}/)")
                    continue
                walk(real, key + "/", ancestors | {real})
            elif real.is_file():
                found.files.append((key, real))
            else:
                found.problems.append(f"{shown(path)} is not a regular file")

    walk(base, "", frozenset({base}))
    return found


def _link_target(path: Path) -> Path | str:
    """Where a symbolic link leads, or what is wrong with it."""
    try:
        return path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 says a loop so
        return "a symbolic link loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        return f"a dangling symbolic link (to {os.readlink(path)})" if not os.path.exists(path) else \
            f"a symbolic link that cannot be followed: {exc.strerror or exc}"


def directory_problem(spec_dir: Path, directory: str, repository: Path | None) -> str | None:
    """Why `content.directory` cannot be published (None: it can): it must be relative to the spec file and resolve
    inside the spec repository (the checkout or work tree the specs are in). A directory that is missing is not a
    problem of the specs: publishing says so for that bucket alone (scan)."""
    if Path(directory).is_absolute():
        return f"{directory!r} is an absolute path; give it relative to the spec file (a site is part of the specs)"
    target = (spec_dir / directory).resolve()
    if repository is not None and not target.is_relative_to(repository.resolve()):
        return (f"{directory!r} resolves to {target}, outside the spec repository ({repository.resolve()}): a site is "
                "published only from inside it")
    return None


def scan(spec_dir: Path, content: dict[str, Any], repository: Path | None = None) -> dict[str, LocalFile]:
    """Every file to publish, by key (`content.directory` relative to `spec_dir`). A directory outside the spec
    repository, a file that cannot be read, or anything refused (a link that leaves the site, see site_files) is an
    error, so that nothing is uploaded from outside and nothing is pruned because of it."""
    problem = directory_problem(spec_dir, content["directory"], repository)
    if problem:
        raise ReconcilerError(f"spec.content.directory: {problem}")
    directory = spec_dir / content["directory"]
    if not directory.is_dir():  # this bucket's error (it publishes and prunes nothing); the others go on
        raise ReconcilerError(f"spec.content.directory: {directory} is not a readable directory")
    rules, excludes = content.get("cacheControl") or {}, content.get("exclude") or []
    walked = site_files(directory, content.get("include"))
    if walked.problems:
        more = f" (and {len(walked.problems) - 1} more)" if len(walked.problems) > 1 else ""
        raise ReconcilerError(f"spec.content.directory: {walked.problems[0]}{more}; nothing was published")
    files: dict[str, LocalFile] = {}
    for key, path in walked.files:
        if _excluded(key, excludes):
            continue
        try:
            etag = s3_etag(path)
        except OSError as exc:
            raise ReconcilerError(f"spec.content: cannot read {path}: {exc.strerror or exc}") from None
        files[key] = LocalFile(key, path, etag, content_type(key), cache_control(key, rules))
    if not files and content.get("prune"):
        raise ReconcilerError(f"spec.content: {directory} has no files to publish; refusing to prune the "
                              "whole bucket (is the directory right?)")
    return files


@dataclass
class Remote:
    """What the bucket holds: ETags from one listing, headers and pending paths from the manifest."""

    etags: dict[str, str]
    manifest: dict[str, Any]
    last_publish_etag: str | None = None  # the ETag of the last publish's record (None: none yet)

    @property
    def pending(self) -> list[str]:
        return list(self.manifest.get("pendingInvalidation") or [])


def read_remote(s3: Any, bucket: str, local: dict[str, LocalFile] | None = None) -> Remote:
    """One listing of the bucket, and the manifest. The manifest is not fetched when its listed ETag (the
    MD5 of its body, as S3 reports it for a single-part upload) is that of the manifest the agent writes
    for `local` once everything is published: in a converged cycle the listing is all it takes."""
    etags: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            etags[obj["Key"]] = obj["ETag"].strip('"')
    manifest: dict[str, Any] = {}
    if MANIFEST_KEY in etags:
        converged = _manifest({k: f.headers() for k, f in local.items()}, [], None) if local is not None else None
        if converged is not None and hashlib.md5(_manifest_body(converged)).hexdigest() == etags[MANIFEST_KEY]:
            manifest = converged
        else:
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=MANIFEST_KEY)["Body"].read())
        del etags[MANIFEST_KEY]
    marker = etags.pop(LAST_PUBLISH_KEY, None)  # the agent's own record, like the manifest
    return Remote(etags, manifest, marker)


@dataclass
class Publish:
    """What publishing would do: keys to upload (new / changed) and delete, paths to invalidate."""

    new: list[str]
    changed: list[str]
    deleted: list[str]
    invalidate: list[str]

    @property
    def empty(self) -> bool:
        return not (self.new or self.changed or self.deleted or self.invalidate)


def url_path(key: str) -> str:
    return "/" + quote(key, safe="/~-_.!*'()")


def compute(local: dict[str, LocalFile], remote: Remote, content: dict[str, Any], root_object: str | None
            ) -> Publish:
    """Compare the directory with the bucket."""
    known = remote.manifest.get("files") or {}
    new = [k for k in local if k not in remote.etags]
    changed = [k for k, f in local.items() if k in remote.etags
               and (remote.etags[k] != f.etag or known.get(k) != f.headers())]
    excludes = content.get("exclude") or []
    deleted = sorted(k for k in remote.etags if k not in local and not _excluded(k, excludes)) \
        if content.get("prune") else []
    paths = set(remote.pending)
    for key in changed + deleted:
        paths.add(url_path(key))
        if root_object and key == root_object:
            paths.add("/")
    threshold = int(content.get("invalidationThreshold", DEFAULT_THRESHOLD))
    invalidate = ["/*"] if len(paths) > threshold or "/*" in paths else sorted(paths)
    return Publish(new, changed, deleted, invalidate if content.get("invalidate") else [])


def summary(keys: list[str]) -> dict[str, Any]:
    """How a plan shows a list of files: the count and the first paths."""
    shown = {"count": len(keys), "paths": keys[:SHOWN_PATHS]}
    if len(keys) > SHOWN_PATHS:
        shown["more"] = len(keys) - SHOWN_PATHS
    return shown


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def publish(s3: Any, cf: Any, bucket: str, local: dict[str, LocalFile], remote: Remote, plan: Publish,
            distribution_id: str | None, on_progress: Any = None) -> None:
    """Upload, delete, invalidate; the manifest records the intent first, the result last."""
    files = dict(remote.manifest.get("files") or {})
    pending = plan.invalidate
    since = remote.manifest.get("pendingSince") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if pending:
        _write_manifest(s3, bucket, files, pending, since)
    uploads = plan.new + plan.changed
    from boto3.s3.transfer import TransferConfig  # boto3's transfer manager: multipart above PART_SIZE

    transfer = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE, max_concurrency=8)

    def upload(key: str) -> str:
        f = local[key]
        extra = {"ContentType": f.content_type, **({"CacheControl": f.cache_control} if f.cache_control else {})}
        s3.upload_file(str(f.path), bucket, key, ExtraArgs=extra, Config=transfer)
        return key

    with ThreadPoolExecutor(max_workers=8) as pool:
        for key in pool.map(upload, uploads):
            files[key] = local[key].headers()
            if on_progress:
                on_progress(key)
    for chunk in _chunks(plan.deleted, 1000):
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise ReconcilerError(f"DeleteObjects failed for {first['Key']}: {first.get('Code')}")
        for key in chunk:
            files.pop(key, None)
    kept = {k: v for k, v in files.items() if k in local}
    if pending:
        held = ("the distribution to invalidate does not exist yet" if distribution_id is None
                else InvalidationRoom(cf, distribution_id).refusal(pending))
        if held:  # uploaded and recorded; the paths stay pending in the manifest for a later cycle
            _write_manifest(s3, bucket, kept, pending, since)
            raise NotYet(f"{held}; the changed paths stay pending")
        reference = hashlib.sha256(json.dumps([pending, since]).encode()).hexdigest()[:24]
        made = cf.create_invalidation(DistributionId=distribution_id, InvalidationBatch={
            "Paths": {"Quantity": len(pending), "Items": pending},
            "CallerReference": f"reconciler-{bucket}-{reference}"})
        invalidation = {"id": made["Invalidation"]["Id"], "paths": pending[:SHOWN_PATHS]}
    else:
        invalidation = None
    if uploads or plan.deleted:
        _write_last_publish(s3, bucket, uploads + plan.deleted, invalidation)
    _write_manifest(s3, bucket, kept, [], None)


def delete_objects(s3: Any, bucket: str, keys: list[str]) -> None:
    """DeleteObjects, 1,000 keys a call (S3's limit); a key that fails is an error naming it."""
    for chunk in _chunks(keys, 1000):
        out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
        if out.get("Errors"):
            first = out["Errors"][0]
            raise ReconcilerError(f"DeleteObjects failed for {len(out['Errors'])} object(s) of {bucket}, e.g. "
                                  f"{first.get('Key')}: {first.get('Code')}: {first.get('Message')}")


def _write_last_publish(s3: Any, bucket: str, keys: list[str], invalidation: dict[str, Any] | None) -> None:
    """What the last publish changed (the site check fetches these keys through the distribution): when, the first
    LAST_KEYS keys, and the invalidation it issued (None: none)."""
    body = {"format": "reconciler.publish/v1", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "keys": sorted(keys)[:LAST_KEYS], "more": max(0, len(keys) - LAST_KEYS), "invalidation": invalidation}
    s3.put_object(Bucket=bucket, Key=LAST_PUBLISH_KEY, Body=json.dumps(body, sort_keys=True).encode(),
                  ContentType="application/json")


def read_last_publish(s3: Any, bucket: str) -> dict[str, Any] | None:
    """The last publish's record, or None (nothing published by this agent yet, or unreadable)."""
    try:
        return dict(json.loads(s3.get_object(Bucket=bucket, Key=LAST_PUBLISH_KEY)["Body"].read()))
    except s3.exceptions.NoSuchKey:
        return None
    except (ValueError, TypeError):
        return None


def _manifest(files: dict[str, Any], pending: list[str], since: str | None) -> dict[str, Any]:
    body = {"format": "reconciler.site/v1", "files": files, "pendingInvalidation": pending}
    if pending:
        body["pendingSince"] = since
    return body


def _manifest_body(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True).encode()


def _write_manifest(s3: Any, bucket: str, files: dict[str, Any], pending: list[str], since: str | None) -> None:
    s3.put_object(Bucket=bucket, Key=MANIFEST_KEY, Body=_manifest_body(_manifest(files, pending, since)),
                  ContentType="application/json")
