"""A visitor's view of a site: where a distribution's domain is reached (DNS on AWS; the sandbox's edge, which
says where it serves every domain, with the CA its certificate verifies against), and GETs over one kept-alive
connection, as a browser makes them. Used by the site check (site.py)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote


@dataclass
class Edge:
    """Where a name is served: (address, port) to connect to, the CA to verify against."""

    address: str | None = None       # None: resolve the name (DNS)
    port: int = 443
    http_port: int = 80
    ca_file: str | None = None
    sandbox: bool = False


def sandbox_edge() -> Edge | None:
    """The sandbox's edge, when AWS here is the sandbox (it serves every distribution's domain)."""
    from reconciler.aws.endpoints import talks_to_sandbox

    url = os.environ.get("AWS_ENDPOINT_URL") or ""
    if not url or not talks_to_sandbox():
        return None
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/_sandbox/edge", timeout=2) as answer:
            said = json.load(answer)
    except (OSError, ValueError):
        return None
    host, _, port = said["address"].rpartition(":")
    return Edge(host, int(port), int(port), said["caFile"], sandbox=True)


class Visitor:
    """A viewer's connection to `domain` at `address` (TLS named `domain`), kept open across GETs as a browser
    keeps it (HTTP/1.1 keep-alive); opened again if the edge closed it."""

    def __init__(self, address: str, domain: str, edge: Edge, timeout: float, https: bool = True):
        self.address, self.domain, self.edge, self.timeout, self.https = address, domain, edge, timeout, https
        self.conn: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        port = self.edge.port if self.https else self.edge.http_port
        raw = socket.create_connection((self.address, port), timeout=self.timeout)
        sock = (ssl.create_default_context(cafile=self.edge.ca_file).wrap_socket(raw, server_hostname=self.domain)
                if self.https else raw)
        conn = http.client.HTTPConnection(self.domain, port, timeout=self.timeout)
        conn.sock = sock
        return conn

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """One GET of `path`."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._open()
            try:
                self.conn.request("GET", quote(path, safe="/~-_.!*'()"),
                                  headers={"Host": self.domain, "User-Agent": "reconciler"})
                answer = self.conn.getresponse()
                body = answer.read()
                if answer.will_close:
                    self.close()
                return answer.status, {k.lower(): v for k, v in answer.getheaders()}, body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()  # the edge closed an idle connection: once more on a new one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def request(address: str, domain: str, path: str, edge: Edge, timeout: float, https: bool = True,
             ) -> tuple[int, dict[str, str], bytes]:
    """One GET of `path` on `domain`, on a connection of its own."""
    visitor = Visitor(address, domain, edge, timeout, https)
    try:
        return visitor.get(path)
    finally:
        visitor.close()
