"""The container's HEALTHCHECK: exit 0 when the agent's /healthz answers 200.

`python -m reconciler.agent.probe` (port from RECONCILER_HTTP_PORT, default 9090). When the agent serves HTTPS
(RECONCILER_HTTP_TLS_CERT), the probe speaks HTTPS too and checks that the agent presents that very certificate
(its name is the service's, not 127.0.0.1's, so the name is not compared).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("RECONCILER_HTTP_PORT") or "9090"
    cert = os.environ.get("RECONCILER_HTTP_TLS_CERT")
    context = None
    if cert:
        context = ssl.create_default_context(cafile=cert)
        context.check_hostname = False
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the agent's own certificate is the anchor
    url = f"{'https' if cert else 'http'}://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as answer:
            return 0 if answer.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
