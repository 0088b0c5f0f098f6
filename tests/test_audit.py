"""Tests of the HMAC-chained audit log and `yt security audit|clear-audit`.

Most commands here are `yt security token-status` with YOUTRACK_TOKEN
set: it needs no server, so each run costs only yt itself and the audit
append.  The MAC checks recompute HMAC-SHA256 with the key file, apart
from yt's own code, so they pin the on-disk format too.
"""

from __future__ import annotations

import base64
import datetime as dt
import getpass
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import YT_PY
from fake_youtrack import DEFAULT_TOKEN

import yt

M = yt.MASK
# Port 9 (discard) is never contacted: token-status reads no server.
ENV = {
    "YOUTRACK_BASE_URL": "http://127.0.0.1:9",
    "YOUTRACK_TOKEN": DEFAULT_TOKEN,
}
STATUS = ("security", "token-status")
TS_FORMAT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


# ---------------------------------------------------------------- helpers


def log_path(home) -> Path:
    return home.data_dir / "audit.jsonl"


def state_path(home) -> Path:
    return home.data_dir / "audit.state"


def read_lines(home) -> list:
    """Return the raw lines of audit.jsonl, each with its newline."""
    return log_path(home).read_bytes().splitlines(keepends=True)


def write_lines(home, lines) -> None:
    log_path(home).write_bytes(b"".join(lines))


def read_entries(home) -> list:
    return [json.loads(line) for line in read_lines(home)]


def commands(entries) -> list:
    return [e for e in entries if e["event"] == "command"]


def audit_key(home) -> bytes:
    return base64.b64decode((home.config_dir / "audit.key").read_bytes())


def canonical(entry: dict) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def mac_of(key: bytes, prev: str, entry: dict) -> str:
    """HMAC-SHA256 over prev, a newline and the entry without its mac."""
    body = canonical({k: v for k, v in entry.items() if k != "mac"})
    message = prev.encode() + b"\n" + body.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def entry_line(key: bytes, entry: dict) -> bytes:
    """Serialise an entry the way yt does, with a valid mac."""
    body = canonical(entry)
    mac = mac_of(key, entry["prev"], entry)
    return (body[:-1] + ',"mac":"' + mac + '"}\n').encode()


def write_state(home, key: bytes, state: dict) -> None:
    body = canonical(state)
    mac = hmac.new(key, b"state\n" + body.encode(), hashlib.sha256).hexdigest()
    state_path(home).write_text(canonical(dict(state, mac=mac)) + "\n")


def run_status(cli, times=1, env=None):
    for _ in range(times):
        result = cli(*STATUS, env=dict(ENV, **(env or {})))
        assert result.code == 0, result.err


def verify(cli):
    return cli("security", "audit", "--verify", env=ENV)


def audit_log(home, max_entries=1000) -> yt.AuditLog:
    return yt.AuditLog(str(home.data_dir), str(home.config_dir), max_entries)


# ------------------------------------------------------------ one entry


def test_audit_entry_fields(cli, yt_home):
    result = cli(*STATUS, "--format", "json", env=ENV)
    assert result.code == 0
    entries = read_entries(yt_home)
    entry = entries[-1]
    assert entry["event"] == "command"
    assert entry["command"] == "security token-status"
    assert entry["args"] == ["security", "token-status", "--format", "json"]
    assert entry["status"] == "success"
    assert entry["exit_code"] == 0
    assert isinstance(entry["duration_ms"], int)
    assert entry["duration_ms"] >= 0
    assert entry["user"] == getpass.getuser()
    assert entry["host"] == os.uname().nodename
    assert entry["version"] == yt.__version__
    assert entry["ssl_verify"] is True
    assert TS_FORMAT.fullmatch(entry["ts"])
    assert entry["seq"] == len(entries)
    assert entry["prev"] == entries[-2]["mac"]


def test_audit_mac_chain(cli, yt_home):
    run_status(cli, 3)
    key = audit_key(yt_home)
    assert len(key) == 32
    prev = ""
    for seq, entry in enumerate(read_entries(yt_home), 1):
        assert entry["seq"] == seq
        assert entry["prev"] == prev
        assert entry["mac"] == mac_of(key, prev, entry)
        prev = entry["mac"]


def test_audit_files_private(cli, yt_home):
    run_status(cli)
    for path in (
        log_path(yt_home),
        state_path(yt_home),
        yt_home.config_dir / "audit.key",
    ):
        assert path.stat().st_mode & 0o777 == 0o600, path
    # The key is kept apart from the log it signs.
    assert not (yt_home.data_dir / "audit.key").exists()


def test_audit_ts_from_injected_clock(cli, yt_home, monkeypatch):
    moment = dt.datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(yt, "utc_now", lambda: moment)
    run_status(cli)
    assert read_entries(yt_home)[-1]["ts"] == "2030-01-02T03:04:05.678Z"


