"""The container's HEALTHCHECK: exit 0 when the agent's /healthz answers 200.

`python -m reconciler.agent.probe` (port from RECONCILER_HTTP_PORT, default 9090).
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("RECONCILER_HTTP_PORT") or "9090"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
