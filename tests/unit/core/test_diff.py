"""The generic field diff: modes, defaults, pruning, normalisation, ignore."""

from __future__ import annotations

from decimal import Decimal

from reconciler.core.diff import MISSING, Field, diff_fields, is_ignored, mark_ignored, normalise

DEFAULTED = (Field("billingMode", default="PAY_PER_REQUEST"), Field("pointInTimeRecovery"))
FIELDS = (
    Field("key", replace=True),
    Field("aliases", mode="set"),
    Field("tags", default={}, mode="map"),
    Field("indexes", mode="keyed", key=lambda e: e["name"]),
    Field("items", mode="keyed", key=lambda e: e["id"], prune=False),
)


def paths(changes):
    return [c.path for c in changes]


def test_equal_state_has_no_changes():
    state = {"aliases": ["x"], "tags": {"a": "1"}, "key": "k"}
    assert diff_fields(FIELDS, state, state, stated=state) == []


def test_defaults_are_filled_in_and_unmanaged_fields_are_skipped():
    changes = diff_fields(DEFAULTED, {}, {"billingMode": "PROVISIONED", "pointInTimeRecovery": True})
    assert paths(changes) == ["spec.billingMode"]
    assert (changes[0].before, changes[0].after) == ("PROVISIONED", "PAY_PER_REQUEST")


def test_missing_marks_a_field_unmanaged():
    assert diff_fields(DEFAULTED, {"billingMode": MISSING}, {"billingMode": "X"}) == []


def test_sets_ignore_order():
    assert diff_fields(FIELDS, {"aliases": ["b", "a"]}, {"aliases": ["a", "b"]}) == []
    [change] = diff_fields(FIELDS, {"aliases": ["a"]}, {"aliases": ["a", "b"]})
    assert change.after == ["a"] and change.before == ["a", "b"]


def test_map_prunes_extra_keys_only_when_the_spec_states_the_field():
    live = {"tags": {"team": "web", "extra": "x"}}
    stated = diff_fields(FIELDS, {"tags": {"team": "web"}}, live, stated=["tags"])
    assert paths(stated) == ["spec.tags.extra"] and stated[0].after is None
    unstated = diff_fields(FIELDS, {"tags": {"team": "web"}}, live, stated=[])
    assert unstated == []


def test_keyed_lists_match_by_key_and_respect_prune():
    want = {"indexes": [{"name": "A", "p": 1}], "items": [{"id": 1, "v": "x"}]}
    have = {"indexes": [{"name": "B", "p": 1}, {"name": "A", "p": 2}],
            "items": [{"id": 1, "v": "y"}, {"id": 2, "v": "app data"}]}
    changes = diff_fields(FIELDS, want, have, stated=["indexes", "items"])
    assert paths(changes) == ["spec.indexes[A]", "spec.indexes[B]", "spec.items[1]"]
    assert changes[1].after is None  # index B is removed; item 2 is the app's and not touched


def test_replacement_flag_comes_from_the_field_table():
    [change] = diff_fields(FIELDS, {"key": "a"}, {"key": "b"})
    assert change.forces_replacement


def test_numbers_compare_by_value():
    assert normalise(Decimal("5")) == 5
    assert normalise(Decimal("1.50")) == Decimal("1.5")
    assert normalise(0.1) == Decimal("0.1")
    assert diff_fields(FIELDS, {"items": [{"id": 1, "v": Decimal("2.0")}]},
                       {"items": [{"id": Decimal(1), "v": 2}]}) == []


def test_ignore_marks_paths_and_their_children():
    changes = diff_fields(FIELDS, {"tags": {"a": "1", "cost-center": "x"}}, {"tags": {}})
    mark_ignored(changes, ["spec.tags.cost-center"])
    assert [(c.path, c.ignored) for c in changes] == [
        ("spec.tags.a", False), ("spec.tags.cost-center", True)]
    assert is_ignored("spec.items[1]", ["spec.items"])
    assert not is_ignored("spec.itemsX", ["spec.items"])


def test_items_differ_attribute_by_attribute():
    """An item present on both sides shows only the attributes that differ, not the whole item twice."""
    field = Field("items", mode="keyed", key=lambda i: f"Id={i['Id']}", prune=False, per_attribute=True)
    want = {"items": [{"Id": "u-1", "Name": "Alice", "Role": "Admin"}, {"Id": "u-2", "Name": "Bob"}]}
    have = {"items": [{"Id": "u-1", "Name": "Mallory", "Role": "Admin", "Extra": 1}]}
    changes = diff_fields([field], want, have, stated=["items"])
    assert [(c.path, c.before, c.after, c.entry) for c in changes] == [
        ("spec.items[Id=u-1].Name", "Mallory", "Alice", "Id=u-1"),
        ("spec.items[Id=u-1].Extra", 1, None, "Id=u-1"),
        ("spec.items[Id=u-2]", None, {"Id": "u-2", "Name": "Bob"}, "Id=u-2"),
    ]


def test_an_absent_attribute_is_not_a_null_one():
    field = Field("items", mode="keyed", key=lambda i: f"Id={i['Id']}", prune=False, per_attribute=True)
    changes = diff_fields([field], {"items": [{"Id": "a", "Gone": None}]}, {"items": [{"Id": "a"}]},
                          stated=["items"])
    assert [c.path for c in changes] == ["spec.items[Id=a].Gone"]
