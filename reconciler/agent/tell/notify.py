"""Send one readable message through apprise, in a process of its own: `python -m reconciler.agent.tell`
with `{"url", "title", "body", "type"}` as JSON on stdin. Exit 0: sent; 1: not sent; 2: apprise does not know
the URL's scheme.

apprise loads every plugin it has (about 25 MiB); the agent sends a message rarely and runs for months, so it
starts this helper for each message instead of holding apprise (docs/performance.md, "Memory")."""

from __future__ import annotations

import json
import sys


def main() -> int:
    import apprise

    message = json.load(sys.stdin)
    teller = apprise.Apprise()
    if not teller.add(message["url"]):
        return 2
    return 0 if teller.notify(title=message["title"], body=message["body"], notify_type=message["type"]) else 1


if __name__ == "__main__":
    sys.exit(main())
