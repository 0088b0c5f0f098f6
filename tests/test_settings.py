"""Settings: precedence, the config file parser and validation of values."""

from __future__ import annotations

import json

import pytest
from fake_youtrack import DEFAULT_TOKEN, FakeYouTrack

import yt

BOOLEAN_FORM = "true/false/1/0/yes/no/on/off"
URL_FORM = "https://youtrack.example.com or https://host/youtrack"


def write_config(yt_home, text, mode=0o600):
    yt_home.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = yt_home.config_dir / ".env"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    path.chmod(mode)
    return path


def config_rows(cli, *flags) -> dict:
    result = cli(*flags, "config", "list", "--format", "json")
    assert result.code == 0, result.err
    return {row["key"]: row for row in json.loads(result.out)}


@pytest.fixture
def servers():
    """Two fake servers, to see which one a command reaches."""
    with FakeYouTrack(issues=1) as first, FakeYouTrack(issues=2) as second:
        yield first, second


# ------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("file_value", "env_value", "value", "source"),
    [
        (None, None, "30", "default"),
        ("12", None, "12", "config file"),
        ("12", "7", "7", "environment"),
        (None, "7", "7", "environment"),
        ("12", "", "12", "config file"),
    ],
)
def test_precedence_env_file_default(
    cli, yt_home, monkeypatch, file_value, env_value, value, source
):
    if file_value is not None:
        write_config(yt_home, f"YOUTRACK_TIMEOUT={file_value}\n")
    if env_value is not None:
        monkeypatch.setenv("YOUTRACK_TIMEOUT", env_value)

    row = config_rows(cli)["YOUTRACK_TIMEOUT"]

    assert row["value"] == value
    assert row["source"] == source


def test_precedence_flag_first(cli, yt_home, monkeypatch):
    write_config(yt_home, "YOUTRACK_BASE_URL=https://file.example\n")
    monkeypatch.setenv("YOUTRACK_BASE_URL", "https://env.example")

    with_flag = config_rows(cli, "--base-url", "https://flag.example")
    without_flag = config_rows(cli)

    assert with_flag["YOUTRACK_BASE_URL"]["value"] == "https://flag.example"
    assert with_flag["YOUTRACK_BASE_URL"]["source"] == "flag"
    assert without_flag["YOUTRACK_BASE_URL"]["value"] == (
        "https://env.example"
    )


def test_precedence_reaches_server(cli, yt_home, monkeypatch, servers):
    from_file, from_env = servers
    write_config(yt_home, f"YOUTRACK_BASE_URL={from_file.url}\n")
    monkeypatch.setenv("YOUTRACK_TOKEN", DEFAULT_TOKEN)

    file_only = cli("issues", "list", "--format", "json")
    monkeypatch.setenv("YOUTRACK_BASE_URL", from_env.url)
    env_wins = cli("issues", "list", "--format", "json")
    flag_wins = cli(
        "--base-url", from_file.url, "issues", "list", "--format", "json"
    )
    flag_after = cli(
        "issues", "list", "--format", "json", "--base-url", from_file.url
    )

    assert [len(json.loads(r.out)) for r in (file_only, env_wins)] == [1, 2]
    assert len(json.loads(flag_wins.out)) == 1
    assert len(json.loads(flag_after.out)) == 1
    assert len(from_file.requests) == 3
    assert len(from_env.requests) == 1


def test_env_token_wins_over_config_token(cli, yt_home, monkeypatch, server):
    write_config(
        yt_home,
        f"YOUTRACK_BASE_URL={server.url}\nYOUTRACK_TOKEN=perm:stale.old\n",
    )
    monkeypatch.setenv("YOUTRACK_TOKEN", DEFAULT_TOKEN)

    result = cli("api", "users/me")

    assert result.code == 0, result.err
    assert server.requests[0].headers["Authorization"] == (
        f"Bearer {DEFAULT_TOKEN}"
    )


# ------------------------------------------------------ config file parser


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("KEY=value", "value"),
        ("export KEY=value", "value"),
        ("  export   KEY = spaced value  ", "spaced value"),
        ('KEY="quoted # not a comment"', "quoted # not a comment"),
        ("KEY='single quoted'", "single quoted"),
        ("KEY='quoted'  # comment", "quoted"),
        ("KEY=value # comment", "value"),
        ("KEY=a#b", "a#b"),
        ('KEY=""', ""),
        ("KEY=", ""),
        ("KEY=https://host/youtrack?x=1", "https://host/youtrack?x=1"),
    ],
)
def test_config_parser_values(line, value):
    assert yt.parse_config_text(line, "/cfg/.env") == {"KEY": value}


