"""CloudFront's edge in the sandbox: each distribution's domain served over HTTPS (and HTTP, for the redirect), from
its S3 origin, through a cache that keeps what AWS's edge keeps.

How a client reaches it: the sandbox prints the edge's address (and `GET /_sandbox/edge` on the sandbox's port says
it, with the CA file); a client connects there and names the distribution's domain (`d1234.cloudfront.net`) as the
TLS server name and the Host header, as on AWS after DNS. One port speaks both: a connection that opens with a TLS
handshake gets HTTPS, any other plain HTTP. The certificate is the sandbox's own, for `*.cloudfront.net` (the name
CloudFront's default certificate covers), signed by a CA whose certificate the sandbox writes to a file (`caFile`):
a client verifies against it, as `--ca-file` for Redis.

What it follows (CloudFront Developer Guide):
- "Require HTTPS for communication between viewers and CloudFront": redirect-to-https answers a plain HTTP GET
  with 301 to the same URL over HTTPS; https-only with 403.
- "Specify a default root object": a request for `/` gets the default root object, cached under `/`.
- "Restrict access to an Amazon S3 origin" (Origin Access Control): the edge signs its origin requests; S3 serves
  them only when the bucket policy allows the cloudfront.amazonaws.com service principal (for this
  distribution's ARN, when the statement has an AWS:SourceArn condition); otherwise the origin's 403 is the
  viewer's.
- Expiration (reconciler/cdn.py): each object is kept for the TTL its cache policy and Cache-Control give, at the
  sandbox's time factor; "Add, remove, or replace content that CloudFront distributes": an object replaced at the
  origin is served from the cache until it expires or an invalidation covering its path completes.
- Response headers as CloudFront sends them: `X-Cache` (Hit/Miss from cloudfront), `Age` (seconds in the cache,
  of AWS's time), the origin's ETag, Last-Modified, Cache-Control and Content-Type, `Via`.
Aliases (alternate domain names) are served when a distribution lists them; the certificate covers only
`*.cloudfront.net` (ACM is not part of the sandbox), so a check of an alias verifies against the same CA and fails on
the name, as it would without a matching certificate.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from reconciler.aws.caching import Ttls, allowing_statements, covers, edge_ttl, ttls_of
from reconciler.sandbox.clock import AwsTime, using
from reconciler.sandbox.s3 import find_bucket

CERT_DAYS = 90


@dataclass
class Cached:
    status: int
    headers: dict[str, str]
    body: bytes
    stored: float      # time.monotonic() when the edge stored it
    wall: float        # time.time() then (to compare with an invalidation's completion)
    ttl: float         # seconds of AWS's time


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for `*.cloudfront.net` signed by it: (ca.pem, edge.pem, edge.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconciler sandbox CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "*.cloudfront.net")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.cloudfront.net")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "edge.pem", directory / "edge.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Edge:
    """The edge server of one sandbox (its clock scales the TTLs)."""

    def __init__(self, clock: AwsTime, host: str = "127.0.0.1", port: int = 0):
        self.clock = clock
        self._dir = tempfile.TemporaryDirectory(prefix="reconciler-edge-")
        self.ca_file, cert, key = make_certificates(Path(self._dir.name))
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        self.cache: dict[tuple[str, str], Cached] = {}
        self.lock = threading.Lock()
        self.served: Counter[str] = Counter()  # requests per Host, since the sandbox's counts were last cleared
        edge = self

        class Handler(_Handler):
            served_by = edge

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="sandbox-edge", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> Edge:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._dir.cleanup()

    def reset(self) -> None:
        with self.lock:
            self.cache.clear()

    def describe(self) -> dict[str, Any]:
        with self.lock:
            served = dict(self.served)
        return {"address": self.address, "caFile": str(self.ca_file), "certificateDays": CERT_DAYS,
                "requests": served}

    def clear_counts(self) -> None:
        with self.lock:
            self.served.clear()

    # ------------------------------------------------------------------ serving

    def answer(self, host: str, path: str, https: bool, head: bool) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.served[host] += 1
        with using(self.clock):  # invalidations that are due complete first
            dist = _distribution(host)
            if dist is None:
                return 403, {"Content-Type": "text/plain"}, b"Bad request: no distribution serves this name.\n"
            config = dist.distribution_config
            if str(config.Enabled).lower() != "true":
                return 403, {"Content-Type": "text/plain"}, b"The distribution is disabled.\n"
            behavior = _behavior(config, path)
            viewer = behavior.viewer_protocol_policy or "allow-all"
            if not https and viewer == "redirect-to-https":
                return 301, {"Location": f"https://{host}{path}", "Content-Length": "0"}, b""
            if not https and viewer == "https-only":
                return 403, {"Content-Type": "text/plain"}, b"This distribution serves HTTPS only.\n"
            return self._cached_or_fetched(dist, behavior, path)

    def _cached_or_fetched(self, dist: Any, behavior: Any, path: str) -> tuple[int, dict[str, str], bytes]:
        now = time.monotonic()
        factor = self.clock.factor
        with self.lock:
            hit = self.cache.get((dist.distribution_id, path))
            if hit is not None and (now - hit.stored > hit.ttl * factor or _invalidated(dist, path, hit.wall)):
                del self.cache[(dist.distribution_id, path)]
                hit = None
        if hit is not None:
            age = (now - hit.stored) / factor if factor else 0
            return hit.status, {**hit.headers, "X-Cache": "Hit from cloudfront", "Age": str(int(age))}, hit.body
        status, headers, body = _from_origin(dist, path)
        ttl = edge_ttl(_ttls(behavior), headers.get("Cache-Control")) if status == 200 else 0.0
        if ttl > 0 and factor > 0:
            with self.lock:
                self.cache[(dist.distribution_id, path)] = Cached(status, headers, body, now, time.time(), ttl)
        return status, {**headers, "X-Cache": "Miss from cloudfront" if status < 400 else "Error from cloudfront"}, body


class _Handler(BaseHTTPRequestHandler):
    served_by: Edge
    protocol_version = "HTTP/1.1"
    # A response leaves in one write (headers and body buffered, flushed once per request), without Nagle's
    # delay: a body written apart from its headers waits on the client's delayed ACK (~40 ms a response).
    wbufsize = 64 * 1024

    def setup(self) -> None:
        """TLS when the client opens with a handshake (its first byte is 0x16), else plain HTTP."""
        self.https = False
        try:
            self.request.settimeout(10)
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            first = self.request.recv(1, socket.MSG_PEEK)
            if first == b"\x16":
                self.request = self.served_by.tls.wrap_socket(self.request, server_side=True)
                self.https = True
        except (OSError, ssl.SSLError):
            pass  # the handler's reads fail and the connection closes
        super().setup()

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        path = urlsplit(self.path).path or "/"
        status, headers, body = self.served_by.answer(host, path, self.https, head)
        self.send_response(status)
        for name, value in {**headers, "Via": f"1.1 {host} (CloudFront)", "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _distribution(host: str) -> Any:
    """The distribution whose domain (or an alias) is `host`, in any of the sandbox's accounts."""
    from moto.cloudfront.models import cloudfront_backends

    for account in list(cloudfront_backends.values()):
        for backend in list(account.values()):
            for dist in list(backend.distributions.values()):
                aliases = [a.lower() for a in (dist.distribution_config.Aliases.get("Items") or [])]
                if dist.domain_name.lower() == host or host in aliases:
                    return dist
    return None


