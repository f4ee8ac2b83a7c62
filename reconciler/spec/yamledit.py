"""Edit values in YAML text in place: everything outside the edited value stays byte for byte.

ruamel.yaml composes the text into nodes that carry their exact character positions; an edit
replaces, inserts or removes only the characters of one value (or one key and its value, or one
list entry), in the style around it (quotes, flow or block). Comments, key order, quoting and
blank lines elsewhere, and the other documents of the file, are never re-emitted, so they cannot
change. (ruamel's own dump would re-indent and re-space the file: it normalises indentation and the
spacing inside flow maps.)

Every rendered value is checked to read back as the same value under both YAML 1.1 (PyYAML, which
loads specs) and YAML 1.2 (ruamel), so `yes`, `0777` or `1e3` are quoted where needed.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Key = str | int
PathT = tuple[Key, ...]


class YamlEditError(Exception):
    """The edit cannot be made in this text (the value is an alias, the path is not there, ...)."""


# ---------------------------------------------------------------------------- reading


def documents(text: str) -> list[Node]:
    """The documents of `text` as ruamel nodes (empty documents left out)."""
    return [n for n in YAML(typ="rt").compose_all(io.StringIO(text)) if n is not None]


def find_document(text: str, kind: str, name: str) -> int | None:
    """The index (in documents()) of the document with this kind and metadata.name."""
    for i, doc in enumerate(documents(text)):
        if not isinstance(doc, MappingNode):
            continue
        k = _child(doc, "kind")
        meta = _child(doc, "metadata")
        n = _child(meta, "name") if meta is not None else None
        if isinstance(k, ScalarNode) and isinstance(n, ScalarNode) and k.value == kind and n.value == name:
            return i
    return None


def _pairs(node: MappingNode) -> list[tuple[ScalarNode, Node]]:
    return list(node.value)


def _child(node: Node | None, key: Key) -> Node | None:
    if isinstance(node, MappingNode) and isinstance(key, str):
        for k, v in _pairs(node):
            if isinstance(k, ScalarNode) and k.value == key:
                return v
    if isinstance(node, SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key]
    return None


def _node(text: str, doc: int, path: PathT) -> Node | None:
    node: Node | None = documents(text)[doc]
    for key in path:
        node = _child(node, key)
    return node


def _end(node: Node) -> int:
    """Where the node's own text ends (a block collection's end mark lies past trailing comments)."""
    if isinstance(node, ScalarNode) or node.flow_style:
        return node.end_mark.index
    last = node.value[-1]
    return _end(last[1] if isinstance(node, MappingNode) else last)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end


def _guard(node: Node) -> None:
    if getattr(node, "anchor", None):
        raise YamlEditError("the value carries an anchor (other places repeat it through an alias); "
                            "edit it by hand")


# ---------------------------------------------------------------------------- rendering


def _reads_back(text: str, value: Any) -> bool:
    try:
        old = yaml.safe_load(f"k: {text}")
        new = YAML(typ="safe", pure=True).load(f"k: {text}")
    except Exception:
        return False
    return _same(old, {"k": value}) and _same(new, {"k": value})


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def render_scalar(value: Any, style: str | None = None) -> str:
    """A scalar as YAML text: in the quote style given where it is a string, plain where that reads
    back as the same value, double-quoted otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return "!!binary " + base64.b64encode(bytes(value)).decode()
    if isinstance(value, set | frozenset):
        return "!!set {" + ", ".join(sorted(render_scalar(v) for v in value)) + "}"
    if isinstance(value, Decimal | float):
        return format(Decimal(repr(value)) if isinstance(value, float) else value, "f")
    text = str(value)
    if style == "'":
        return "'" + text.replace("'", "''") + "'"
    if style != '"' and text and text == text.strip() and "\n" not in text and _reads_back(text, text):
        return text
    return json.dumps(text, ensure_ascii=False)


