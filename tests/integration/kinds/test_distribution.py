"""Bucket + Distribution end to end: the CLI as a subprocess against the sandbox."""

from __future__ import annotations

import json

import pytest

SITE = """\
apiVersion: reconciler/v1
kind: Bucket
metadata: {name: example-site-bucket}
spec:
  tags: {team: web}
---
apiVersion: reconciler/v1
kind: Distribution
metadata: {name: website}
spec:
  comment: Static site
  origin: {bucket: example-site-bucket}
  defaultRootObject: index.html
  priceClass: PriceClass_100
  viewerProtocolPolicy: redirect-to-https
  cachePolicy: Managed-CachingOptimized
  behaviors:
    - {pathPattern: "/api/*", cachePolicy: Managed-CachingDisabled, viewerProtocolPolicy: https-only}
  invalidations:
    - {paths: ["/index.html"], revision: "2025-09-23"}
  tags: {team: web}
"""


def the_distribution(aws) -> tuple[dict, str]:
    cf = aws.client("cloudfront")
    items = cf.list_distributions()["DistributionList"].get("Items") or []
    assert len(items) == 1, f"expected exactly one distribution, found {len(items)}"
    answer = cf.get_distribution_config(Id=items[0]["Id"])
    return {**answer["DistributionConfig"], "Id": items[0]["Id"], "ARN": items[0]["ARN"]}, answer["ETag"]


def update_config(aws, change) -> None:
    config, etag = the_distribution(aws)
    dist_id = config.pop("Id")
    config.pop("ARN")
    change(config)
    aws.client("cloudfront").update_distribution(Id=dist_id, IfMatch=etag, DistributionConfig=config)


def test_create_everything_then_clean(cli, specs, aws):
    root = specs("site.yaml", SITE)
    assert cli("validate", str(root)).code == 0
    applied = cli("apply", "--auto-approve", str(root))
    assert applied.code == 0, applied.out + applied.err
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0

    config, _ = the_distribution(aws)
    cf, s3 = aws.client("cloudfront"), aws.client("s3")
    [origin] = config["Origins"]["Items"]
    assert origin["DomainName"] == "example-site-bucket.s3.us-east-1.amazonaws.com"
    oacs = cf.list_origin_access_controls()["OriginAccessControlList"]["Items"]
    assert [o["Name"] for o in oacs] == ["reconciler-website"]
    assert origin["OriginAccessControlId"] == oacs[0]["Id"]
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert config["DefaultCacheBehavior"]["CachePolicyId"] == "658327ea-f89d-4fab-a63d-7e88639e58f6"
    assert config["ViewerCertificate"]["CloudFrontDefaultCertificate"] is True
    assert config["CallerReference"] == "reconciler-website"
    policy = json.loads(s3.get_bucket_policy(Bucket="example-site-bucket")["Policy"])
    [allow] = policy["Statement"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"} and allow["Action"] == "s3:GetObject"
    assert allow["Condition"] == {"StringEquals": {"AWS:SourceArn": config["ARN"]}}
    block = s3.get_public_access_block(Bucket="example-site-bucket")["PublicAccessBlockConfiguration"]
    assert all(block.values())
    tags = {t["Key"]: t["Value"] for t in cf.list_tags_for_resource(Resource=config["ARN"])["Tags"]["Items"]}
    assert tags["managed-by"] == "reconciler" and tags["reconciler:name"] == "website"
    # a new distribution has nothing cached: its listed invalidation is recorded, not issued
    assert cf.list_invalidations(DistributionId=config["Id"])["InvalidationList"]["Quantity"] == 0

    assert cli("apply", "--auto-approve", str(root)).code == 0
    the_distribution(aws)  # still exactly one: found again by its tags


def test_drift_is_planned_field_by_field_and_corrected(cli, specs, aws):
    root = specs("site.yaml", SITE)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    config, _ = the_distribution(aws)

    def drift(c):
        c["DefaultRootObject"] = "old.html"
        c["DefaultCacheBehavior"]["ViewerProtocolPolicy"] = "allow-all"
        c["CacheBehaviors"]["Items"][0]["ViewerProtocolPolicy"] = "allow-all"
    update_config(aws, drift)
    cf = aws.client("cloudfront")
    cf.tag_resource(Resource=config["ARN"], Tags={"Items": [{"Key": "team", "Value": "ops"}]})
    aws.client("s3").delete_public_access_block(Bucket="example-site-bucket")  # first: AWS refuses a public
    aws.client("s3").put_bucket_policy(Bucket="example-site-bucket", Policy=json.dumps({  # policy while it blocks
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                "Resource": "arn:aws:s3:::example-site-bucket/*"}]}))

    plan = cli("plan", "--json", "--detailed-exitcode", str(root))
    assert plan.code == 2
    by_ref = {(c["kind"], c["name"]): c for c in plan.json["changes"]}
    dist = by_ref[("Distribution", "website")]
    assert dist["action"] == "update"
    assert {f["path"] for f in dist["fields"]} == {
        "spec.defaultRootObject", "spec.viewerProtocolPolicy", "spec.behaviors", "spec.tags.team",
        "spec.bucketPolicy"}
    assert {f["path"] for f in by_ref[("Bucket", "example-site-bucket")]["fields"]} == {"spec.blockPublicAccess"}

    fixed = cli("apply", "--auto-approve", str(root))
    assert fixed.code == 0, fixed.out + fixed.err
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
    config, _ = the_distribution(aws)
    assert config["DefaultRootObject"] == "index.html"
    assert config["CacheBehaviors"]["Items"][0]["ViewerProtocolPolicy"] == "https-only"
    statements = json.loads(aws.client("s3").get_bucket_policy(Bucket="example-site-bucket")["Policy"])["Statement"]
    assert all(st["Principal"] == {"Service": "cloudfront.amazonaws.com"} for st in statements)


