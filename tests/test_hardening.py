"""Hostile and odd input: secrets in invalid settings, signals, tampered
scrypt parameters, oversized, slow or compressed responses, odd JSON
shapes, the C locale, broken config files, audit write failures,
directory permissions and a few input checks.

Every failure must end in one ``yt: error:`` line (or the stated
warning) with the right exit code, never a traceback.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import signal
import socket
import socketserver
import stat
import subprocess
import sys
import threading
import time

import pytest
from conftest import YT_PY
from fake_youtrack import DEFAULT_TOKEN

import yt

LEAK = "perm:TESTLEAK.dG9r.ZW4xMjM0"
LEAK_PARTS = ("TESTLEAK", "dG9r", "ZW4xMjM0")
PASSPHRASE = "Correct-Horse-Battery-Staple-42"
# Commands given this URL fail or finish before they connect, so nothing
# needs to listen on it.
UNUSED_URL = "http://127.0.0.1:9"


def assert_one_error(result, code, *fragments):
    """Check the exit code, one 'yt: error:' line and its key text."""
    assert result.code == code, result.err
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("yt: error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0]


def assert_one_warning(err, *fragments):
    """Check that stderr is one warning line containing fragments."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert not lines[0].startswith("yt: error"), err
    for fragment in fragments:
        assert fragment in lines[0]


def audit_entries(yt_home) -> list:
    raw = (yt_home.data_dir / "audit.jsonl").read_bytes()
    return [json.loads(line) for line in raw.splitlines()]


def last_command_entry(yt_home) -> dict:
    commands = [e for e in audit_entries(yt_home) if e["event"] == "command"]
    return commands[-1]


# ------------------------------------------------- secrets in the audit log


@pytest.mark.parametrize(
    "name",
    ["YOUTRACK_VERIFY_SSL", "YOUTRACK_CERT_SHA256", "YOUTRACK_CA_BUNDLE"],
)
def test_audit_invalid_tls_value_hidden(cli, yt_home, name):
    result = cli("projects", "list", env={name: LEAK})

    assert_one_error(result, 2, name, "environment variable")
    for part in LEAK_PARTS:
        assert part not in result.err
    raw = (yt_home.data_dir / "audit.jsonl").read_bytes()
    for part in LEAK_PARTS:
        assert part.encode() not in raw
    tls_entry = audit_entries(yt_home)[0]
    assert tls_entry["event"] == "tls_config"
    assert tls_entry["new"][name] == "(invalid)"
    assert name in tls_entry["changed"]


def test_audit_invalid_tls_value_change(cli, yt_home):
    first = cli("projects", "list", env={"YOUTRACK_VERIFY_SSL": LEAK})
    second = cli("projects", "list", env={"YOUTRACK_VERIFY_SSL": "maybe"})

    assert first.code == 2
    assert second.code == 2
    raw = (yt_home.data_dir / "audit.jsonl").read_bytes()
    for part in LEAK_PARTS:
        assert part.encode() not in raw
    # Both values are "(invalid)", so the second run records no change.
    tls_entries = [
        e for e in audit_entries(yt_home) if e["event"] == "tls_config"
    ]
    assert len(tls_entries) == 1


# ------------------------------------------------------------------ signals


def start_yt(yt_home, *args):
    return subprocess.Popen(
        [sys.executable, str(YT_PY), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=yt_home.env(),
        cwd=yt_home.home,
        start_new_session=True,
    )


def interrupt_during_request(server, yt_home, signals):
    """Run yt issues list, send signals while the server delays, and
    return (exit code, stderr)."""
    server.fail_next("delay", seconds=5, match="/api/issues$")
    process = start_yt(yt_home, "issues", "list")
    try:
        deadline = time.monotonic() + 20
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.requests, "yt never reached the server"
        for index, number in enumerate(signals):
            if index:
                time.sleep(0.001)
            os.kill(process.pid, number)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err.decode("utf-8", "backslashreplace")


@pytest.mark.parametrize("attempt", range(5))
def test_signal_double_sigint(api, yt_home, attempt):
    code, err = interrupt_during_request(
        api, yt_home, [signal.SIGINT, signal.SIGINT]
    )

    assert code == 130, err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert [line for line in err.splitlines() if line] == [
        "yt: interrupted"
    ]
    last = last_command_entry(yt_home)
    assert last["status"] == "interrupted"
    assert last["exit_code"] == 130


def test_signal_sigterm(api, yt_home):
    code, err = interrupt_during_request(api, yt_home, [signal.SIGTERM])

    assert code == 143, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line] == [
        "yt: interrupted"
    ]
    last = last_command_entry(yt_home)
    assert last["status"] == "interrupted"
    assert last["exit_code"] == 143