def test_config_parser_skips_comments_and_blanks():
    text = (
        "# a comment\n"
        "\n"
        "   # indented comment\n"
        "FIRST=1\n"
        "\t\n"
        "SECOND=2\n"
        "FIRST=3\n"
    )

    assert yt.parse_config_text(text, "/cfg/.env") == {
        "FIRST": "3", "SECOND": "2",
    }


@pytest.mark.parametrize(
    ("text", "line_number", "problem"),
    [
        ("GOOD=1\njust some words\n", 2, "expected KEY=VALUE"),
        ("=value\n", 1, "expected KEY=VALUE"),
        ("1KEY=value\n", 1, "expected KEY=VALUE"),
        ("A=1\nB=2\nKEY\n", 3, "expected KEY=VALUE"),
        ('KEY="unterminated\n', 1, "unbalanced \" quote"),
        ("KEY='a' trailing\n", 1, "unbalanced ' quote"),
    ],
)
def test_config_parser_bad_lines(text, line_number, problem):
    with pytest.raises(yt.UsageError) as caught:
        yt.parse_config_text(text, "/cfg/.env")

    message = str(caught.value)
    assert message.startswith(f"/cfg/.env, line {line_number}:")
    assert problem in message


def test_config_bad_line_exit_2(cli, yt_home, server, monkeypatch):
    path = write_config(yt_home, "# ok\nYOUTRACK_TIMEOUT=5\nnot a setting\n")
    monkeypatch.setenv("YOUTRACK_BASE_URL", server.url)
    monkeypatch.setenv("YOUTRACK_TOKEN", DEFAULT_TOKEN)

    result = cli("issues", "list")

    assert result.code == 2
    assert f"{path}, line 3: expected KEY=VALUE" in result.err
    assert "Traceback" not in result.err
    assert server.requests == []


def test_config_not_utf8(cli, yt_home):
    path = write_config(yt_home, b"YOUTRACK_TIMEOUT=\xff\xfe\n")

    result = cli("config", "list")

    assert result.code == 2
    assert f"{path} is not UTF-8 text" in result.err


def test_config_token_file_must_be_private(cli, yt_home):
    path = write_config(yt_home, "YOUTRACK_TOKEN=perm:abc.def\n", 0o644)

    result = cli("config", "list")

    assert result.code != 0
    assert f"chmod 600 {path}" in result.err
    assert "perm:abc.def" not in result.err


# ------------------------------------------------------- value validation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True), ("TRUE", True), ("1", True), ("yes", True),
        ("On", True), (" on ", True), ("false", False), ("0", False),
        ("No", False), ("off", False), ("FALSE", False),
    ],
)
def test_parse_bool_accepts(text, expected):
    assert yt.parse_bool("YT_AUDIT_LOGGING", text) is expected


@pytest.mark.parametrize("text", ["", "maybe", "2", "enable", "tru", "y"])
def test_parse_bool_rejects(text):
    with pytest.raises(yt.UsageError) as caught:
        yt.parse_bool("YT_AUDIT_LOGGING", text)

    message = str(caught.value)
    assert f"invalid value {text!r} for YT_AUDIT_LOGGING" in message
    assert BOOLEAN_FORM in message


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("YOUTRACK_TIMEOUT", "30", 30.0),
        ("YOUTRACK_TIMEOUT", "0.5", 0.5),
        ("YOUTRACK_TIMEOUT", "3600", 3600.0),
        ("YT_AUDIT_MAX_ENTRIES", "10", 10),
        ("YT_AUDIT_MAX_ENTRIES", "5000", 5000),
        ("YT_TOKEN_WARNING_DAYS", "0", 0),
        ("YT_TOKEN_WARNING_DAYS", "3650", 3650),
    ],
)
def test_numeric_settings_accept(name, text, expected):
    assert yt.SETTINGS[name].parse(name, text) == expected


