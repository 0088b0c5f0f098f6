"""Output: ASCII fallback, colour, table width, escaping of server text,
and Ctrl-C.

Terminal behaviour is checked in a subprocess whose stdout and stderr are
pseudo-terminals with a set window size.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import selectors
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from conftest import YT_PY
from fake_youtrack import DEFAULT_TOKEN

import yt

SSL_WARNING = (
    "SSL verification is DISABLED. This is insecure and should only be "
    "used in development."
)
ESC = "\x1b"


def _open_pty(columns: int):
    controller, terminal = os.openpty()
    size = struct.pack("HHHH", 24, columns, 0, 0)
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, size)
    return controller, terminal


def run_in_terminal(yt_home, *args, env=None, columns=80, timeout=30):
    """Run yt with stdout and stderr on pseudo-terminals.

    Returns (exit code, stdout text, stderr text), with the terminal's
    CR LF line ends turned back into LF.
    """
    child_env = yt_home.env()
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = str(value)
    out_controller, out_terminal = _open_pty(columns)
    err_controller, err_terminal = _open_pty(columns)
    try:
        process = subprocess.Popen(
            [sys.executable, str(YT_PY), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=out_terminal,
            stderr=err_terminal,
            env=child_env,
            cwd=yt_home.home,
            start_new_session=True,
        )
    finally:
        os.close(out_terminal)
        os.close(err_terminal)
    chunks = {out_controller: b"", err_controller: b""}
    selector = selectors.DefaultSelector()
    for descriptor in chunks:
        selector.register(descriptor, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                try:
                    data = os.read(key.fd, 65536)
                except OSError:  # EIO once the child closed the terminal
                    data = b""
                if data:
                    chunks[key.fd] += data
                else:
                    selector.unregister(key.fd)
        code = process.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        selector.close()
        os.close(out_controller)
        os.close(err_controller)

    def text(data: bytes) -> str:
        return data.decode("utf-8", "backslashreplace").replace("\r\n", "\n")

    return code, text(chunks[out_controller]), text(chunks[err_controller])


def api_env(server) -> dict:
    return {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": DEFAULT_TOKEN}


# ---------------------------------------------------------- ASCII fallback


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("utf-8", "✅ permanent (no expiry date)"),
        ("ascii", "[permanent] permanent (no expiry date)"),
        ("latin-1", "[permanent] permanent (no expiry date)"),
    ],
)
def test_status_marker_fallback(cli, api, encoding, expected):
    result = cli("security", "token-status", encoding=encoding)

    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == expected


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", f"⚠️ {SSL_WARNING}"), ("ascii", f"WARNING: {SSL_WARNING}")],
)
def test_warning_marker_fallback(cli, yt_home, tls_server, encoding, expected):
    server = tls_server("valid")
    env = dict(api_env(server), YOUTRACK_VERIFY_SSL="false")

    result = cli("issues", "list", env=env, encoding=encoding)

    assert result.code == 0, result.err
    assert result.err.splitlines() == [expected]


def test_verified_marker_fallback(cli, yt_home):
    cli("config", "list")

    utf8 = cli("security", "audit", "--verify")
    ascii_only = cli("security", "audit", "--verify", encoding="ascii")

    assert utf8.code == 0, utf8.err
    assert utf8.out.startswith("✅ audit log verified: ")
    assert ascii_only.code == 0, ascii_only.err
    assert ascii_only.out.startswith("[OK] audit log verified: ")


NON_ASCII_SUMMARY = "Café ☕ crash — “quoted” 🟢"


def test_non_ascii_data_on_ascii_stdout(cli, api):
    api.add_issue(summary=NON_ASCII_SUMMARY)

    table = cli("issues", "list", encoding="ascii")
    show_result = cli("issues", "show", "DEMO-4", encoding="ascii")
    listing = cli("issues", "list", "--format", "json", encoding="ascii")
    single = cli("issues", "show", "DEMO-4", "--format", "json",
                 encoding="ascii")

    for result in (table, show_result, listing, single):
        assert result.code == 0, result.err
        assert "internal error" not in result.err
    assert "Caf\\u00e9 \\u2615 crash" in table.out
    assert show_result.out.startswith("DEMO-4: Caf\\u00e9")
    # The escapes keep JSON valid and decode to the original text.
    assert json.loads(listing.out)[0]["summary"] == NON_ASCII_SUMMARY
    assert json.loads(single.out)["summary"] == NON_ASCII_SUMMARY


def test_lone_surrogate_from_server(cli, api):
    body = '[{"idReadable": "DEMO-9", "summary": "broken \\ud800 text"}]'
    api.fail_next("status", status=200, body=body)

    result = cli("issues", "list")

    assert result.code == 0, result.err
    assert "DEMO-9" in result.out
    assert "broken \\ud800 text" in result.out


@pytest.mark.parametrize(
    "env",
    [
        {"PYTHONIOENCODING": "ascii"},
        {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0",
         "PYTHONUTF8": "0", "PYTHONIOENCODING": None},
    ],
    ids=["PYTHONIOENCODING", "C locale"],
)
def test_ascii_subprocess(run_yt, api, env):
    api.add_issue(summary=NON_ASCII_SUMMARY)

    status = run_yt("security", "token-status", env=env)
    listing = run_yt("issues", "list", env=env)
    as_json = run_yt("issues", "list", "--format", "json", env=env)

    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("[permanent] permanent")
    assert listing.returncode == 0, listing.stderr
    assert "Caf\\u00e9" in listing.stdout
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)[0]["summary"] == NON_ASCII_SUMMARY
    for result in (status, listing, as_json):
        assert "Traceback" not in result.stderr


def test_table_ellipsis_fallback():
    long_text = "A summary that is far too long for forty columns"

    def render(encoding):
        stream = io.TextIOWrapper(io.BytesIO(), encoding=encoding)
        output = yt.Output(stream, stream, {})
        yt.Table(output, ["ID", "SUMMARY"], flexible=1, width=40).rows(
            [["DEMO-1", long_text]]
        )
        stream.flush()
        return stream.buffer.getvalue().decode(encoding).splitlines()

    utf8 = render("utf-8")
    ascii_only = render("ascii")

    assert utf8[1].endswith("…")
    assert len(utf8[1]) == 40
    assert ascii_only[1].endswith("...")
    assert len(ascii_only[1]) == 40
    assert ascii_only[1][len("DEMO-1  "):-3] in long_text


# ----------------------------------------------------------------- colour


def test_colour_on_terminal(yt_home, api):
    code, out, err = run_in_terminal(yt_home, "issues", "list")

    assert code == 0, err
    assert out.startswith("\x1b[2mID")
    assert "DEMO-1" in out


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("issues", "list"), {"NO_COLOR": "1"}),
        (("--no-color", "issues", "list"), None),
        (("issues", "list", "--no-color"), None),
        (("issues", "list"), {"TERM": "dumb"}),
    ],
    ids=["NO_COLOR", "--no-color first", "--no-color last", "TERM=dumb"],
)
def test_no_colour(yt_home, api, args, env):
    code, out, err = run_in_terminal(yt_home, *args, env=env)

    assert code == 0, err
    assert out.startswith("ID")
    assert "DEMO-1" in out
    assert ESC not in out
    assert ESC not in err


def test_error_colour_on_terminal(yt_home, api):
    code, out, err = run_in_terminal(yt_home, "issues", "show", "DEMO-404")
    plain = run_in_terminal(
        yt_home, "issues", "show", "DEMO-404", env={"NO_COLOR": "1"}
    )

    assert code == 4
    assert err.startswith("\x1b[31myt: error: ")
    assert plain[0] == 4
    assert plain[2].startswith("yt: error: ")
    assert ESC not in plain[2]


def test_no_colour_when_piped(run_yt, cli, api):
    piped = run_yt("issues", "list")
    failed = run_yt("issues", "show", "DEMO-404")
    captured = cli("issues", "list")

    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith("ID")
    assert ESC not in piped.stdout + piped.stderr
    assert failed.returncode == 4
    assert failed.stderr.startswith("yt: error: ")
    assert ESC not in captured.out + captured.err


# ------------------------------------------------------------ table width


def _rows_by_id(out: str) -> dict:
    return {line.split()[0]: line for line in out.splitlines()[1:]}


@pytest.mark.parametrize(
    ("columns", "env"),
    [(60, None), (100, {"COLUMNS": "60"})],
    ids=["window size", "COLUMNS"],
)
def test_table_fits_terminal(yt_home, api, columns, env):
    code, out, err = run_in_terminal(
        yt_home, "--no-color", "issues", "list", columns=columns, env=env
    )

    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4
    assert all(len(line) <= 60 for line in lines)
    row = _rows_by_id(out)["DEMO-1"]
    assert row.endswith("…")
    summary = row.split("Administrator", 1)[1].strip()
    assert "Login fails when the token has expired".startswith(summary[:-1])
    assert len(summary) < len("Login fails when the token has expired")


def test_table_fits_ascii_terminal(yt_home, api):
    code, out, err = run_in_terminal(
        yt_home, "--no-color", "issues", "list", columns=60,
        env={"PYTHONIOENCODING": "ascii"},
    )

    assert code == 0, err
    row = _rows_by_id(out)["DEMO-1"]
    assert row.endswith("...")
    assert len(row) <= 60


def test_table_not_truncated_when_piped(run_yt, api):
    summary = "A very long summary " * 10
    api.add_issue(summary=summary.strip())

    result = run_yt("issues", "list", env={"COLUMNS": "40"})

    assert result.returncode == 0, result.stderr
    assert summary.strip() in result.stdout
    assert "…" not in result.stdout


# ------------------------------------------------- control characters

EVIL_SUMMARY = "Evil \x1b[31mred\x1b[0m \x07bell \x9b2J end"
EVIL_TEXT = "line one\x1b]0;new title\x07\nline two \x1b[2J"


@pytest.fixture
def evil_issue(api):
    issue = api.add_issue(summary=EVIL_SUMMARY, description=EVIL_TEXT)
    api._insert_comment(issue, "jdoe", EVIL_TEXT, api.clock())
    api.add_project("EVIL", "Evil \x1b[5mblinking\x1b[0m project")
    return issue["idReadable"]


def assert_escaped(text: str):
    assert ESC not in text
    assert "\x07" not in text
    assert "\x9b" not in text


def test_control_chars_in_list(cli, evil_issue):
    result = cli("issues", "list")

    assert result.code == 0, result.err
    assert_escaped(result.out)
    assert "Evil \\x1b[31mred\\x1b[0m \\x07bell \\x9b2J end" in result.out


def test_control_chars_in_show(cli, evil_issue):
    result = cli("issues", "show", evil_issue)

    assert result.code == 0, result.err
    assert_escaped(result.out)
    assert f"{evil_issue}: Evil \\x1b[31mred" in result.out
    assert "  line one\\x1b]0;new title\\x07" in result.out
    assert "    line two \\x1b[2J" in result.out


def test_control_chars_in_projects(cli, evil_issue):
    result = cli("projects", "list")

    assert result.code == 0, result.err
    assert_escaped(result.out)
    assert "Evil \\x1b[5mblinking\\x1b[0m project" in result.out


def test_control_chars_in_json(cli, evil_issue):
    listing = cli("issues", "list", "--format", "json")
    show_result = cli("issues", "show", evil_issue, "--format", "json")
    projects = cli("projects", "list", "--format", "json")

    for result in (listing, show_result, projects):
        assert result.code == 0, result.err
        assert_escaped(result.out)
    # JSON escapes keep the server's text intact for programs.
    assert json.loads(listing.out)[0]["summary"] == EVIL_SUMMARY
    issue = json.loads(show_result.out)
    assert issue["description"] == EVIL_TEXT
    assert issue["comments"][-1]["text"] == EVIL_TEXT
    names = [project["name"] for project in json.loads(projects.out)]
    assert "Evil \x1b[5mblinking\x1b[0m project" in names


def test_control_chars_in_created_notice(cli, api):
    result = cli("issues", "create", "DEMO", EVIL_SUMMARY)

    assert result.code == 0, result.err
    assert_escaped(result.err)
    assert "Created DEMO-4: Evil \\x1b[31mred" in result.err


def test_control_chars_on_terminal(yt_home, evil_issue):
    code, out, err = run_in_terminal(
        yt_home, "--no-color", "issues", "show", evil_issue
    )

    assert code == 0, err
    assert_escaped(out)


# ----------------------------------------------------------------- Ctrl-C


def test_ctrl_c_exits_130(api, yt_home):
    api.fail_next("delay", seconds=30, match="/api/issues$")
    process = subprocess.Popen(
        [sys.executable, str(YT_PY), "issues", "list"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=yt_home.env(),
        cwd=yt_home.home,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not api.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.requests, "yt never reached the server"
        os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    stderr = err.decode("utf-8", "backslashreplace")
    assert process.returncode == 130
    assert "yt: interrupted" in stderr
    assert "Traceback" not in stderr
    assert "KeyboardInterrupt" not in stderr
    assert out == b""
    audit = yt_home.data_dir / "audit.jsonl"
    last = json.loads(audit.read_text().splitlines()[-1])
    assert last["status"] == "interrupted"
    assert last["exit_code"] == 130


def test_piped_table_pads_to_cap():
    stream = io.StringIO()
    output = yt.Output(stream, stream, {})
    long_cell = "x" * 5000

    yt.Table(output, ["ARGS", "STATUS"], flexible=0).rows(
        [[long_cell, "ok"], ["short", "ok"]])

    lines = stream.getvalue().splitlines()
    assert lines[1] == long_cell + "  ok"
    assert lines[2] == "short".ljust(80) + "  ok"
