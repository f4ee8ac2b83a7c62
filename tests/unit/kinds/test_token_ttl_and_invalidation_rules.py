"""AWS's rules the agent keeps on its own, as pure functions: the AUTH token's characters, the TTL record,
CloudFront's limits on invalidations in progress."""

from __future__ import annotations

from reconciler.kinds.cache.token import TOKEN_SPECIALS, token_problem
from reconciler.kinds.distribution.invalidations import path_counts, too_large
from reconciler.kinds.table.calls import ttl_record


def test_a_token_aws_takes_at_create():
    assert token_problem("Abc-123!&#$^<>xyz") is None
    assert token_problem("a" * 128) is None and TOKEN_SPECIALS == "!&#$^<>-"


def test_a_token_aws_refuses_is_named_by_its_rule_never_shown():
    problem = token_problem("under_score+plus-0123")
    assert problem is not None and "'+' '_'" in problem and "under_score" not in problem
    assert "The only permitted printable special characters are !, &, #, $, ^, <, >, and -" in problem
    assert "has 15 characters" in (token_problem("a" * 15) or "")
    assert "has 129 characters" in (token_problem("a" * 129) or "")
    assert "U+00E9" in (token_problem("caf\u00e9-0123456789abc") or "")  # not printable ASCII: AWS refuses it


def test_the_ttl_record():
    assert ttl_record("") is None and ttl_record("garbage") is None
    assert ttl_record("1700000000:on:ExpiresAt") == (1700000000.0, (True, "ExpiresAt"))
    assert ttl_record("1700000000:off:Old") == (1700000000.0, (False, "Old"))
    assert ttl_record("1700000123:refused") == (1700000123.0, None)


def test_invalidation_paths_count_against_two_limits():
    assert path_counts(["/a.html", "/b/*", "/*"]) == (1, 2)
    assert too_large([f"/f{i}" for i in range(3000)]) is None
    assert "3001 file paths" in (too_large([f"/f{i}" for i in range(3001)]) or "")
    assert "16 wildcard paths" in (too_large([f"/d{i}/*" for i in range(16)]) or "")
