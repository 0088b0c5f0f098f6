"""Leak scan: run every command with a known token and look for it.

Each scenario stores or exports a known token and runs every yt command
on its success and failure paths, server errors that echo the token
included.  After each command it searches stdout, stderr and every file
under the temporary HOME for the token in clear, URL-encoded or
base64-encoded.
The encrypted credential file is searched too: it must not hold the
token in any of these forms either.  The one intended exception is
``yt auth token --show`` on stdout.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from pathlib import Path

import pytest

from fake_youtrack import FakeYouTrack

# No masking pattern matches this token, so only the registry of loaded
# secrets can hide it.
PLAIN_TOKEN = "Zx9Qw3Er7Ty1Ui5Op2As8Df4Gh6Jk0Lm"
PERM_TOKEN = "perm:bGVha3M=.eXQtbGVha3M=.Q7vX2mK9pL4sT8wN3cB6hD1j"
WRONG_TOKEN = "Wr0ngT0kenNotKnownToTheServer01"
PASSPHRASE = "Correct-Horse-Battery-Staple-42"


def encoded_forms(secret: str) -> dict:
    """Return the byte strings that would reveal secret, by name."""
    raw = secret.encode()
    forms = {
        "clear": raw,
        "url-encoded": urllib.parse.quote(secret, safe="").encode(),
        "url-encoded (plus)": urllib.parse.quote_plus(secret).encode(),
        "json-escaped": json.dumps(secret)[1:-1].encode(),
    }
    # Inside a longer base64 text the secret can start at any of three
    # byte offsets.  For each, the characters away from both ends of its
    # encoding do not depend on the neighbouring bytes.
    for offset in range(3):
        for name, encode in (
            ("base64", base64.b64encode),
            ("base64url", base64.urlsafe_b64encode),
        ):
            text = encode(b"\0" * offset + raw)
            forms[f"{name} at offset {offset}"] = text[4:-4]
    return forms


def find_leaks(data: bytes, secrets: dict) -> list:
    found = []
    for label, secret in secrets.items():
        seen = set()
        for form, needle in encoded_forms(secret).items():
            if needle in data and needle not in seen:
                found.append(f"{label} ({form})")
            seen.add(needle)
    return found


def scan_files(root: Path, secrets: dict) -> list:
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file():
                continue
            for leak in find_leaks(path.read_bytes(), secrets):
                found.append(f"{path.relative_to(root)}: {leak}")
    return found


# ------------------------------------------------------------- commands


def _echo_500(token):
    body = json.dumps(
        {
            "error": "server_error",
            "error_description": f"token {token} rejected",
        }
    )
    return lambda server: server.fail_next("status", status=500, body=body)


def _echo_400_text(token):
    return lambda server: server.fail_next(
        "status",
        status=400,
        body=f"bad request for {token}\n",
        content_type="text/plain",
    )


def _echo_401(token):
    body = json.dumps(
        {
            "error": "Unauthorized",
            "error_description": f"Invalid token {token}",
        }
    )
    return lambda server: server.fail_next("status", status=401, body=body)


def _echo_header(token):
    return lambda server: server.fail_next(
        "status",
        status=500,
        headers={"X-Echo": f"Bearer {token}"},
    )


def _echo_not_json(token):
    body = f"<p>maintenance for {token}</p>".encode()
    return lambda server: server.fail_next("not_json", body=body)


def _redirect_with_token(token):
    location = f"http://elsewhere.invalid/login?token={token}"
    return lambda server: server.fail_next("redirect", location=location)


USAGE_ERRORS = {"usage error", "bad option value"}
# The commands of the passphrase scenario, where every command that
# loads the token pays for scrypt.
SHORT_TABLE = {
    "auth status",
    "token-status",
    "token expiry",
    "token show",
    "issues list",
    "issues show missing",
    "issues comment",
    "api -f token",
    "api query token",
    "api input file",
    "500 echo",
    "header echo",
    "401 echo",
    "redirect echo",
    "audit jsonl",
    "audit verify",
    "config list",
    "config set token",
    "doctor",
    "login wrong token",
    "logout",
}


def command_table(token: str, body_file: Path) -> list:
    """Return (name, argv, stdin, server setup, exit code) rows.

    The exit codes pin the path each command takes, so that a scenario
    cannot pass because every command stopped before its work.
    """
    return [
        ("auth status", ["auth", "status"], None, None, 0),
        (
            "auth status json",
            ["auth", "status", "--format", "json"],
            None,
            None,
            0,
        ),
        ("token-status", ["security", "token-status"], None, None, 0),
        (
            "token-status json",
            ["security", "token-status", "--format", "json"],
            None,
            None,
            0,
        ),
        (
            "token expiry",
            ["auth", "token", "--update", "--expires", "2099-12-31"],
            None,
            None,
            0,
        ),
        ("token show", ["auth", "token", "--show"], None, None, 0),
        ("issues list", ["issues", "list"], None, None, 0),
        (
            "issues list json",
            ["issues", "list", "--format", "json"],
            None,
            None,
            0,
        ),
        # A perm: token is no valid query or issue id, so the exit code
        # depends on the token.
        (
            "issues list query",
            ["issues", "list", "-q", f"{token}"],
            None,
            None,
            None,
        ),
        ("issues show", ["issues", "show", "DEMO-1"], None, None, 0),
        (
            "issues show json",
            ["issues", "show", "DEMO-1", "--format", "json"],
            None,
            None,
            0,
        ),
        ("issues show missing", ["issues", "show", "DEMO-999"], None, None, 4),
        ("issues show token", ["issues", "show", token], None, None, None),
        (
            "issues create",
            [
                "issues",
                "create",
                "DEMO",
                "Leak test",
                "-d",
                f"pasted {token} here",
            ],
            None,
            None,
            0,
        ),
        (
            "issues update",
            ["issues", "update", "DEMO-1", "-s", f"summary {token}"],
            None,
            None,
            0,
        ),
        (
            "issues comment",
            ["issues", "comment", "DEMO-1", f"comment {token}"],
            None,
            None,
            0,
        ),
        (
            "issues comment stdin",
            ["issues", "comment", "DEMO-2", "-"],
            f"from stdin {token}\n",
            None,
            0,
        ),
        ("projects list", ["projects", "list"], None, None, 0),
        (
            "projects list json",
            ["projects", "list", "--format", "json"],
            None,
            None,
            0,
        ),
        ("api me", ["api", "users/me"], None, None, 0),
        (
            "api -f token",
            ["api", "users/me", "-f", f"token={token}"],
            None,
            None,
            0,
        ),
        (
            "api query token",
            ["api", f"/api/users/me?token={token}"],
            None,
            None,
            0,
        ),
        (
            "api post -f token",
            [
                "api",
                "-X",
                "POST",
                "/api/issues/DEMO-1",
                "-f",
                f"description={token}",
            ],
            None,
            None,
            0,
        ),
        (
            "api input file",
            [
                "api",
                "-X",
                "POST",
                "/api/issues/DEMO-2",
                "--input",
                str(body_file),
            ],
            None,
            None,
            0,
        ),
        (
            "api input stdin",
            ["api", "-X", "POST", "/api/issues/DEMO-3", "--input", "-"],
            json.dumps({"summary": f"stdin {token}"}),
            None,
            0,
        ),
        ("api missing", ["api", f"/api/nothing/{token}"], None, None, 4),
        ("500 echo", ["issues", "list"], None, _echo_500(token), 1),
        ("400 text echo", ["api", "users/me"], None, _echo_400_text(token), 1),
        ("401 echo", ["issues", "show", "DEMO-1"], None, _echo_401(token), 3),
        ("header echo", ["projects", "list"], None, _echo_header(token), 1),
        (
            "not json echo",
            ["issues", "show", "DEMO-1"],
            None,
            _echo_not_json(token),
            1,
        ),
        (
            "redirect echo",
            ["api", "users/me"],
            None,
            _redirect_with_token(token),
            1,
        ),
        ("audit table", ["security", "audit"], None, None, 0),
        (
            "audit json",
            ["security", "audit", "--format", "json"],
            None,
            None,
            0,
        ),
        (
            "audit jsonl",
            ["security", "audit", "--format", "jsonl"],
            None,
            None,
            0,
        ),
        ("audit verify", ["security", "audit", "--verify"], None, None, 0),
        ("config list", ["config", "list"], None, None, 0),
        (
            "config list json",
            ["config", "list", "--format", "json"],
            None,
            None,
            0,
        ),
        (
            "config get token",
            ["config", "get", "YOUTRACK_TOKEN"],
            None,
            None,
            None,
        ),
        (
            "config set token",
            ["config", "set", "YOUTRACK_TOKEN", token],
            None,
            None,
            2,
        ),
        (
            "config set timeout",
            ["config", "set", "YOUTRACK_TIMEOUT", "20"],
            None,
            None,
            0,
        ),
        (
            "config unset timeout",
            ["config", "unset", "YOUTRACK_TIMEOUT"],
            None,
            None,
            0,
        ),
        ("doctor", ["doctor"], None, None, None),
        ("doctor json", ["doctor", "--format", "json"], None, None, None),
        # yt learns a stored token only when it loads it, after parsing.
        # A usage error can hide a token pasted into the command line
        # when the token is in the environment or looks like one.
        ("usage error", ["issues", "list", token], None, None, 2),
        (
            "bad option value",
            ["issues", "list", "--limit", token],
            None,
            None,
            2,
        ),
        (
            "login wrong token",
            ["auth", "login", "--token-stdin"],
            WRONG_TOKEN + "\n",
            None,
            3,
        ),
        (
            "login again",
            ["auth", "login", "--token-stdin"],
            token + "\n",
            None,
            0,
        ),
        (
            "token update",
            ["auth", "token", "--update", "--token-stdin"],
            token + "\n",
            None,
            0,
        ),
        ("clear audit", ["security", "clear-audit", "--force"], None, None, 0),
        ("logout", ["auth", "logout"], None, None, 0),
    ]


# ------------------------------------------------------------ scenarios


@pytest.fixture(params=[PLAIN_TOKEN, PERM_TOKEN], ids=["plain", "perm"])
def token(request):
    return request.param


@pytest.fixture
def leak_server(token):
    with FakeYouTrack(token=token, issues=3) as server:
        yield server


def run_scenario(
    cli,
    yt_home,
    server,
    token,
    env,
    secrets,
    debug,
    tmp_path,
    login_args=None,
    names=None,
):
    prefix = ["--debug"] if debug else []
    base = ["--base-url", server.url]
    body_file = tmp_path / "body.json"
    body_file.write_text(json.dumps({"summary": f"file {token}"}))
    findings = []
    codes = []

    def run(name, argv, stdin, setup, expected):
        if setup is not None:
            setup(server)
        result = cli(*prefix, *argv, input=stdin, env=env)
        codes.append((name, result.code, expected))
        out = result.out
        if name == "token show":
            assert out == token + "\n"
            out = ""
        for stream, text in (("stdout", out), ("stderr", result.err)):
            for leak in find_leaks(text.encode("utf-8"), secrets):
                findings.append(f"{name}: {stream} has {leak}")
            if "Traceback" in text:
                findings.append(f"{name}: {stream} has a traceback")
        for leak in scan_files(yt_home.home, secrets):
            findings.append(f"{name}: file {leak}")

    if login_args is not None:
        run(
            "login",
            ["auth", "login", *base, "--token-stdin", *login_args],
            token + "\n",
            None,
            0,
        )
    rows = command_table(token, body_file)
    if names is not None:
        rows = [row for row in rows if row[0] in names]
        assert len(rows) == len(names)
    for row in rows:
        run(*row)

    assert findings == []
    wrong = [
        (n, code, want)
        for n, code, want in codes
        if want is not None and code != want
    ]
    assert wrong == []
    # Every request the server saw sent the token, or the wrong token of
    # the failed login, in its Authorization header.
    for request in server.requests:
        header = request.headers.get("Authorization", "")
        assert header in (f"Bearer {token}", f"Bearer {WRONG_TOKEN}")


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_leaks_environment_token(
    cli, yt_home, leak_server, token, debug, tmp_path
):
    env = {"YOUTRACK_BASE_URL": leak_server.url, "YOUTRACK_TOKEN": token}
    secrets = {"token": token, "wrong token": WRONG_TOKEN}
    run_scenario(
        cli, yt_home, leak_server, token, env, secrets, debug, tmp_path
    )


def _maskable_rows(token: str, body_file: Path) -> set:
    """Return the names of the rows a stored token can be masked in.

    A stored token that matches no masking pattern is unknown to yt
    while it parses the command line, so the usage-error rows are left
    out for it.  A perm: token is masked there by its pattern.
    """
    names = {row[0] for row in command_table(token, body_file)}
    return names if token == PERM_TOKEN else names - USAGE_ERRORS


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_leaks_stored_token(cli, yt_home, leak_server, token, debug, tmp_path):
    secrets = {"token": token, "wrong token": WRONG_TOKEN}
    names = _maskable_rows(token, tmp_path / "body.json")
    run_scenario(
        cli,
        yt_home,
        leak_server,
        token,
        {},
        secrets,
        debug,
        tmp_path,
        login_args=[],
        names=names,
    )


@pytest.mark.parametrize("token", [PLAIN_TOKEN])
def test_leaks_passphrase_store(cli, yt_home, leak_server, token, tmp_path):
    env = {"YT_CREDENTIAL_PASSPHRASE": PASSPHRASE}
    secrets = {
        "token": token,
        "wrong token": WRONG_TOKEN,
        "passphrase": PASSPHRASE,
    }
    run_scenario(
        cli,
        yt_home,
        leak_server,
        token,
        env,
        secrets,
        True,
        tmp_path,
        login_args=["--passphrase"],
        names=SHORT_TABLE,
    )


def test_leaks_keyring_store(
    cli, yt_home, leak_server, token, tmp_path, secret_service
):
    secrets = {"token": token, "wrong token": WRONG_TOKEN}
    names = _maskable_rows(token, tmp_path / "body.json")
    run_scenario(
        cli,
        yt_home,
        leak_server,
        token,
        {},
        secrets,
        True,
        tmp_path,
        login_args=[],
        names=names,
    )


# ---------------------------------------------------------- the scanner


def test_scanner_finds_each_form(tmp_path):
    secrets = {"token": PLAIN_TOKEN}
    for form, needle in encoded_forms(PLAIN_TOKEN).items():
        assert find_leaks(b"x" + needle + b"y", secrets), form
    blob = base64.b64encode(b"prefix " + PERM_TOKEN.encode() + b" suffix")
    assert find_leaks(blob, {"token": PERM_TOKEN})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_bytes(PLAIN_TOKEN.encode())
    assert scan_files(tmp_path, secrets) == ["sub/f: token (clear)"]
