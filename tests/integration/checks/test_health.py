"""`reconciler health` against real redis-server processes, as a subprocess."""

from __future__ import annotations

import time

import pytest

from tests.conftest import free_port

CACHE = """\
apiVersion: reconciler/v1
kind: CacheCluster
metadata: {name: app-cache}
spec:
  transitEncryption: true
  authToken: {fromEnv: REDIS_AUTH_TOKEN}
  allowFrom: [{securityGroupName: bastion}]
  healthCheck: {timeoutSeconds: 1.5, tls: %(tls)s%(extra)s}
"""


def spec_text(tls: bool = False, extra: str = "") -> str:
    return CACHE % {"tls": "true" if tls else "false", "extra": extra}


def no_secret_anywhere(result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.out and secret not in result.err
    assert "Traceback" not in result.out + result.err


def test_healthy_server_passes_every_step(cli, specs, aws, redis_server):
    root = specs("cache.yaml", spec_text())
    env = {**aws.env, "REDIS_AUTH_TOKEN": redis_server.password}
    result = cli("health", "--json", "--endpoint", redis_server.endpoint, str(root), env=env)
    assert result.code == 0, result.out + result.err
    [cluster] = result.json["clusters"]
    assert cluster["status"] == "healthy"
    assert [s["step"] for s in cluster["steps"]] == ["dns", "tcp", "auth", "ping", "set", "get", "del"]
    assert all(s["ok"] and s["ms"] >= 0 for s in cluster["steps"])
    text = cli("health", "--endpoint", redis_server.endpoint, str(root), env=env)
    assert text.code == 0 and "HEALTHY" in text.out and " ms" in text.out
    no_secret_anywhere(result, redis_server.password)
    no_secret_anywhere(text, redis_server.password)


def test_wrong_token_says_auth_mismatch(cli, specs, aws, redis_server):
    root = specs("cache.yaml", spec_text())
    env = {**aws.env, "REDIS_AUTH_TOKEN": "not-the-token-xyz"}
    result = cli("health", "--json", "--endpoint", redis_server.endpoint, str(root), env=env)
    assert result.code == 1
    [cluster] = result.json["clusters"]
    assert cluster["status"] == "unhealthy"
    assert cluster["steps"][-1]["step"] == "auth" and not cluster["steps"][-1]["ok"]
    assert "AUTH token mismatch" in cluster["cause"]
    no_secret_anywhere(result, "not-the-token-xyz", redis_server.password)


def test_missing_token_variable_is_clear(cli, specs, aws, redis_server):
    """Outside the sandbox (no sandbox endpoint: as against a real account) an unset variable is an error;
    only the sandbox gets a throw-away value (tests/e2e/test_readme.py)."""
    root = specs("cache.yaml", spec_text())
    env = {k: v for k, v in aws.env.items() if k not in ("REDIS_AUTH_TOKEN", "AWS_ENDPOINT_URL")}
    result = cli("health", "--endpoint", redis_server.endpoint, str(root), env=env)
    assert result.code == 1 and "REDIS_AUTH_TOKEN is not set" in result.out
    assert "secret.throw_away" not in result.err


def test_stopped_server_is_connection_refused(cli, specs, aws, redis_server):
    redis_server.stop()
    root = specs("cache.yaml", spec_text())
    env = {**aws.env, "REDIS_AUTH_TOKEN": redis_server.password}
    result = cli("health", "--json", "--endpoint", redis_server.endpoint, str(root), env=env)
    assert result.code == 1
    [cluster] = result.json["clusters"]
    assert cluster["steps"][-1]["step"] == "tcp" and "connection refused" in cluster["error"]
    assert "server is down or the port is wrong" in cluster["cause"]


def test_port_that_never_answers_times_out_in_time(cli, specs, aws, silent_port):
    root = specs("cache.yaml", spec_text())
    env = {**aws.env, "REDIS_AUTH_TOKEN": "whatever-token-1"}
    started = time.monotonic()
    result = cli("health", "--json", "--endpoint", f"127.0.0.1:{silent_port}", str(root), env=env)
    elapsed = time.monotonic() - started
    assert result.code == 1
    [cluster] = result.json["clusters"]
    tcp = cluster["steps"][-1]
    assert tcp["step"] == "tcp" and not tcp["ok"]
    assert 1400 <= tcp["ms"] <= 2500  # the configured 1.5 s, not a default minute
    assert "security group allows this host's security group" in cluster["cause"]
    assert elapsed < 15  # the whole command, interpreter start included


def test_tls_verified_against_the_configured_ca(cli, specs, aws, tls_redis):
    root = specs("cache.yaml", spec_text(tls=True, extra=f", caFile: {tls_redis.ca_file}"))
    env = {**aws.env, "REDIS_AUTH_TOKEN": tls_redis.password}
    result = cli("health", "--json", "--endpoint", f"localhost:{tls_redis.port}", str(root), env=env)
    assert result.code == 0, result.out
    steps = {s["step"]: s for s in result.json["clusters"][0]["steps"]}
    assert steps["tls"]["ok"] and "auth" in steps and "get" in steps
    no_secret_anywhere(result, tls_redis.password)


def test_tls_untrusted_certificate_and_ssl_cert_file(cli, specs, aws, tls_redis):
    root = specs("cache.yaml", spec_text(tls=True))
    env = {**aws.env, "REDIS_AUTH_TOKEN": tls_redis.password}
    result = cli("health", "--json", "--endpoint", f"localhost:{tls_redis.port}", str(root), env=env)
    assert result.code == 1
    [cluster] = result.json["clusters"]
    assert cluster["steps"][-1]["step"] == "tls" and "certificate not trusted" in cluster["error"]
    assert "caFile" in cluster["cause"]
    trusted = cli("health", "--endpoint", f"localhost:{tls_redis.port}", str(root),
                  env={**env, "SSL_CERT_FILE": tls_redis.ca_file})
    assert trusted.code == 0, trusted.out


def test_plain_server_with_tls_expected_says_so(cli, specs, aws, redis_server):
    root = specs("cache.yaml", spec_text(tls=True))
    env = {**aws.env, "REDIS_AUTH_TOKEN": redis_server.password}
    result = cli("health", "--json", "--endpoint", redis_server.endpoint, str(root), env=env)
    assert result.code == 1
    cluster = result.json["clusters"][0]
    assert cluster["steps"][-1]["step"] == "tls" and "transit encryption" in cluster["cause"]


def test_sandbox_has_no_data_plane_so_health_is_skipped(cli, specs, aws):
    root = specs("cache.yaml", spec_text(tls=True))
    result = cli("health", "--json", str(root), env={**aws.env, "REDIS_AUTH_TOKEN": "t-1234567890abcdef"})
    assert result.code == 0
    [cluster] = result.json["clusters"]
    assert cluster["status"] == "skipped" and "no Redis data plane" in cluster["skipped"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace("transitEncryption: true", "transitEncryption: false", 1),
     "spec.authToken: ElastiCache accepts an AUTH token only with transit encryption"),
    (lambda s: s.replace("[{securityGroupName: bastion}]", "[{cidr: 0.0.0.0/0}]"),
     "spec.allowFrom[0].cidr: 0.0.0.0/0 opens the cache to the whole internet"),
    (lambda s: s.replace("[{securityGroupName: bastion}]", "[{cidr: '::/0'}]"),
     "spec.allowFrom[0].cidr: ::/0 opens the cache to the whole internet"),
    (lambda s: s.replace("authToken: {fromEnv: REDIS_AUTH_TOKEN}", "authToken: hunter2hunter2"),
     "spec.authToken: a secret is a reference"),
])
def test_cache_specs_that_break_the_rules_are_refused(cli, specs, aws, edit, message):
    result = cli("validate", str(specs("cache.yaml", edit(spec_text(tls=True)))))
    assert result.code == 1 and message in result.err, result.err
    assert "hunter2hunter2" not in result.err


