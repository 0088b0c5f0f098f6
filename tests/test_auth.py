"""Tests of ``yt auth``: login, logout, status and token.

The keyring is either keyring's fail backend (no keyring, so tokens go to
the encrypted file) or an in-memory backend selected through
PYTHON_KEYRING_BACKEND, which lets these tests check the keyring store
without a Secret Service. tests/test_keyring.py uses the real one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sys
import types
import urllib.parse

import pytest
from credential_helpers import (
    config_values,
    encrypted_store,
    encrypted_tokens,
    login,
)
from fake_youtrack import DEFAULT_TOKEN

import yt

NEW_TOKEN = "perm:YWRtaW4=.eXQtbmV3.Q8wRt2Ls9Xn4Vb7Mk3Pz6Hd"
# Matches none of the masking patterns, so only the registry of loaded
# secrets can hide it.
PLAIN_TOKEN = "Zq7Canary4Lk9Wm2Xv5Rt8Np3Hd6Bs1"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
MEMORY_MODULE = "yt_test_memory_keyring"


# ---------------------------------------------------------------- helpers


class MemoryKeyring:
    """Keyring backend that keeps passwords in a class-level dict."""

    passwords: dict = {}

    def get_password(self, service, username):
        return self.passwords.get((service, username))

    def set_password(self, service, username, password):
        self.passwords[(service, username)] = password

    def delete_password(self, service, username):
        from keyring.errors import PasswordDeleteError

        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture
def memory_keyring(yt_home, monkeypatch):
    """Select an empty in-memory keyring; return its password dict.

    The dict maps (service, username) to the password.
    """
    # Not a KeyringBackend subclass: those register themselves with keyring
    # for the whole process, and keyring's own backend detection in later
    # tests would find this one.
    backend = type(
        "Keyring",
        (MemoryKeyring,),
        {"priority": 1, "passwords": {}, "__module__": MEMORY_MODULE},
    )
    module = types.ModuleType(MEMORY_MODULE)
    module.Keyring = backend
    monkeypatch.setitem(sys.modules, MEMORY_MODULE, module)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", f"{MEMORY_MODULE}.Keyring")
    return backend.passwords


@pytest.fixture
def no_backoff(monkeypatch):
    """Retry failed GET requests at once instead of after 0.5, 1, 2 s."""
    monkeypatch.setattr(yt, "_backoff", lambda attempt: 0.0)


def write_config(yt_home, text: str) -> None:
    yt_home.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = yt_home.config_dir / ".env"
    path.write_text(text)
    path.chmod(0o600)


def me_requests(server, token=None) -> list:
    """Return GET /api/users/me requests, sent with token if given."""
    found = []
    for request in server.requests:
        if (request.method, request.path) != ("GET", "/api/users/me"):
            continue
        header = request.headers.get("Authorization")
        if token is None or header == f"Bearer {token}":
            found.append(request)
    return found


def plant_everywhere(yt_home, server, keyring_passwords, token) -> None:
    """Store token in the keyring, the encrypted file and the .env file."""
    if keyring_passwords is not None:
        keyring_passwords[(yt.KEYRING_SERVICE, server.url)] = token
    encrypted_store(yt_home).set(server.url, token)
    write_config(
        yt_home, f"YOUTRACK_BASE_URL={server.url}\nYOUTRACK_TOKEN={token}\n"
    )


# ------------------------------------------------------------------ login


def test_login_stores_encrypted_without_keyring(cli, server, yt_home):
    result = login(cli, server)

    assert result.code == 0, result.err
    assert result.out == ""
    store_path = yt_home.data_dir / "credentials.enc"
    assert (
        f"⚠️ Token stored in the encrypted file {store_path} "
        f"(keyring unavailable)" in result.err
    )
    assert f"Logged in to {server.url} as admin" in result.err
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}
    assert config_values(yt_home) == {"YOUTRACK_BASE_URL": server.url}
    assert len(me_requests(server, DEFAULT_TOKEN)) == 1


def test_login_strips_surrounding_whitespace(cli, server, yt_home):
    result = login(cli, server, f" \t {DEFAULT_TOKEN}  \r\n\n")

    assert result.code == 0, result.err
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}
    assert len(me_requests(server, DEFAULT_TOKEN)) == 1
    show_result = cli("auth", "token", "--show")
    assert show_result.out == DEFAULT_TOKEN + "\n"


@pytest.mark.parametrize(
    "token",
    [
        "perm:abc def",
        "perm:abc\tdef",
        "perm:abc\ndef",
        "perm:abc\x00def",
        "perm:abc\x1b[31mdef",
        "perm:abc\x7fdef",
        "perm:abc\u00a0def",
        "perm:abc\u200bdef",
        "perm:abc\u20acdef",
    ],
    ids=[
        "space", "tab", "newline", "nul", "escape", "del", "nbsp",
        "zero-width-space", "euro",
    ],
)
def test_login_invalid_token_exit_2(cli, server, yt_home, token):
    result = login(cli, server, token)

    assert result.code == 2, result.err
    assert "space, control or non-ASCII character" in result.err
    assert "abc" not in result.err
    assert server.requests == []
    assert not (yt_home.data_dir / "credentials.enc").exists()
    assert config_values(yt_home) == {}


@pytest.mark.parametrize("text", ["", "\n", "  \t\n"])
def test_login_empty_token_exit_2(cli, server, yt_home, text):
    result = cli(
        "auth", "login", "--base-url", server.url, "--token-stdin",
        input=text,
    )

    assert result.code == 2
    assert "--token-stdin read nothing" in result.err
    assert server.requests == []


def test_login_rejected_token_stores_nothing(
    cli, server, yt_home, memory_keyring
):
    result = login(cli, server, NEW_TOKEN, "--expires", "2030-01-01")

    assert result.code == 3
    assert "the server rejected the token (401 Unauthorized" in result.err
    assert NEW_TOKEN not in result.err
    assert len(me_requests(server, NEW_TOKEN)) == 1
    assert memory_keyring == {}
    assert not (yt_home.data_dir / "credentials.enc").exists()
    assert not (yt_home.data_dir / "token-expiry.json").exists()
    assert config_values(yt_home) == {}


def test_login_rejected_keeps_old_token(cli, server, yt_home):
    assert login(cli, server).code == 0

    result = login(cli, server, NEW_TOKEN)

    assert result.code == 3
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}


def test_login_without_url_exit_2(cli, server, yt_home):
    result = cli("auth", "login", "--token-stdin", input=DEFAULT_TOKEN)

    assert result.code == 2
    assert "no YouTrack URL given; pass --base-url URL" in result.err
    assert server.requests == []


def test_login_stores_in_keyring(cli, server, yt_home, memory_keyring):
    result = login(cli, server)

    assert result.code == 0, result.err
    assert (
        f"✅ Token stored in the system keyring ({MEMORY_MODULE}.Keyring)"
        in result.err
    )
    assert "Keyring unavailable" not in result.err
    assert memory_keyring == {(yt.KEYRING_SERVICE, server.url): DEFAULT_TOKEN}
    assert not (yt_home.data_dir / "credentials.enc").exists()
    assert config_values(yt_home) == {"YOUTRACK_BASE_URL": server.url}


def test_login_plain_file_warns(cli, server, yt_home, memory_keyring):
    env = {"YT_CREDENTIAL_ENCRYPTION": "false"}
    result = login(cli, server, env=env)

    assert result.code == 0, result.err
    path = yt_home.config_dir / ".env"
    assert (
        f"⚠️ Token stored in PLAIN TEXT in {path} because "
        f"YT_CREDENTIAL_ENCRYPTION=false" in result.err
    )
    assert DEFAULT_TOKEN not in result.err
    assert config_values(yt_home) == {
        "YOUTRACK_BASE_URL": server.url,
        "YOUTRACK_TOKEN": DEFAULT_TOKEN,
    }
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert memory_keyring == {}
    assert not (yt_home.data_dir / "credentials.enc").exists()


def test_login_warns_environment_token_overrides(cli, server, yt_home):
    result = login(cli, server, env={"YOUTRACK_TOKEN": PLAIN_TOKEN})

    assert result.code == 0, result.err
    assert (
        "YOUTRACK_TOKEN is set in the environment and overrides the token "
        "stored now" in result.err
    )
    assert PLAIN_TOKEN not in result.err
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}


def test_login_records_expiry(cli, server, yt_home, monkeypatch):
    monkeypatch.setattr(yt, "utc_now", lambda: NOW)
    stored = login(cli, server, DEFAULT_TOKEN, "--expires", "2026-03-05")
    assert stored.code == 0, stored.err

    result = cli("auth", "status", "--format", "json")

    status = json.loads(result.out)["token_status"]
    assert status["status"] == "expiring"
    assert status["expires_at"] == "2026-03-05T00:00:00.000Z"
    assert status["days_left"] == 3
    assert status["recorded_expiry"] is True


@pytest.mark.parametrize("mode", ["keyring", "no keyring", "plain file"])
def test_login_replaces_stale_token_everywhere(
    cli, server, yt_home, monkeypatch, request, mode
):
    passwords = None
    env = {}
    if mode != "no keyring":
        passwords = request.getfixturevalue("memory_keyring")
    if mode == "plain file":
        env["YT_CREDENTIAL_ENCRYPTION"] = "false"
    server.tokens.add(NEW_TOKEN)
    plant_everywhere(yt_home, server, passwords, DEFAULT_TOKEN)

    result = login(cli, server, NEW_TOKEN, env=env)

    assert result.code == 0, result.err
    expected_keyring = {}
    expected_encrypted = {}
    expected_config = {"YOUTRACK_BASE_URL": server.url}
    if mode == "keyring":
        expected_keyring = {(yt.KEYRING_SERVICE, server.url): NEW_TOKEN}
    elif mode == "no keyring":
        expected_encrypted = {server.url: NEW_TOKEN}
    else:
        expected_config["YOUTRACK_TOKEN"] = NEW_TOKEN
    if passwords is not None:
        assert passwords == expected_keyring
    assert encrypted_tokens(yt_home) == expected_encrypted
    assert config_values(yt_home) == expected_config
    show_result = cli("auth", "token", "--show", env=env)
    assert show_result.out == NEW_TOKEN + "\n"
    server.requests.clear()
    assert cli("issues", "list", env=env).code == 0
    assert me_requests(server, DEFAULT_TOKEN) == []
    assert all(
        request.headers.get("Authorization") == f"Bearer {NEW_TOKEN}"
        for request in server.requests
    )


def test_login_keeps_other_url_entries(cli, server, yt_home):
    other = "https://other.example"
    encrypted_store(yt_home).set(other, PLAIN_TOKEN)

    assert login(cli, server).code == 0

    assert encrypted_tokens(yt_home) == {
        other: PLAIN_TOKEN,
        server.url: DEFAULT_TOKEN,
    }


# ----------------------------------------------------------------- logout


def test_logout_removes_every_store(cli, server, yt_home, memory_keyring):
    plant_everywhere(yt_home, server, memory_keyring, DEFAULT_TOKEN)
    store_path = yt_home.data_dir / "credentials.enc"
    config_path = yt_home.config_dir / ".env"

    result = cli("auth", "logout")

    assert result.code == 0, result.err
    assert (
        f"Removed the token for {server.url} from: keyring, encrypted file "
        f"{store_path}, plain file {config_path}" in result.err
    )
    assert memory_keyring == {}
    assert not store_path.exists()
    assert config_values(yt_home) == {"YOUTRACK_BASE_URL": server.url}
    status = cli("auth", "status")
    assert status.code == 3
    assert f"no token stored for {server.url}" in status.err


def test_logout_keeps_other_url(cli, server, yt_home):
    other = "https://other.example"
    encrypted_store(yt_home).set(other, PLAIN_TOKEN)
    assert login(cli, server).code == 0

    assert cli("auth", "logout").code == 0

    assert encrypted_tokens(yt_home) == {other: PLAIN_TOKEN}


def test_logout_nothing_stored(cli, server, yt_home):
    result = cli("auth", "logout", "--base-url", server.url)

    assert result.code == 0
    assert f"No stored token for {server.url}" in result.err


def test_logout_warns_environment_token(cli, server, yt_home):
    assert login(cli, server).code == 0

    result = cli("auth", "logout", env={"YOUTRACK_TOKEN": PLAIN_TOKEN})

    assert result.code == 0
    assert "YOUTRACK_TOKEN is still set in the environment" in result.err
    assert not (yt_home.data_dir / "credentials.enc").exists()


# ----------------------------------------------------------------- status


def test_status_text(cli, server, yt_home):
    assert login(cli, server).code == 0
    store_path = yt_home.data_dir / "credentials.enc"
    key_path = yt_home.config_dir / "credentials.key"

    result = cli("auth", "status")

    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"URL:     {server.url}",
        "User:    admin (Administrator)",
        f"Source:  encrypted file {store_path} (key file {key_path})",
        f"Token:   ***MASKED*** (permanent token, {len(DEFAULT_TOKEN)} "
        f"characters)",
        "Expiry:  ✅ permanent (no expiry date)",
    ]
    assert DEFAULT_TOKEN not in result.out + result.err


def test_status_json(cli, server, yt_home, monkeypatch):
    monkeypatch.setattr(yt, "utc_now", lambda: NOW)
    stored = login(cli, server, DEFAULT_TOKEN, "--expires", "2026-04-01")
    assert stored.code == 0, stored.err

    result = cli("auth", "status", "--format", "json")

    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["base_url"] == server.url
    assert data["user"] == "admin"
    assert data["user_name"] == "Administrator"
    assert data["source"] == "encrypted file"
    assert data["token"].startswith("***MASKED***")
    assert data["server_check"] == "ok"
    assert data["token_status"] == {
        "status": "valid",
        "expires_at": "2026-04-01T00:00:00.000Z",
        "days_left": 30,
        "source": "encrypted file",
        "kind": "permanent token",
        "recorded_expiry": True,
    }
    assert DEFAULT_TOKEN not in result.out


def test_status_keyring_source(cli, server, yt_home, memory_keyring):
    assert login(cli, server).code == 0

    result = cli("auth", "status")

    assert result.code == 0, result.err
    assert (
        f"Source:  system keyring ({MEMORY_MODULE}.Keyring)"
        in result.out.splitlines()
    )


def test_status_environment_source(cli, server, yt_home):
    assert login(cli, server).code == 0
    server.tokens.add(PLAIN_TOKEN)

    result = cli(
        "auth", "status", "--format", "json",
        env={"YOUTRACK_TOKEN": PLAIN_TOKEN},
    )

    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["source"] == "environment"
    assert data["source_detail"] == "environment variable YOUTRACK_TOKEN"
    assert data["token_status"]["status"] == "unknown"
    assert PLAIN_TOKEN not in result.out
    assert me_requests(server, PLAIN_TOKEN)


def test_status_expired_text(cli, server, yt_home, monkeypatch):
    monkeypatch.setattr(yt, "utc_now", lambda: NOW)
    stored = login(cli, server, DEFAULT_TOKEN, "--expires", "2026-02-19")
    assert stored.code == 0, stored.err

    result = cli("auth", "status")

    assert result.code == 0, result.err
    assert (
        "Expiry:  🔴 expired on 2026-02-19T00:00:00.000Z (10 days ago)"
        in result.out.splitlines()
    )
    assert "the token expired on 2026-02-19T00:00:00.000Z" in result.err


def test_status_rejected_token_exit_3(cli, server, yt_home):
    assert login(cli, server).code == 0
    server.tokens.clear()

    result = cli("auth", "status")

    assert result.code == 3
    assert "User:    unknown: checking the token" in result.out
    assert "401 Unauthorized" in result.out
    assert "Source:  encrypted file" in result.out


def test_status_server_down_exit_5(cli, server, yt_home, no_backoff):
    assert login(cli, server).code == 0
    server.stop()

    result = cli("auth", "status", "--format", "json")

    assert result.code == 5
    data = json.loads(result.out)
    assert data["user"] is None
    assert data["server_check"] != "ok"


def test_status_without_credentials_exit_3(cli, yt_home):
    result = cli("auth", "status", "--base-url", "https://yt.example")

    assert result.code == 3
    assert "no token stored for https://yt.example; run yt auth login" in (
        result.err
    )


# ------------------------------------------------------------------ token


def test_token_show_prints_exact_token(cli, server, yt_home):
    assert login(cli, server).code == 0

    result = cli("auth", "token", "--show")

    assert result.code == 0, result.err
    assert result.out == DEFAULT_TOKEN + "\n"
    assert result.err == ""
    assert server.requests[1:] == []


def test_token_show_plain_token(cli, server, yt_home):
    server.tokens.add(PLAIN_TOKEN)
    assert login(cli, server, PLAIN_TOKEN).code == 0

    result = cli("auth", "token", "--show")

    assert result.out == PLAIN_TOKEN + "\n"


def test_token_show_without_credentials_exit_3(cli, yt_home):
    result = cli("auth", "token", "--show", "--base-url", "https://x.test")

    assert result.code == 3
    assert result.out == ""


def test_token_update_replaces_token(cli, server, yt_home):
    assert login(cli, server).code == 0
    server.tokens.add(NEW_TOKEN)

    result = cli("auth", "token", "--update", "--token-stdin",
                 input=f"  {NEW_TOKEN}\n")

    assert result.code == 0, result.err
    assert "Token stored in the encrypted file" in result.err
    assert encrypted_tokens(yt_home) == {server.url: NEW_TOKEN}
    assert len(me_requests(server, NEW_TOKEN)) == 1
    assert cli("auth", "token", "--show").out == NEW_TOKEN + "\n"


def test_token_update_replaces_every_store(
    cli, server, yt_home, memory_keyring
):
    plant_everywhere(yt_home, server, memory_keyring, DEFAULT_TOKEN)
    server.tokens.add(NEW_TOKEN)

    result = cli("auth", "token", "--update", "--token-stdin",
                 input=NEW_TOKEN)

    assert result.code == 0, result.err
    assert memory_keyring == {(yt.KEYRING_SERVICE, server.url): NEW_TOKEN}
    assert encrypted_tokens(yt_home) == {}
    assert config_values(yt_home) == {"YOUTRACK_BASE_URL": server.url}


def test_token_update_rejected_keeps_old(cli, server, yt_home):
    assert login(cli, server).code == 0

    result = cli("auth", "token", "--update", "--token-stdin",
                 input=NEW_TOKEN)

    assert result.code == 3
    assert "the server rejected the token" in result.err
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}


def test_token_update_invalid_token_exit_2(cli, server, yt_home):
    assert login(cli, server).code == 0
    server.requests.clear()

    result = cli("auth", "token", "--update", "--token-stdin",
                 input="perm:new token")

    assert result.code == 2
    assert server.requests == []
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}


def test_token_update_expires_records_only(
    cli, server, yt_home, monkeypatch
):
    monkeypatch.setattr(yt, "utc_now", lambda: NOW)
    assert login(cli, server).code == 0
    before = (yt_home.data_dir / "credentials.enc").read_bytes()
    server.requests.clear()

    result = cli("auth", "token", "--update", "--expires", "2026-03-05")

    assert result.code == 0, result.err
    assert (
        "Recorded expiry 2026-03-05T00:00:00.000Z for the current token"
        in result.err
    )
    assert server.requests == []
    assert (yt_home.data_dir / "credentials.enc").read_bytes() == before
    records = json.loads(
        (yt_home.data_dir / "token-expiry.json").read_text()
    )
    assert records == {
        hashlib.sha256(DEFAULT_TOKEN.encode()).hexdigest():
            "2026-03-05T00:00:00.000Z"
    }
    status = json.loads(cli("security", "token-status", "--format",
                            "json").out)
    assert status["status"] == "expiring"
    assert status["days_left"] == 3


def test_token_update_with_expires_and_new_token(
    cli, server, yt_home, monkeypatch
):
    monkeypatch.setattr(yt, "utc_now", lambda: NOW)
    assert login(cli, server).code == 0
    server.tokens.add(PLAIN_TOKEN)

    result = cli("auth", "token", "--update", "--token-stdin",
                 "--expires", "2026-06-01", input=PLAIN_TOKEN)

    assert result.code == 0, result.err
    assert encrypted_tokens(yt_home) == {server.url: PLAIN_TOKEN}
    status = json.loads(cli("auth", "status", "--format", "json").out)
    assert status["token_status"]["expires_at"] == "2026-06-01T00:00:00.000Z"
    assert status["token_status"]["status"] == "valid"


def test_token_update_invalid_expiry_exit_2(cli, server, yt_home):
    assert login(cli, server).code == 0

    result = cli("auth", "token", "--update", "--expires", "next week")

    assert result.code == 2
    assert "invalid expiry date 'next week'" in result.err
    assert not (yt_home.data_dir / "token-expiry.json").exists()


def test_token_requires_mode_exit_2(cli, yt_home):
    result = cli("auth", "token")

    assert result.code == 2


# ------------------------------------------------------------- leak scan


def _token_forms(token: str) -> list:
    """Return byte strings that would reveal the token if found."""
    raw = token.encode()
    forms = {
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
        urllib.parse.quote(token, safe="").encode(),
        urllib.parse.quote_plus(token).encode(),
        raw.hex().encode(),
        json.dumps(token).encode(),
    }
    # Interior parts reveal it too when a masker keeps a prefix.
    forms.add(raw[len(raw) // 3:])
    return sorted(forms)


def _files_under(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("token", [PLAIN_TOKEN, NEW_TOKEN],
                         ids=["plain", "perm"])
def test_token_never_leaks(cli, server, yt_home, no_backoff, token):
    server.tokens.add(token)
    other = "Xk4Other9Pq2Token7Lm5Vd8Rb3Zs6"
    server.tokens.add(other)
    outputs = []

    def run(*args, **kwargs):
        result = cli(*args, **kwargs)
        outputs.append((args, result))
        return result

    assert run("auth", "login", "--base-url", server.url, "--token-stdin",
               "--debug", input=token).code == 0
    assert run("auth", "status").code == 0
    assert run("auth", "status", "--format", "json", "--debug").code == 0
    assert run("issues", "list", "--debug").code == 0
    assert run("security", "token-status").code == 0
    assert run("auth", "token", "--update", "--expires", "2030-01-01").code \
        == 0
    assert run("auth", "token", "--update", "--token-stdin", "--debug",
               input=other).code == 0
    assert run("auth", "token", "--update", "--token-stdin",
               input=token).code == 0
    assert run("security", "audit", "--format", "json").code == 0
    assert run("config", "list").code == 0
    assert run("doctor").code in (0, 1)
    assert run("api", "users/me", "--debug").code == 0
    show_result = run("auth", "token", "--show")
    # Failure paths: rejected token, bad URL, server down.
    server.tokens.discard(token)
    assert run("auth", "status", "--debug").code == 3
    assert run("issues", "list", "--debug").code == 3
    assert run("auth", "login", "--base-url", "ftp://bad", "--token-stdin",
               input=token).code == 2
    assert run("auth", "login", "--base-url", server.url, "--token-stdin",
               "--debug", input=token).code == 3
    assert run("auth", "token", "--update", "--token-stdin", "--debug",
               input=token).code == 3
    server.stop()
    assert run("auth", "status", "--debug").code == 5
    assert run("auth", "logout").code == 0
    assert run("auth", "status").code == 3

    forms = _token_forms(token)
    # The scan below must be able to see the token where it is printed.
    assert token.encode() in show_result.out.encode()
    for args, result in outputs:
        streams = [("stderr", result.err)]
        if args[:2] != ("auth", "token") or "--show" not in args:
            streams.append(("stdout", result.out))
        for name, text in streams:
            data = text.encode()
            for form in forms:
                assert form not in data, (args, name, form)
    for path in _files_under(yt_home.home):
        data = path.read_bytes()
        for form in forms:
            assert form not in data, (path, form)
