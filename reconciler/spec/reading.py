"""Reading a spec file as YAML with the line of every value (a problem names file, line and field): YAML 1.2's
scalars, not PyYAML's 1.1 guesses; no value deeper or more numerous than a spec needs; no file larger than one
needs, refused before it is read; text that is not UTF-8 named at its line and column."""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from reconciler.spec.problems import Path_, Problems

# libyaml's parser, where PyYAML was built with it: a spec set of a thousand documents loads several
# times faster, with the same nodes and line marks. A text it rejects is parsed again by PyYAML's own
# parser, whose messages are the ones reported (libyaml words them differently).
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None)


MAX_DEPTH = 64


# Values one document may expand to. YAML aliases repeat a node without repeating its text, so a few
# hundred bytes can stand for billions of values (an "alias bomb"); a real spec has a few hundred.
MAX_VALUES = 100_000


MAX_FILE_BYTES = 10 * 2**20  # a spec file over this is refused unread (a stack's specs are a few KiB)


FLOAT_TAG = "tag:yaml.org,2002:float"


STR_TAG = "tag:yaml.org,2002:str"


SET_TAG = "tag:yaml.org,2002:set"


TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


# YAML 1.1 (PyYAML) reads `1e3` as text: a number without a dot is a number all the same.
EXPONENT_NUMBER = re.compile(r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+")


def scalar(node: yaml.ScalarNode, constructor: yaml.constructor.SafeConstructor) -> Any:
    """A YAML scalar as a plain value; floats become exact Decimals, dates stay text, `1e3` is a
    number. Non-finite floats (.nan, .inf) come back as floats for the caller to refuse."""
    if node.tag == TIMESTAMP_TAG:
        return node.value
    if node.tag == STR_TAG and not node.style and EXPONENT_NUMBER.fullmatch(node.value):
        return Decimal(node.value.replace("_", ""))
    value = constructor.construct_object(node, deep=True)
    if node.tag == FLOAT_TAG and isinstance(value, float) and math.isfinite(value):
        try:
            return Decimal(node.value.replace("_", ""))
        except InvalidOperation:
            return Decimal(repr(value))
    if isinstance(value, _dt.date | _dt.datetime):
        return node.value
    return value


@dataclass
class Reader:
    """Turns one document's YAML nodes into plain values, counting them (aliases included)."""

    file: str
    problems: Problems
    constructor: yaml.constructor.SafeConstructor = field(default_factory=yaml.constructor.SafeConstructor)
    values: int = 0

    def value(self, node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise TooBig(node.start_mark.line + 1)
        return to_python(node, path, lines, self)


def to_python(node: yaml.Node, path: Path_, lines: dict[Path_, int], reader: Reader) -> Any:
    problems, file, constructor = reader.problems, reader.file, reader.constructor
    lines.setdefault(path, node.start_mark.line + 1)
    if len(path) > MAX_DEPTH:
        raise TooDeep(node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode) and node.tag == SET_TAG:  # !!set {a, b}: a DynamoDB set
        members = [reader.value(k, (*path, i), lines) for i, (k, _) in enumerate(node.value)]
        try:
            return set(members)
        except TypeError:
            problems.add(file, node.start_mark.line + 1, path, "a set holds plain values (strings, numbers, binary)")
            return members
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.add(file, key_node.start_mark.line + 1, path, "a key must be a plain value")
                continue
            key = str(scalar(key_node, constructor))
            if key in out:
                problems.add(file, key_node.start_mark.line + 1, (*path, key), "duplicate key")
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = reader.value(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [reader.value(item, (*path, i), lines) for i, item in enumerate(node.value)]
    value = scalar(node, constructor)  # type: ignore[arg-type]
    if isinstance(value, float):  # only .nan / .inf are left as floats
        problems.add(file, node.start_mark.line + 1, path, f"{node.value} is not a number a spec can hold "
                                                           "(DynamoDB and AWS take finite numbers only)")
    return value


class TooDeep(Exception):
    def __init__(self, line: int):
        self.line = line


class TooBig(Exception):
    def __init__(self, line: int):
        self.line = line


def read_documents(
    file: Path, display: str, problems: Problems, text: str | None = None
) -> list[tuple[dict[str, Any], dict[Path_, int], int]]:
    """Parse one file (or `text` given for it) into (document, line map, first line) triples,
    recording problems."""
    text = read_text(file, display, problems) if text is None else text
    if text is None:
        return []
    if len(text) > MAX_FILE_BYTES:  # characters: at most as many as bytes
        problems.add(display, None, "", too_large(len(text.encode("utf-8"))))
        return []
    docs = []
    try:
        for node in compose_all(text):
            if node is None:
                continue
            lines: dict[Path_, int] = {}
            first = node.start_mark.line + 1
            # a reader (and constructor) per document: PyYAML's constructor caches every object it builds
            value = Reader(display, problems).value(node, (), lines)
            if value is None:
                continue
            if not isinstance(value, dict):
                problems.add(display, first, "", "a spec document must be a mapping")
                continue
            docs.append((value, lines, first))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problems.add(display, line, "", f"invalid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        problems.add(display, None, "", f"invalid YAML: {exc}")
    except TooDeep as exc:
        problems.add(display, exc.line, "", f"nesting deeper than {MAX_DEPTH} levels")
    except TooBig as exc:
        problems.add(display, exc.line, "", f"the document expands to more than {MAX_VALUES:,} values (YAML aliases "
                                            "repeating other nodes?); a spec needs far fewer, so it is refused")
    except RecursionError:
        problems.add(display, None, "", "nesting too deep (recursive alias?)")
    return docs


def too_large(size: int) -> str:
    return (f"the file is {size / 2**20:.1f} MiB; a spec file may be at most {MAX_FILE_BYTES // 2**20} MiB (a stack's "
            "specs are a few KiB): it is not read")


def read_text(file: Path, display: str, problems: Problems) -> str | None:
    """The file's text: refused unread when over MAX_FILE_BYTES, and not UTF-8 said at the line and column."""
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.add(display, None, "", too_large(size))
            return None
        data = file.read_bytes()
    except OSError as exc:
        problems.add(display, None, "", f"cannot read file: {exc.strerror or exc}")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.add(display, line, "", f"not UTF-8 text: byte 0x{data[exc.start]:02x} at column {column} "
                                        "(spec files are UTF-8)")
        return None


def compose_all(text: str) -> Iterable[yaml.Node | None]:
    if _FAST_LOADER is not None:
        try:
            return list(yaml.compose_all(text, Loader=_FAST_LOADER))
        except (yaml.YAMLError, RecursionError):
            pass
    return yaml.compose_all(text, Loader=yaml.SafeLoader)
