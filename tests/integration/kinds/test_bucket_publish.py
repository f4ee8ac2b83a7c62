"""Publishing the site's files: upload by content, invalidate exactly what changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

STACK = """\
apiVersion: reconciler/v1
kind: Bucket
metadata: {name: example-site-bucket}
spec:
  content:
    directory: ../site
    prune: PRUNE
    invalidate: website
    cacheControl: {"*.html": no-cache, "assets/*": "public, max-age=31536000, immutable"}
    exclude: ["*.map"]
---
apiVersion: reconciler/v1
kind: Distribution
metadata: {name: website}
spec:
  origin: {bucket: example-site-bucket}
  defaultRootObject: index.html
"""

FILES = {
    "index.html": "<h1>home</h1>", "about/index.html": "<h1>about</h1>", "assets/app.js": "console.log(1)",
    "assets/site.css": "body{}", "assets/logo.svg": "<svg/>", "fonts/a.woff2": "wOF2", "data.json": "{}",
    "assets/app.js.map": "{}",
}


@pytest.fixture
def site(tmp_path: Path):
    root = tmp_path / "site"

    def write(files: dict[str, str]) -> Path:
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        return root

    write(FILES)
    return write


def stack(specs, prune: bool = False) -> Path:
    return specs("site.yaml", STACK.replace("PRUNE", "true" if prune else "false"))


def content_changes(plan: dict) -> dict[str, object]:
    [bucket] = [c for c in plan["changes"] if c["kind"] == "Bucket"]
    return {f["path"]: f["after"] if f["after"] is not None else f["before"] for f in bucket["fields"]}


def invalidations(aws) -> list[list[str]]:
    cf = aws.client("cloudfront")
    [dist] = cf.list_distributions()["DistributionList"]["Items"]
    items = cf.list_invalidations(DistributionId=dist["Id"])["InvalidationList"].get("Items") or []
    return [sorted(cf.get_invalidation(DistributionId=dist["Id"], Id=i["Id"])["Invalidation"]
                   ["InvalidationBatch"]["Paths"]["Items"]) for i in items]


def ops(aws, name: str) -> int:
    return sum(r["count"] for r in aws.requests() if r["operation"] == name)


def test_first_publish_then_one_edit_then_nothing(cli, specs, aws, site):
    root = stack(specs)
    first = cli("apply", "--auto-approve", str(root))
    assert first.code == 0, first.out + first.err
    s3 = aws.client("s3")
    head = {k: s3.head_object(Bucket="example-site-bucket", Key=k) for k in FILES if not k.endswith(".map")}
    assert head["index.html"]["ContentType"] == "text/html; charset=utf-8"
    assert head["index.html"]["CacheControl"] == "no-cache"
    assert head["assets/app.js"]["ContentType"] == "text/javascript; charset=utf-8"
    assert head["assets/app.js"]["CacheControl"] == "public, max-age=31536000, immutable"
    assert head["assets/logo.svg"]["ContentType"] == "image/svg+xml; charset=utf-8"
    assert head["fonts/a.woff2"]["ContentType"] == "font/woff2" and "CacheControl" not in head["fonts/a.woff2"]
    assert head["data.json"]["ContentType"] == "application/json; charset=utf-8"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="example-site-bucket")["Contents"]}
    assert "assets/app.js.map" not in keys  # excluded
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
    assert invalidations(aws) == []  # nothing was cached yet

    site({"index.html": "<h1>home, edited</h1>"})
    plan = cli("plan", "--json", str(root))
    assert content_changes(plan.json) == {
        "spec.content.update": {"count": 1, "paths": ["index.html"]},
        "spec.content.invalidate": {"distribution": "website", "paths": ["/", "/index.html"]}}
    aws.reset_requests()
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert ops(aws, "PutObject") == 4  # the file, the manifest before and after, the publish record (site check)
    assert ops(aws, "CreateInvalidation") == 1
    assert invalidations(aws) == [["/", "/index.html"]]
    body = s3.get_object(Bucket="example-site-bucket", Key="index.html")["Body"].read()
    assert body == b"<h1>home, edited</h1>"

    aws.reset_requests()
    again = cli("apply", "--auto-approve", str(root))
    assert again.code == 0 and "No changes." in again.out
    assert ops(aws, "PutObject") == 0 and ops(aws, "CreateInvalidation") == 0


def test_prune_removes_deleted_files_only_when_set(cli, specs, aws, site):
    root = stack(specs)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    (site({}) / "data.json").unlink()
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0  # prune: false: left alone
    assert cli("apply", "--auto-approve", str(root)).code == 0
    s3 = aws.client("s3")
    s3.head_object(Bucket="example-site-bucket", Key="data.json")

    root = stack(specs, prune=True)
    plan = cli("plan", "--json", str(root))
    assert content_changes(plan.json) == {
        "spec.content.delete": {"count": 1, "paths": ["data.json"]},
        "spec.content.invalidate": {"distribution": "website", "paths": ["/data.json"]}}
    assert cli("apply", "--auto-approve", str(root)).code == 0
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="example-site-bucket")["Contents"]}
    assert "data.json" not in keys and "index.html" in keys
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


def test_changed_cache_control_rule_republishes(cli, specs, aws, site):
    root = stack(specs)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    specs("site.yaml", STACK.replace("PRUNE", "false").replace('"*.html": no-cache', '"*.html": "max-age=60"'))
    plan = cli("plan", "--json", str(root))
    assert content_changes(plan.json)["spec.content.update"] == {"count": 2, "paths": ["about/index.html",
                                                                                     "index.html"]}
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert aws.client("s3").head_object(Bucket="example-site-bucket", Key="index.html")["CacheControl"] == "max-age=60"


def test_many_changes_become_one_wildcard_invalidation(cli, specs, aws, site):
    root = stack(specs)
    site({f"pages/p{i}.html": "v1" for i in range(20)})
    assert cli("apply", "--auto-approve", str(root)).code == 0
    site({f"pages/p{i}.html": "v2" for i in range(20)})
    plan = cli("plan", "--json", str(root))
    assert content_changes(plan.json)["spec.content.invalidate"]["paths"] == ["/*"]
    assert "one /* invalidation" in cli("plan", str(root)).out
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert invalidations(aws) == [["/*"]]


def test_a_crash_between_upload_and_invalidation_still_invalidates(cli, specs, aws, site):
    root = stack(specs)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    s3 = aws.client("s3")
    manifest = json.loads(s3.get_object(Bucket="example-site-bucket", Key=".reconciler/manifest.json")["Body"].read())
    # the state a crash leaves: the intent recorded, the file uploaded, no invalidation issued
    manifest.update(pendingInvalidation=["/assets/app.js"], pendingSince="2026-01-01T00:00:00Z")
    s3.put_object(Bucket="example-site-bucket", Key=".reconciler/manifest.json", Body=json.dumps(manifest).encode())
    plan = cli("plan", "--json", str(root))
    assert content_changes(plan.json) == {
        "spec.content.invalidate": {"distribution": "website", "paths": ["/assets/app.js"]}}
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert invalidations(aws) == [["/assets/app.js"]]
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


@pytest.mark.slow
def test_two_thousand_files_plan_in_a_handful_of_list_calls(cli, specs, aws, site):
    site({f"gallery/{i:04}.txt": f"photo {i}" for i in range(2000)})
    root = stack(specs)
    assert cli("apply", "--auto-approve", str(root), timeout=300).code == 0
    aws.reset_requests()
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
    assert ops(aws, "ListObjectsV2") <= 3  # 2,008 objects: 1,000 per page
    assert ops(aws, "GetObject") == 0  # converged: the listed ETag of the manifest is that of these files
    assert ops(aws, "HeadObject") == 0
    assert aws.writes() == []


def test_an_unreadable_file_is_an_error_and_nothing_is_pruned(cli, specs, aws, site):
    root = stack(specs, prune=True)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    site_dir = site({})
    (site_dir / "data.json").unlink()
    (site_dir / "broken.html").symlink_to(site_dir / "missing-target.html")
    aws.reset_requests()
    result = cli("apply", "--auto-approve", str(root))
    assert result.code == 1  # refused with the specs: the link names the file, nothing is planned or sent
    assert "spec.content.directory" in result.err and "broken.html is a dangling symbolic link" in result.err
    assert "Traceback" not in result.out + result.err
    assert aws.writes() == []
    aws.client("s3").head_object(Bucket="example-site-bucket", Key="data.json")  # not pruned


def test_a_missing_directory_never_prunes(cli, specs, aws, site, tmp_path):
    root = stack(specs, prune=True)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    (tmp_path / "site").rename(tmp_path / "elsewhere")
    result = cli("apply", "--auto-approve", str(root))
    assert result.code == 1 and "not a readable directory" in result.out
    assert len(aws.client("s3").list_objects_v2(Bucket="example-site-bucket")["Contents"]) > 1


TOMBSTONES = """\
apiVersion: reconciler/v1
kind: Bucket
metadata: {name: example-site-bucket, state: absent, deletion: delete}
spec:
  content: {directory: ../site-gone}