def test_invalidations_are_issued_once_per_revision(cli, specs, aws):
    root = specs("site.yaml", SITE)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    config, _ = the_distribution(aws)
    cf = aws.client("cloudfront")

    def issued() -> list[list[str]]:
        items = cf.list_invalidations(DistributionId=config["Id"])["InvalidationList"].get("Items") or []
        return sorted(cf.get_invalidation(DistributionId=config["Id"], Id=i["Id"])["Invalidation"]
                      ["InvalidationBatch"]["Paths"]["Items"] for i in items)

    bumped = SITE.replace('revision: "2025-09-23"}', 'revision: "2025-09-24"}\n    - {paths: ["/app.js"], revision: 1}')
    specs("site.yaml", bumped)
    plan = cli("plan", "--json", str(root))
    [dist] = [c for c in plan.json["changes"] if c["kind"] == "Distribution"]
    assert [f["path"] for f in dist["fields"]] == [
        "spec.invalidations[2025-09-24 /index.html]", "spec.invalidations[1 /app.js]"]
    assert "+ spec.invalidations[2025-09-24 /index.html]" in cli("plan", str(root)).out

    aws.reset_requests()
    for _ in range(3):  # repeated applies, each a new process (a restart)
        assert cli("apply", "--auto-approve", str(root)).code == 0
    assert issued() == [["/app.js"], ["/index.html"]]
    creates = [r for r in aws.requests() if r["operation"] == "CreateInvalidation"]
    assert sum(r["count"] for r in creates) == 2
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


def test_stale_etag_is_reread_and_retried_once(aws, specs, cli, monkeypatch):
    root = specs("site.yaml", SITE)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    from reconciler.aws.client import Aws
    from reconciler.engine.load import load_specs
    from reconciler.engine.plan import make_plan
    from reconciler.kinds.distribution.kind import Distribution

    spec_set = load_specs(root)
    handle = Aws()
    [dist] = [c for c in make_plan(spec_set, handle).changes if c.kind == "Distribution"]
    update_config(aws, lambda c: c.update(Comment="edited meanwhile"))  # the ETag we hold is now stale
    specs("site.yaml", SITE.replace("defaultRootObject: index.html", "defaultRootObject: home.html"))
    resource = Distribution(load_specs(root).get("Distribution", "website"))
    aws.reset_requests()
    resource.update(handle, dist.live, resource.diff(dist.live))
    ops = {r["operation"]: r["count"] for r in aws.requests()}
    assert ops["UpdateDistribution"] == 2 and ops["GetDistributionConfig"] == 1
    config, _ = the_distribution(aws)
    assert config["DefaultRootObject"] == "home.html"
    # the retry applies only the planned change on top of the fresh config: the concurrent
    # edit is not clobbered blindly; the next plan reports it as drift
    assert config["Comment"] == "edited meanwhile"
    plan = cli("plan", "--json", str(root))
    [change] = [c for c in plan.json["changes"] if c["kind"] == "Distribution"]
    assert [f["path"] for f in change["fields"]] == ["spec.comment"]


