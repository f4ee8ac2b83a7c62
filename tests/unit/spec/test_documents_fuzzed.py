"""Fuzzing the spec loader: any input loads, or fails with SpecError naming file and line;
never another exception, never a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.errors import SpecError
from reconciler.engine.load import load_specs

GOOD = {
    "apiVersion": "reconciler/v1", "kind": "Table", "metadata": {"name": "Users"},
    "spec": {"partitionKey": {"name": "UserId", "type": "S"}, "tags": {"team": "web"},
             "items": [{"UserId": "u-1", "Score": 1}]},
}

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
PATHS = [("apiVersion",), ("kind",), ("metadata",), ("metadata", "name"), ("metadata", "policy"),
         ("metadata", "ignore"), ("spec",), ("spec", "partitionKey"), ("spec", "partitionKey", "type"),
         ("spec", "tags"), ("spec", "items"), ("spec", "items", 0), ("spec", "items", 0, "UserId"),
         ("spec", "billingMode"), ("spec", "capacity"), ("spec", "globalSecondaryIndexes")]


def load_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(text)
        try:
            load_specs(Path(tmp))
        except SpecError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert problem.file.endswith("fuzz.yaml") and problem.message
                assert "Traceback" not in str(problem)


def mutate(doc: dict, path: tuple, value: object) -> dict:
    import copy

    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        if isinstance(target, dict):
            target = target.setdefault(key, {})
        elif isinstance(target, list) and isinstance(key, int) and key < len(target):
            target = target[key]
        else:
            return doc
    settable = isinstance(target, dict) or (
        isinstance(target, list) and isinstance(path[-1], int) and path[-1] < len(target))
    if settable:
        target[path[-1]] = value
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_is_loaded_or_refused_cleanly(text):
    load_text(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), plain)
def test_schema_violations_are_refused_cleanly(path, value):
    load_text(yaml.safe_dump(mutate(GOOD, path, value), allow_unicode=True))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["{", "[", "- &a [*a]", "a: &x {b: *x}", ": :", "\t- x", "!!python/object:os.system x",
                        "key: !!binary xyz", "---\n...\n---", "\x00", "a: 1\na: 2"]), st.text(max_size=30))
def test_hostile_yaml_is_refused_cleanly(fragment, tail):
    load_text(fragment + tail)


def test_recursive_alias_is_a_clear_error(tmp_path):
    (tmp_path / "a.yaml").write_text("a: &x [*x]\n")
    try:
        load_specs(tmp_path)
    except SpecError as exc:
        assert "a.yaml" in str(exc)
    else:
        raise AssertionError("a recursive alias must not load")