def test_audit_not_found_error(cli, yt_home, server):
    env = {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": DEFAULT_TOKEN}
    result = cli("issues", "show", "DEMO-999", env=env)
    assert result.code == 4
    entry = read_entries(yt_home)[-1]
    assert entry["command"] == "issues show"
    assert entry["args"] == ["issues", "show", "DEMO-999"]
    assert entry["status"] == "error"
    assert entry["exit_code"] == 4


def test_audit_usage_error(cli, yt_home):
    result = cli("issues", "list", "--limit", "many", env=ENV)
    assert result.code == 2
    entry = read_entries(yt_home)[-1]
    assert entry["args"] == ["issues", "list", "--limit", "many"]
    assert entry["status"] == "error"
    assert entry["exit_code"] == 2


def test_audit_duration_is_real(cli, yt_home, server):
    server.fail_next("delay", seconds=0.3)
    env = {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": DEFAULT_TOKEN}
    result = cli("issues", "show", "DEMO-1", env=env)
    assert result.code == 0, result.err
    assert read_entries(yt_home)[-1]["duration_ms"] >= 300


def test_audit_written_after_command(cli, yt_home):
    # `security audit` lists the log as it was before this command, so
    # its own entry, which needs the real exit code, comes after it.
    run_status(cli)
    before = len(read_lines(yt_home))
    result = cli("security", "audit", "--format", "json", env=ENV)
    listed = json.loads(result.out)
    assert len(listed) == before
    assert read_entries(yt_home)[-1]["command"] == "security audit"


@pytest.mark.parametrize(("signum", "code"), [
    (signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129),
])
def test_audit_interrupted_by_signal(yt_home, server, signum, code):
    server.fail_next("delay", seconds=10)
    env = dict(
        yt_home.env(),
        YOUTRACK_BASE_URL=server.url,
        YOUTRACK_TOKEN=DEFAULT_TOKEN,
    )
    process = subprocess.Popen(
        [sys.executable, str(YT_PY), "issues", "list"],
        env=env,
        cwd=yt_home.home,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.requests, "yt never reached the server"
        process.send_signal(signum)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code
    assert "interrupted" in err
    assert "Traceback" not in err
    entry = read_entries(yt_home)[-1]
    assert entry["command"] == "issues list"
    assert entry["status"] == "interrupted"
    assert entry["exit_code"] == code


# ------------------------------------------------------------- masking

MASKED_ARGS = [
    (
        ["api", "users/me", "-f", "token=Sekr1tQueryValue"],
        ["api", "users/me", "-f", f"token={M}"],
    ),
    (
        [
            "api",
            "-X",
            "POST",
            "/api/admin/users",
            "-f",
            "password=x",
            "-f",
            "login=bob",
        ],
        [
            "api",
            "-X",
            "POST",
            "/api/admin/users",
            "-f",
            f"password={M}",
            "-f",
            "login=bob",
        ],
    ),
    (
        ["--base-url", "http://bob:Hunter2xyz@127.0.0.1:9", *STATUS],
        ["--base-url", f"http://{M}@127.0.0.1:9", *STATUS],
    ),
    (
        ["issues", "comment", "DEMO-1", f"my token is {DEFAULT_TOKEN}"],
        ["issues", "comment", "DEMO-1", f"my token is {M}"],
    ),
]


@pytest.mark.parametrize(("argv", "expected"), MASKED_ARGS)
def test_audit_args_masked(cli, yt_home, server, argv, expected):
    env = {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": DEFAULT_TOKEN}
    cli(*argv, env=env)
    raw = log_path(yt_home).read_bytes()
    entry = json.loads(raw.splitlines()[-1])
    assert entry["args"] == expected
    for secret in (b"Sekr1tQueryValue", b"Hunter2xyz", DEFAULT_TOKEN.encode()):
        assert secret not in raw


# --------------------------------------------------- --secure, disabling


@pytest.mark.parametrize(
    "argv",
    [("--secure", *STATUS), (*STATUS, "--secure")],
    ids=["before", "after"],
)
def test_audit_secure_skips_entry(cli, yt_home, argv):
    run_status(cli)
    before = read_lines(yt_home)
    assert cli(*argv, env=ENV).code == 0
    assert read_lines(yt_home) == before
    run_status(cli)
    entries = read_entries(yt_home)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert verify(cli).code == 0


def test_audit_secure_keeps_tls_change(cli, yt_home):
    run_status(cli)
    result = cli(
        "--secure", *STATUS, env=dict(ENV, YOUTRACK_VERIFY_SSL="false")
    )
    assert result.code == 0
    entries = read_entries(yt_home)
    assert entries[-1]["event"] == "tls_config"
    assert len(commands(entries)) == 1


@pytest.mark.parametrize("value", ["false", "0", "off", "NO"])
def test_audit_logging_disabled(cli, yt_home, value):
    result = cli(*STATUS, env=dict(ENV, YT_AUDIT_LOGGING=value))
    assert result.code == 0
    assert not log_path(yt_home).exists()
    assert not state_path(yt_home).exists()


def test_audit_logging_disabled_in_config(cli, yt_home):
    yt_home.config_dir.mkdir(mode=0o700, parents=True)
    (yt_home.config_dir / ".env").write_text("YT_AUDIT_LOGGING=false\n")
    run_status(cli, 2)
    assert not log_path(yt_home).exists()


# ------------------------------------------------------------ TLS changes


def test_audit_tls_change_entries(cli, yt_home, tls_certs):
    run_status(cli)
    first = read_entries(yt_home)[0]
    assert first["event"] == "tls_config"
    assert first["old"] is None
    assert first["new"]["YOUTRACK_VERIFY_SSL"] == "true"
    assert first["changed"] == ["YOUTRACK_VERIFY_SSL"]

    run_status(cli)
    assert len(read_entries(yt_home)) == 3

    run_status(cli, env={"YOUTRACK_VERIFY_SSL": "false"})
    change, command = read_entries(yt_home)[-2:]
    assert change["event"] == "tls_config"
    assert change["changed"] == ["YOUTRACK_VERIFY_SSL"]
    assert change["old"]["YOUTRACK_VERIFY_SSL"] == "true"
    assert change["new"]["YOUTRACK_VERIFY_SSL"] == "false"
    assert TS_FORMAT.fullmatch(change["ts"])
    assert change["ssl_verify"] is False
    assert command["ssl_verify"] is False

    bundle = str(tls_certs.ca)
    run_status(cli, env={"YOUTRACK_CA_BUNDLE": bundle})
    change = read_entries(yt_home)[-2]
    assert change["event"] == "tls_config"
    assert change["changed"] == ["YOUTRACK_CA_BUNDLE", "YOUTRACK_VERIFY_SSL"]
    assert change["old"]["YOUTRACK_CA_BUNDLE"] is None
    assert change["new"]["YOUTRACK_CA_BUNDLE"] == bundle
    assert change["new"]["YOUTRACK_VERIFY_SSL"] == "true"
    assert verify(cli).code == 0


# ------------------------------------------------------------ --verify


def test_verify_clean_log(cli, yt_home):
    run_status(cli, 4)
    result = verify(cli)
    assert result.code == 0
    assert "audit log verified: 5 entries, seq 1 to 5" in result.out


def test_verify_no_log(cli, yt_home):
    result = verify(cli)
    assert result.code == 0
    assert "verified: 0 entries" in result.out


def test_verify_json_report(cli, yt_home):
    run_status(cli, 2)
    result = cli("security", "audit", "--verify", "--format", "json", env=ENV)
    assert result.code == 0
    report = json.loads(result.out)
    assert report["ok"] is True
    assert report["entries"] == 3
    assert report["first_seq"] == 1
    assert report["last_seq"] == 3


def _edit_line(lines):
    lines[2] = lines[2].replace(b'"exit_code":0', b'"exit_code":1')
    assert b'"exit_code":1' in lines[2]
    return lines


def _forged_line(lines):
    # A well-formed entry that continues the chain, with a guessed mac.
    entry = json.loads(lines[1])
    entry.update(seq=3, prev=entry.pop("mac"), command="auth logout")
    body = canonical(entry)
    forged = body[:-1] + ',"mac":"' + "0" * 64 + '"}\n'
    return [*lines[:2], forged.encode(), *lines[2:]]


def _torn_tail(lines):
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    return lines


TAMPERING = {
    "edited_entry": (_edit_line, "line 3: MAC mismatch"),
    "deleted_middle": (
        lambda lines: lines[:2] + lines[3:],
        "line 3: MAC mismatch",
    ),
    "inserted_copy": (
        lambda lines: [*lines[:2], lines[1], *lines[2:]],
        "line 3: MAC mismatch",
    ),
    "inserted_forgery": (_forged_line, "line 3: MAC mismatch"),
    "inserted_text": (
        lambda lines: [*lines[:2], b"hello\n", *lines[2:]],
        "line 3: line is not an audit entry",
    ),
    "swapped": (
        lambda lines: [lines[0], lines[2], lines[1], *lines[3:]],
        "line 2: MAC mismatch",
    ),
    "deleted_tail": (
        lambda lines: lines[:-2],
        "log ends at seq 4 but the state records seq 6: entries were "
        "removed from the end",
    ),
    "deleted_head": (
        lambda lines: lines[2:],
        "log starts at seq 3 but the state records seq 1: entries were "
        "removed from the start",
    ),
    "deleted_all": (
        lambda lines: [],
        "log is empty but the state records entries up to seq 6",
    ),
    "torn_last_line": (_torn_tail, "line 6: torn last line"),
}


@pytest.fixture
def six_entries(cli, yt_home):
    """A log of one tls_config and five command entries."""
    run_status(cli, 5)
    assert len(read_lines(yt_home)) == 6
    return read_lines(yt_home)


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_verify_detects_tampering(cli, yt_home, six_entries, case):
    change, problem = TAMPERING[case]
    write_lines(yt_home, change(list(six_entries)))
    result = verify(cli)
    assert result.code == 6
    assert "failed verification" in result.err
    assert problem in result.err
    assert "verified" not in result.out


@pytest.mark.parametrize("case", ["deleted_tail", "deleted_head"])
def test_verify_tampering_persists(cli, yt_home, six_entries, case):
    change, _ = TAMPERING[case]
    write_lines(yt_home, change(list(six_entries)))
    run_status(cli)
    assert verify(cli).code == 6
    # Also after many more commands, until the log is cleared.
    run_status(cli, 3)
    assert verify(cli).code == 6


def test_verify_json_report_failure(cli, yt_home, six_entries):
    write_lines(yt_home, _edit_line(list(six_entries)))
    result = cli("security", "audit", "--verify", "--format", "json", env=ENV)
    assert result.code == 6
    report = json.loads(result.out)
    assert report["ok"] is False
    assert report["line"] == 3
    assert "MAC mismatch" in report["problem"]


def test_verify_edited_state(cli, yt_home, six_entries):
    state = json.loads(state_path(yt_home).read_text())
    state["last_seq"] = 4
    state_path(yt_home).write_text(json.dumps(state))
    result = verify(cli)
    assert result.code == 6
    assert "audit state" in result.err
    assert "damaged or was edited" in result.err


def test_verify_deleted_state(cli, yt_home, six_entries):
    state_path(yt_home).unlink()
    result = verify(cli)
    assert result.code == 6
    assert "state file" in result.err
    assert "is missing" in result.err


def test_verify_lost_state_persists(cli, yt_home, six_entries):
    state_path(yt_home).unlink()
    write_lines(yt_home, six_entries[:-2])
    result = cli(*STATUS, env=ENV)
    assert result.code == 0
    assert "audit state" in result.err
    result = verify(cli)
    assert result.code == 6
    assert "state file was missing" in result.err


def test_verify_state_of_other_key(cli, yt_home, six_entries):
    # Writing a matching state needs the key; a state signed with any
    # other key is rejected.
    write_lines(yt_home, six_entries[:-2])
    entry = json.loads(six_entries[-3])
    write_state(
        yt_home,
        b"k" * 32,
        {
            "count": 4,
            "first_seq": 1,
            "last_mac": entry["mac"],
            "last_seq": 4,
            "tls": None,
        },
    )
    result = verify(cli)
    assert result.code == 6
    assert "damaged or was edited" in result.err


def test_verify_state_rewritten_with_key(cli, yt_home, six_entries):
    # Positive control for the helpers above: the key holder can rewrite
    # the state, and then truncation is not detectable.
    write_lines(yt_home, six_entries[:-2])
    entry = json.loads(six_entries[-3])
    write_state(
        yt_home,
        audit_key(yt_home),
        {
            "count": 4,
            "first_seq": 1,
            "last_mac": entry["mac"],
            "last_seq": 4,
            "tls": None,
        },
    )
    assert verify(cli).code == 0


def test_verify_missing_key(cli, yt_home, six_entries):
    (yt_home.config_dir / "audit.key").unlink()
    result = verify(cli)
    assert result.code == 6
    assert "audit key" in result.err
    assert "is missing" in result.err
    assert "clear-audit --force" in result.err
    # A later command must not create a new key, because entries signed
    # with it could not be checked against the old ones.
    result = cli(*STATUS, env=ENV)
    assert result.code == 0
    assert result.err.count("was not written") == 1
    assert not (yt_home.config_dir / "audit.key").exists()


def test_verify_other_key(cli, yt_home, six_entries):
    key_file = yt_home.config_dir / "audit.key"
    key_file.write_bytes(base64.b64encode(b"x" * 32) + b"\n")
    result = verify(cli)
    assert result.code == 6


def test_verify_garbage_last_line(cli, yt_home, six_entries):
    with log_path(yt_home).open("ab") as handle:
        handle.write(b"[1, 2]\n")

    result = cli(*STATUS, env=ENV)
    verified = verify(cli)

    assert result.code == 0
    assert "Traceback" not in result.err
    assert result.err.count("ends in 1 line(s) that are not valid audit") == 1
    assert verified.code == 6
    assert "line 7: line is not an audit entry" in verified.err
    # The entry written after the bad line follows the last valid one.
    lines = read_lines(yt_home)
    entry = json.loads(lines[7])
    assert entry["seq"] == 7
    assert entry["prev"] == json.loads(lines[5])["mac"]
    assert entry["skipped_bad_lines"] == 1


def test_verify_removed_garbage_line(cli, yt_home, six_entries):
    with log_path(yt_home).open("ab") as handle:
        handle.write(b"[1, 2]\n")
    assert cli(*STATUS, env=ENV).code == 0
    lines = read_lines(yt_home)
    write_lines(yt_home, lines[:6] + lines[7:])

    result = verify(cli)

    assert result.code == 6
    assert ("seq 7 was appended after 1 line(s) that were not audit "
            "entries, which were removed since") in result.err


def test_verify_state_one_entry_behind(cli, yt_home, six_entries):
    # An append whose state write failed (a crash, a full disk) leaves
    # the state one entry behind the log; that is no tampering.
    saved = state_path(yt_home).read_bytes()
    run_status(cli)
    state_path(yt_home).write_bytes(saved)
    result = verify(cli)
    assert result.code == 0, result.err
    assert verify(cli).code == 0


def test_verify_old_state_copy(cli, yt_home, six_entries):
    saved = state_path(yt_home).read_bytes()
    run_status(cli, 2)
    state_path(yt_home).write_bytes(saved)
    result = verify(cli)
    assert result.code == 6
    assert "log ends at seq 8 but the state records seq 6" in result.err
    assert "replaced by an older copy" in result.err


# ------------------------------------------------------------ torn line


def test_torn_line_repaired_on_next_command(cli, yt_home, six_entries):
    fragment = b'{"args":["security","token-status"],"command":"sec'
    with log_path(yt_home).open("ab") as handle:
        handle.write(fragment)
    result = verify(cli)
    assert result.code == 6
    assert "line 7: torn last line" in result.err
    # The failed --verify was itself a command, and its append repaired
    # the log before writing its entry.
    assert "torn line" in result.err
    torn = yt_home.data_dir / "audit.jsonl.torn"
    assert torn.read_bytes() == fragment + b"\n"
    lines = read_lines(yt_home)
    assert lines[:6] == six_entries
    assert len(lines) == 7
    entry = json.loads(lines[-1])
    assert entry["seq"] == 7
    assert entry["repaired_torn_line_bytes"] == len(fragment)
    assert all(line.endswith(b"\n") for line in lines)
    assert verify(cli).code == 0


def test_torn_line_of_many_chunks(yt_home, six_entries):
    # A torn line longer than the 64 KiB read window of the repair.
    fragment = b'{"x":"' + b"a" * 200_000
    with log_path(yt_home).open("ab") as handle:
        handle.write(fragment)
    audit_log(yt_home).append({"event": "command", "command": "test"})
    lines = read_lines(yt_home)
    assert lines[:6] == six_entries
    assert len(lines) == 7
    torn = (yt_home.data_dir / "audit.jsonl.torn").read_bytes()
    assert torn == fragment + b"\n"
    assert audit_log(yt_home).verify()["ok"] is True


# ----------------------------------------------------------- concurrency

WORKER = """
import sys
sys.path.insert(0, sys.argv[1])
import yt

for _ in range(int(sys.argv[2])):
    code = yt.main(["security", "token-status"])
    if code != 0:
        sys.exit(code)
"""


def test_audit_concurrent_processes(cli, yt_home):
    workers, per_worker = 8, 50
    # One command first, so that the workers find the TLS settings
    # recorded and each entry they write is a command entry.
    run_status(cli)
    env = dict(yt_home.env(), **ENV)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(YT_PY.parent), str(per_worker)],
            env=env,
            cwd=yt_home.home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    errors = []
    for process in processes:
        _, err = process.communicate(timeout=120)
        errors.append((process.returncode, err.decode()))
    assert errors == [(0, "")] * workers

    lines = read_lines(yt_home)
    assert all(line.endswith(b"\n") for line in lines)
    entries = [json.loads(line) for line in lines]
    assert len(commands(entries)) == workers * per_worker + 1
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert not (yt_home.data_dir / "audit.jsonl.torn").exists()
    result = verify(cli)
    assert result.code == 0, result.err


# -------------------------------------------------------------- trimming


def test_audit_trim_direct_appends(yt_home):
    audit = audit_log(yt_home, max_entries=10)
    path = log_path(yt_home)
    rewrites = []
    for number in range(1, 41):
        before = path.stat() if path.exists() else None
        entry = audit.append({"event": "command", "command": "test"})
        after = path.stat()
        assert entry["seq"] == number
        lines = read_lines(yt_home)
        assert len(lines) <= 20
        if before is not None and after.st_ino != before.st_ino:
            rewrites.append(number)
        elif before is not None:
            # Not rewritten: exactly one line was appended.
            assert after.st_size == before.st_size + len(lines[-1])
    # Trimming happens in batches, not on every append beyond the max.
    assert rewrites == [21, 32]
    seqs = [json.loads(line)["seq"] for line in read_lines(yt_home)]
    assert seqs == list(range(23, 41))
    report = audit.verify()
    assert report["ok"] is True, report
    assert report["first_seq"] == 23
    assert report["entries"] == 18


def test_audit_trim_cli(cli, yt_home):
    env = {"YT_AUDIT_MAX_ENTRIES": "10"}
    for _ in range(40):
        run_status(cli, env=env)
        assert len(read_lines(yt_home)) <= 20
    entries = read_entries(yt_home)
    assert entries[-1]["seq"] == 41
    assert [e["seq"] for e in entries] == list(range(42 - len(entries), 42))
    result = cli("security", "audit", "--verify", env=dict(ENV, **env))
    assert result.code == 0, result.err


def test_audit_invalid_max_entries(cli, yt_home):
    result = cli(*STATUS, env=dict(ENV, YT_AUDIT_MAX_ENTRIES="5"))
    assert result.code == 2
    assert "invalid value '5' for YT_AUDIT_MAX_ENTRIES" in result.err
    # The failed command is still recorded.
    entry = read_entries(yt_home)[-1]
    assert entry["args"] == list(STATUS)
    assert entry["exit_code"] == 2


# --------------------------------------------------------------- listing


def test_audit_list_json(cli, yt_home):
    run_status(cli, 4)
    result = cli(
        "security", "audit", "--limit", "3", "--format", "json", env=ENV
    )
    assert result.code == 0
    listed = json.loads(result.out)
    assert isinstance(listed, list)
    assert [e["seq"] for e in listed] == [3, 4, 5]
    assert listed == read_entries(yt_home)[2:5]


def test_audit_list_jsonl(cli, yt_home):
    run_status(cli, 4)
    result = cli(
        "security", "audit", "--limit", "2", "--format", "jsonl", env=ENV
    )
    assert result.code == 0
    lines = result.out.splitlines()
    assert len(lines) == 2
    assert [json.loads(line)["seq"] for line in lines] == [4, 5]


def test_audit_list_table(cli, yt_home):
    run_status(cli, 2)
    result = cli("security", "audit", "--limit", "2", env=ENV)
    assert result.code == 0
    rows = result.out.splitlines()
    assert rows[0].split()[:3] == ["SEQ", "TIME", "(UTC)"]
    assert len(rows) == 3
    assert "security token-status" in rows[-1]
    assert "success" in rows[-1]


def test_audit_list_negative_limit(cli, yt_home):
    run_status(cli)
    result = cli("security", "audit", "--limit", "-1", env=ENV)
    assert result.code == 2
    assert "--limit" in result.err


def test_audit_list_empty(cli, yt_home):
    result = cli("security", "audit", "--format", "json", env=ENV)
    assert result.code == 0
    assert json.loads(result.out) == []


@pytest.mark.skipif(
    not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io"
)
def test_audit_list_reads_only_tail(cli, yt_home):
    run_status(cli)
    key = audit_key(yt_home)
    lines = []
    prev = ""
    for seq in range(1, 20_001):
        entry = {
            "event": "command",
            "command": "test",
            "seq": seq,
            "prev": prev,
            "args": ["x" * 200],
        }
        line = entry_line(key, entry)
        prev = json.loads(line)["mac"]
        lines.append(line)
    write_lines(yt_home, lines)
    write_state(
        yt_home,
        key,
        {
            "count": 20_000,
            "first_seq": 1,
            "last_mac": prev,
            "last_seq": 20_000,
            "tls": read_entries_state_tls(yt_home),
        },
    )
    size = log_path(yt_home).stat().st_size
    assert size > 4_000_000

    def bytes_read():
        text = Path("/proc/self/io").read_text()
        return int(re.search(r"^rchar: (\d+)$", text, re.M).group(1))

    start = bytes_read()
    # A maximum above the entry count, so that no trimming reads the log.
    result = cli(
        "security",
        "audit",
        "--limit",
        "3",
        "--format",
        "json",
        env=dict(ENV, YT_AUDIT_MAX_ENTRIES="100000"),
    )
    used = bytes_read() - start
    assert result.code == 0
    assert [e["seq"] for e in json.loads(result.out)] == [19998, 19999, 20000]
    assert used < size // 10
    assert audit_log(yt_home).verify()["ok"] is True


def read_entries_state_tls(home):
    return json.loads(state_path(home).read_text()).get("tls")


# ----------------------------------------------------------- clear-audit


def test_clear_audit_no_terminal(cli, yt_home):
    run_status(cli, 2)
    before = read_lines(yt_home)
    result = cli("security", "clear-audit", env=ENV)
    assert result.code == 2
    assert "--force" in result.err
    assert read_lines(yt_home)[: len(before)] == before


def test_clear_audit_force(cli, yt_home, monkeypatch):
    run_status(cli, 3)
    result = cli("security", "clear-audit", "--force", env=ENV)
    assert result.code == 0
    assert "Cleared 4 entries" in result.err
    entries = read_entries(yt_home)
    first = entries[0]
    assert first["event"] == "audit_cleared"
    assert first["seq"] == 1
    assert first["user"] == getpass.getuser()
    assert first["host"] == os.uname().nodename
    assert first["removed_entries"] == 4
    assert first["previous_last_seq"] == 4
    assert TS_FORMAT.fullmatch(first["ts"])
    # The clear-audit command itself comes after it.
    assert entries[-1]["command"] == "security clear-audit"
    assert entries[-1]["args"] == ["security", "clear-audit", "--force"]
    assert verify(cli).code == 0


def test_clear_audit_force_damaged_log(cli, yt_home):
    yt_home.data_dir.mkdir(mode=0o700, parents=True)
    log_path(yt_home).write_bytes(b"\x00\xffnot json\n{broken\n")
    result = cli("security", "clear-audit", env=ENV)
    assert result.code == 2
    result = cli("security", "clear-audit", "--force", env=ENV)
    assert result.code == 0, result.err
    assert read_entries(yt_home)[0]["event"] == "audit_cleared"
    assert verify(cli).code == 0


def test_clear_audit_force_after_tampering(cli, yt_home, six_entries):
    write_lines(yt_home, six_entries[2:])
    state_path(yt_home).write_text("{}")
    result = cli("security", "clear-audit", "--force", env=ENV)
    assert result.code == 0, result.err
    assert verify(cli).code == 0


def test_clear_audit_force_missing_key(cli, yt_home, six_entries):
    (yt_home.config_dir / "audit.key").unlink()
    result = cli("security", "clear-audit", "--force", env=ENV)
    assert result.code == 0, result.err
    assert verify(cli).code == 0


@pytest.mark.parametrize(
    ("reply", "code", "cleared"), [("y\n", 0, True), ("n\n", 1, False)]
)
def test_clear_audit_confirm_on_terminal(
    cli, yt_home, monkeypatch, reply, code, cleared
):
    run_status(cli, 2)
    monkeypatch.setattr(yt, "_is_tty", lambda stream: True)
    result = cli("security", "clear-audit", input=reply, env=ENV)
    assert result.code == code
    first = read_entries(yt_home)[0]
    assert (first["event"] == "audit_cleared") is cleared


# ------------------------------------------------------ unwritable log


def _one_warning(err: str) -> None:
    assert err.count("was not written") == 1, err
    assert "Traceback" not in err


def test_audit_unwritable_data_dir(cli, yt_home):
    blocker = yt_home.home / "a-file"
    blocker.write_text("not a directory\n")
    env = dict(ENV, YT_DATA_DIR=str(blocker / "data"))
    result = cli(*STATUS, env=env)
    assert result.code == 0
    assert "permanent" in result.out
    _one_warning(result.err)


def test_audit_unwritable_keeps_exit_code(cli, yt_home, server):
    blocker = yt_home.home / "a-file"
    blocker.write_text("not a directory\n")
    env = {
        "YOUTRACK_BASE_URL": server.url,
        "YOUTRACK_TOKEN": DEFAULT_TOKEN,
        "YT_DATA_DIR": str(blocker / "data"),
    }
    result = cli("issues", "show", "DEMO-999", env=env)
    assert result.code == 4
    _one_warning(result.err)


def test_audit_log_path_is_directory(cli, yt_home):
    run_status(cli)
    log_path(yt_home).unlink()
    log_path(yt_home).mkdir()
    result = cli(*STATUS, env=ENV)
    assert result.code == 0
    _one_warning(result.err)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root can write a read-only directory",
)
def test_audit_read_only_data_dir(cli, yt_home):
    run_status(cli)
    yt_home.data_dir.chmod(0o500)
    log_path(yt_home).chmod(0o400)
    try:
        result = cli(*STATUS, env=ENV)
    finally:
        yt_home.data_dir.chmod(0o700)
        log_path(yt_home).chmod(0o600)
    assert result.code == 0
    _one_warning(result.err)


@pytest.fixture
def tiny_data_dir(yt_home):
    """Mount a 64 KiB tmpfs on the data directory, as root only."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount and umount not found")
    yt_home.data_dir.mkdir(mode=0o700, parents=True)
    mounted = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=64k,mode=0700",
            "tmpfs",
            str(yt_home.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield yt_home.data_dir
    finally:
        subprocess.run(
            ["umount", str(yt_home.data_dir)], timeout=10, check=True
        )


def test_audit_full_disk(cli, yt_home, tiny_data_dir):
    run_status(cli, 2)
    filler = tiny_data_dir / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left"):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    result = cli(*STATUS, env=ENV)
    assert result.code == 0
    assert "permanent" in result.out
    # The entry may still fit into the log's last block while the new
    # state file does not; either way there is one warning line.
    assert "Traceback" not in result.err
    assert len(result.err.splitlines()) == 1, result.err
    assert "No space left on device" in result.err

    # With space again, the log verifies and continues.
    filler.unlink()
    result = verify(cli)
    assert result.code == 0, result.err
    run_status(cli)
    assert not (tiny_data_dir / "audit.jsonl.torn").exists()
    result = verify(cli)
    assert result.code == 0, result.err
    entries = read_entries(yt_home)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))


# --------------------------------------------------- malformed mac fields


def test_verify_first_prev_not_string(cli, yt_home, six_entries):
    lines = list(six_entries)
    first = json.loads(lines[0])
    first["prev"] = 12345
    lines[0] = (canonical(first) + "\n").encode()
    write_lines(yt_home, lines)

    result = verify(cli)

    assert result.code == 6
    assert "failed verification" in result.err
    assert "Traceback" not in result.err


def test_non_ascii_mac_last_line(cli, yt_home, six_entries):
    lines = list(six_entries)
    lines[-1] = lines[-1][:-4] + 'é"}\n'.encode()
    write_lines(yt_home, lines)

    verified = verify(cli)
    appended = cli(*STATUS, env=ENV)

    assert verified.code == 6
    assert "Traceback" not in verified.err
    assert appended.code == 0
    assert "Traceback" not in appended.err
    # --verify's own entry followed the last valid line, with a warning.
    assert "ends in 1 line(s) that are not valid audit entries" in verified.err


# ------------------------------------------- long and deeply nested lines


def test_entry_longer_than_tail_window(cli, yt_home):
    # An argument of 200,000 characters makes a line far longer than the
    # 64 KiB that appends read from the end of the log at first.
    long_value = "x" * 200_000
    result = cli("config", "set", "YOUTRACK_TIMEOUT", long_value, env=ENV)
    assert result.code == 2
    assert max(len(line) for line in read_lines(yt_home)) > 200_000

    run_status(cli, 2)

    entries = read_entries(yt_home)
    assert [entry["seq"] for entry in entries] == list(
        range(1, len(entries) + 1))
    result = verify(cli)
    assert result.code == 0, result.err


def test_audit_limit_shows_long_entry(cli, yt_home):
    cli("config", "set", "YOUTRACK_TIMEOUT", "y" * 100_000, env=ENV)

    result = cli("security", "audit", "--limit", "1", "--format", "json",
                 env=ENV)

    assert result.code == 0, result.err
    [entry] = json.loads(result.out)
    assert entry["command"] == "config set"


DEEP_JSON = b"[" * 50_000 + b"\n"


def test_deeply_nested_last_line(cli, yt_home, six_entries):
    write_lines(yt_home, list(six_entries) + [DEEP_JSON])

    status = cli(*STATUS, env=ENV)
    result = verify(cli)
    cleared = cli("security", "clear-audit", "--force", env=ENV)

    assert status.code == 0, status.err
    assert "Traceback" not in status.err
    assert "ends in 1 line(s) that are not valid audit entries" in status.err
    assert result.code == 6, result.err
    assert "line 7: line is not an audit entry" in result.err
    assert "Traceback" not in result.err
    assert cleared.code == 0, cleared.err
    assert verify(cli).code == 0


def test_deeply_nested_state_file(cli, yt_home, six_entries):
    state_path(yt_home).write_bytes(DEEP_JSON)

    result = verify(cli)

    assert result.code == 6, result.err
    assert "audit state" in result.err
    assert "damaged or was edited" in result.err
    assert "Traceback" not in result.err


def test_audit_list_deeply_nested_line(cli, yt_home, six_entries):
    write_lines(yt_home, list(six_entries) + [DEEP_JSON])

    result = cli("security", "audit", "--limit", "2", "--format", "json",
                 env=ENV)

    assert result.code == 0, result.err
    entries = json.loads(result.out)
    assert entries[-1]["event"] == "unreadable"


# ------------------------------------------------------- damaged audit key


@pytest.mark.parametrize("content", [b"", b"not base64\n", b"bm90IGEga2V5\n"])
def test_verify_damaged_key(cli, yt_home, six_entries, content):
    (yt_home.config_dir / "audit.key").write_bytes(content)

    text = verify(cli)
    report = cli("security", "audit", "--verify", "--format", "json",
                 env=ENV)

    assert text.code == 6, text.err
    assert "audit.key is damaged (expected 32 bytes in base64)" in text.err
    assert "clear-audit --force" in text.err
    assert report.code == 6, report.err
    data = json.loads(report.out)
    assert data["ok"] is False
    assert "is damaged" in data["problem"]


def test_verify_missing_key_json(cli, yt_home, six_entries):
    (yt_home.config_dir / "audit.key").unlink()

    report = cli("security", "audit", "--verify", "--format", "json",
                 env=ENV)

    assert report.code == 6, report.err
    assert "is missing" in json.loads(report.out)["problem"]


# ------------------------------------------ lines that yt did not write


def test_huge_seq_line_skipped(cli, yt_home, six_entries):
    with log_path(yt_home).open("ab") as handle:
        handle.write(b'{"seq":' + b"9" * 4300 + b',"mac":"a"}\n')

    status = cli(*STATUS, env=ENV)
    result = verify(cli)

    assert status.code == 0, status.err
    assert "Traceback" not in status.err + result.err
    assert json.loads(read_lines(yt_home)[7])["seq"] == 7
    assert result.code == 6


def test_forged_entry_not_followed(cli, yt_home, six_entries):
    # A line that looks like the next entry but whose mac is made up.
    last = json.loads(six_entries[-1])
    forged = {"event": "command", "seq": 7, "prev": last["mac"],
              "mac": "0" * 64}
    with log_path(yt_home).open("ab") as handle:
        handle.write((canonical(forged) + "\n").encode())

    status = cli(*STATUS, env=ENV)
    result = verify(cli)

    assert status.code == 0, status.err
    entry = json.loads(read_lines(yt_home)[7])
    assert entry["seq"] == 7
    assert entry["prev"] == last["mac"]
    assert entry["skipped_bad_lines"] == 1
    assert result.code == 6
    assert "line 7: " in result.err


def test_garbage_log_starts_new_chain(cli, yt_home, six_entries):
    write_lines(yt_home, [b"garbage\n"])

    status = cli(*STATUS, env=ENV)
    result = verify(cli)

    assert status.code == 0, status.err
    assert "contains no valid audit entry" in status.err
    entries = [json.loads(line) for line in read_lines(yt_home)[1:]]
    assert entries[0]["seq"] == 1
    assert entries[0]["skipped_bad_lines"] == 1
    assert result.code == 6


def test_damage_evidence_survives_trimming(cli, yt_home, six_entries):
    with log_path(yt_home).open("ab") as handle:
        handle.write(b"garbage\n")
    env = dict(ENV, YT_AUDIT_MAX_ENTRIES="10")

    for _ in range(25):
        assert cli(*STATUS, env=env).code == 0

    assert len(read_lines(yt_home)) > 25
    assert verify(cli).code == 6
    cleared = cli("security", "clear-audit", "--force", env=env)
    assert cleared.code == 0, cleared.err
    for _ in range(25):
        assert cli(*STATUS, env=env).code == 0
    # Trimming runs again: at most max + 10 lines, and then 10 are kept.
    assert len(read_lines(yt_home)) <= 20
    assert verify(cli).code == 0


def test_state_path_is_directory(cli, yt_home, six_entries):
    state_path(yt_home).unlink()
    state_path(yt_home).mkdir()

    result = cli(*STATUS, env=ENV)

    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert "was not written" not in result.err
    assert "the audit entries were written, but the state file" in result.err
    assert json.loads(read_lines(yt_home)[-1])["command"] == (
        "security token-status")
