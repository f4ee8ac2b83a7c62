"""The agent keeps AWS's rules before AWS has to refuse: checked with the CLI against the sandbox, counting the
writes the sandbox received and refused."""

from __future__ import annotations

import json

from tests.integration.kinds.test_distribution import SITE, the_distribution

CACHE = """\
apiVersion: reconciler/v1
kind: CacheCluster
metadata: {name: app-cache}
spec:
  allowFrom: [{securityGroupName: bastion}]
  authToken: FROM
"""
RULE = "The only permitted printable special characters are !, &, #, $, ^, <, >, and -"


def test_validate_refuses_a_token_aws_would_refuse_naming_the_line_never_the_token(cli, specs, aws):
    root = specs("cache.yaml", CACHE.replace("FROM", "{fromEnv: REDIS_AUTH_TOKEN}"))
    token = "has_underscore_0123456789"
    checked = cli("validate", str(root), env={**aws.env, "REDIS_AUTH_TOKEN": token})
    assert checked.code == 1
    assert "cache.yaml:6 spec.authToken: the environment variable REDIS_AUTH_TOKEN: the token contains '_'" \
        in checked.err and RULE in checked.err
    assert token not in checked.out + checked.err
    assert aws.requests() == []  # validate calls nothing


def test_plan_and_apply_refuse_it_before_any_call_when_it_comes_from_secrets_manager(cli, specs, aws):
    token = "plus+sign+token+0123456789"
    aws.client("secretsmanager").create_secret(Name="redis-token", SecretString=token)
    aws.reset_requests()
    root = specs("cache.yaml", CACHE.replace("FROM", "{fromSecretsManager: redis-token}"))
    assert cli("validate", str(root)).code == 0  # the value is AWS's to give: known only when planning
    for command in (["plan", "--json"], ["apply", "--auto-approve"]):
        done = cli(*command, str(root))
        assert done.code == 1
        assert "cache.yaml:6 spec.authToken: fromSecretsManager redis-token: the token contains '+'" in \
            done.out + done.err and token not in done.out + done.err
    assert aws.writes() == []


def test_invalidations_wait_for_room_in_aws_limits_in_progress(cli, specs, aws):
    root = specs("site.yaml", SITE)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    config, _ = the_distribution(aws)
    cf = aws.client("cloudfront")
    aws.set_time("aws")  # invalidations stay InProgress
    cf.create_invalidation(DistributionId=config["Id"], InvalidationBatch={  # a console user's: the 15 wildcards
        "CallerReference": "by-hand", "Paths": {"Quantity": 15, "Items": [f"/d{i}/*" for i in range(15)]}})
    specs("site.yaml", SITE.replace('revision: "2025-09-23"}', 'revision: "2025-09-23"}\n'
                                    '    - {paths: ["/index.html"], revision: "2"}\n'
                                    '    - {paths: ["/assets/*"], revision: "2"}'))
    aws.reset_requests()
    held = cli("apply", "--auto-approve", str(root))
    assert held.code == 0, held.out + held.err
    assert "in progress" in held.out and "CloudFront's limit of invalidations in progress" in held.out
    issued = [i for i in cf.list_invalidations(DistributionId=config["Id"])["InvalidationList"]["Items"]]
    assert len(issued) == 2  # the file path fits and went; the wildcard waits
    assert aws.errors() == {}  # nothing sent that AWS would refuse
    aws.finish_transitions()
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert cf.list_invalidations(DistributionId=config["Id"])["InvalidationList"]["Quantity"] == 3
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
    assert aws.errors() == {}


def test_validate_refuses_an_invalidation_larger_than_aws_allows_in_progress(cli, specs):
    paths = json.dumps([f"/d{i}/*" for i in range(16)])
    root = specs("site.yaml", SITE.replace('["/index.html"]', paths))
    done = cli("validate", str(root))
    assert done.code == 1 and "16 wildcard paths: CloudFront allows 15 in progress" in done.err


def test_the_oac_is_kept_while_another_distribution_uses_it(cli, specs, aws):
    root = specs("site.yaml", SITE)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    config, _ = the_distribution(aws)
    cf = aws.client("cloudfront")
    other = {**{k: v for k, v in config.items() if k not in ("Id", "ARN")}, "CallerReference": "by-hand"}
    cf.create_distribution(DistributionConfig=other)  # someone else's, on the agent's OAC
    aws.reset_requests()
    tombstone = SITE.replace("metadata: {name: website}", "metadata: {name: website, state: absent, "
                                                          "deletion: delete}")
    specs("site.yaml", tombstone)
    assert cli("apply", "--auto-approve", "--wait=60", str(root)).code == 0
    left = cf.list_distributions()["DistributionList"]["Items"]
    assert [d["DistributionConfig"]["CallerReference"] if "DistributionConfig" in d else
            cf.get_distribution_config(Id=d["Id"])["DistributionConfig"]["CallerReference"] for d in left] == \
        ["by-hand"]
    assert [o["Name"] for o in cf.list_origin_access_controls()["OriginAccessControlList"]["Items"]] == [
        "reconciler-website"]  # kept: the other distribution uses it
    assert aws.errors() == {}