@pytest.mark.parametrize(
    ("name", "text", "form"),
    [
        ("YOUTRACK_TIMEOUT", "0", "greater than 0 and at most 3600"),
        ("YOUTRACK_TIMEOUT", "-1", "greater than 0 and at most 3600"),
        ("YOUTRACK_TIMEOUT", "3601", "greater than 0 and at most 3600"),
        ("YOUTRACK_TIMEOUT", "soon", "greater than 0 and at most 3600"),
        ("YOUTRACK_TIMEOUT", "nan", "greater than 0 and at most 3600"),
        ("YOUTRACK_TIMEOUT", "inf", "greater than 0 and at most 3600"),
        ("YT_AUDIT_MAX_ENTRIES", "9", "whole number from 10 to 10000000"),
        ("YT_AUDIT_MAX_ENTRIES", "1.5", "whole number from 10 to 10000000"),
        ("YT_AUDIT_MAX_ENTRIES", "lots", "whole number from 10 to 10000000"),
        ("YT_TOKEN_WARNING_DAYS", "-1", "whole number from 0 to 3650"),
        ("YT_TOKEN_WARNING_DAYS", "3651", "whole number from 0 to 3650"),
        ("YT_TOKEN_WARNING_DAYS", "week", "whole number from 0 to 3650"),
    ],
)
def test_numeric_settings_reject(name, text, form):
    with pytest.raises(yt.UsageError) as caught:
        yt.SETTINGS[name].parse(name, text)

    message = str(caught.value)
    assert f"invalid value {text!r} for {name}" in message
    assert form in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://youtrack.example.com", "https://youtrack.example.com"),
        ("https://youtrack.example.com/", "https://youtrack.example.com"),
        ("https://host.example/youtrack", "https://host.example/youtrack"),
        ("https://host.example/youtrack/", "https://host.example/youtrack"),
        ("https://host.example/youtrack/api", "https://host.example/youtrack"),
        ("https://host.example/api/", "https://host.example"),
        ("HTTPS://Host.Example:8443", "https://host.example:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080/yt", "http://[::1]:8080/yt"),
        ("  https://host.example  ", "https://host.example"),
    ],
)
def test_base_url_accepts(text, expected):
    assert yt.parse_base_url("YOUTRACK_BASE_URL", text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ftp://host.example", "the scheme must be http or https"),
        ("host.example", "the scheme must be http or https"),
        ("https://", "the host name is missing"),
        ("https:///path", "the host name is missing"),
        ("https://host.example/?a=1", "a query or fragment is not allowed"),
        ("https://host.example/#top", "a query or fragment is not allowed"),
        ("https://host.example:99999", "Port out of range"),
        ("https://host.example:port", "expected a URL"),
        ("https://host example", "white space or control characters"),
    ],
)
def test_base_url_rejects(text, problem):
    with pytest.raises(yt.UsageError) as caught:
        yt.parse_base_url("YOUTRACK_BASE_URL", text)

    message = str(caught.value)
    assert "for YOUTRACK_BASE_URL" in message
    assert problem in message
    assert URL_FORM in message


@pytest.mark.parametrize(
    "text",
    [
        "https://admin:hunter2-secret@host.example",
        "https://admin:hunter2-secret@host.example/youtrack",
        "http://:hunter2-secret@127.0.0.1:8080",
    ],
)
def test_base_url_userinfo_rejected(text):
    with pytest.raises(yt.UsageError) as caught:
        yt.parse_base_url("YOUTRACK_BASE_URL", text)

    message = str(caught.value)
    assert "credentials in the URL are not allowed" in message
    assert "hunter2" not in message
    assert yt.MASK in message


@pytest.mark.parametrize("where", ["env", "flag", "file", "config set"])
def test_base_url_userinfo_never_echoed(cli, yt_home, monkeypatch, where):
    url = "https://admin:hunter2-secret@youtrack.example.com"
    monkeypatch.setenv("YOUTRACK_TOKEN", DEFAULT_TOKEN)
    args = ["issues", "list"]
    if where == "env":
        monkeypatch.setenv("YOUTRACK_BASE_URL", url)
    elif where == "flag":
        args = ["--base-url", url, *args]
    elif where == "file":
        write_config(yt_home, f"YOUTRACK_BASE_URL={url}\n")
    else:
        args = ["config", "set", "YOUTRACK_BASE_URL", url]

    result = cli(*args)

    assert result.code == 2
    assert "credentials in the URL are not allowed" in result.err
    assert "hunter2" not in result.err
    audit = yt_home.data_dir / "audit.jsonl"
    if audit.exists():
        assert "hunter2" not in audit.read_text()


