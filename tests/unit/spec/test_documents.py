"""Spec loading: file:line:field errors, several at once, and exact plain values."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from reconciler.core.errors import SpecError
from reconciler.engine.load import load_specs

GOOD = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Users}
spec:
  partitionKey: {name: UserId, type: S}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def problems(tmp_path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    return [str(p) for p in info.value.problems]


def test_enum_error_names_file_line_and_field(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "data.yaml", GOOD + "  sortKey:\n    name: CreatedAt\n    type: Q\n")
    assert problems(Path(".")) == ["data.yaml:8 spec.sortKey.type: 'Q' is not one of S, N, B"]


def test_several_errors_across_files_are_reported_together(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("type: S", "type: X"))
    write(tmp_path, "b.yaml", GOOD.replace("Users", "Orders") + "  colour: blue\n")
    found = problems(tmp_path)
    assert len(found) == 2
    assert found[0].endswith("a.yaml:5 spec.partitionKey.type: 'X' is not one of S, N, B")
    assert "b.yaml:6 spec.colour: unknown field" in found[1]


def test_missing_required_field(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("  partitionKey: {name: UserId, type: S}\n", "  billingMode: PROVISIONED\n"))
    assert any("spec: missing required field 'partitionKey'" in p for p in problems(tmp_path))


def test_duplicate_names_are_an_error_with_both_places(tmp_path):
    write(tmp_path, "a.yaml", GOOD + "---\n" + GOOD)
    [problem] = problems(tmp_path)
    assert "a.yaml:9 metadata.name: duplicate Table 'Users' (first defined at" in problem
    assert "a.yaml:3)" in problem  # the first name, not the first document's start


def test_unknown_kind_lists_the_known_ones(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("kind: Table", "kind: Queue"))
    [problem] = problems(tmp_path)
    assert "a.yaml:2 kind: unknown kind 'Queue'; known kinds:" in problem
    assert "Table" in problem


def test_wrong_api_version(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("reconciler/v1", "v2"))
    assert "apiVersion: 'v2' is not supported" in problems(tmp_path)[0]


def test_yaml_syntax_error_names_the_line(tmp_path):
    write(tmp_path, "a.yaml", GOOD + "  tags: {team: web\n")
    [problem] = problems(tmp_path)
    assert "a.yaml:" in problem and "invalid YAML" in problem


def test_duplicate_yaml_keys_are_an_error(tmp_path):
    write(tmp_path, "a.yaml", GOOD + "  billingMode: PROVISIONED\n  billingMode: PAY_PER_REQUEST\n")
    assert any("a.yaml:7 spec.billingMode: duplicate key" in p for p in problems(tmp_path))


def test_reserved_tags_are_refused(tmp_path):
    write(tmp_path, "a.yaml", GOOD + "  tags: {managed-by: me}\n")
    assert any("reserved" in p for p in problems(tmp_path))


def test_item_must_carry_a_key_of_the_right_type(tmp_path):
    write(tmp_path, "a.yaml", GOOD + "  items:\n    - {Name: no-key}\n    - {UserId: 5}\n")
    found = problems(tmp_path)
    assert any("a.yaml:7 spec.items[0]: item lacks its key attribute 'UserId'" in p for p in found)
    assert any("a.yaml:8 spec.items[1].UserId: key 'UserId' is of type S; got 5" in p for p in found)


def test_provisioned_needs_capacity(tmp_path):
    write(tmp_path, "a.yaml", GOOD + "  billingMode: PROVISIONED\n")
    assert any("PROVISIONED needs spec.capacity" in p for p in problems(tmp_path))


def test_empty_directory_and_missing_path(tmp_path):
    assert "no *.yaml or *.yml files found" in problems(tmp_path)[0]
    with pytest.raises(SpecError, match="no such file"):
        load_specs(tmp_path / "nope")


def test_not_a_mapping(tmp_path):
    write(tmp_path, "a.yaml", "- just\n- a list\n")
    assert "a spec document must be a mapping" in problems(tmp_path)[0]


def test_numbers_are_exact_and_dates_stay_text(tmp_path):
    write(tmp_path, "a.yaml", GOOD + "  items:\n    - {UserId: u1, Price: 0.1, When: 2025-09-23, N: 7}\n")
    [spec] = load_specs(tmp_path).specs
    item = spec.spec["items"][0]
    assert item["Price"] == Decimal("0.1") and isinstance(item["Price"], Decimal)
    assert item["When"] == "2025-09-23"
    assert item["N"] == 7


def test_good_specs_load_in_a_stable_order(tmp_path):
    write(tmp_path, "b.yaml", GOOD)
    write(tmp_path, "a.yml", GOOD.replace("Users", "Accounts"))
    loaded = load_specs(tmp_path)
    assert [s.name for s in loaded.specs] == ["Accounts", "Users"]
    assert loaded.specs[1].metadata.policy == "enforce"
    assert loaded.specs[1].metadata.deletion == "retain"


def test_numbers_dynamodb_cannot_store_are_a_clear_error(tmp_path):
    precise = "0.1234567890123456789012345678901234567891"  # 40 significant digits
    write(tmp_path, "a.yaml", GOOD + f"  items:\n    - {{UserId: u1, Big: 1.0e+200, Precise: {precise}}}\n")
    [problem] = problems(tmp_path)
    assert "a.yaml:7 spec.items[0]: a number cannot be stored in DynamoDB" in problem


def test_a_kind_that_is_not_a_string(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("kind: Table", "kind: [Table]"))
    assert "unknown kind ['Table']" in problems(tmp_path)[0]


BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi", strict=True))


def test_an_alias_bomb_is_refused_quickly_with_its_file_and_line(tmp_path):
    """9 levels of 9 references: 300 bytes that stand for 387 million values (before the fix: 10 GB and
    minutes). Refused once MAX_VALUES have been built, with the file and line."""
    from reconciler.spec.reading import MAX_VALUES

    assert len(BOMB) < 400
    [found] = problems(write(tmp_path, "bomb.yaml", BOMB))
    assert "bomb.yaml:1:" in found and f"more than {MAX_VALUES:,} values" in found


def test_a_number_written_with_an_exponent_is_a_number(tmp_path):
    text = GOOD + "  items:\n    - {UserId: u1, Score: 1e3, Small: 2.5E-3, Text: '1e3'}\n"
    [spec] = load_specs(write(tmp_path, "t.yaml", text)).specs
    assert spec.spec["items"][0] == {"UserId": "u1", "Score": Decimal("1e3"), "Small": Decimal("2.5E-3"),
                                     "Text": "1e3"}