# ------------------------------------------------------ scrypt parameters


@pytest.fixture
def passphrase_file(cli, server, yt_home, monkeypatch):
    """Log in with a passphrase-protected credential file; return its
    path."""
    monkeypatch.setenv("YT_CREDENTIAL_PASSPHRASE", PASSPHRASE)
    result = cli(
        "auth", "login", "--token-stdin", "--passphrase",
        input=DEFAULT_TOKEN, env={"YOUTRACK_BASE_URL": server.url},
    )
    assert result.code == 0, result.err
    path = yt_home.data_dir / "credentials.enc"
    assert json.loads(path.read_text())["kdf"]["name"] == "scrypt"
    return path


def test_scrypt_file_unchanged_works(cli, passphrase_file):
    result = cli("issues", "list")

    assert result.code == 0, result.err
    assert "DEMO-1" in result.out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n": 2**30}, "out of range"),
        ({"n": 2**21}, "out of range"),
        ({"n": 2**13}, "out of range"),
        ({"p": 4096}, "out of range"),
        ({"r": 0}, "out of range"),
        ({"r": 32, "p": 16}, "out of range"),
        ({"n": 3 * 2**14}, "out of range"),
        ({"n": "16384"}, "out of range"),
        ({"n": 16384.0}, "out of range"),
        ({"n": True}, "out of range"),
        ({"salt": _b64(b"ab")}, "out of range"),
        ({"salt": "not base64!"}, "missing or invalid"),
        ({"n": None}, "missing or invalid"),
        ({"salt": None}, "missing or invalid"),
    ],
)
def test_scrypt_parameters_rejected(cli, passphrase_file, changes, message):
    document = json.loads(passphrase_file.read_text())
    for key, value in changes.items():
        if value is None:
            del document["kdf"][key]
        else:
            document["kdf"][key] = value
    passphrase_file.write_text(json.dumps(document, indent=1))
    before = passphrase_file.read_bytes()
    started = time.monotonic()

    result = cli("issues", "list")

    elapsed = time.monotonic() - started
    assert_one_error(result, 3, str(passphrase_file), message)
    assert elapsed < 3
    assert passphrase_file.read_bytes() == before


# -------------------------------------------------------------- responses


class RawServer:
    """A loopback TCP server that reads each HTTP request head, then
    calls respond(sock, stopping) to write the response bytes."""

    def __init__(self, respond):
        self.stopping = threading.Event()
        self.connections = 0
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                owner.connections += 1
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                with contextlib.suppress(OSError):
                    respond(self.request, owner.stopping)

        self._server = socketserver.ThreadingTCPServer(
            ("127.0.0.1", 0), Handler
        )
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


def _trickle(sock, stopping):
    sock.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200\r\n\r\n["
    )
    while not stopping.wait(0.2):
        sock.sendall(b" ")


def _close_delimited(body: bytes):
    def respond(sock, stopping):
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\n\r\n" + body
        )
        sock.shutdown(socket.SHUT_WR)

    return respond


def issue_list_body(count: int) -> bytes:
    issues = [
        {"$type": "Issue", "id": f"2-{i}", "idReadable": f"DEMO-{i}",
         "summary": f"Issue number {i}", "customFields": []}
        for i in range(1, count + 1)
    ]
    return json.dumps(issues).encode()


def test_response_content_length_too_large(cli, api, monkeypatch):
    monkeypatch.setattr(yt, "MAX_RESPONSE_BYTES", 1000)
    body = issue_list_body(40)
    assert len(body) > 1000
    api.fail_next("status", status=200, body=body)

    result = cli("issues", "list")

    assert_one_error(result, 1, "larger than", f"({len(body)} bytes)")
    assert len(api.requests) == 1


def _huge_content_length(sock, stopping):
    size = 64 * 2**20 + 1
    sock.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n[" % size
    )


def test_response_content_length_over_64_mib(cli, yt_home):
    with RawServer(_huge_content_length) as raw:
        result = cli(
            "issues", "list",
            env={"YOUTRACK_BASE_URL": raw.url,
                 "YOUTRACK_TOKEN": DEFAULT_TOKEN},
        )

    assert_one_error(
        result, 1, "larger than 64 MiB", f"({64 * 2**20 + 1} bytes)"
    )
    assert raw.connections == 1


