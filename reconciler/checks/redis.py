"""Redis data-path health check, step by step, with the likely cause of a failure.

Steps: DNS, TCP connect, TLS (when transit encryption is on), AUTH (when a token is
configured), PING, SET a probe key with a short TTL, GET and compare, DEL. Each step's
latency is measured; the first failure stops the check and says what an operator should
look at. Used by `reconciler health` and by the agent every cycle.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from reconciler.aws.secrets import Secret
from reconciler.checks.steps import CheckResult, StepFailed, timed

PROBE_TTL_MS = 30_000
T = TypeVar("T")


@dataclass
class RedisResult(CheckResult):
    """The Redis check of one cluster."""

    cluster: str
    endpoint: str | None

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "endpoint": self.endpoint, **self.outcome_json()}


def check_redis(cluster: str, host: str, port: int, *, password: Secret | None = None, tls: bool = False,
                ca_file: str | None = None, timeout: float = 2.0) -> RedisResult:
    """Probe a Redis endpoint step by step. Never raises for a failed check; never shows the token."""
    result = RedisResult(cluster, (f"[{host}]:{port}" if ":" in host else f"{host}:{port}"))
    secret = password.reveal() if password else None
    try:
        address = _step(result, "dns", lambda: _resolve(host, port))
        _step(result, "tcp", lambda: _tcp_probe(address, port, timeout))
        if tls:
            _step(result, "tls", lambda: _tls_probe(address, host, port, timeout, ca_file))
        conn = _connection(host, port, tls, ca_file, timeout)
        try:
            conn.connect()
            if secret is not None:
                _step(result, "auth", lambda: _command(conn, "AUTH", secret, port=port))
            _step(result, "ping", lambda: _command(conn, "PING", port=port))
            key, value = f"reconciler:health:{uuid.uuid4().hex}", uuid.uuid4().hex
            _step(result, "set", lambda: _command(conn, "SET", key, value, "PX", PROBE_TTL_MS, port=port))
            got = _step(result, "get", lambda: _command(conn, "GET", key, port=port))
            if _text(got) != value:
                raise StepFailed("GET returned another value than was SET",
                                  "the endpoint is not the primary, or something rewrites keys: "
                                  "check that the endpoint is the primary endpoint")
            _step(result, "del", lambda: _command(conn, "DEL", key, port=port))
        finally:
            conn.disconnect()
    except StepFailed as exc:
        result.failed(exc)
    except (redis.exceptions.ConnectionError, OSError) as exc:  # a failure between the probed steps
        result.error = f"connection lost: {_clean(exc, secret)}"
        result.cause = "the server closed the connection: check its logs, maxclients, and TLS settings"
    return result


def _resolve(host: str, port: int) -> str:
    try:
        return str(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0])
    except socket.gaierror as exc:
        raise StepFailed(f"{host} does not resolve ({exc.strerror})",
                          "ElastiCache endpoints resolve only inside their VPC: run this on the bastion "
                          "(or another host in the VPC), and check the endpoint name") from None


def _tcp_probe(address: str, port: int, timeout: float) -> None:
    try:
        socket.create_connection((address, port), timeout=timeout).close()
    except TimeoutError:
        raise StepFailed(f"no answer within {timeout:g}s",
                          f"check that the cluster's security group allows this host's security group on "
                          f"port {port}, and that you are inside the VPC") from None
    except ConnectionRefusedError:
        raise StepFailed("connection refused",
                          f"nothing listens on port {port} there: the server is down or the port is wrong") from None
    except OSError as exc:
        raise StepFailed(f"cannot connect: {exc.strerror or exc}",
                          "check the network path from this host to the cluster (routes, NACLs)") from None


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def _tls_probe(address: str, host: str, port: int, timeout: float, ca_file: str | None) -> str:
    context = _tls_context(ca_file)
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as secure:
            return secure.version() or ""
    except ssl.SSLCertVerificationError as exc:
        if "hostname mismatch" in str(exc.verify_message).lower() or "IP address mismatch" in str(exc.verify_message):
            raise StepFailed(f"certificate name mismatch ({exc.verify_message})",
                              f"the certificate is trusted but not issued for {host!r}: connect by the name it "
                              "was issued for (the cluster's endpoint name, not an IP or an alias)") from None
        raise StepFailed(f"certificate not trusted ({exc.verify_message})",
                          "the server's certificate does not verify against the trust store: for a private CA "
                          "set spec.healthCheck.caFile (or SSL_CERT_FILE)") from None
    except (ssl.SSLError, ConnectionResetError) as exc:
        raise StepFailed(f"TLS handshake failed ({getattr(exc, 'reason', None) or exc})",
                          "the server does not speak TLS on this port: is transit encryption on for this "
                          "cluster (spec.transitEncryption)?") from None
    except TimeoutError:
        raise StepFailed(f"no TLS answer within {timeout:g}s",
                          "the server accepted TCP but not TLS: is transit encryption on for this cluster?") from None


def _connection(host: str, port: int, tls: bool, ca_file: str | None, timeout: float) -> redis.Connection:
    options: dict[str, Any] = {"host": host, "port": port, "socket_timeout": timeout, "protocol": 2,
                               "lib_name": None, "lib_version": None,
                               "socket_connect_timeout": timeout, "retry_on_timeout": False}
    if tls:
        return redis.SSLConnection(ssl_cert_reqs="required", ssl_ca_certs=ca_file or os.environ.get("SSL_CERT_FILE"),
                                   ssl_check_hostname=True, **options)
    return redis.Connection(**options)


def _command(conn: redis.Connection, *args: Any, port: int) -> Any:
    secret = args[1] if args[0] == "AUTH" else None
    try:
        conn.send_command(*args)
        return conn.read_response()
    except redis.exceptions.AuthenticationError as exc:
        message = _clean(exc, secret)
        if "without any password configured" in message or "no password is set" in message:
            raise StepFailed(message, "the server has no AUTH token but one was sent: remove spec.authToken, "
                                       "or set the token on the cluster") from None
        raise StepFailed(message, "AUTH token mismatch: the token the spec references is not the "
                                   "cluster's (was it rotated?)") from None
    except redis.exceptions.ResponseError as exc:
        message = _clean(exc, secret)
        if "NOAUTH" in message:
            raise StepFailed(message, "the server requires AUTH: set spec.authToken to the cluster's token") from None
        if "without any password configured" in message or "no password is set" in message:
            raise StepFailed(message, "the server has no AUTH token but one was sent: remove spec.authToken, "
                                       "or set the token on the cluster") from None
        if "READONLY" in message:
            raise StepFailed(message, "this endpoint is a read replica: use the primary endpoint") from None
        raise StepFailed(message, "the server refused the command: check ACLs and its logs") from None
    except redis.exceptions.TimeoutError:
        raise StepFailed("timed out", "the server is overloaded or blocked (a long command?): check its "
                                       f"CPU and slowlog; the port {port} answered TCP") from None
    except redis.exceptions.ConnectionError as exc:
        raise StepFailed(f"connection lost: {_clean(exc, secret)}",
                          "the server closed the connection: a TLS/plain mismatch, or maxclients reached") from None


def _clean(exc: BaseException, secret: str | None) -> str:
    """An error message with any trace of the token removed."""
    message = str(exc)
    return message.replace(secret, "(sensitive)") if secret else message


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def parse_endpoint(text: str) -> tuple[str, int]:
    """`host:6379`, `10.0.0.5:6379` or `[::1]:6379` -> (host, port); anything else is a clear error."""
    from reconciler.core.errors import ReconcilerError

    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\s\[\]]+):(\d+)", text.strip())
    if not match:
        raise ReconcilerError(f"{text!r} is not HOST:PORT (an IPv6 address goes in brackets: [::1]:6379)")
    host, port = match.group(1) or match.group(3), int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise ReconcilerError(f"{text!r}: port {port} is not between 1 and 65535")
    return host, port


def check_cluster(spec: Any, aws: Any | None, endpoint: str | None = None, *, tls: bool | None = None,
                  ca_file: str | None = None) -> RedisResult:
    """Health of one CacheCluster spec: resolve its endpoint and token, then probe.

    Endpoint: `endpoint` (the --endpoint flag), else spec.healthCheck.endpoint, else the live
    primary endpoint. The agent calls this every cycle; it never raises for a failed check.
    """
    from reconciler.aws.failures import describe_error
    from reconciler.aws.secrets import resolve
    from reconciler.core.errors import ReconcilerError

    s = spec.spec
    check = s.get("healthCheck") or {}
    target = endpoint or check.get("endpoint")
    from reconciler.aws.endpoints import talks_to_sandbox

    if not target and talks_to_sandbox():
        return RedisResult(spec.name, None, skipped=(
            "the sandbox has no Redis data plane; give --endpoint HOST:PORT (or spec.healthCheck.endpoint) "
            "to check a real server"))
    try:
        if target:
            host, port = parse_endpoint(target)
        else:
            host, port = _live_endpoint(spec.name, aws)
        token = resolve(s["authToken"], aws) if s.get("authToken") else None
    except (ReconcilerError, Exception) as exc:  # no endpoint or no token: unhealthy, said plainly
        message = str(exc) if isinstance(exc, ReconcilerError) else describe_error(exc)
        return RedisResult(spec.name, target, error=message,
                            cause="fix the configuration above; the check did not reach Redis")
    if ca_file is None:
        ca_file = check.get("caFile")
        if ca_file and not os.path.isabs(ca_file):
            ca_file = str(spec.source_dir / ca_file)
    if tls is None:
        tls = check.get("tls", s.get("transitEncryption", True))
    return check_redis(spec.name, host, int(port), password=token, tls=tls,
                       ca_file=ca_file, timeout=float(check.get("timeoutSeconds", 2)))


def _live_endpoint(name: str, aws: Any) -> tuple[str, int]:
    from reconciler.core.errors import ReconcilerError

    if aws is None:
        raise ReconcilerError("no endpoint: give --endpoint HOST:PORT or spec.healthCheck.endpoint")
    ec = aws.client("elasticache")
    try:
        group = ec.describe_replication_groups(ReplicationGroupId=name)["ReplicationGroups"][0]
    except ec.exceptions.ReplicationGroupNotFoundFault:
        raise ReconcilerError(f"DescribeReplicationGroups: {name} does not exist (apply the specs first)") from None
    primary = (group.get("NodeGroups") or [{}])[0].get("PrimaryEndpoint")
    if not primary:
        raise ReconcilerError(f"{name} has no primary endpoint yet (status {group.get('Status')})")
    return primary["Address"], int(primary["Port"])


def _step(result: RedisResult, name: str, action: Callable[[], T]) -> T:
    """A timed step; only DNS's answer (the address) is shown as its detail."""
    return timed(result, name, action, detail=name == "dns")
