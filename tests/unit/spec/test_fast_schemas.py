"""The fast check (fastjsonschema's compiled schemas) never passes a document jsonschema refuses, nor refuses one it
passes: the example's documents, every kind's, and thousands of mutations of them."""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.spec import fastschemas
from reconciler.spec.fastschemas import refuses, schema_files
from reconciler.spec.schemas import schema_validators
from tests.conftest import ROOT
from tests.unit.spec.test_documents_fuzzed import plain


def example_documents() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text().replace("${suffix:=}", "")) if d]
    return docs


def jsonschema_refuses(doc: dict) -> bool:
    return any(True for _ in schema_validators()[doc["kind"]].iter_errors(doc))


def paths_of(node: object, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths_of(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += paths_of(value, (*at, i))
    return out


def test_the_example_passes_both_and_every_kind_is_compiled():
    docs = example_documents()
    assert {d["kind"] for d in docs} == {"Table", "Bucket", "Distribution", "CacheCluster"}
    for doc in docs:
        assert not refuses(doc["kind"], doc) and not jsonschema_refuses(doc), doc["metadata"]["name"]
    assert all(fastschemas.fast_check(kind) is not None for kind in schema_files())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(min_value=0), where=st.integers(min_value=0), value=plain)
def test_a_mutated_document_gets_the_same_verdict_from_both(which, where, value):
    docs = example_documents()
    doc = copy.deepcopy(docs[which % len(docs)])
    paths = [p for p in paths_of(doc) if p and p[0] not in ("apiVersion", "kind")]
    path = paths[where % len(paths)]
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert refuses(doc["kind"], doc) == jsonschema_refuses(doc), (path, value)


def test_compiled_code_is_run_only_from_a_file_nobody_else_may_write(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(tmp_path))
    fastschemas.fast_check.cache_clear()
    assert fastschemas.fast_check("Table") is not None
    [kept] = list((tmp_path / "schemas").glob("*/Table.py"))
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    kept.write_text("raise SystemExit('not our code')\n")
    os.chmod(kept, 0o666)  # writable by others: not trusted, compiled again in memory
    fastschemas.fast_check.cache_clear()
    assert fastschemas.fast_check("Table") is not None  # the planted code did not run (it would have exited)
    assert "def validate" in Path(kept).read_text() and stat.S_IMODE(kept.stat().st_mode) == 0o600  # replaced
    fastschemas.fast_check.cache_clear()