---
apiVersion: reconciler/v1
kind: Distribution
metadata: {name: website, state: absent, deletion: delete}
spec:
  origin: {bucket: example-site-bucket}
"""


def test_a_bucket_the_agent_published_into_is_deleted_with_what_it_published(cli, specs, aws, site):
    """Tombstoned (its content directory gone too): the plan says what goes; apply deletes the objects
    the manifest lists, the manifest, then the bucket (before the fix: a raw BucketNotEmpty)."""
    root = stack(specs)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    specs("site.yaml", TOMBSTONES)
    plan = cli("plan", "--json", str(root))
    assert plan.code == 0, plan.out + plan.err
    [bucket] = [c for c in plan.json["changes"] if c["kind"] == "Bucket"]
    assert bucket["action"] == "delete" and "refused" not in bucket
    assert bucket["notes"] == ["deletes the 7 object(s) reconciler published and its manifest, then the bucket"]
    applied = cli("apply", "--auto-approve", str(root))
    assert applied.code == 0, applied.out + applied.err
    assert aws.client("s3").list_buckets()["Buckets"] == []
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


def test_a_bucket_holding_objects_the_agent_did_not_publish_is_not_deleted(cli, specs, aws, site):
    root = stack(specs)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    s3 = aws.client("s3")
    s3.put_object(Bucket="example-site-bucket", Key="uploads/report.pdf", Body=b"%PDF")
    s3.put_object(Bucket="example-site-bucket", Key="uploads/photo.jpg", Body=b"jpg")
    specs("site.yaml", TOMBSTONES)
    plan = cli("plan", "--json", str(root))
    assert plan.out.startswith("{"), plan.err
    [bucket] = [c for c in plan.json["changes"] if c["kind"] == "Bucket"]
    assert bucket["refused"].startswith("the bucket holds 2 object(s) reconciler did not publish "
                                        "(e.g. 'uploads/photo.jpg')")
    assert "aws s3 rm s3://example-site-bucket/ --recursive" in bucket["refused"]
    refused = cli("apply", "--auto-approve", str(root))
    assert refused.code == 1
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="example-site-bucket")["Contents"]}
    assert {"uploads/report.pdf", "uploads/photo.jpg", "index.html"} <= keys  # nothing was deleted