@pytest.mark.parametrize("source", ["fromSecretsManager", "fromSsmParameter"])
def test_token_from_secrets_manager_or_ssm(cli, specs, aws, redis_server, source):
    if source == "fromSecretsManager":
        aws.client("secretsmanager").create_secret(Name="app/redis", SecretString=redis_server.password)
    else:
        aws.client("ssm").put_parameter(Name="app/redis", Value=redis_server.password, Type="SecureString")
    text = spec_text().replace("{fromEnv: REDIS_AUTH_TOKEN}", f"{{{source}: app/redis}}")
    root = specs("cache.yaml", text)
    result = cli("health", "--json", "--endpoint", redis_server.endpoint, str(root))
    assert result.code == 0, result.out + result.err
    assert [s["step"] for s in result.json["clusters"][0]["steps"]][2] == "auth"
    no_secret_anywhere(result, redis_server.password)


@pytest.mark.parametrize(("endpoint", "message"), [
    ("127.0.0.1:99999", "port 99999 is not between 1 and 65535"),
    ("::1:6379", "is not HOST:PORT (an IPv6 address goes in brackets: [::1]:6379)"),
    ("redis.example.com", "is not HOST:PORT"),
])
def test_endpoint_is_checked_before_anything(cli, specs, aws, endpoint, message):
    result = cli("health", "--endpoint", endpoint, str(specs("cache.yaml", spec_text())))
    assert result.code == 1 and message in result.err and "Traceback" not in result.err