def render_flow(value: Any) -> str:
    """A value in flow style (`{read: 5, write: 5}`, `[a, b]`)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{render_scalar(str(k))}: {render_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render_flow(v) for v in value) + "]"
    return render_scalar(value)


def _block_item(value: Any, column: int) -> str:
    """A block sequence entry's text after its `- `: a mapping's keys one per line (values in flow)."""
    if not isinstance(value, Mapping) or not value:
        return render_flow(value)
    lines = [f"{render_scalar(str(k))}: {render_flow(v)}" for k, v in value.items()]
    return ("\n" + " " * (column + 2)).join(lines)


# ---------------------------------------------------------------------------- edits


def set_value(text: str, doc: int, path: PathT, value: Any) -> str:
    """Make the value at `path` be `value`: replace it where it is, else add the key (and any parent
    mappings missing on the way)."""
    node: Node = documents(text)[doc]
    for i, key in enumerate(path):
        child = _child(node, key)
        if child is None:
            nested: Any = value
            for inner in reversed(path[i + 1:]):
                if not isinstance(inner, str):
                    raise YamlEditError(f"no entry {inner} to set")
                nested = {inner: nested}
            if isinstance(node, MappingNode) and isinstance(key, str):
                return _insert_key(text, node, key, nested)
            if isinstance(node, SequenceNode) and key == len(node.value):
                return _append(text, node, nested)
            raise YamlEditError(f"cannot add {key!r} to a {type(node).__name__}")
        node = child
    return _replace(text, node, value)


def append(text: str, doc: int, path: PathT, value: Any) -> str:
    """Add `value` as the last entry of the list at `path` (created when missing)."""
    node = _node(text, doc, path)
    if node is None:
        return set_value(text, doc, path, [value])
    if not isinstance(node, SequenceNode):
        raise YamlEditError("not a list")
    return _append(text, node, value)


def delete(text: str, doc: int, path: PathT) -> str:
    """Remove the key (or list entry) at `path` with its value and the comment on its line."""
    parent = _node(text, doc, path[:-1])
    key = path[-1]
    if isinstance(parent, MappingNode):
        for i, (k, v) in enumerate(_pairs(parent)):
            if isinstance(k, ScalarNode) and k.value == key:
                _guard(v)
                return _remove_entry(text, parent, i, k.start_mark.index, _end(v))
    if isinstance(parent, SequenceNode) and isinstance(key, int) and 0 <= key < len(parent.value):
        item = parent.value[key]
        _guard(item)
        return _remove_entry(text, parent, key, item.start_mark.index, _end(item))
    raise YamlEditError(f"nothing at {'.'.join(map(str, path))} to remove")


def _replace(text: str, node: Node, value: Any) -> str:
    _guard(node)
    start, end = node.start_mark.index, _end(node)
    if isinstance(node, ScalarNode):
        if isinstance(value, Mapping | list) and not node.value and start == end:
            return text[:start] + " " + render_flow(value) + text[end:]  # `key:` with no value yet
        return text[:start] + render_scalar_or_flow(value, node.style) + text[end:]
    if node.flow_style or not isinstance(value, list) or any(isinstance(v, Mapping | list) for v in value):
        return text[:start] + render_flow(value) + text[end:]
    if not value:
        return text[:start] + "[]" + text[end:]
    column = node.start_mark.column  # a block list of scalars stays a block list, one entry a line
    return text[:start] + ("\n" + " " * column).join(f"- {render_scalar(v)}" for v in value) + text[end:]


def render_scalar_or_flow(value: Any, style: str | None = None) -> str:
    return render_flow(value) if isinstance(value, Mapping | list) else render_scalar(value, style)


def _insert_key(text: str, node: MappingNode, key: str, value: Any) -> str:
    entry = f"{render_scalar(key)}: {render_flow(value)}"
    pairs = _pairs(node)
    if node.flow_style:
        if not pairs:
            brace = node.start_mark.index
            return text[:brace + 1] + entry + text[brace + 1:]
        end = _end(pairs[-1][1])
        return text[:end] + ", " + entry + text[end:]
    column = pairs[0][0].start_mark.column
    at = _line_end(text, _end(node))
    return text[:at] + "\n" + " " * column + entry + text[at:]


def _append(text: str, node: SequenceNode, value: Any) -> str:
    items = node.value
    if node.flow_style:
        if not items:
            bracket = node.start_mark.index
            return text[:bracket + 1] + render_flow(value) + text[bracket + 1:]
        end = _end(items[-1])
        return text[:end] + ", " + render_flow(value) + text[end:]
    dash = node.start_mark.column
    last = items[-1]
    block = isinstance(last, MappingNode) and not last.flow_style
    entry = _block_item(value, dash) if block else render_flow(value)
    at = _line_end(text, _end(node))
    return text[:at] + "\n" + " " * dash + "- " + entry + text[at:]


def _remove_entry(text: str, parent: MappingNode | SequenceNode, index: int, start: int, end: int) -> str:
    """Remove entry `index` of `parent`, spanning text[start:end]."""
    entries = parent.value
    if len(entries) == 1:  # the collection becomes empty: say so in flow style
        return text[:parent.start_mark.index] + ("{}" if isinstance(parent, MappingNode) else "[]") \
            + text[_end(parent) if not parent.flow_style else parent.end_mark.index:]
    def begin(i: int) -> int:
        e = entries[i]
        return (e[0] if isinstance(parent, MappingNode) else e).start_mark.index
    if parent.flow_style:
        if index + 1 < len(entries):
            return text[:start] + text[begin(index + 1):]
        previous = entries[index - 1]
        return text[:_end(previous[1] if isinstance(parent, MappingNode) else previous)] + text[end:]
    first = _line_start(text, start)
    if isinstance(parent, SequenceNode):
        start = text.rfind("-", first, start)  # the entry's dash
    if text[first:start].strip() and index + 1 < len(entries):
        # the first key of a list entry shares the dash's line: the next key moves up to it
        return text[:start] + text[begin(index + 1):]
    if text[first:start].strip():
        raise YamlEditError("cannot remove the only line of a list entry")
    stop = _line_end(text, end)
    return text[:first] + text[min(stop + 1, len(text)):]
