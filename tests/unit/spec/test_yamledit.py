"""In-place YAML edits: the edited value changes, every other byte stays (reconciler.yamledit)."""

from __future__ import annotations

import pytest
import yaml

from reconciler.spec.yamledit import YamlEditError, append, delete, find_document, render_scalar, set_value

DOC = """\
# header
kind: Table
metadata: {name: A}
spec:
  tags: { team: web ,  cost: '1' }   # spaced flow map
  aliases:
    - a.example.com   # first
    - b.example.com
  items:
    - UserId: u-1
      Name: Alice     # who
    - {UserId: u-2, Name: Bob}
---
kind: Table
metadata:
  name: B
spec: {tags: {}}
"""


def test_documents_are_found_by_kind_and_name():
    assert find_document(DOC, "Table", "A") == 0 and find_document(DOC, "Table", "B") == 1
    assert find_document(DOC, "Table", "C") is None


@pytest.mark.parametrize(("edit", "old", "new"), [
    (lambda t: set_value(t, 0, ("spec", "tags", "team"), "platform"), "team: web ,", "team: platform ,"),
    (lambda t: set_value(t, 0, ("spec", "tags", "cost"), "2"), "cost: '1'", "cost: '2'"),
    (lambda t: set_value(t, 0, ("spec", "tags", "new"), True), "cost: '1' }", "cost: '1', new: true }"),
    (lambda t: delete(t, 0, ("spec", "tags", "team")), "{ team: web ,  cost: '1' }", "{ cost: '1' }"),
    (lambda t: delete(t, 0, ("spec", "tags", "cost")), "team: web ,  cost: '1' }", "team: web }"),
    (lambda t: set_value(t, 0, ("spec", "items", 0, "Name"), "Alicia"), "Name: Alice ", "Name: Alicia "),
    (lambda t: delete(t, 0, ("spec", "items", 0, "Name")), "      Name: Alice     # who\n", ""),
    (lambda t: delete(t, 0, ("spec", "items", 0, "UserId")), "- UserId: u-1\n      Name", "- Name"),
    (lambda t: delete(t, 0, ("spec", "items", 1)), "    - {UserId: u-2, Name: Bob}\n", ""),
    (lambda t: delete(t, 0, ("spec", "aliases", 0)), "    - a.example.com   # first\n", ""),
    (lambda t: append(t, 0, ("spec", "aliases"), "c.example.com"), "b.example.com\n",
     "b.example.com\n    - c.example.com\n"),
    (lambda t: append(t, 0, ("spec", "items"), {"UserId": "u-3", "Age": 7}), "Name: Bob}\n",
     "Name: Bob}\n    - {UserId: u-3, Age: 7}\n"),
    (lambda t: set_value(t, 0, ("spec", "aliases"), ["x.example.com"]),
     "- a.example.com   # first\n    - b.example.com", "- x.example.com"),
    (lambda t: set_value(t, 1, ("spec", "tags", "a"), "b"), "spec: {tags: {}}", "spec: {tags: {a: b}}"),
    (lambda t: set_value(t, 1, ("spec", "billing", "read"), 5), "spec: {tags: {}}",
     "spec: {tags: {}, billing: {read: 5}}"),
])
def test_an_edit_changes_only_its_value(edit, old, new):
    assert DOC.count(old) == 1
    assert edit(DOC) == DOC.replace(old, new)
    yaml.safe_load_all(edit(DOC))  # and the result is YAML


def test_removing_the_last_key_leaves_an_empty_map():
    text = "spec:\n  tags:\n    team: web   # only\n"
    assert delete(text, 0, ("spec", "tags", "team")) == "spec:\n  tags:\n    {}   # only\n"


@pytest.mark.parametrize(("value", "text"), [
    ("web", "web"), ("yes", '"yes"'), ("0777", '"0777"'), ("1e3", '"1e3"'), ("a: b", '"a: b"'), ("", '""'),
    (" x", '" x"'), ("null", '"null"'), (5, "5"), (True, "true"), (None, "null"),
])
def test_a_scalar_reads_back_as_itself_in_yaml_1_1_and_1_2(value, text):
    assert render_scalar(value) == text
    assert yaml.safe_load(f"k: {text}") == {"k": value}


def test_a_quoted_value_keeps_its_quotes():
    assert render_scalar("it's", "'") == "'it''s'" and render_scalar("x", '"') == '"x"'


def test_an_anchored_value_is_not_edited():
    text = "a: &v 5\nb: *v\n"
    with pytest.raises(YamlEditError, match="anchor"):
        set_value(text, 0, ("a",), 6)
