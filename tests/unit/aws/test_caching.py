"""CloudFront's caching rules as reconciler/cdn.py states them (AWS's words are cited there)."""

from __future__ import annotations

import json

from reconciler.aws.caching import MANAGED_TTLS, covers, directives, edge_ttl, public_statement

OPTIMIZED = MANAGED_TTLS["Managed-CachingOptimized"]


def test_how_long_the_edge_keeps_an_object():
    assert edge_ttl(OPTIMIZED, None) == 86_400                                     # DefaultTTL
    assert edge_ttl(OPTIMIZED, "public, max-age=31536000, immutable") == 31_536_000
    assert edge_ttl(OPTIMIZED, "max-age=99999999") == 31_536_000                   # capped at MaxTTL
    assert edge_ttl(OPTIMIZED, "max-age=0") == 1                                   # raised to MinTTL
    assert edge_ttl(OPTIMIZED, "max-age=60, s-maxage=600") == 600                  # s-maxage first
    assert edge_ttl(OPTIMIZED, "no-cache") == 1                                    # MinTTL
    assert edge_ttl(MANAGED_TTLS["Managed-CachingDisabled"], "max-age=600") == 0   # not cached
    assert directives('Public, MAX-AGE="30"') == {"public": None, "max-age": 30}


def test_what_an_invalidation_path_covers():
    assert covers("/index.html", "/index.html") and not covers("/index.html", "/")
    assert covers("/assets/*", "/assets/site.css") and covers("/*", "/") and not covers("/assets/*", "/index.html")
    assert not covers("/Index.html", "/index.html")  # case sensitive


def test_a_statement_that_gives_everyone_read():
    def policy(**statement: object) -> str:
        return json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                          "Resource": "arn:aws:s3:::site/*", **statement}]})

    assert public_statement(policy(Principal="*", Sid="Open"), "site", "a.txt") == "Open"
    assert public_statement(policy(Principal={"AWS": "*"}), "site", "a.txt") == "statement 1"
    assert public_statement(policy(Principal={"Service": "cloudfront.amazonaws.com"}), "site", "a.txt") is None
    assert public_statement(policy(Principal="*", Condition={"StringEquals": {"aws:SourceVpce": "v"}}),
                            "site", "a.txt") is None
    assert public_statement(policy(Principal="*"), "other", "a.txt") is None
    assert public_statement(None, "site", "a.txt") is None