def _behavior(config: Any, path: str) -> Any:
    """The cache behavior for `path`: the first whose PathPattern matches (`*` matches any characters, `/`
    included), else the default one."""
    import fnmatch

    for behavior in config.CacheBehaviors.get("Items") or []:
        pattern = behavior.path_pattern if behavior.path_pattern.startswith("/") else "/" + behavior.path_pattern
        if fnmatch.fnmatchcase(path, pattern):
            return behavior
    return config.DefaultCacheBehavior


def _ttls(behavior: Any) -> Ttls:
    return ttls_of(behavior.cache_policy_id or "")


def _invalidated(dist: Any, path: str, stored_wall: float) -> bool:
    """An invalidation covering `path` completed after the object was stored."""
    from moto.cloudfront.models import cloudfront_backends

    for account in list(cloudfront_backends.values()):
        for backend in list(account.values()):
            for made in backend.invalidations.get(dist.distribution_id, []):
                done = getattr(made, "_rs_completed", None)
                if done is not None and done > stored_wall and any(covers(p, path) for p in made.paths):
                    return True
    return False


def _from_origin(dist: Any, path: str) -> tuple[int, dict[str, str], bytes]:
    """The origin's answer to the edge's signed request (Origin Access Control)."""
    config = dist.distribution_config
    origins = config.Origins.get("Items") or []
    origin = origins[0] if origins else None
    domain = getattr(origin, "domain_name", "") if origin else ""
    bucket_name = domain.split(".s3")[0]
    bucket = find_bucket(bucket_name)
    key = unquote(path.lstrip("/")) or (config.DefaultRootObject or "")
    if bucket is None:
        return 502, {"Content-Type": "text/plain"}, b"CloudFront could not reach the origin.\n"
    if not _origin_allows(bucket, bucket_name, dist):
        return 403, {"Content-Type": "application/xml"}, (
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied"
            b"</Message></Error>")
    obj = bucket.keys.get(key) if key else None
    if obj is None:  # without s3:ListBucket, S3 answers a missing key with 403, not 404
        return 403, {"Content-Type": "application/xml"}, (
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied"
            b"</Message></Error>")
    meta = obj.metadata
    headers = {"ETag": obj.etag, "Last-Modified": obj.last_modified_RFC1123,
               "Content-Type": meta.get("content-type") or "binary/octet-stream"}
    if meta.get("cache-control"):
        headers["Cache-Control"] = meta["cache-control"]
    return 200, headers, obj.value


def _origin_allows(bucket: Any, name: str, dist: Any) -> bool:
    """Does the bucket policy let this distribution read (Origin Access Control's statement)?"""
    for _, statement in allowing_statements(bucket.policy, "s3:GetObject"):
        principal = statement.get("Principal") or {}
        service = principal.get("Service") if isinstance(principal, dict) else None
        if principal != "*" and service not in ("cloudfront.amazonaws.com", ["cloudfront.amazonaws.com"]):
            continue
        source = ((statement.get("Condition") or {}).get("StringEquals") or {}).get("AWS:SourceArn")
        if source is None or source == dist.arn or (isinstance(source, list) and dist.arn in source):
            return True
    return False