def test_response_streamed_too_large(cli, yt_home, monkeypatch):
    monkeypatch.setattr(yt, "MAX_RESPONSE_BYTES", 1000)
    body = issue_list_body(400)
    with RawServer(_close_delimited(body)) as raw:
        result = cli(
            "issues", "list",
            env={"YOUTRACK_BASE_URL": raw.url,
                 "YOUTRACK_TOKEN": DEFAULT_TOKEN},
        )

    assert_one_error(result, 1, "larger than")
    assert result.out == ""


def test_response_gzip_bomb(cli, api, monkeypatch):
    monkeypatch.setattr(yt, "MAX_RESPONSE_BYTES", 1000)
    body = gzip.compress(b"[" + b" " * 100_000 + b"]")
    assert len(body) < 1000
    api.fail_next(
        "status", status=200, body=body,
        headers={"Content-Encoding": "gzip"},
    )

    result = cli("issues", "list")

    assert_one_error(result, 1, "larger than")


def test_response_trickle_deadline(cli, yt_home, monkeypatch, sleeps):
    # The deadline applies to each attempt; without retries one attempt
    # shows it.
    monkeypatch.setattr(yt, "MAX_RETRIES", 0)
    with RawServer(_trickle) as raw:
        started = time.monotonic()
        result = cli(
            "issues", "list",
            env={"YOUTRACK_BASE_URL": raw.url,
                 "YOUTRACK_TOKEN": DEFAULT_TOKEN,
                 "YOUTRACK_TIMEOUT": "0.5"},
        )
        elapsed = time.monotonic() - started

    assert_one_error(result, 5, "took longer than 2 s", "YOUTRACK_TIMEOUT")
    assert 1.9 < elapsed < 3.5
    assert raw.connections == 1


def test_response_gzip_decoded(cli, api):
    body = gzip.compress(issue_list_body(2))
    api.fail_next(
        "status", status=200, body=body,
        headers={"Content-Encoding": "gzip"},
    )

    result = cli("issues", "list")

    assert result.code == 0, result.err
    assert result.err == ""
    assert "DEMO-1" in result.out
    assert "Issue number 2" in result.out


def _flip_crc(data: bytes) -> bytes:
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:10] + b"\xff" * 20, id="garbage"),
        pytest.param(_flip_crc, id="bad-crc"),
        pytest.param(lambda data: data[: len(data) // 2], id="cut-short"),
        pytest.param(lambda data: data[:-8], id="no-trailer"),
    ],
)
def test_response_gzip_damaged(cli, api, damage):
    body = damage(gzip.compress(issue_list_body(20)))
    api.fail_next(
        "status", status=200, body=body,
        headers={"Content-Encoding": "gzip"},
    )

    result = cli("issues", "list")

    assert_one_error(result, 1, "gzip-compressed response", "damaged")


def test_response_truncated(cli, api, sleeps):
    api.fail_next("truncated", count=10)

    result = cli("issues", "list")

    assert_one_error(result, 5, "cut off")


# ---------------------------------------------------------- odd JSON data


@pytest.mark.parametrize("body", ["[null]", "[5]", '["x"]', "[[]]"])
def test_odd_data_issue_list_items(cli, api, body):
    api.fail_next("status", status=200, body=body)

    result = cli("issues", "list")

    assert_one_error(result, 1, "expected a JSON object")


def test_odd_data_null_custom_field(cli, api):
    api.fail_next(
        "status", status=200,
        body='[{"customFields":[null, 5, {"name": null}],'
             '"idReadable":"X-1"}]',
    )

    result = cli("issues", "list")

    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out.splitlines()[1] == "X-1"


@pytest.mark.parametrize(
    ("body", "got"),
    [("null", "got null"), ("[]", "got an array"), ('"x"', "got a string")],
)
def test_odd_data_issue_show_rejected(cli, api, body, got):
    api.fail_next("status", status=200, body=body)

    result = cli("issues", "show", "DEMO-1")

    assert_one_error(result, 1, "reading issue DEMO-1", got)


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        '{"comments":[null]}',
        '{"comments":[null, {"author": null, "text": null}]}',
        '{"customFields":[null],"project":[1],"reporter":"x"}',
        '{"comments": {"a": 1}, "customFields": 5}',
    ],
)
def test_odd_data_issue_show_listed(cli, api, body):
    api.fail_next("status", status=200, body=body)

    result = cli("issues", "show", "DEMO-7")

    assert result.code == 0, result.err
    assert result.err == ""
    heading = result.out.splitlines()[0]
    assert heading.startswith("DEMO-7: ")
    assert "None" not in heading


