"""Every DynamoDB AttributeValue type has a YAML form, and export -> plan -> apply -> scan is an identity.

The YAML forms (docs/specs.md, "Items"): S text, N a number (exact, any of the 38 digits), B `!!binary`,
SS / NS / BS a YAML set (`!!set {a, b}`), M a mapping, L a list, BOOL true/false, NULL null.
"""

from __future__ import annotations

import yaml

ITEM = {
    "Id": {"S": "all-types"},
    "Text": {"S": "1e3"},                                   # text that looks like a number stays text
    "Whole": {"N": "12345678901234567890123456789012345678"},  # 38 digits
    "Precise": {"N": "0.12345678901234567890123456789012345678"},
    "Tiny": {"N": "1.5E-130"},
    "Huge": {"N": "9.99E+125"},
    "Price": {"N": "12.50"},
    "Blob": {"B": b"\x00\xffbinary"},
    "Names": {"SS": ["b", "a"]},
    "Sizes": {"NS": ["1", "2.5", "1E+3"]},
    "Blobs": {"BS": [b"\x01", b"\x02"]},
    "Map": {"M": {"nested": {"L": [{"N": "1"}, {"S": "two"}, {"NULL": True}]}, "flag": {"BOOL": False}}},
    "Nothing": {"NULL": True},
    "Yes": {"BOOL": True},
}


def create(ddb) -> None:
    ddb.create_table(TableName="Things", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}])
    ddb.put_item(TableName="Things", Item=ITEM)


def scan(ddb) -> dict:
    """The item's values (numbers compared as numbers: DynamoDB may write `1E+3` as `1000`)."""
    from boto3.dynamodb.types import TypeDeserializer

    [item] = ddb.scan(TableName="Things")["Items"]
    return {k: TypeDeserializer().deserialize(v) for k, v in item.items()}


def test_every_attribute_type_round_trips_through_export_plan_apply(cli, aws, tmp_path):
    ddb = aws.client("dynamodb")
    create(ddb)
    before = scan(ddb)
    exported = cli("export", "--kind", "Table", "--with-items", "-o", str(tmp_path / "out"))
    assert exported.code == 0, exported.err
    text = (tmp_path / "out" / "table-Things.yaml").read_text()
    assert "'1e3'" in text and "!!binary" in text and "!!set" in text and '"S"' not in text
    assert "12345678901234567890123456789012345678" in text and "0.12345678901234567890123456789012345678" in text
    plan = cli("plan", "--json", str(tmp_path / "out"))
    assert plan.code == 0, plan.out + plan.err
    [change] = plan.json["changes"]
    assert change["action"] == "adopt" and not [f for f in change["fields"] if f["path"].startswith("spec.items")]

    ddb.put_item(TableName="Things", Item={"Id": {"S": "all-types"}, "Text": {"S": "changed"}})  # the item drifts
    drifted = cli("plan", "--json", str(tmp_path / "out"))
    [change] = drifted.json["changes"]
    items = [f for f in change["fields"] if f["path"].startswith("spec.items")]
    assert {f["path"] for f in items} == {f"spec.items[Id=all-types].{a}" for a in ITEM if a != "Id"}
    assert next(f for f in items if f["path"].endswith(".Text")) == {
        "path": "spec.items[Id=all-types].Text", "before": "changed", "after": "1e3"}  # per attribute
    applied = cli("apply", "--auto-approve", str(tmp_path / "out"))
    assert applied.code == 0, applied.out + applied.err
    assert scan(ddb) == before
    assert cli("plan", "--detailed-exitcode", str(tmp_path / "out")).code == 0


def test_numbers_a_spec_cannot_hold_are_clear_errors(cli, specs):
    doc = {"apiVersion": "reconciler/v1", "kind": "Table", "metadata": {"name": "Things"},
           "spec": {"partitionKey": {"name": "Id", "type": "S"}, "items": [{"Id": "a", "Score": 1}]}}
    text = yaml.safe_dump(doc, sort_keys=False)
    for bad in (".nan", ".inf", "-.inf"):
        root = specs("t.yaml", text.replace("Score: 1", f"Score: {bad}"))
        result = cli("validate", str(root))
        assert result.code == 1 and "Traceback" not in result.err
        assert f"t.yaml:11 spec.items[0].Score: {bad} is not a number a spec can hold" in result.err, result.err
