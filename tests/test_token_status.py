"""Token expiry: token_status(), recorded expiry dates, `yt security
token-status`, warnings on credential load, and independence from the
local time zone and the clock."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time

import pytest
from fake_youtrack import DEFAULT_TOKEN
from hypothesis import given, settings
from hypothesis import strategies as st

import yt

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)
STATUSES = {"valid", "expiring", "expired", "permanent", "unknown"}
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
OPAQUE_TOKEN = "opaque-0123456789abcdefABCDEF"
PERM_DASH_TOKEN = "perm-YWRtaW4=.eXQtdGVzdHM=.Qm9vYmF6cXV4MTIzNDU2Nzg5"


def b64url(data: bytes, padded: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode("ascii")
    return text if padded else text.rstrip("=")


def make_jwt(payload, header=None, padded=False) -> str:
    """Build an unsigned-looking JWT; the signature is never checked."""
    if header is None:
        # '{"alg": "HS256"}' is 16 bytes, so its base64 needs "==".
        header = {"alg": "HS256"}
    parts = [
        json.dumps(header).encode(),
        json.dumps(payload).encode(),
        b"not-a-real-signature",
    ]
    return ".".join(b64url(part, padded) for part in parts)


def jwt_expiring_at(moment: dt.datetime, padded=False) -> str:
    return make_jwt({"sub": "admin", "exp": int(moment.timestamp())},
                    padded=padded)


def raw_jwt(header: bytes, payload: bytes) -> str:
    return f"{b64url(header)}.{b64url(payload)}.signature"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def fixed_now(monkeypatch):
    """Fix yt's clock at NOW."""
    monkeypatch.setattr(yt, "utc_now", lambda: NOW)
    return NOW


# ------------------------------------------------------- token_status()


# (case, expiry relative to NOW, warning days, status, days_left)
JWT_CASES = [
    ("expired-long-ago", -10 * DAY, 7, "expired", -10),
    ("expired-one-second-ago", -SECOND, 7, "expired", -1),
    ("expires-exactly-now", dt.timedelta(0), 7, "expired", 0),
    ("expiring-in-3-days", 3 * DAY, 7, "expiring", 3),
    ("expiring-at-period-end", 7 * DAY, 7, "expiring", 7),
    ("valid-after-period-end", 7 * DAY + SECOND, 7, "valid", 7),
    ("valid-in-10-years", 3650 * DAY, 7, "valid", 3650),
    ("no-warning-period", dt.timedelta(hours=1), 0, "valid", 0),
    ("long-warning-period", 20 * DAY, 30, "expiring", 20),
]


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize(
    ("offset", "warning_days", "expected", "days_left"),
    [case[1:] for case in JWT_CASES],
    ids=[case[0] for case in JWT_CASES],
)
def test_token_status_jwt(offset, warning_days, expected, days_left, padded):
    expires = NOW + offset
    token = jwt_expiring_at(expires, padded=padded)
    assert ("=" in token) == padded

    result = yt.token_status(token, None, NOW, warning_days)

    assert result["status"] == expected
    assert result["expires_at"] == iso(expires)
    assert result["days_left"] == days_left
    assert result["kind"] == "JWT"


def test_token_status_jwt_float_exp():
    token = make_jwt({"exp": (NOW + 2 * DAY).timestamp() + 0.25})

    result = yt.token_status(token, None, NOW, 7)

    assert result["status"] == "expiring"
    assert result["expires_at"] == "2026-03-03T12:00:00.250Z"


def _exp_payload(exp_json: str) -> bytes:
    return b'{"sub": "admin", "exp": ' + exp_json.encode() + b"}"


GOOD_HEADER = b'{"alg": "HS256", "typ": "JWT"}'
GOOD_PAYLOAD = _exp_payload(str(int((NOW + 30 * DAY).timestamp())))