def test_an_ipv6_endpoint_in_brackets_is_probed(cli, specs, aws, silent_port):
    root = specs("cache.yaml", spec_text())
    result = cli("health", "--json", "--endpoint", f"[::1]:{free_port()}", str(root),
                 env={**aws.env, "REDIS_AUTH_TOKEN": "t-1234567890abcdef"})
    [cluster] = result.json["clusters"]
    assert cluster["endpoint"].startswith("[::1]:") and cluster["steps"][0]["step"] == "dns"
    assert cluster["steps"][0]["ok"]  # it got as far as connecting to ::1


def test_a_server_without_a_password_is_not_blamed_on_the_token(cli, specs, aws, tmp_path):
    from tests.conftest import start_redis

    server = start_redis(tmp_path)  # no requirepass
    try:
        root = specs("cache.yaml", spec_text())
        result = cli("health", "--json", "--endpoint", server.endpoint, str(root),
                     env={**aws.env, "REDIS_AUTH_TOKEN": "t-1234567890abcdef"})
    finally:
        server.stop()
    [cluster] = result.json["clusters"]
    assert "the server has no AUTH token but one was sent" in cluster["cause"]
    assert "mismatch" not in cluster["cause"]


def test_a_certificate_for_another_name_is_not_blamed_on_the_trust_store(cli, specs, aws, tls_redis):
    """The test certificate is for localhost and 127.0.0.1; `127.1` is the same address by another name."""
    root = specs("cache.yaml", spec_text(tls=True, extra=f", caFile: {tls_redis.ca_file}"))
    env = {**aws.env, "REDIS_AUTH_TOKEN": tls_redis.password}
    result = cli("health", "--json", "--endpoint", f"127.1:{tls_redis.port}", str(root), env=env)
    [cluster] = result.json["clusters"]
    assert "certificate name mismatch" in cluster["error"]
    assert "not issued for '127.1'" in cluster["cause"] and "trust store" not in cluster["cause"]


def test_ca_file_and_tls_flags_override_the_spec(cli, specs, aws, tls_redis, redis_server):
    tls_root = specs("tls.yaml", spec_text(tls=True))  # no caFile in the spec: the system store refuses it
    env = {**aws.env, "REDIS_AUTH_TOKEN": tls_redis.password}
    assert cli("health", "--endpoint", f"localhost:{tls_redis.port}", str(tls_root), env=env).code == 1
    trusted = cli("health", "--endpoint", f"localhost:{tls_redis.port}", "--ca-file", tls_redis.ca_file,
                  str(tls_root), env=env)
    assert trusted.code == 0, trusted.out
    plain = cli("health", "--endpoint", redis_server.endpoint, "--no-tls", str(tls_root),
                env={**aws.env, "REDIS_AUTH_TOKEN": redis_server.password})
    assert plain.code == 0, plain.out