@pytest.mark.parametrize(
    "command", [("issues", "list"), ("issues", "show", "DEMO-1")]
)
def test_odd_data_nested_too_deeply(cli, api, command):
    depth = 100_000
    api.fail_next("status", status=200, body="[" * depth + "]" * depth)

    result = cli(*command)

    assert_one_error(result, 1, "nested too deeply")


ODD_SHAPES = [
    "null", "[]", "5", '"admin"', "true", "[null]",
    '{"login": null}',
    '{"login": ["a"], "fullName": {"x": 1}}',
    '{"login": {"\\u202e": 1}}',
]


@pytest.mark.parametrize("body", ODD_SHAPES)
def test_odd_data_auth_status(cli, api, body):
    api.fail_next("status", status=200, body=body)

    result = cli("auth", "status")

    assert result.code in (0, 1), result.err
    assert "Traceback" not in result.err
    assert "internal error" not in result.err
    assert "URL:" in result.out


@pytest.mark.parametrize("body", ODD_SHAPES)
def test_odd_data_auth_status_json(cli, api, body):
    api.fail_next("status", status=200, body=body)

    result = cli("auth", "status", "--format", "json")

    assert result.code in (0, 1), result.err
    assert "internal error" not in result.err
    assert json.loads(result.out)["base_url"] == api.url


@pytest.mark.parametrize("body", ODD_SHAPES)
def test_odd_data_api_users_me(cli, api, body):
    api.fail_next("status", status=200, body=body)

    result = cli("api", "users/me")

    assert result.code == 0, result.err
    assert result.err == ""
    if body != "null":
        assert json.loads(result.out) == json.loads(body)


# ---------------------------------------------------------------- C locale


def _locale_env(**values):
    env = {"LANG": None, "LC_ALL": None, "LC_CTYPE": None,
           "PYTHONIOENCODING": None, "PYTHONUTF8": None,
           "YOUTRACK_TOKEN": DEFAULT_TOKEN,
           "YOUTRACK_BASE_URL": UNUSED_URL}
    env.update(values)
    return env


@pytest.mark.parametrize(
    "values",
    [{"LANG": "C"}, {"LC_ALL": "C"}, {"LC_ALL": "C", "LANG": "C.UTF-8"},
     {"LANG": "POSIX"}],
    ids=["LANG=C", "LC_ALL=C", "LC_ALL=C-over-LANG", "LANG=POSIX"],
)
def test_locale_c_plain_markers(run_yt, values):
    result = run_yt("security", "token-status", env=_locale_env(**values))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    first = result.stdout.splitlines()[0]
    assert first.startswith("[permanent] ")
    assert "✅" not in result.stdout


def test_locale_utf8_emoji(run_yt):
    result = run_yt(
        "security", "token-status", env=_locale_env(LANG="C.UTF-8")
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("✅ ")


# ------------------------------------------------------ broken config file

GARBAGE_LINE = "this line is not a setting"


def write_config(yt_home, kind):
    """Create a broken config file of the given kind; return its path."""
    yt_home.config_dir.mkdir(mode=0o700)
    path = yt_home.config_dir / ".env"
    if kind == "garbage":
        path.write_text(f"YOUTRACK_BASE_URL={UNUSED_URL}\n{GARBAGE_LINE}\n")
        path.chmod(0o600)
    elif kind == "not-utf8":
        path.write_bytes(b"YT_TOKEN_WARNING_DAYS=5\n# caf\xe9 \xff\n")
        path.chmod(0o600)
    elif kind == "directory":
        path.mkdir(mode=0o700)
    elif kind == "public":
        path.write_text(
            f"YOUTRACK_BASE_URL={UNUSED_URL}\n"
            f"YOUTRACK_TOKEN={DEFAULT_TOKEN}\n"
        )
        path.chmod(0o644)
    return path


# A config file with a token that others can read is rejected with exit
# code 1, as every other secret-bearing file with loose permissions is.
@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        ("garbage", 2, "line 2: expected KEY=VALUE"),
        ("not-utf8", 2, "is not UTF-8 text"),
        ("directory", 1, "cannot read"),
        ("public", 1, "chmod 600"),
    ],
)
def test_config_broken_issues_list(cli, yt_home, kind, code, message):
    path = write_config(yt_home, kind)

    result = cli("issues", "list")

    assert_one_error(result, code, str(path), message)
    assert DEFAULT_TOKEN not in result.err


