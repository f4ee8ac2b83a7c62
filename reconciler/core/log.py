"""structlog set-up: key-value events, JSON when not on a terminal, readable on one."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import structlog

from reconciler.core.plainjson import json_default, plain

__all__ = ["configure_logging", "json_default", "plain"]


def _plain_values(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if k == "exc_info" else plain(v)) for k, v in event.items()}


def _json_text(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """For the console: each value that is not text as its JSON (`null`, `true`, `{"a": 1}`), never Python's repr
    (`None`, `{'a': 1}`)."""
    return {k: v if k in _OWN or k.startswith("_") or _reads_as_json(v) else json.dumps(v, ensure_ascii=False)
            for k, v in event.items()}


def _reads_as_json(value: Any) -> bool:
    """Text, and numbers other than booleans, read the same in Python and JSON."""
    return isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool))


_OWN = ("event", "level", "timestamp", "exc_info", "exception", "logger")


def configure_logging(level: str = "info", json_output: bool | None = None, color: bool | None = None) -> None:
    """Log to stderr: JSON lines unless stderr is a terminal (or json_output says otherwise); colour
    on a terminal unless NO_COLOR is set or `color` is False. Libraries' stdlib logging (APScheduler,
    botocore) goes through the same renderer, so a JSON stream stays JSON."""
    if json_output is None:
        json_output = not sys.stderr.isatty()
    if color is None:
        color = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    renderer = (structlog.processors.JSONRenderer() if json_output
                else structlog.dev.ConsoleRenderer(colors=color))
    text = [] if json_output else [_json_text]
    numeric = getattr(logging, level.upper(), logging.INFO)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            _plain_values,
            *text,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level,
                           structlog.stdlib.add_logger_name, timestamper, structlog.processors.format_exc_info,
                           _plain_values, *text]))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for chatty in ("botocore", "boto3", "urllib3", "s3transfer"):  # their INFO is chatter
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