def test_deployment_in_progress_is_reported_and_waited_for(cli, specs, aws):
    """With AWS's time: the plan says InProgress since when (a deployment of 300 s x 0.2 = 60 s, longer than
    any plan takes on a busy machine), an update is accepted while it deploys, and apply --wait waits until it
    is Deployed (at 0.05: 15 s), showing how far along it is."""
    root = specs("site.yaml", SITE)
    aws.set_time(0.2)
    applied = cli("apply", "--auto-approve", str(root))
    assert applied.code == 0, applied.out + applied.err
    plan = cli("plan", "--json", str(root))
    [dist] = [c for c in plan.json["changes"] if c["kind"] == "Distribution"]
    assert dist["action"] == "noop" and dist["pending"] == "deployment InProgress"
    assert dist["pendingSince"].startswith("20")
    assert "pending: deployment InProgress since" in cli("plan", str(root)).out
    specs("site.yaml", SITE.replace("Static site", "Static site v2"))
    aws.set_time(0.05)
    waited = cli("apply", "--auto-approve", "--wait=120", str(root))
    assert waited.code == 0, waited.out + waited.err
    assert "Distribution/website: cloudfront.deploy" in waited.out and " of ~15s" in waited.out
    assert "All changes are applied and deployed." in waited.out
    assert aws.errors() == {}


def test_tombstone_disables_then_deletes_the_distribution(cli, specs, aws):
    root = specs("site.yaml", SITE)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    tombstone = "metadata: {name: website, state: absent, deletion: delete}"
    specs("site.yaml", SITE.replace("metadata: {name: website}", tombstone))
    deleted = cli("apply", "--auto-approve", str(root))
    assert deleted.code == 0, deleted.out + deleted.err
    cf = aws.client("cloudfront")
    assert (cf.list_distributions()["DistributionList"].get("Items") or []) == []
    assert (cf.list_origin_access_controls()["OriginAccessControlList"].get("Items") or []) == []
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace("viewerProtocolPolicy: redirect-to-https", "viewerProtocolPolicy: allow-all"),
     "site.yaml:15 spec.viewerProtocolPolicy: 'allow-all' serves the site over plain HTTP"),
    (lambda s: s.replace("viewerProtocolPolicy: https-only}", "viewerProtocolPolicy: allow-all}"),
     "site.yaml:18 spec.behaviors[0].viewerProtocolPolicy: 'allow-all' serves the site over plain HTTP"),
    (lambda s: s.replace("  tags: {team: web}\n---", "  blockPublicAccess: false\n  tags: {team: web}\n---"),
     "site.yaml:5 spec.blockPublicAccess: a public bucket is refused"),
    (lambda s: s.replace("origin: {bucket: example-site-bucket}", "origin: {bucket: other-bucket}"),
     "spec.origin.bucket: no Bucket spec named 'other-bucket'"),
    (lambda s: s.replace("Managed-CachingDisabled", "Managed-NoSuchPolicy"),
     "spec.behaviors[0].cachePolicy: unknown managed cache policy 'Managed-NoSuchPolicy'"),
])
def test_insecure_or_inconsistent_specs_are_refused(cli, specs, aws, edit, message):
    root = specs("site.yaml", edit(SITE))
    result = cli("validate", str(root))
    assert result.code == 1 and message in result.err, result.err


def test_security_exceptions_must_be_explicit(cli, specs, aws):
    text = (SITE.replace("viewerProtocolPolicy: redirect-to-https", "viewerProtocolPolicy: allow-all")
            .replace("metadata: {name: website}", "metadata: {name: website, securityExceptions: [plain-http]}"))
    assert cli("validate", str(specs("site.yaml", text))).code == 0
