"""TLS: certificate verification against the system store and extra CAs,
certificate pinning, disabled verification (warning and audit), and a
handshake with a server that is not Python (`openssl s_server`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import socket
import subprocess
import time

import pytest
from conftest import IN_CI, skip_or_fail
from fake_youtrack import DEFAULT_TOKEN

import yt

SSL_WARNING = (
    "SSL verification is DISABLED. This is insecure and should only be "
    "used in development."
)
SSL_WARNING_LINE = f"⚠️ {SSL_WARNING}"

# Reasons yt gives for each verification failure.
UNKNOWN_ISSUER = "the issuer is unknown (no trusted CA signed it)"
EXPIRED = "the certificate has expired"
WRONG_IP = "the certificate does not match the IP address"
WRONG_HOST = "the certificate does not match the host name"
SELF_SIGNED = "the certificate is self-signed"
PIN_EXPIRED = "expired on"

# Trust modes of the matrix, and the group whose expectations they share.
MODES = {
    "system": "system",
    "ca-file": "ca",
    "ca-dir": "ca",
    "pin-colons": "pin",
    "pin-plain": "pin",
    "pin-lower": "pin",
    "no-verify": "no-verify",
}

# Expected (exit code, reason) for each server certificate and trust mode.
#
# - "system": only the system store, which lacks the test CA, so
#   every certificate fails. OpenSSL fails to build the chain of the
#   expired and wrong-host certificates before it checks their dates or
#   names, so those report an unknown issuer too.
# - "ca": YOUTRACK_CA_BUNDLE names the test CA (a PEM file, or a directory
#   prepared as for openssl rehash). Each remaining fault is then named.
# - "pin": YOUTRACK_CERT_SHA256 contains the fingerprint of the certificate
#   that the server presents. A pin is an exact match on that leaf, so it
#   replaces the CA and host name checks: the self-signed, untrusted and
#   wrong-host certificates are accepted. A pin does not extend validity:
#   yt rejects a pinned certificate that has expired.
# - "no-verify": YOUTRACK_VERIFY_SSL=false accepts anything, with a warning.
OUTCOMES = {
    ("valid", "system"): (5, UNKNOWN_ISSUER),
    ("valid", "ca"): (0, None),
    ("valid", "pin"): (0, None),
    ("valid", "no-verify"): (0, None),
    ("expired", "system"): (5, UNKNOWN_ISSUER),
    ("expired", "ca"): (5, EXPIRED),
    ("expired", "pin"): (5, PIN_EXPIRED),
    ("expired", "no-verify"): (0, None),
    ("wrong-host", "system"): (5, UNKNOWN_ISSUER),
    ("wrong-host", "ca"): (5, WRONG_IP),
    ("wrong-host", "pin"): (0, None),
    ("wrong-host", "no-verify"): (0, None),
    ("self-signed", "system"): (5, SELF_SIGNED),
    ("self-signed", "ca"): (5, SELF_SIGNED),
    ("self-signed", "pin"): (0, None),
    ("self-signed", "no-verify"): (0, None),
    ("untrusted", "system"): (5, UNKNOWN_ISSUER),
    ("untrusted", "ca"): (5, UNKNOWN_ISSUER),
    ("untrusted", "pin"): (0, None),
    ("untrusted", "no-verify"): (0, None),
}
KINDS = ("valid", "expired", "wrong-host", "self-signed", "untrusted")


def trust_env(mode: str, certs, kind: str) -> dict:
    """Return the variables that set up one trust mode for a server."""
    fingerprint = certs.fingerprint(kind)
    return {
        "system": {},
        "ca-file": {"YOUTRACK_CA_BUNDLE": str(certs.ca)},
        "ca-dir": {"YOUTRACK_CA_BUNDLE": str(certs.ca_dir)},
        "pin-colons": {"YOUTRACK_CERT_SHA256": fingerprint},
        "pin-plain": {"YOUTRACK_CERT_SHA256": fingerprint.replace(":", "")},
        "pin-lower": {"YOUTRACK_CERT_SHA256": fingerprint.lower()},
        "no-verify": {"YOUTRACK_VERIFY_SSL": "false"},
    }[mode]


def server_env(url: str, **extra) -> dict:
    return {"YOUTRACK_BASE_URL": url, "YOUTRACK_TOKEN": DEFAULT_TOKEN,
            **extra}


def assert_safe_advice(err: str) -> None:
    """Check that a failure never suggests turning verification off."""
    assert "YOUTRACK_VERIFY_SSL" not in err
    assert "disable" not in err.lower()
    assert "Traceback" not in err


def assert_verification_failure(err, host, port, reason, sources):
    """Check the message of a failed CA or host name verification."""
    assert f"TLS certificate verification failed for {host}:{port}" in err
    assert reason in err
    assert f"(CA sources: {', '.join(sources)})" in err
    if reason == EXPIRED:
        assert "renew the certificate on the server" in err
    elif reason in (WRONG_IP, WRONG_HOST):
        assert "use the host name the certificate was issued for" in err
        assert "YOUTRACK_CERT_SHA256" in err
    else:
        assert "YOUTRACK_CA_BUNDLE" in err
        assert "YOUTRACK_CERT_SHA256" in err
    assert_safe_advice(err)


def audit_entries(yt_home) -> list:
    path = yt_home.data_dir / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------- the matrix


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_tls_matrix(cli, tls_server, tls_certs, kind, mode):
    srv = tls_server(kind)
    extra = trust_env(mode, tls_certs, kind)
    code, reason = OUTCOMES[kind, MODES[mode]]

    result = cli("api", "users/me", env=server_env(srv.url, **extra))

    assert result.code == code, result.err
    if code == 0:
        assert json.loads(result.out)["id"] == "1-1"
        assert len(srv.requests) == 1
        if mode == "no-verify":
            assert result.err.splitlines() == [SSL_WARNING_LINE]
        else:
            assert result.err == ""
        return

    # The token is never sent to a server that failed the checks.
    assert srv.requests == []
    assert result.out == ""
    if reason == PIN_EXPIRED:
        assert f"the pinned certificate of 127.0.0.1:{srv.port}" in (
            result.err
        )
        assert "pin the new fingerprint" in result.err
        assert_safe_advice(result.err)
        return
    sources = ["system store"] + list(extra.values())
    assert_verification_failure(result.err, "127.0.0.1", srv.port, reason,
                                sources)
    if reason != EXPIRED:
        # The fingerprint to compare out of band before pinning it.
        assert tls_certs.fingerprint(kind) in result.err


@pytest.mark.parametrize(
    ("kind", "code", "reason"),
    [("valid", 0, None), ("wrong-host", 5, WRONG_HOST)],
)
def test_tls_host_name_checked(cli, tls_server, tls_certs, kind, code,
                               reason):
    srv = tls_server(kind)
    url = srv.url.replace("127.0.0.1", "localhost")

    result = cli("api", "users/me", env=server_env(
        url, YOUTRACK_CA_BUNDLE=tls_certs.ca))

    assert result.code == code, result.err
    if reason:
        assert_verification_failure(
            result.err, "localhost", srv.port, reason,
            ["system store", str(tls_certs.ca)],
        )
        assert srv.requests == []


def test_tls_failure_not_retried(cli, tls_server):
    srv = tls_server("untrusted")

    result = cli("--debug", "api", "users/me", env=server_env(srv.url))

    assert result.code == 5
    # One handshake, and one more to read the fingerprint for the advice.
    assert srv.connections <= 2
    assert "retrying" not in result.err


@pytest.mark.parametrize(
    ("variable", "attribute"),
    [("SSL_CERT_FILE", "ca"), ("SSL_CERT_DIR", "ca_dir")],
)
def test_ssl_cert_variables_add_trust(cli, tls_server, tls_certs, variable,
                                      attribute):
    location = str(getattr(tls_certs, attribute))
    srv = tls_server("valid")
    other = tls_server("self-signed")

    trusted = cli("api", "users/me",
                  env=server_env(srv.url, **{variable: location}))
    rejected = cli("api", "users/me",
                   env=server_env(other.url, **{variable: location}))

    assert trusted.code == 0, trusted.err
    assert rejected.code == 5
    assert_verification_failure(
        rejected.err, "127.0.0.1", other.port, SELF_SIGNED,
        ["system store", location],
    )


def test_ca_sources_all_listed(cli, tls_server, tls_certs):
    srv = tls_server("untrusted")
    env = server_env(
        srv.url,
        SSL_CERT_FILE=tls_certs.ca,
        SSL_CERT_DIR=tls_certs.ca_dir,
        YOUTRACK_CA_BUNDLE=tls_certs.ca,
    )

    result = cli("api", "users/me", env=env)

    assert result.code == 5
    sources = ["system store", str(tls_certs.ca), str(tls_certs.ca_dir),
               str(tls_certs.ca)]
    assert_verification_failure(result.err, "127.0.0.1", srv.port,
                                UNKNOWN_ISSUER, sources)


@pytest.mark.parametrize(
    ("make_path", "message"),
    [
        (lambda tmp: tmp / "missing.pem", "no such file or directory"),
        (lambda tmp: tmp / "garbage.pem", "cannot load CA certificates"),
    ],
    ids=["missing", "not-pem"],
)
def test_ca_bundle_invalid_usage_error(cli, tls_server, tmp_path, make_path,
                                       message):
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    path = make_path(tmp_path)
    srv = tls_server("valid")

    result = cli("api", "users/me",
                 env=server_env(srv.url, YOUTRACK_CA_BUNDLE=path))

    assert result.code == 2
    assert str(path) in result.err
    assert message in result.err
    assert srv.requests == []


# ---------------------------------------------------------------- pinning


def test_pin_mismatch_shows_both(cli, tls_server, tls_certs):
    srv = tls_server("self-signed")
    expected = tls_certs.fingerprint("valid")

    result = cli("api", "users/me",
                 env=server_env(srv.url, YOUTRACK_CERT_SHA256=expected))

    assert result.code == 5
    assert (
        f"certificate of 127.0.0.1:{srv.port} does not match "
        f"YOUTRACK_CERT_SHA256" in result.err
    )
    assert (
        f"the server presented {tls_certs.fingerprint('self-signed')}"
        in result.err
    )
    assert f"expected {expected}" in result.err
    assert srv.requests == []
    assert srv.connections == 1
    assert_safe_advice(result.err)


def test_pin_enforced_without_verification(cli, tls_server, tls_certs):
    srv = tls_server("self-signed")
    env = server_env(srv.url, YOUTRACK_VERIFY_SSL="false",
                     YOUTRACK_CERT_SHA256=tls_certs.fingerprint("valid"))

    result = cli("api", "users/me", env=env)

    assert result.code == 5
    assert "does not match YOUTRACK_CERT_SHA256" in result.err
    assert srv.requests == []


def test_pin_replaces_ca_check(cli, tls_server, tls_certs):
    # A trusted CA does not rescue a certificate that is not pinned.
    srv = tls_server("valid")
    env = server_env(srv.url, YOUTRACK_CA_BUNDLE=tls_certs.ca,
                     YOUTRACK_CERT_SHA256=tls_certs.fingerprint("untrusted"))

    result = cli("api", "users/me", env=env)

    assert result.code == 5
    assert "does not match YOUTRACK_CERT_SHA256" in result.err


@pytest.mark.parametrize(
    "separator", [",", " ", ", "], ids=["comma", "space", "comma-space"]
)
def test_pin_list_any_match(cli, tls_server, tls_certs, separator):
    srv = tls_server("self-signed")
    pins = separator.join([
        tls_certs.fingerprint("valid"),
        tls_certs.fingerprint("self-signed").replace(":", "").lower(),
    ])

    result = cli("api", "users/me",
                 env=server_env(srv.url, YOUTRACK_CERT_SHA256=pins))

    assert result.code == 0, result.err


def test_pin_from_config_file(cli, tls_server, tls_certs):
    srv = tls_server("self-signed")
    pin = tls_certs.fingerprint("self-signed")
    assert cli("config", "set", "YOUTRACK_CERT_SHA256", pin).code == 0

    result = cli("api", "users/me", env=server_env(srv.url))

    assert result.code == 0, result.err


def test_pin_expiry_uses_yt_clock(cli, tls_server, tls_certs, monkeypatch):
    # The valid certificate ends 30 days after the session started.
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=60)
    monkeypatch.setattr(yt, "utc_now", lambda: later)
    srv = tls_server("valid")
    env = server_env(srv.url,
                     YOUTRACK_CERT_SHA256=tls_certs.fingerprint("valid"))

    result = cli("api", "users/me", env=env)

    assert result.code == 5
    assert f"the pinned certificate of 127.0.0.1:{srv.port} expired" in (
        result.err
    )
    assert srv.requests == []


@pytest.mark.parametrize(
    "value",
    [
        "zz",
        "abcd",
        "0" * 63,
        "0" * 65,
        "g" * 64,
        "sha1:" + "0" * 40,
        "0" * 64 + ",nope",
    ],
    ids=["non-hex", "short", "63-digits", "65-digits", "g-digits", "sha1",
         "second-invalid"],
)
def test_pin_invalid_usage_error(cli, tls_server, value):
    srv = tls_server("valid")

    result = cli("api", "users/me",
                 env=server_env(srv.url, YOUTRACK_CERT_SHA256=value))

    assert result.code == 2
    assert "YOUTRACK_CERT_SHA256" in result.err
    assert "64 hex digits" in result.err
    assert srv.connections == 0


def test_pin_invalid_config_set_rejected(cli, yt_home):
    result = cli("config", "set", "YOUTRACK_CERT_SHA256", "abcd")

    assert result.code == 2
    assert "64 hex digits" in result.err
    assert not (yt_home.config_dir / ".env").exists()


# ------------------------------------------------- verification disabled


SERVER_COMMANDS = {
    "api": (["api", "users/me"], 0),
    "api-not-found": (["api", "/api/issues/NOPE-404"], 4),
    "issues-list": (["issues", "list"], 0),
    "issues-show": (["issues", "show", "DEMO-1"], 0),
    "issues-comment": (["issues", "comment", "DEMO-1", "checked"], 0),
    "projects-list": (["projects", "list"], 0),
    "auth-status": (["auth", "status"], 0),
}


@pytest.mark.parametrize(
    ("args", "code"), SERVER_COMMANDS.values(), ids=SERVER_COMMANDS.keys()
)
def test_no_verify_warns_every_server_command(cli, tls_server, args, code):
    srv = tls_server("self-signed")
    env = server_env(srv.url, YOUTRACK_VERIFY_SSL="false")

    result = cli(*args, env=env)

    assert result.code == code, result.err
    assert result.err.splitlines().count(SSL_WARNING_LINE) == 1
    assert srv.requests


def test_no_verify_warns_login(cli, tls_server):
    srv = tls_server("self-signed")
    env = {"YOUTRACK_BASE_URL": srv.url, "YOUTRACK_VERIFY_SSL": "false"}

    result = cli("auth", "login", "--token-stdin", input=DEFAULT_TOKEN,
                 env=env)

    assert result.code == 0, result.err
    assert result.err.splitlines().count(SSL_WARNING_LINE) == 1


@pytest.mark.parametrize("value", ["false", "FALSE", "0", "no", "off"])
def test_no_verify_spellings(cli, tls_server, value):
    srv = tls_server("self-signed")

    result = cli("api", "users/me",
                 env=server_env(srv.url, YOUTRACK_VERIFY_SSL=value))

    assert result.code == 0, result.err
    assert SSL_WARNING_LINE in result.err.splitlines()


def test_no_verify_warning_ascii(cli, tls_server):
    srv = tls_server("self-signed")

    result = cli("api", "users/me", encoding="ascii",
                 env=server_env(srv.url, YOUTRACK_VERIFY_SSL="false"))

    assert result.code == 0, result.err
    assert f"WARNING: {SSL_WARNING}" in result.err.splitlines()


def test_no_verify_invalid_value(cli, tls_server):
    srv = tls_server("valid")

    result = cli("api", "users/me",
                 env=server_env(srv.url, YOUTRACK_VERIFY_SSL="maybe"))

    assert result.code == 2
    assert "YOUTRACK_VERIFY_SSL" in result.err
    assert "true/false/1/0/yes/no/on/off" in result.err
    assert srv.connections == 0


@pytest.mark.parametrize(
    "args",
    [
        ["security", "audit"],
        ["security", "audit", "--verify"],
        ["security", "token-status"],
        ["config", "list"],
    ],
    ids=["audit", "audit-verify", "token-status", "config-list"],
)
def test_no_verify_silent_offline(cli, tls_server, args):
    srv = tls_server("valid")
    env = server_env(srv.url, YOUTRACK_VERIFY_SSL="false")

    result = cli(*args, env=env)

    assert result.code == 0, result.err
    assert SSL_WARNING not in result.err
    assert srv.connections == 0


@pytest.mark.parametrize(
    ("value", "recorded"), [("false", False), ("true", True), (None, True)]
)
def test_audit_records_ssl_verify(cli, tls_server, tls_certs, yt_home,
                                  value, recorded):
    srv = tls_server("valid")
    env = server_env(srv.url, YOUTRACK_CA_BUNDLE=tls_certs.ca,
                     YOUTRACK_VERIFY_SSL=value)

    assert cli("api", "users/me", env=env).code == 0

    entry = audit_entries(yt_home)[-1]
    assert entry["event"] == "command"
    assert entry["command"] == "api"
    assert entry["ssl_verify"] is recorded


def _tls_config_entries(yt_home) -> list:
    return [e for e in audit_entries(yt_home) if e["event"] == "tls_config"]


def test_audit_tls_config_changes(cli, tls_server, tls_certs, yt_home):
    srv = tls_server("valid")
    base = server_env(srv.url, YOUTRACK_CA_BUNDLE=tls_certs.ca)
    off = dict(base, YOUTRACK_VERIFY_SSL="false")

    assert cli("api", "users/me", env=base).code == 0
    first = _tls_config_entries(yt_home)
    assert cli("api", "users/me", env=base).code == 0
    assert _tls_config_entries(yt_home) == first

    assert cli("api", "users/me", env=off).code == 0
    entries = _tls_config_entries(yt_home)
    assert len(entries) == len(first) + 1
    change = entries[-1]
    assert change["changed"] == ["YOUTRACK_VERIFY_SSL"]
    assert change["old"]["YOUTRACK_VERIFY_SSL"] == "true"
    assert change["new"]["YOUTRACK_VERIFY_SSL"] == "false"
    assert change["new"]["YOUTRACK_CA_BUNDLE"] == str(tls_certs.ca)
    assert change["ssl_verify"] is False
    assert change["ts"].endswith("Z")

    assert cli("api", "users/me", env=off).code == 0
    assert len(_tls_config_entries(yt_home)) == len(entries)

    pin = tls_certs.fingerprint("valid")
    assert cli("api", "users/me",
               env=dict(base, YOUTRACK_CERT_SHA256=pin)).code == 0
    change = _tls_config_entries(yt_home)[-1]
    assert change["changed"] == ["YOUTRACK_CERT_SHA256",
                                   "YOUTRACK_VERIFY_SSL"]
    assert change["old"]["YOUTRACK_VERIFY_SSL"] == "false"
    assert change["new"]["YOUTRACK_VERIFY_SSL"] == "true"
    assert change["new"]["YOUTRACK_CERT_SHA256"] == pin

    verify = cli("security", "audit", "--verify")
    assert verify.code == 0, verify.err


def test_audit_tls_config_failed_command(cli, tls_server, yt_home):
    # A command that fails verification still records the setting change.
    srv = tls_server("untrusted")

    result = cli("api", "users/me", env=server_env(srv.url))

    assert result.code == 5
    entries = audit_entries(yt_home)
    assert [e["event"] for e in entries] == ["tls_config", "command"]
    assert entries[-1]["exit_code"] == 5
    assert entries[-1]["status"] == "error"
    assert entries[-1]["ssl_verify"] is True


# -------------------------------------------------------- openssl s_server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def openssl_www(tls_certs):
    """Run `openssl s_server -www` with the valid certificate; yield port."""
    openssl = shutil.which("openssl")
    if openssl is None:
        skip_or_fail("openssl binary not found", required=IN_CI)
    certfile, keyfile = tls_certs.pair("valid")
    port = _free_port()
    process = subprocess.Popen(
        [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
         str(certfile), "-key", str(keyfile), "-www"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                pytest.fail("openssl s_server exited before listening")
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"openssl s_server did not listen on {port}")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize(
    ("trust", "code"),
    [("ca-bundle", 1), ("pin", 1), ("system", 5)],
)
def test_openssl_server(cli, tls_certs, openssl_www, host, trust, code):
    extra = {
        "ca-bundle": {"YOUTRACK_CA_BUNDLE": str(tls_certs.ca)},
        "pin": {"YOUTRACK_CERT_SHA256": tls_certs.fingerprint("valid")},
        "system": {},
    }[trust]
    url = f"https://{host}:{openssl_www}"

    result = cli("api", "users/me", env=server_env(url, **extra))

    assert result.code == code, result.err
    if code == 1:
        # The handshake worked, and -www responds with an HTML status page.
        assert "expected JSON from the server but got text/html" in (
            result.err
        )
        assert "TLS" not in result.err
    else:
        assert_verification_failure(
            result.err, host, openssl_www, UNKNOWN_ISSUER, ["system store"]
        )
        assert tls_certs.fingerprint("valid") in result.err