@pytest.mark.parametrize(
    ("name", "value", "form"),
    [
        ("YOUTRACK_TIMEOUT", "fast", "greater than 0 and at most 3600"),
        ("YOUTRACK_BASE_URL", "youtrack.example.com", URL_FORM),
    ],
)
@pytest.mark.parametrize("where", ["environment variable", "config file"])
def test_invalid_setting_stops_command(
    cli, yt_home, monkeypatch, server, name, value, form, where
):
    settings = {"YOUTRACK_BASE_URL": server.url, name: value}
    monkeypatch.setenv("YOUTRACK_TOKEN", DEFAULT_TOKEN)
    if where == "environment variable":
        for key, setting in settings.items():
            monkeypatch.setenv(key, setting)
    else:
        write_config(
            yt_home, "".join(f"{k}={v}\n" for k, v in settings.items())
        )

    result = cli("issues", "list")

    assert result.code == 2
    assert f"invalid value {value!r} for {name}" in result.err
    assert form in result.err
    assert f"(from the {where}" in result.err
    assert server.requests == []


@pytest.mark.parametrize(
    ("name", "value", "form"),
    [
        ("YOUTRACK_VERIFY_SSL", "maybe", BOOLEAN_FORM),
        ("YOUTRACK_CERT_SHA256", "12:34", "64 hex digits"),
        ("YOUTRACK_CA_BUNDLE", "/no/such/ca.pem", "no such file"),
    ],
)
def test_invalid_tls_setting_stops_command(
    cli, yt_home, monkeypatch, tls_server, name, value, form
):
    server = tls_server("valid")
    monkeypatch.setenv("YOUTRACK_BASE_URL", server.url)
    monkeypatch.setenv("YOUTRACK_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv(name, value)

    result = cli("issues", "list")

    assert result.code == 2
    assert f"{value!r}" in result.err
    assert name in result.err
    assert form in result.err
    assert server.requests == []


@pytest.mark.parametrize(
    ("name", "value", "form"),
    [
        ("YT_AUDIT_LOGGING", "sometimes", BOOLEAN_FORM),
        ("YT_AUDIT_MAX_ENTRIES", "3", "whole number from 10 to 10000000"),
        ("YT_TOKEN_WARNINGS", "loud", BOOLEAN_FORM),
        ("YT_TOKEN_WARNING_DAYS", "-3", "whole number from 0 to 3650"),
    ],
)
def test_invalid_audit_setting_reported(
    cli, yt_home, monkeypatch, server, name, value, form
):
    monkeypatch.setenv("YOUTRACK_BASE_URL", server.url)
    monkeypatch.setenv("YOUTRACK_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv(name, value)

    result = cli("issues", "list")

    # These settings only tune the audit log and expiry warnings, so the
    # command runs; the invalid value is still named with its form.
    assert f"invalid value {value!r} for {name}" in result.err
    assert form in result.err
    assert "Traceback" not in result.err


# ------------------------------------------------------------ path prefix


@pytest.fixture
def prefixed_server():
    with FakeYouTrack(prefix="/youtrack", issues=3) as server:
        yield server


@pytest.mark.parametrize("suffix", ["", "/", "/api", "/api/"])
def test_path_prefix_end_to_end(cli, yt_home, prefixed_server, suffix):
    url = prefixed_server.url + suffix
    env = {"YOUTRACK_BASE_URL": url, "YOUTRACK_TOKEN": DEFAULT_TOKEN}

    listing = cli("issues", "list", "--format", "json", env=env)
    show_result = cli("issues", "show", "DEMO-2", "--format", "json", env=env)
    created = cli(
        "issues", "create", "DEMO", "Behind a prefix",
        "--field", "Priority=Minor", env=env,
    )
    raw = cli("api", "users/me", env=env)

    assert prefixed_server.url.endswith("/youtrack")
    assert listing.code == 0, listing.err
    assert len(json.loads(listing.out)) == 3
    assert json.loads(show_result.out)["idReadable"] == "DEMO-2"
    assert created.code == 0, created.err
    assert prefixed_server.issues["DEMO-4"]["fields"]["Priority"] == "Minor"
    assert raw.code == 0, raw.err
    assert json.loads(raw.out)["$type"] == "Me"
    # The fake server records paths after its prefix, and a request
    # outside the prefix would get a 404 response.
    assert all(
        r.path.startswith("/api/") for r in prefixed_server.requests
    )


def test_path_prefix_missing(cli, yt_home, prefixed_server):
    url = prefixed_server.url[: -len("/youtrack")]
    env = {"YOUTRACK_BASE_URL": url, "YOUTRACK_TOKEN": DEFAULT_TOKEN}

    result = cli("issues", "list", env=env)

    assert result.code == 4
    assert "listing issues failed: not found" in result.err