@pytest.mark.parametrize("kind", ["garbage", "not-utf8", "directory",
                                  "public"])
def test_config_broken_doctor(cli, yt_home, kind):
    path = write_config(yt_home, kind)

    result = cli("doctor", "--format", "json")

    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert "internal error" not in result.err
    report = json.loads(result.out)
    config = report["paths"]["config_file"]
    assert config["status"] == "fail"
    assert str(path) in config["detail"]
    assert DEFAULT_TOKEN not in result.out


@pytest.mark.parametrize("kind", ["garbage", "public"])
def test_config_broken_set(cli, yt_home, kind):
    path = write_config(yt_home, kind)
    before = path.read_text().splitlines()

    result = cli("config", "set", "YT_TOKEN_WARNING_DAYS", "3")

    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert path.read_text().splitlines() == [
        *before, "YT_TOKEN_WARNING_DAYS=3"
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [("not-utf8", 2, "is not UTF-8 text"), ("directory", 1, "cannot read")],
)
def test_config_unreadable_set(cli, yt_home, kind, code, message):
    # These files cannot be rewritten with their other lines kept, so yt
    # leaves them as they are and names them.
    path = write_config(yt_home, kind)
    before = path.read_bytes() if kind == "not-utf8" else None

    result = cli("config", "set", "YT_TOKEN_WARNING_DAYS", "3")

    assert_one_error(result, code, str(path), message)
    if before is not None:
        assert path.read_bytes() == before
    else:
        assert path.is_dir()


@pytest.mark.parametrize("kind", ["garbage", "not-utf8", "directory",
                                  "public"])
def test_config_broken_unset(cli, yt_home, kind):
    path = write_config(yt_home, kind)
    before = path.read_bytes() if path.is_file() else None

    result = cli("config", "unset", "X")

    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert len(result.err.splitlines()) == 1
    assert "X is not in" in result.err
    if before is not None:
        assert path.read_bytes() == before


def test_config_unset_keeps_garbage(cli, yt_home):
    path = write_config(yt_home, "garbage")

    result = cli("config", "unset", "YOUTRACK_BASE_URL")

    assert result.code == 0, result.err
    assert path.read_text() == f"{GARBAGE_LINE}\n"


def test_config_public_logout(cli, yt_home):
    path = write_config(yt_home, "public")

    result = cli("auth", "logout")

    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert f"plain file {path}" in result.err
    assert path.read_text() == f"YOUTRACK_BASE_URL={UNUSED_URL}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    after = cli("issues", "list")
    assert_one_error(after, 3, "no token stored")


# ---------------------------------------------------------- audit warnings


def test_audit_state_damaged_warns(cli, api, yt_home):
    assert cli("issues", "list").code == 0
    state = yt_home.data_dir / "audit.state"
    state.write_text("not json\n")

    result = cli("issues", "list")
    verified = cli("security", "audit", "--verify")

    assert result.code == 0
    assert "DEMO-1" in result.out
    assert_one_warning(
        result.err, str(state), "is damaged or was edited",
        "the new entry records it",
    )
    # The first entry written after the damage carries the note; with no
    # state to compare, that is a new TLS baseline before the command.
    noted = [entry for entry in audit_entries(yt_home)
             if entry.get("state_damaged")]
    assert len(noted) == 1
    assert noted[0]["event"] == "tls_config"
    assert verified.code == 6
    assert "was appended when the state file was damaged or edited" in (
        verified.err)


def test_audit_state_damaged_keeps_exit_code(cli, api, yt_home):
    assert cli("issues", "list").code == 0
    (yt_home.data_dir / "audit.state").write_text("{}\n")

    result = cli("issues", "show", "DEMO-99")

    assert result.code == 4, result.err
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 2, result.err
    assert lines[0].startswith("yt: error: ")
    assert "is damaged or was edited" in lines[1]
    assert audit_entries(yt_home)[-1]["exit_code"] == 4


