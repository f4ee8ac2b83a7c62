"""Valid documents checked fast: each kind's schema compiled to Python by fastjsonschema, which checks a
document about fifteen times faster than jsonschema and needs no jsonschema import (docs/performance.md). The
generated code is kept in the state directory under the digest of the schemas and of fastjsonschema's version, so
a command compiles nothing; it is run only from a directory and a file that are this user's own and that nobody
else may write. A document the fast check refuses is checked again by jsonschema (schemas.py), whose errors say
what is wrong and where; a document it accepts, jsonschema accepts too (tests/unit/spec/test_fast_schemas.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.statedir import state_dir

Check = Callable[[Any], Any]


def schema_dir() -> Path:
    """Where the JSON Schemas live: packaged in a wheel, or schemas/ in a checkout."""
    packaged = Path(__file__).parent.parent / "_schemas"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent.parent / "schemas"


@functools.cache
def schema_files() -> dict[str, Path]:
    """Each kind's schema file (the schemas that define a `kind`), read without compiling anything."""
    out = {}
    for path in sorted(schema_dir().glob("*.schema.json")):
        kind = json.loads(path.read_text()).get("properties", {}).get("kind", {}).get("const")
        if kind:
            out[kind] = path
    return out


# The fast check only says yes or no (jsonschema explains a refusal): it never fills a schema's defaults into the
# document it checks. (detailed_exceptions=False would make the code a tenth of its size, but fastjsonschema
# 2.22.3 cannot generate a `const` rule without them: KeyError 'definition_rule'.)
COMPILE_OPTIONS = {"use_default": False}


@functools.cache
def fast_check(kind: str) -> Check | None:
    """The compiled check of `kind`'s schema; None when fastjsonschema is not installed (jsonschema then checks
    every document)."""
    try:
        import fastjsonschema
    except ImportError:
        return None
    digest = _digest(f"{fastjsonschema.VERSION}-{COMPILE_OPTIONS}")
    cached = state_dir() / "schemas" / digest / f"{kind}.py"
    code = _trusted_text(cached)
    if code is None:
        code = fastjsonschema.compile_to_code(_draft7(kind), **COMPILE_OPTIONS)
        _keep(cached, code)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(cached), "exec"), namespace)
    return namespace["validate"]  # type: ignore[no-any-return]


def refuses(kind: str, document: Any) -> bool:
    """True when the fast check refuses `document` (or cannot check it): jsonschema then says why."""
    check = fast_check(kind)
    if check is None:
        return True
    from fastjsonschema import JsonSchemaException

    try:
        check(document)
    except JsonSchemaException:
        return True
    return False


def _digest(version: str) -> str:
    hashed = hashlib.sha256(version.encode())
    for path in sorted(schema_dir().glob("*.schema.json")):
        hashed.update(path.name.encode() + b"\0" + path.read_bytes())
    return hashed.hexdigest()[:32]


@functools.cache
def schemas_by_id() -> dict[str, dict[str, Any]]:
    """Every schema by its `$id`."""
    schemas = [json.loads(p.read_text()) for p in sorted(schema_dir().glob("*.schema.json"))]
    return {s["$id"]: s for s in schemas}


@functools.cache
def schema_registry() -> Any:
    """The same schemas as referencing's Registry, for jsonschema (imported only when jsonschema explains)."""
    from referencing import Registry, Resource

    return Registry().with_resources((i, Resource.from_contents(s)) for i, s in schemas_by_id().items())


def inlined_schema(kind: str) -> dict[str, Any]:
    """`kind`'s schema with every `$ref` replaced by what it points at."""
    schema = json.loads(schema_files()[kind].read_text())
    return inline_refs(schema, schema, schemas_by_id())  # type: ignore[no-any-return]


def inline_refs(node: Any, root: dict[str, Any], registry: Mapping[str, Any], depth: int = 0) -> Any:
    """`node` with every `$ref` replaced by what it points at (its siblings kept beside it in an allOf)."""
    if depth > 20:  # a recursive schema: left to the validator's own resolution
        return node
    if isinstance(node, list):
        return [inline_refs(v, root, registry, depth) for v in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str):
        target, target_root = _resolve(node["$ref"], root, registry)
        inlined = inline_refs(target, target_root, registry, depth + 1)
        rest = {k: inline_refs(v, root, registry, depth) for k, v in node.items() if k != "$ref"}
        return {**rest, "allOf": [*rest.get("allOf", []), inlined]} if rest else inlined
    return {k: (v if k == "$defs" else inline_refs(v, root, registry, depth)) for k, v in node.items()}


def _resolve(ref: str, root: dict[str, Any], registry: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The subschema `ref` names (`urn:...#/$defs/x` or `#/$defs/x`), and the schema it lives in."""
    base, _, pointer = ref.partition("#")
    document = registry[base] if base else root
    target: Any = document
    for part in [p for p in pointer.split("/") if p]:
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target, document


def _draft7(kind: str) -> dict[str, Any]:
    """`kind`'s schema, inlined, as draft 7 (every keyword the schemas use is draft 7's)."""
    schema = inlined_schema(kind)
    schema.pop("$defs", None)
    schema.pop("$id", None)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    return schema


def _trusted_text(path: Path) -> str | None:
    """The file's text when it and its directories up to the state directory are this user's and writable by
    nobody else; else None (it is compiled again, in memory)."""
    try:
        for item in (path, path.parent, path.parent.parent):
            info = item.lstat()
            if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
                return None
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _keep(path: Path, code: str) -> None:
    """Written atomically, readable and writable by this user only; a state directory that cannot take it costs
    only the compile next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for folder in (path.parent, path.parent.parent):
            os.chmod(folder, 0o700)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".schema-")
        with os.fdopen(handle, "w") as out:
            out.write(code)
        os.replace(temporary, path)
    except OSError:
        pass
