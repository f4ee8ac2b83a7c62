"""The one JSON encoding of everything the agent shows: the page, /status, /events, webhooks, chat messages,
plans and logs. DynamoDB's numbers (Decimal) are numbers, bytes are base64, sets are sorted lists, times are
ISO 8601; never a Python repr, never a failure on a value AWS hands back."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def plain(value: Any) -> Any:
    """A value as plain JSON: a number as a number (DynamoDB's Decimal too), bytes as base64, a set as a sorted
    list, a time as ISO 8601; never a Python repr."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def json_default(value: Any) -> Any:
    """`default=` for json.dumps: what JSON cannot hold, as plain() says."""
    return plain(value)


def dumps(value: Any, **options: Any) -> str:
    """json.dumps with the plain conversion for every value JSON cannot hold (the options as json.dumps's)."""
    return json.dumps(value, default=json_default, **options)