MALFORMED_TOKENS = {
    "two-parts": f"{b64url(GOOD_HEADER)}.{b64url(GOOD_PAYLOAD)}",
    "four-parts": raw_jwt(GOOD_HEADER, GOOD_PAYLOAD) + ".extra",
    "empty-header": f".{b64url(GOOD_PAYLOAD)}.signature",
    "empty-payload": f"{b64url(GOOD_HEADER)}..signature",
    "bad-base64": "!!!!.@@@@.signature",
    "base64-wrong-length": "a.b.c",
    "non-json-header": raw_jwt(b"not json at all", GOOD_PAYLOAD),
    "non-json-payload": raw_jwt(GOOD_HEADER, b"{exp: 1}"),
    "header-is-a-list": raw_jwt(b'["alg", "HS256"]', GOOD_PAYLOAD),
    "payload-is-a-number": raw_jwt(GOOD_HEADER, b"1772366400"),
    "payload-not-utf8": raw_jwt(GOOD_HEADER, b"\xff\xfe\xfd"),
    "exp-missing": raw_jwt(GOOD_HEADER, b'{"sub": "admin"}'),
    "exp-null": raw_jwt(GOOD_HEADER, _exp_payload("null")),
    "exp-string": raw_jwt(GOOD_HEADER, _exp_payload('"1772366400"')),
    "exp-bool": raw_jwt(GOOD_HEADER, _exp_payload("true")),
    "exp-list": raw_jwt(GOOD_HEADER, _exp_payload("[1772366400]")),
    "exp-huge-int": raw_jwt(GOOD_HEADER, _exp_payload("1" + "0" * 40)),
    "exp-huge-float": raw_jwt(GOOD_HEADER, _exp_payload("1e300")),
    "exp-very-negative": raw_jwt(GOOD_HEADER, _exp_payload("-1" + "0" * 20)),
    "exp-nan": raw_jwt(GOOD_HEADER, _exp_payload("NaN")),
    "exp-infinity": raw_jwt(GOOD_HEADER, _exp_payload("Infinity")),
    "deeply-nested-header": raw_jwt(b"[" * 100_000, GOOD_PAYLOAD),
    "non-ascii": "h\u00e9ader.p\u00e4yload.sig",
}


@pytest.mark.parametrize(
    "token", MALFORMED_TOKENS.values(), ids=MALFORMED_TOKENS.keys()
)
def test_token_status_malformed_jwt_unknown(token):
    result = yt.token_status(token, None, NOW, 7)

    assert result["status"] == "unknown"
    assert result["expires_at"] is None
    assert result["days_left"] is None


@pytest.mark.parametrize(
    ("token", "recorded", "expected"),
    [
        (DEFAULT_TOKEN, None, "permanent"),
        (PERM_DASH_TOKEN, None, "permanent"),
        (DEFAULT_TOKEN, NOW + 30 * DAY, "valid"),
        (DEFAULT_TOKEN, NOW + 2 * DAY, "expiring"),
        (DEFAULT_TOKEN, NOW - DAY, "expired"),
        (PERM_DASH_TOKEN, NOW - DAY, "expired"),
        (OPAQUE_TOKEN, None, "unknown"),
        (OPAQUE_TOKEN, NOW + 30 * DAY, "valid"),
        (OPAQUE_TOKEN, NOW - SECOND, "expired"),
        # A recorded date wins over the JWT's own exp.
        (jwt_expiring_at(NOW - DAY), NOW + 30 * DAY, "valid"),
        (jwt_expiring_at(NOW + 30 * DAY), NOW - DAY, "expired"),
    ],
    ids=[
        "perm-colon",
        "perm-dash",
        "perm-recorded-valid",
        "perm-recorded-expiring",
        "perm-recorded-expired",
        "perm-dash-recorded-expired",
        "opaque",
        "opaque-recorded-valid",
        "opaque-recorded-expired",
        "jwt-expired-recorded-valid",
        "jwt-valid-recorded-expired",
    ],
)
def test_token_status_prefix_and_record(token, recorded, expected):
    result = yt.token_status(token, recorded, NOW, 7)

    assert result["status"] == expected
    if recorded is None:
        assert result["expires_at"] is None
        assert result["days_left"] is None
    else:
        assert result["expires_at"] == iso(recorded)


def test_token_status_empty_token_unknown():
    assert yt.token_status("", None, NOW, 7)["status"] == "unknown"


