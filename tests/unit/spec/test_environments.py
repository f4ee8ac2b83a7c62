"""Environments without AWS: values typed as YAML, patches merged, and every mistake named at its file:line (the
environment's and the base's)."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from reconciler.core.errors import SpecError
from reconciler.engine.load import load_specs
from tests.conftest import ROOT

BASE = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: "orders-${stage}"}
spec:
  partitionKey: {name: OrderId, type: S}
  billingMode: PROVISIONED
  capacity: {read: 5, write: 5}
  tags: {stage: "${stage}", cost-centre: "cc-${centre:=42}"}
  items: [{OrderId: o-1, literal: "$${stage}"}]   # an escaped placeholder (no tag takes '$': DynamoDB's rules)
"""


def layout(tmp_path: Path, environment: str, base: str = BASE) -> Path:
    """specs/tables.yaml (the base) and envs/prod/environment.yaml; returns envs/prod."""
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tables.yaml").write_text(base)
    env = tmp_path / "envs" / "prod"
    env.mkdir(parents=True)
    (env / "environment.yaml").write_text(textwrap.dedent(environment).lstrip())
    return env


ENV = """
    apiVersion: reconciler/v1
    kind: Environment
    metadata: {name: prod}
    spec:
      base: [../../specs]
      values: {stage: prod}
      patches:
        - kind: Table
          name: orders-${stage}
          patch: {capacity: {read: 20}}
"""


def problems(root: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_specs(root)
    return [str(p) for p in info.value.problems]


def test_values_fill_placeholders_and_patches_merge(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_specs(layout(tmp_path, ENV))
    [table] = loaded.specs
    assert table.name == "orders-prod" and table.environment == "prod"
    assert table.spec["capacity"] == {"read": 20, "write": 5}  # the patch's read, the base's write
    assert table.spec["tags"] == {"stage": "prod", "cost-centre": "cc-42"}
    assert table.spec["items"] == [{"OrderId": "o-1", "literal": "${stage}"}]
    assert loaded.environment.name == "prod"
    assert table.origin_of(("spec", "capacity", "read"))[0].what == "patch"
    assert table.origin_of(("spec", "capacity", "write")) is None  # stated by the base itself


def test_a_whole_placeholder_takes_the_values_yaml_type(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = BASE.replace("capacity: {read: 5, write: 5}", "capacity:\n    read: ${reads}\n    write: ${writes:=7}")
    env = """
        apiVersion: reconciler/v1
        kind: Environment
        metadata: {name: prod}
        spec:
          base: [../../specs]
          values: {stage: prod, reads: 12}
    """
    [table] = load_specs(layout(tmp_path, env, base)).specs
    assert table.spec["capacity"] == {"read": 12, "write": 7}
    assert isinstance(table.spec["capacity"]["read"], int) and isinstance(table.spec["capacity"]["write"], int)


def test_an_undeclared_placeholder_is_named_at_the_bases_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = ENV.replace("values: {stage: prod}", "values: {stag: prod}")
    found = problems(layout(tmp_path, env))
    assert any(p.startswith("specs/tables.yaml:3 metadata.name: ${stage} has no value") and "declared: stag" in p
               for p in found), found
    assert any(p.startswith("envs/prod/environment.yaml:9 spec.patches[0].name: ${stage} has no value")
               for p in found), found


def test_an_unused_value_and_a_patch_that_hits_nothing_are_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = ENV.replace("values: {stage: prod}", "values: {stage: prod, region: eu}").replace(
        "name: orders-${stage}", "name: order-${stage}")
    found = problems(layout(tmp_path, env))
    assert "envs/prod/environment.yaml:6 spec.values.region: the value 'region' is used by no ${region} " \
           "placeholder in the bases" in found
    assert any(p.startswith("envs/prod/environment.yaml:8 spec.patches[0]: no Table named 'order-prod'")
               for p in found), found


def test_a_patch_that_breaks_the_schema_names_the_patch_and_the_base(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = ENV.replace("patch: {capacity: {read: 20}}", "patch: {capacity: {read: lots}}")
    [problem] = problems(layout(tmp_path, env))
    assert problem.startswith("specs/tables.yaml:7 spec.capacity.read: ")
    assert problem.endswith("(set by the patch at envs/prod/environment.yaml:10)")


def test_the_role_must_be_in_the_environments_account(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = ENV + """\
      aws: {region: eu-west-1, accountId: "111122223333", roleArn: "arn:aws:iam::999999999999:role/reconciler"}
    """
    found = problems(layout(tmp_path, env))
    assert found == ["envs/prod/environment.yaml:11 spec.aws.roleArn: the role is in account 999999999999, not in "
                     "accountId 111122223333"]


def test_a_base_placeholder_without_an_environment_needs_a_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.yaml").write_text(BASE)
    found = problems(Path("."))
    said = "${stage} has no value: declare it in the environment's values (declared: none) or give a default " \
           "(${stage:=...})"
    assert found == [f"t.yaml:3 metadata.name: {said}", f"t.yaml:8 spec.tags.stage: {said}"]


def test_an_environment_document_among_specs_says_where_it_belongs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    layout(tmp_path, ENV)
    found = problems(Path("envs/.."))
    assert any("envs/prod/environment.yaml:2 kind: an Environment is not a resource" in p for p in found), found


def test_the_example_environments_differ_where_they_should(monkeypatch):
    monkeypatch.chdir(ROOT)
    staging, prod = load_specs(Path("envs/staging")), load_specs(Path("envs/prod"))
    assert sorted(s.name for s in staging.specs) == ["Products-staging", "Users-staging", "app-cache-staging",
                                                     "example-site-bucket-staging", "website"]
    assert staging.get("CacheCluster", "app-cache-staging").spec["nodeType"] == "cache.t3.micro"
    assert prod.get("CacheCluster", "app-cache-prod").spec["nodeType"] == "cache.t3.small"
    assert prod.get("Table", "Products-prod").spec["capacity"] == {"read": 20, "write": 10}
    assert staging.get("Table", "Products-staging").spec["capacity"] == {"read": 5, "write": 5}
    assert prod.get("Distribution", "website").spec["origin"] == {"bucket": "example-site-bucket-prod"}
    assert staging.environment.aws.account_id != prod.environment.aws.account_id
    # the base alone is still the example stack (every placeholder there has a default)
    assert sorted(s.name for s in load_specs(Path("specs")).specs) == ["Products", "Users", "app-cache",
                                                                      "example-site-bucket", "website"]
    assert isinstance(prod.get("Table", "Users-prod").spec["items"][0]["UserId"], str)
    assert Decimal("12.50") == prod.get("Table", "Products-prod").spec["items"][0]["Price"]


def test_an_agent_refuses_a_revision_that_moves_its_environment(tmp_path, monkeypatch):
    from reconciler.agent.reconcile import same_environment

    monkeypatch.chdir(tmp_path)
    env = ENV + """\
      aws: {region: eu-west-1, accountId: "111122223333"}
    """
    root = layout(tmp_path, env)
    started = load_specs(root)
    same_environment(started.environment, started)  # the same revision: fine
    document = root / "environment.yaml"
    document.write_text(document.read_text().replace("111122223333", "999988887777"))
    with pytest.raises(SpecError) as info:
        same_environment(started.environment, load_specs(root))
    [problem] = info.value.problems
    assert "the agent was started for environment 'prod'" in problem.message and "restart the agent" in problem.message
    with pytest.raises(SpecError):
        same_environment(None, started)  # a plain directory's agent never follows an environment's revision
