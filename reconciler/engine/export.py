"""`reconciler export`: live resources -> specs a person would write, to adopt a stack built
by hand. Read-only: it makes no write call of any kind.

Each kind turns what it finds into a spec (`Resource.export`); this module filters, names,
writes one file per resource (`<kind>-<name>.yaml`), and validates the result against the
schemas. Settings a spec cannot express are reported on stderr, naming the resource and field.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from reconciler.kinds.exported import Exported
from reconciler.kinds.interfaces import Exportable

if TYPE_CHECKING:
    from reconciler.aws.client import Aws


class _Dumper(yaml.SafeDumper):
    pass


def _decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
    """A DynamoDB number, exactly: integers as integers, others with every digit (`12.50`,
    `1.5e-130`), in a form YAML reads back as the same number."""
    if value == value.to_integral_value() and abs(value.adjusted()) < 40:
        return dumper.represent_int(int(value))
    sign, digits, _ = value.as_tuple()
    if -30 < value.adjusted() < 30:
        text = format(value, "f")
    else:
        mantissa = "".join(map(str, digits))
        text = f"{'-' if sign else ''}{mantissa[0]}.{mantissa[1:] or '0'}e{value.adjusted():+d}"
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    """Text that the spec loader would read as a number (`1e3`) is quoted, so it stays text."""
    from reconciler.spec.reading import EXPONENT_NUMBER

    if EXPONENT_NUMBER.fullmatch(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


_Dumper.add_representer(Decimal, _decimal)
_Dumper.add_representer(str, _text)


def to_yaml(item: Exported) -> str:
    text = yaml.dump(item.document(), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110)
    lines = []
    for line in text.splitlines():
        for needle, comment in item.comments.items():
            if line.strip().startswith(needle):
                indent = line[: len(line) - len(line.lstrip())]
                lines.append(f"{indent}# {comment}")
        lines.append(line)
    header = (f"# {item.kind} {item.name}: exported by `reconciler export` from the live resource.\n"
              + ("# Not created by reconciler: `adopt: true` takes it over in place (nothing is recreated).\n"
                 if not item.owned else ""))
    return header + "\n".join(lines) + "\n"


def export_stack(aws: Aws, kinds: list[str], names: list[str], options: dict[str, Any]) -> list[Exported]:
    """Every live resource of the given kinds (all kinds when empty), filtered by name; the
    buckets that exported distributions serve from are included."""
    from reconciler.kinds import registry

    wanted_kinds = kinds or registry.kinds()
    found: list[Exported] = []
    for cls in registry.classes():
        if not issubclass(cls, Exportable):
            continue
        if cls.kind in wanted_kinds or (cls.kind == "Bucket" and "Distribution" in wanted_kinds):
            found += cls.export(aws, options)
    for item in found:
        item.environment = options.get("environment")
        if (elsewhere := item.owned_elsewhere) is not None:  # another agent's: never offered for adoption
            item.skipped = True
            item.warnings.append(f"managed by reconciler for {elsewhere}; not exported here")
    chosen = [e for e in found if e.kind in wanted_kinds and (not names or e.name in names or e.external_id in names)]
    needed = {r for e in chosen for r in e.requires}
    chosen += [e for e in found if (e.kind, e.name) in needed and e not in chosen]
    return _unique_names([e for e in chosen if not e.skipped]) + [e for e in chosen if e.skipped]


def _unique_names(items: list[Exported]) -> list[Exported]:
    seen: dict[tuple[str, str], int] = {}
    for item in items:
        key = (item.kind, item.name)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            item.name = f"{item.name}-{seen[key]}"
    return items


def write(items: list[Exported], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in items:
        if item.skipped:
            continue
        path = out / f"{item.kind.lower()}-{item.name}.yaml"
        path.write_text(to_yaml(item))
        paths.append(path)
    return paths
