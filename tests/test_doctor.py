"""`yt doctor`: runtime, paths and modes, keyring, credentials, token
status, TLS and proxy settings, the audit log, and that no secret reaches
its output."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import platform
import sys

import pytest
from fake_youtrack import DEFAULT_TOKEN

import yt

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
PROXY_PASSWORD = "proxy-Pa55word-4711"
PASSPHRASE = "correct horse battery staple 42"
SECTIONS = ["Paths", "Settings", "Keyring", "Credentials", "TLS", "Proxy",
            "Audit log"]
PATH_NAMES = {"config_dir", "config_file", "data_dir", "credentials.key",
              "audit.key", "credentials.enc"}


def make_jwt(expires: dt.datetime) -> str:
    def encode(data: dict) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    payload = {"sub": "admin", "exp": int(expires.timestamp())}
    return f"{encode({'alg': 'HS256'})}.{encode(payload)}.c2lnbmF0dXJl"


@pytest.fixture
def fixed_now(monkeypatch):
    monkeypatch.setattr(yt, "utc_now", lambda: NOW)
    return NOW


def doctor_json(cli, env=None, code=0) -> dict:
    result = cli("doctor", "--format", "json", env=env)
    assert result.code == code, result.err
    return json.loads(result.out)


def login(cli, server, **env) -> None:
    result = cli("auth", "login", "--base-url", server.url, "--token-stdin",
                 input=DEFAULT_TOKEN, env=env or None)
    assert result.code == 0, result.err


# ---------------------------------------------------------- fresh host


def test_doctor_fresh_home_json(cli, yt_home):
    report = doctor_json(cli)

    assert report["version"] == yt.__version__
    runtime = report["runtime"]
    assert runtime["python"] == platform.python_version()
    assert runtime["implementation"] == platform.python_implementation()
    assert runtime["executable"] == sys.executable
    assert runtime["build"] == "source"
    assert runtime["cryptography"]
    assert runtime["keyring"]
    assert set(report["paths"]) == PATH_NAMES
    assert report["paths"]["config_file"]["exists"] is False
    assert report["paths"]["config_file"]["status"] == "ok"
    assert all(item["status"] == "ok"
               for item in report["settings"].values())
    assert report["credentials"]["status"] == "warn"
    assert "yt auth login" in report["credentials"]["detail"]
    assert report["proxy"] == {}
    assert report["audit"]["enabled"] is True
    assert report["audit"]["verified"] is True


def test_doctor_fresh_home_text(cli):
    result = cli("doctor")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"yt {yt.__version__}"
    for section in SECTIONS:
        assert section in lines
    assert f"CPython {platform.python_version()}" in result.out
    assert "  none set" in lines


def test_doctor_ascii_markers(cli):
    result = cli("doctor", encoding="ascii")

    assert result.code == 0, result.err
    assert result.out.isascii()
    assert "[OK]" in result.out


# ------------------------------------------------------- paths and modes


def test_doctor_modes_after_login(cli, server, yt_home):
    login(cli, server)

    paths = doctor_json(cli)["paths"]

    for name in ("config_dir", "data_dir"):
        assert paths[name]["mode"] == "0700"
        assert paths[name]["status"] == "ok"
    for name in ("config_file", "credentials.key", "audit.key",
                 "credentials.enc"):
        assert paths[name]["exists"] is True, name
        assert paths[name]["mode"] == "0600", name
        assert paths[name]["status"] == "ok", name
    assert paths["credentials.key"]["path"] == str(
        yt_home.config_dir / "credentials.key"
    )


@pytest.mark.parametrize(
    ("name", "mode", "fix"),
    [
        ("credentials.key", 0o644, "600"),
        ("audit.key", 0o640, "600"),
        ("credentials.enc", 0o604, "600"),
        ("config_dir", 0o755, "700"),
        ("data_dir", 0o750, "700"),
    ],
)
def test_doctor_flags_open_mode(cli, server, yt_home, name, mode, fix):
    login(cli, server)
    path = doctor_json(cli)["paths"][name]["path"]
    os.chmod(path, mode)

    report = doctor_json(cli, code=1)
    text = cli("doctor")

    item = report["paths"][name]
    assert item["status"] == "fail"
    assert item["mode"] == f"{mode:04o}"
    assert f"chmod {fix} {path}" in item["detail"]
    assert text.code == 1
    assert f"❌ {name}" in text.out
    assert f"chmod {fix} {path}" in text.out


def test_doctor_open_key_file_credentials(cli, server, yt_home):
    login(cli, server)
    key = yt_home.config_dir / "credentials.key"
    os.chmod(key, 0o644)

    credentials = doctor_json(cli, code=1)["credentials"]

    # The token is not read through a key file that others can read.
    assert credentials["status"] == "fail"
    assert f"chmod 600 {key}" in credentials["detail"]


# ------------------------------------------------------ keyring, tokens


def test_doctor_keyring_unavailable(cli):
    keyring = doctor_json(cli)["keyring"]

    assert keyring["backend"] == "keyring.backends.fail.Keyring"
    assert keyring["available"] is False
    assert keyring["status"] == "warn"
    assert keyring["detail"]


def test_doctor_keyring_secret_service(cli, server, secret_service):
    login(cli, server)

    report = doctor_json(cli)

    assert "SecretService" in report["keyring"]["backend"]
    assert report["keyring"]["available"] is True
    assert report["keyring"]["status"] == "ok"
    assert report["credentials"]["source"].startswith("system keyring")
    assert DEFAULT_TOKEN not in json.dumps(report)


def test_doctor_credentials_encrypted_file(cli, server, yt_home):
    login(cli, server)

    credentials = doctor_json(cli)["credentials"]

    assert credentials["base_url"] == server.url
    assert credentials["source"] == (
        f"encrypted file {yt_home.data_dir / 'credentials.enc'} "
        f"(key file {yt_home.config_dir / 'credentials.key'})"
    )
    assert credentials["token_status"] == "permanent"
    assert credentials["status"] == "ok"


def test_doctor_credentials_environment(cli, server):
    env = {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": DEFAULT_TOKEN}

    credentials = doctor_json(cli, env=env)["credentials"]

    assert credentials["source"] == "environment variable YOUTRACK_TOKEN"
    assert credentials["token_status"] == "permanent"


@pytest.mark.parametrize(
    ("offset", "token_status", "level"),
    [
        (dt.timedelta(days=90), "valid", "ok"),
        (dt.timedelta(days=2), "expiring", "warn"),
        (dt.timedelta(days=-1), "expired", "fail"),
    ],
)
def test_doctor_token_status(cli, fixed_now, offset, token_status, level):
    expires = NOW + offset
    env = {"YOUTRACK_BASE_URL": "https://youtrack.example.com",
           "YOUTRACK_TOKEN": make_jwt(expires)}

    result = cli("doctor", "--format", "json", env=env)
    credentials = json.loads(result.out)["credentials"]

    assert credentials["token_status"] == token_status
    assert credentials["status"] == level
    assert credentials["expires_at"] == expires.strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )


# ---------------------------------------------------------- TLS, proxies


def test_doctor_tls_defaults(cli):
    tls = doctor_json(cli)["tls"]

    assert tls["verify"] is True
    assert tls["ca_sources"] == ["system store"]
    assert tls["pins"] == []
    assert tls["status"] == "ok"
    assert tls["openssl"].startswith(("OpenSSL", "LibreSSL"))


def test_doctor_tls_verification_off(cli):
    env = {"YOUTRACK_VERIFY_SSL": "false"}

    report = doctor_json(cli, env=env)
    text = cli("doctor", env=env)

    assert report["tls"]["verify"] is False
    assert report["tls"]["status"] == "warn"
    assert report["tls"]["detail"] == (
        "SSL verification is DISABLED. This is insecure and should only "
        "be used in development."
    )
    assert "verification OFF" in text.out


def test_doctor_tls_ca_sources_and_pin(cli, tls_certs):
    pin = tls_certs.fingerprint("valid")
    env = {
        "YOUTRACK_CA_BUNDLE": str(tls_certs.ca_dir),
        "SSL_CERT_FILE": str(tls_certs.ca),
        "YOUTRACK_CERT_SHA256": pin.replace(":", "").lower(),
    }

    report = doctor_json(cli, env=env)
    text = cli("doctor", env=env)

    assert report["tls"]["ca_sources"] == [
        "system store", str(tls_certs.ca), str(tls_certs.ca_dir)
    ]
    assert report["tls"]["pins"] == [pin]
    assert report["tls"]["status"] == "ok"
    assert f"pinned: {pin}" in text.out


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("YOUTRACK_CERT_SHA256", "abcd"),
        ("YOUTRACK_VERIFY_SSL", "sometimes"),
        ("YOUTRACK_CA_BUNDLE", "/nonexistent/ca.pem"),
    ],
)
def test_doctor_tls_invalid_setting(cli, variable, value):
    report = doctor_json(cli, env={variable: value}, code=1)

    assert report["settings"][variable]["status"] == "fail"
    assert variable in report["settings"][variable]["detail"]
    assert report["tls"]["status"] == "fail"
    assert variable in report["tls"]["detail"]


def test_doctor_tls_unloadable_bundle(cli, tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("not a certificate\n")

    tls = doctor_json(cli, env={"YOUTRACK_CA_BUNDLE": str(bundle)},
                      code=1)["tls"]

    assert tls["status"] == "fail"
    assert f"cannot load CA certificates from {bundle}" in tls["detail"]


@pytest.mark.parametrize(
    "variable", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY"]
)
def test_doctor_proxy_userinfo_masked(cli, variable):
    value = f"http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:3128"
    env = {variable: value, "NO_PROXY": "localhost,.internal.example"}

    report = doctor_json(cli, env=env)
    text = cli("doctor", env=env)

    masked_value = report["proxy"][variable]
    assert PROXY_PASSWORD not in masked_value
    assert masked_value.startswith("http://")
    assert masked_value.endswith("@127.0.0.1:3128")
    assert report["proxy"]["NO_PROXY"] == "localhost,.internal.example"
    assert f"  {variable}={masked_value}" in text.out.splitlines()
    assert PROXY_PASSWORD not in text.out + text.err


# -------------------------------------------------------------- audit log


def test_doctor_audit_verified(cli):
    for _ in range(3):
        assert cli("config", "list").code == 0

    audit = doctor_json(cli)["audit"]

    assert audit["verified"] is True
    assert audit["status"] == "ok"
    assert audit["entries"] >= 3


def test_doctor_audit_tampered(cli, yt_home):
    for _ in range(3):
        assert cli("config", "list").code == 0
    log_path = yt_home.data_dir / "audit.jsonl"
    lines = log_path.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["status"] = "error"
    lines[1] = json.dumps(entry)
    log_path.write_text("\n".join(lines) + "\n")

    report = doctor_json(cli, code=1)
    text = cli("doctor")

    assert report["audit"]["verified"] is False
    assert report["audit"]["status"] == "fail"
    assert report["audit"]["detail"]
    assert text.code == 1
    assert "NOT verified" in text.out


def test_doctor_damaged_audit_key(cli, yt_home):
    assert cli("config", "list").code == 0
    (yt_home.config_dir / "audit.key").write_bytes(b"bm90IGEga2V5\n")

    item = doctor_json(cli, code=1)["paths"]["audit.key"]

    assert item["status"] == "fail"
    assert item["detail"].startswith("damaged (expected 32 bytes in base64)")


def test_doctor_missing_audit_key_with_log(cli, yt_home):
    assert cli("config", "list").code == 0
    (yt_home.config_dir / "audit.key").unlink()

    item = doctor_json(cli, code=1)["paths"]["audit.key"]

    assert item["status"] == "fail"
    assert item["detail"].startswith("missing while the audit log exists")


def test_doctor_audit_disabled(cli):
    audit = doctor_json(cli, env={"YT_AUDIT_LOGGING": "false"})["audit"]

    assert audit["enabled"] is False
    assert audit["status"] == "warn"


# ----------------------------------------------------------- no secrets


def _secret_fragments(token: str) -> list:
    # The whole token and its random part, which masking must not leak
    # even when the prefix is cut off.
    return [token, token.rsplit(".", 1)[-1], PROXY_PASSWORD, PASSPHRASE]


@pytest.mark.parametrize(
    "token",
    [DEFAULT_TOKEN, make_jwt(dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)),
     "opaque-S3cretValue-0123456789"],
    ids=["permanent", "jwt", "opaque"],
)
@pytest.mark.parametrize("output_format", ["table", "json"])
def test_doctor_no_secret_in_output(cli, server, yt_home, token,
                                    output_format):
    server.tokens.add(token)
    env = {
        "YOUTRACK_BASE_URL": server.url,
        "YOUTRACK_TOKEN": token,
        "YT_CREDENTIAL_PASSPHRASE": PASSPHRASE,
        "HTTPS_PROXY": f"http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:3128",
    }

    result = cli("doctor", "--format", output_format, env=env)

    assert result.code == 0, result.err
    for secret in _secret_fragments(token):
        assert secret not in result.out
        assert secret not in result.err
    audit_text = (yt_home.data_dir / "audit.jsonl").read_text()
    for secret in _secret_fragments(token):
        assert secret not in audit_text


def test_doctor_no_stored_token_in_output(cli, server):
    login(cli, server)

    result = cli("doctor", "--format", "json")
    text = cli("doctor")

    for secret in _secret_fragments(DEFAULT_TOKEN):
        assert secret not in result.out + result.err
        assert secret not in text.out + text.err
    assert json.loads(result.out)["credentials"]["token"].startswith(
        "***MASKED***"
    )