@pytest.mark.parametrize("hours", [14, -10, 5.5])
def test_token_status_now_offset_irrelevant(hours):
    token = jwt_expiring_at(NOW + 3 * DAY)
    local_now = NOW.astimezone(dt.timezone(dt.timedelta(hours=hours)))

    assert yt.token_status(token, None, local_now, 7) == yt.token_status(
        token, None, NOW, 7
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_token_status_any_text_never_raises(token):
    result = yt.token_status(token, None, NOW, 7)
    assert result["status"] in STATUSES


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(exp=_JSON_VALUES, header=_JSON_VALUES)
def test_token_status_any_claims_never_raise(exp, header):
    token = make_jwt({"exp": exp}, header=header)
    result = yt.token_status(token, None, NOW, 7)
    assert result["status"] in STATUSES


# ------------------------------------------- recorded expiry on the CLI

# (--expires value, the UTC instant yt must record)
EXPIRES_ACCEPTED = [
    ("2026-03-20", "2026-03-20T00:00:00.000Z"),
    ("2026-03-20T18:30:00+02:00", "2026-03-20T16:30:00.000Z"),
    ("2026-03-20T18:30:00-09:30", "2026-03-21T04:00:00.000Z"),
    ("2026-03-20T18:30:00Z", "2026-03-20T18:30:00.000Z"),
    ("2026-03-20T18:30:00.250+00:00", "2026-03-20T18:30:00.250Z"),
]
EXPIRES_REJECTED = [
    "2026-03-20T18:30:00",  # naive: which time zone is meant is unknown
    "2026-03-20 18:30",
    "tomorrow",
    "2026-13-01",
    "2026-02-30",
    "20-03-2026",
    "1772366400",
]


def _token_status_json(cli, env=None) -> dict:
    result = cli("security", "token-status", "--format", "json", env=env)
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.mark.parametrize(("value", "recorded"), EXPIRES_ACCEPTED)
def test_login_expires_recorded(cli, server, fixed_now, value, recorded):
    login = cli("auth", "login", "--base-url", server.url, "--token-stdin",
                "--expires", value, input=DEFAULT_TOKEN)
    assert login.code == 0, login.err

    status = _token_status_json(cli)

    assert status["expires_at"] == recorded
    assert status["status"] == "valid"
    assert status["recorded_expiry"] is True


@pytest.mark.parametrize("value", EXPIRES_REJECTED)
def test_login_expires_invalid_rejected(cli, server, yt_home, value):
    result = cli("auth", "login", "--base-url", server.url, "--token-stdin",
                 "--expires", value, input=DEFAULT_TOKEN)

    assert result.code == 2
    assert f"invalid expiry date {value!r}" in result.err
    assert "ISO 8601" in result.err
    assert server.requests == []
    assert not (yt_home.data_dir / "token-expiry.json").exists()
    assert not (yt_home.data_dir / "credentials.enc").exists()


@pytest.mark.parametrize(("value", "recorded"), EXPIRES_ACCEPTED)
def test_token_update_expires_recorded(cli, server, fixed_now, value,
                                       recorded):
    env = {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": OPAQUE_TOKEN}
    update = cli("auth", "token", "--update", "--expires", value, env=env)
    assert update.code == 0, update.err
    assert f"Recorded expiry {recorded}" in update.err

    status = _token_status_json(cli, env=env)

    assert status["expires_at"] == recorded
    assert status["status"] == "valid"
    assert server.requests == []


@pytest.mark.parametrize("value", EXPIRES_REJECTED)
def test_token_update_expires_invalid_rejected(cli, server, yt_home, value):
    env = {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": OPAQUE_TOKEN}
    result = cli("auth", "token", "--update", "--expires", value, env=env)

    assert result.code == 2
    assert f"invalid expiry date {value!r}" in result.err
    assert not (yt_home.data_dir / "token-expiry.json").exists()
    assert _token_status_json(cli, env=env)["status"] == "unknown"


def test_token_update_new_token_expires(cli, server, fixed_now):
    new_token = "opaque-new-token-ZYXWVU987654"
    server.tokens.add(new_token)
    env = {"YOUTRACK_BASE_URL": server.url}

    update = cli("auth", "token", "--update", "--token-stdin", "--expires",
                 "2026-03-04", input=new_token, env=env)
    assert update.code == 0, update.err
    assert server.requests[-1].headers["Authorization"] == (
        f"Bearer {new_token}"
    )

    status = _token_status_json(cli, env=env)
    assert status["status"] == "expiring"
    assert status["expires_at"] == "2026-03-04T00:00:00.000Z"
    assert status["days_left"] == 2


def test_expiry_record_file_private_hashed(cli, server, yt_home, fixed_now):
    env = {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": OPAQUE_TOKEN}
    assert cli("auth", "token", "--update", "--expires", "2026-04-01",
               env=env).code == 0

    path = yt_home.data_dir / "token-expiry.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert OPAQUE_TOKEN not in text
    assert json.loads(text) == {
        hashlib.sha256(OPAQUE_TOKEN.encode()).hexdigest():
            "2026-04-01T00:00:00.000Z"
    }


def test_expiry_record_other_token_ignored(cli, server, fixed_now):
    first = {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": OPAQUE_TOKEN}
    assert cli("auth", "token", "--update", "--expires", "2026-02-01",
               env=first).code == 0
    second = dict(first, YOUTRACK_TOKEN=OPAQUE_TOKEN + "-rotated")

    assert _token_status_json(cli, env=second)["status"] == "unknown"


# ------------------------------------------------ yt security token-status

# (case, token, emoji, ASCII marker, exit code, status text)
STATUS_LINES = [
    ("valid", jwt_expiring_at(NOW + 30 * DAY), "🟢", "[valid]", 0,
     "valid, expires 2026-03-31T12:00:00.000Z (30 days left)"),
    ("expiring", jwt_expiring_at(NOW + 3 * DAY), "🟡", "[expiring]", 0,
     "expiring, expires 2026-03-04T12:00:00.000Z (3 days left)"),
    ("expired", jwt_expiring_at(NOW - 2 * DAY), "🔴", "[EXPIRED]", 3,
     "expired on 2026-02-27T12:00:00.000Z (2 days ago)"),
    ("permanent", DEFAULT_TOKEN, "✅", "[permanent]", 0,
     "permanent (no expiry date)"),
    ("unknown", OPAQUE_TOKEN, "⚪", "[unknown]", 0,
     "unknown (record it with: yt auth token --update --expires DATE)"),
]
_STATUS_IDS = [case[0] for case in STATUS_LINES]


def _env_token(token: str) -> dict:
    return {"YOUTRACK_BASE_URL": "https://youtrack.example.com",
            "YOUTRACK_TOKEN": token}


@pytest.mark.parametrize(
    ("token", "emoji", "ascii_marker", "code", "text"),
    [case[1:] for case in STATUS_LINES],
    ids=_STATUS_IDS,
)
@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_token_status_command_text(cli, fixed_now, token, emoji,
                                   ascii_marker, code, text, encoding):
    result = cli("security", "token-status", env=_env_token(token),
                 encoding=encoding)

    assert result.code == code
    lines = result.out.splitlines()
    marker = emoji if encoding == "utf-8" else ascii_marker
    assert lines[0] == f"{marker} {text}"
    assert "Source: environment variable YOUTRACK_TOKEN" in lines
    assert token not in result.out + result.err
    if encoding == "ascii":
        assert result.out.isascii()


@pytest.mark.parametrize(
    ("token", "code", "status", "expires_at", "days_left"),
    [
        (jwt_expiring_at(NOW + 30 * DAY), 0, "valid",
         "2026-03-31T12:00:00.000Z", 30),
        (jwt_expiring_at(NOW + 3 * DAY), 0, "expiring",
         "2026-03-04T12:00:00.000Z", 3),
        (jwt_expiring_at(NOW - 2 * DAY), 3, "expired",
         "2026-02-27T12:00:00.000Z", -2),
        (DEFAULT_TOKEN, 0, "permanent", None, None),
        (OPAQUE_TOKEN, 0, "unknown", None, None),
    ],
    ids=_STATUS_IDS,
)
def test_token_status_command_json(cli, fixed_now, token, code, status,
                                   expires_at, days_left):
    result = cli("security", "token-status", "--format", "json",
                 env=_env_token(token))

    assert result.code == code
    data = json.loads(result.out)
    assert data["status"] == status
    assert data["expires_at"] == expires_at
    assert data["days_left"] == days_left
    assert data["source"] == "environment"
    assert token not in result.out + result.err


def test_token_status_json_expires_at_format(cli, fixed_now):
    # An exp with a fraction of a second comes out as ISO 8601 UTC with
    # milliseconds and a Z.
    token = make_jwt({"exp": (NOW + 9 * DAY).timestamp() + 0.5})
    data = json.loads(cli("security", "token-status", "--format", "json",
                          env=_env_token(token)).out)

    assert ISO_UTC.fullmatch(data["expires_at"])
    assert dt.datetime.fromisoformat(
        data["expires_at"].replace("Z", "+00:00")
    ) == NOW + 9 * DAY + dt.timedelta(milliseconds=500)


@pytest.mark.parametrize(
    "env",
    [{}, {"YOUTRACK_BASE_URL": "https://youtrack.example.com"}],
    ids=["nothing-configured", "no-token"],
)
@pytest.mark.parametrize("output_format", ["table", "json"])
def test_token_status_command_no_token(cli, env, output_format):
    result = cli("security", "token-status", "--format", output_format,
                 env=env)

    assert result.code == 3
    assert result.out == ""
    assert "yt auth login" in result.err


def test_token_status_command_warning_days(cli, fixed_now):
    env = _env_token(jwt_expiring_at(NOW + 20 * DAY))

    default = cli("security", "token-status", "--format", "json", env=env)
    longer = cli("security", "token-status", "--format", "json",
                 env=dict(env, YT_TOKEN_WARNING_DAYS="30"))

    assert json.loads(default.out)["status"] == "valid"
    assert json.loads(longer.out)["status"] == "expiring"


# --------------------------------------------- warnings on credential load


def _server_env(server, token: str, **extra) -> dict:
    server.tokens.add(token)
    return {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": token,
            **extra}


def test_load_warns_expiring(cli, server, fixed_now):
    token = jwt_expiring_at(NOW + 3 * DAY)
    result = cli("api", "users/me", env=_server_env(server, token))

    assert result.code == 0
    assert result.err.count("\n") == 1
    assert (
        "the token expires on 2026-03-04T12:00:00.000Z (3 days left)"
        in result.err
    )
    assert "yt auth token --update" in result.err
    assert token not in result.err


def test_load_warns_expired_still_sent(cli, server, fixed_now):
    token = jwt_expiring_at(NOW - 2 * DAY)
    result = cli("api", "users/me", env=_server_env(server, token))

    assert result.code == 0
    assert json.loads(result.out)["id"] == "1-1"
    assert "the token expired on 2026-02-27T12:00:00.000Z" in result.err
    assert "yt auth token --update" in result.err
    assert server.requests[-1].headers["Authorization"] == f"Bearer {token}"


def test_load_expired_rejected_by_server(cli, server, fixed_now):
    token = jwt_expiring_at(NOW - 2 * DAY)
    env = {"YOUTRACK_BASE_URL": server.url, "YOUTRACK_TOKEN": token}

    result = cli("api", "users/me", env=env)

    assert result.code == 3
    assert "the token expired on" in result.err
    assert "rejected the token" in result.err
    assert len(server.requests) == 1


def test_load_warns_once_per_command(cli, server, fixed_now):
    server.add_issues(150)
    token = jwt_expiring_at(NOW + DAY)
    result = cli("issues", "list", "--limit", "150", "--format", "json",
                 env=_server_env(server, token))

    assert result.code == 0
    assert len(server.requests) >= 2
    assert result.err.count("the token expires on") == 1


@pytest.mark.parametrize(
    "token",
    [jwt_expiring_at(NOW + 30 * DAY), DEFAULT_TOKEN, OPAQUE_TOKEN],
    ids=["valid", "permanent", "unknown"],
)
def test_load_no_warning(cli, server, fixed_now, token):
    result = cli("api", "users/me", env=_server_env(server, token))

    assert result.code == 0
    assert result.err == ""


@pytest.mark.parametrize("value", ["false", "0", "no", "OFF"])
@pytest.mark.parametrize(
    "offset", [3 * DAY, -2 * DAY], ids=["expiring", "expired"]
)
def test_load_warnings_disabled(cli, server, fixed_now, value, offset):
    token = jwt_expiring_at(NOW + offset)
    env = _server_env(server, token, YT_TOKEN_WARNINGS=value)

    result = cli("api", "users/me", env=env)

    assert result.code == 0
    assert result.err == ""


def test_load_warnings_disabled_config_file(cli, server, fixed_now):
    assert cli("config", "set", "YT_TOKEN_WARNINGS", "false").code == 0
    token = jwt_expiring_at(NOW - 2 * DAY)

    result = cli("api", "users/me", env=_server_env(server, token))

    assert result.code == 0
    assert result.err == ""


@pytest.mark.parametrize(
    ("days", "offset", "warned"),
    [
        ("1", 3 * DAY, False),
        ("0", dt.timedelta(hours=2), False),
        ("30", 20 * DAY, True),
        ("7", 7 * DAY, True),
        ("3650", 3000 * DAY, True),
    ],
)
def test_load_warning_days(cli, server, fixed_now, days, offset, warned):
    token = jwt_expiring_at(NOW + offset)
    env = _server_env(server, token, YT_TOKEN_WARNING_DAYS=days)

    result = cli("api", "users/me", env=env)

    assert result.code == 0
    assert ("the token expires on" in result.err) == warned


def test_load_warns_recorded_expiry(cli, server, fixed_now):
    env = _server_env(server, DEFAULT_TOKEN)
    assert cli("auth", "token", "--update", "--expires",
               "2026-03-03T00:00:00Z", env=env).code == 0

    result = cli("api", "users/me", env=env)

    assert result.code == 0
    assert "the token expires on 2026-03-03T00:00:00.000Z" in result.err


# ------------------------------------------------ clock and time zone


def test_status_follows_injected_clock(cli, monkeypatch):
    expires = dt.datetime(2030, 6, 15, 12, 0, tzinfo=UTC)
    env = _env_token(jwt_expiring_at(expires))
    seen = {}
    for label, moment in [
        ("valid", expires - 30 * DAY),
        ("expiring", expires - 2 * DAY),
        ("expired", expires + SECOND),
    ]:
        monkeypatch.setattr(yt, "utc_now", lambda moment=moment: moment)
        result = cli("security", "token-status", "--format", "json",
                     env=env)
        seen[label] = json.loads(result.out)["status"]

    assert seen == {"valid": "valid", "expiring": "expiring",
                    "expired": "expired"}


TIME_ZONES = ("Pacific/Kiritimati", "America/Adak")


def _utc_offset(zone: str) -> str:
    probe = subprocess.run(
        [sys.executable, "-c", "import time; print(time.strftime('%z'))"],
        env=dict(os.environ, TZ=zone),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return probe.stdout.strip()


@pytest.fixture(scope="module")
def far_apart_zones():
    """Two time zones 23 or 24 hours apart, checked to take effect."""
    offsets = {zone: _utc_offset(zone) for zone in TIME_ZONES}
    if offsets["Pacific/Kiritimati"] != "+1400":
        pytest.skip(f"time zone data missing: {offsets}")
    return TIME_ZONES


def test_status_same_in_every_zone(run_yt, server, far_apart_zones):
    # 3.5 days ahead, so the seconds between the runs change nothing.
    expires = dt.datetime.now(UTC) + dt.timedelta(days=3, hours=12)
    token = jwt_expiring_at(expires)
    env = _server_env(server, token)
    outputs = {}
    for zone in far_apart_zones:
        status = run_yt("security", "token-status", "--format", "json",
                        env=dict(env, TZ=zone))
        assert status.returncode == 0, status.stderr
        call = run_yt("api", "users/me", env=dict(env, TZ=zone))
        assert call.returncode == 0, call.stderr
        outputs[zone] = (json.loads(status.stdout), call.stderr)

    east, west = (outputs[zone] for zone in far_apart_zones)
    assert east == west
    assert east[0]["status"] == "expiring"
    assert east[0]["days_left"] == 3
    assert east[0]["expires_at"] == iso(expires.replace(microsecond=0))
    assert "(3 days left)" in east[1]


def test_recorded_date_same_in_every_zone(run_yt, far_apart_zones):
    env = _env_token(OPAQUE_TOKEN)
    east, west = far_apart_zones
    record = run_yt("auth", "token", "--update", "--expires", "2030-06-15",
                    env=dict(env, TZ=east))
    assert record.returncode == 0, record.stderr

    for zone in (east, west):
        status = run_yt("security", "token-status", "--format", "json",
                        env=dict(env, TZ=zone))
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert data["expires_at"] == "2030-06-15T00:00:00.000Z"
        assert data["status"] == "valid"


def test_audit_timestamps_utc_in_every_zone(run_yt, yt_home,
                                            far_apart_zones):
    env = _env_token(OPAQUE_TOKEN)
    before = time.time()
    for zone in far_apart_zones:
        result = run_yt("security", "token-status", env=dict(env, TZ=zone))
        assert result.returncode == 0, result.stderr
    after = time.time()

    lines = (yt_home.data_dir / "audit.jsonl").read_text().splitlines()
    commands = [json.loads(line) for line in lines]
    commands = [e for e in commands if e["event"] == "command"]
    assert len(commands) == 2
    for entry in commands:
        assert ISO_UTC.fullmatch(entry["ts"])
        moment = dt.datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
        assert before - 1 <= moment.timestamp() <= after + 1