def test_audit_data_dir_unwritable_warns(cli, api, yt_home):
    # A regular file in place of the data directory makes the write fail
    # even for root, which permission bits do not stop.
    yt_home.data_dir.write_text("")

    result = cli("issues", "list")

    assert result.code == 0
    assert "DEMO-1" in result.out
    assert_one_warning(
        result.err, "audit log", "was not written",
        "permissions and free space",
    )


# --------------------------------------------------- directory permissions


@pytest.fixture
def key_file_login(cli, server, yt_home):
    """Log in with the keyring off, so the token goes to the encrypted
    file under credentials.key."""
    result = cli(
        "auth", "login", "--token-stdin",
        input=DEFAULT_TOKEN, env={"YOUTRACK_BASE_URL": server.url},
    )
    assert result.code == 0, result.err
    assert (yt_home.config_dir / "credentials.key").is_file()
    return server


@pytest.mark.parametrize(
    "command", [("issues", "list"), ("auth", "status")]
)
def test_config_dir_world_writable(cli, yt_home, key_file_login, command):
    yt_home.config_dir.chmod(0o777)

    result = cli(*command)

    fix = f"chmod 700 {yt_home.config_dir}"
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert lines[0].startswith("yt: error: ")
    assert fix in lines[0]
    assert "credential key file" in lines[0]
    # The audit key is in the same directory, so the audit entry is not
    # written either, and yt warns about it.
    assert len(lines) == 2, result.err
    assert "audit log was not written" in lines[1]
    assert "audit key" in lines[1]
    assert fix in lines[1]


def test_config_dir_sticky_allowed(cli, yt_home, key_file_login):
    yt_home.config_dir.chmod(0o1777)

    result = cli("issues", "list")

    assert result.code == 0, result.err
    assert result.err == ""
    assert "DEMO-1" in result.out


# ------------------------------------------------------------ small checks


BIDI = "\u202e\u2066\u2067\u2068\u2069"


def test_bidi_controls_escaped(cli, api):
    api.add_issue(summary=f"safe{BIDI}txt.exe")

    result = cli("issues", "list")

    assert result.code == 0, result.err
    for character in BIDI:
        assert character not in result.out
        assert f"\\u{ord(character):04x}" in result.out
    assert "safe\\u202e\\u2066\\u2067\\u2068\\u2069txt.exe" in result.out


@pytest.mark.parametrize(
    "path",
    ["//evil.example/api/x", "https://evil.example/api/x",
     "HTTP://evil.example/"],
)
def test_api_full_url_rejected(cli, api, path):
    result = cli("api", path)

    assert_one_error(result, 2, "not a full URL")
    assert api.requests == []


def test_issues_list_limit_zero_all(cli, api):
    api.add_issues(120)

    result = cli("issues", "list", "--limit", "0")

    assert result.code == 0, result.err
    rows = result.out.splitlines()[1:]
    assert len(rows) == 123
    ids = {row.split()[0] for row in rows}
    assert ids == {f"DEMO-{n}" for n in range(1, 124)}


def test_issues_list_limit_negative(cli, api):
    result = cli("issues", "list", "--limit", "-1")

    assert_one_error(result, 2, "invalid --limit -1")
    assert api.requests == []


@pytest.mark.parametrize(
    "args",
    [
        ("issues", "create", "DEMO", "  "),
        ("issues", "create", "DEMO", ""),
        ("issues", "create", "DEMO", "\t\n"),
        ("issues", "update", "DEMO-1", "--summary", ""),
        ("issues", "update", "DEMO-1", "--summary", "   "),
    ],
)
def test_summary_empty_rejected(cli, api, args):
    result = cli(*args)

    assert_one_error(result, 2, "summary is empty")
    assert api.requests == []


def test_error_description_one_line(cli, api):
    description = "first line\nsecond\r\nthird\u2028fourth\x85fifth\x0bsixth"
    api.fail_next(
        "status", status=400,
        body=json.dumps({"error": "bad_request",
                         "error_description": description}),
    )

    result = cli("issues", "list")

    assert_one_error(result, 1, "invalid request", "first line")
    assert "sixth" in result.err


def test_config_set_passphrase_rejected(cli, yt_home):
    result = cli("config", "set", "YT_CREDENTIAL_PASSPHRASE", "x")

    assert_one_error(result, 2, "YT_CREDENTIAL_PASSPHRASE is a secret")
    assert "the token" not in result.err
    assert not (yt_home.config_dir / ".env").exists()
