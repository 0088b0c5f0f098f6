"""Tests of yt.mask, yt.mask_argv and the registry of loaded secrets."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import yt

M = yt.MASK
PERM = "perm:YWRtaW4=.eXQtdGVzdHM=.5Jg7kQ2mXv9pLr3sTz8wNc4bHd"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJhZG1pbiIsImV4cCI6MTcwMDAwMDAwMH0"
    ".c2lnbmF0dXJlX2hlcmVfMTIz"
)


@pytest.fixture(autouse=True)
def _empty_registry():
    yt.SECRETS.clear()
    yield
    yt.SECRETS.clear()


# ------------------------------------------------------------ patterns

MASKED = [
    # Authorization headers keep their scheme.
    (
        "Authorization: Bearer perm:abc123.def456.ghi789",
        f"Authorization: Bearer {M}",
    ),
    (
        "Authorization: Basic dXNlcjpwYXNzd29yZA==",
        f"Authorization: Basic {M}",
    ),
    ("Authorization: Token 0123456789abcdef", f"Authorization: Token {M}"),
    ("authorization=bearer abcdefghijkl", f"authorization=bearer {M}"),
    ("AUTHORIZATION: BEARER abcdefghijkl", f"AUTHORIZATION: BEARER {M}"),
    ("curl -H 'Bearer abcdefgh12345'", f"curl -H 'Bearer {M}'"),
    # YouTrack permanent tokens and JWTs, anywhere in text.
    (PERM, M),
    (PERM.replace("perm:", "perm-"), M),
    (f"the token {PERM} expired", f"the token {M} expired"),
    ("perm:abc.def", M),
    (JWT, M),
    (f"sent {JWT}.", f"sent {M}."),
    # key=value and key: value, in several spellings and cases.
    ("token=secret_api_key_here", f"token={M}"),
    ("TOKEN=secret_api_key_here", f"TOKEN={M}"),
    ("Token: secret_api_key_here", f"Token: {M}"),
    ("access_token=abc&x=1", f"access_token={M}&x=1"),
    ("refresh-token: abc", f"refresh-token: {M}"),
    ("YOUTRACK_TOKEN=abcdefgh", f"YOUTRACK_TOKEN={M}"),
    ("password=hunter2", f"password={M}"),
    ("PASSWORD: hunter2", f"PASSWORD: {M}"),
    ("Password = hunter2", f"Password = {M}"),
    ("passwd=hunter2", f"passwd={M}"),
    ("db_password=hunter2", f"db_password={M}"),
    ("passphrase='correct horse'", f"passphrase='{M}'"),
    ('Passphrase="correct horse"', f'Passphrase="{M}"'),
    ("secret: santa", f"secret: {M}"),
    ("api_key=abcdef", f"api_key={M}"),
    ("apiKey=abcdef", f"apiKey={M}"),
    ("API-KEY: abcdef", f"API-KEY: {M}"),
    ("api.key=abcdef", f"api.key={M}"),
    ("x-api-key: abcdef", f"x-api-key: {M}"),
    ("client_secret=abc", f"client_secret={M}"),
    ("clientSecret: abc", f"clientSecret: {M}"),
    ("Client-Secret=abc", f"Client-Secret={M}"),
    ("a=1; token=abc; b=2", f"a=1; token={M}; b=2"),
    ("token=abc,password=def", f"token={M},password={M}"),
    # "key": "value" keeps the quotes.
    ('"token": "abc"', f'"token": "{M}"'),
    ('"password":"p\\"q"', f'"password":"{M}"'),
    ("'secret': 'abc'", f"'secret': '{M}'"),
    # --key value and --key=value.
    ("--token abc", f"--token {M}"),
    ("--token=abc", f"--token={M}"),
    ("--password hunter2", f"--password {M}"),
    ("--api-key=xyz", f"--api-key={M}"),
    ("--client-secret s", f"--client-secret {M}"),
    ("--Passphrase 'a b' x", f"--Passphrase '{M}' x"),
    ("yt --debug --token abc api", f"yt --debug --token {M} api"),
    ('--password "a b" x', f'--password "{M}" x'),
    ("--my-api-key=1", f"--my-api-key={M}"),
    # A flag that is not a secret hides nothing after it.
    ("--field token=abc", f"--field token={M}"),
    ("--base-url https://user:pw@host", f"--base-url https://{M}@host"),
    ("--url=https://a:b@h/x", f"--url=https://{M}@h/x"),
    (f"--summary {PERM}", f"--summary {M}"),
    (
        "--header Authorization:Bearer abcdefghijk",
        f"--header Authorization:Bearer {M}",
    ),
    # URL user-info, the password and the user both.
    ("https://user:pass@host/x", f"https://{M}@host/x"),
    (
        "proxy http://alice:s3cret@10.0.0.1:3128",
        f"proxy http://{M}@10.0.0.1:3128",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_mask_pattern(text, expected):
    assert yt.mask(text) == expected


NEAR_MISSES = [
    "Update the password policy for new users",
    "password policy: strict",
    "Token expiry is near",
    "Token expiry: 2025-01-31",
    "token expiry warnings",
    "YT_TOKEN_WARNINGS=true",
    "YT_TOKEN_WARNING_DAYS=7",
    "yt auth login --token-stdin",
    "--password --debug",
    "--tokens 5",
    "--token-stdin --expires 2027-01-31",
    "a perm-related question",
    "perm:short",
    "the bearer of bad news",
    "Bearer of bad news",
    "Bearer short",
    "tokens=5",
    "tokenizer=bpe",
    "secretary: Jane",
    "Token abc",
    "token: ",
    "eyJ alone",
    "eyJhbGciOiJIUzI1NiJ9.only-two-parts",
    "https://youtrack.example.com/api/issues?fields=id",
    "mailto:admin@example.com",
    "----- BEGIN -----",
    '{"summary": "token expiry", "id": 3}',
    '{"password": null, "token": true, "secret": 12, "apiKey": ""}',
    '{"tokenCount": 3, "passwordPolicy": "strict"}',
    '[{"$type": "Issue", "idReadable": "DEMO-1", "summary": "Login page"}]',
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_mask_near_miss_unchanged(text):
    assert yt.mask(text) == text


def test_mask_accepts_non_strings():
    assert yt.mask(42) == "42"
    assert yt.mask(ValueError("token=abc")) == f"token={M}"


def test_mask_multiline_keeps_other_lines():
    text = "GET /api/users/me\nAuthorization: Bearer abcdefgh1234\nAccept: */*"
    assert yt.mask(text) == (
        f"GET /api/users/me\nAuthorization: Bearer {M}\nAccept: */*"
    )


# ---------------------------------------------------------------- JSON

JSON_CASES = [
    ({"token": "abc", "n": 1}, {"token": M, "n": 1}),
    ({"password": 'p"q\\'}, {"password": M}),
    (
        {"client_secret": "s", "clientSecret": "t"},
        {"client_secret": M, "clientSecret": M},
    ),
    ({"Authorization": "Bearer abcdefghijk"}, {"Authorization": M}),
    (
        {"user": {"apiKey": "k1", "name": "n"}},
        {"user": {"apiKey": M, "name": "n"}},
    ),
    (
        {"args": ["issues", "list"], "token": "x"},
        {"args": ["issues", "list"], "token": M},
    ),
    ({"token": 1e20}, {"token": 1e20}),
    ({"token": -1.5e-3}, {"token": -1.5e-3}),
    ({"x": "token:", "y": 1}, {"x": "token:", "y": 1}),
    ({"x": "token=", "y": "z"}, {"x": "token=", "y": "z"}),
    ({"x": "token='", "y": 2}, {"x": f"token='{M}", "y": 2}),
    ({"k": '--token="x'}, {"k": f'--token="{M}'}),
    ({"d": f"use {PERM} here"}, {"d": f"use {M} here"}),
    ({"u": "https://a:b@host/"}, {"u": f"https://{M}@host/"}),
    (
        {"error_description": "token=abc is invalid"},
        {"error_description": f"token={M} is invalid"},
    ),
]


@pytest.mark.parametrize(("data", "expected"), JSON_CASES)
@pytest.mark.parametrize("indent", [None, 2])
def test_mask_json_stays_valid(data, expected, indent):
    masked = yt.mask(json.dumps(data, indent=indent))
    assert json.loads(masked) == expected


def test_mask_json_keeps_layout():
    text = '{\n  "token": "abc",\n  "summary": "Login \\u00e9"\n}'
    assert yt.mask(text) == (
        '{\n  "token": "' + M + '",\n  "summary": "Login \\u00e9"\n}'
    )


def test_mask_json_escaped_secret():
    yt.SECRETS.add("abcdefgh1234")
    # The secret is only spelt with a \u escape, and a neighbouring
    # pattern forces the string to be masked and encoded again.
    text = json.dumps({"x": "\\u0061bcdefgh1234 token=v", "y": "token:"})
    text = text.replace("\\\\u0061", "\\u0061")
    assert "abcdefgh1234" in json.loads(text)["x"]
    masked = yt.mask(text)
    assert "abcdefgh1234" not in masked
    assert json.loads(masked)["y"] == "token:"


def test_mask_deep_json_nesting_returns():
    text = "[" * 100_000 + '"token=abc", "token:"' + "]" * 100_000
    masked = yt.mask(text)
    assert "token=abc" not in masked


# ------------------------------------------------------------ mask_argv

ARGV_CASES = [
    (["issues", "list"], ["issues", "list"]),
    (["--password", "hunter2", "x"], ["--password", M, "x"]),
    (["--token=abc"], [f"--token={M}"]),
    (
        ["api", "-f", "token=abc", "-f", "a=b"],
        ["api", "-f", f"token={M}", "-f", "a=b"],
    ),
    (
        ["api", "-X", "POST", "users", "-f", "password=x"],
        ["api", "-X", "POST", "users", "-f", f"password={M}"],
    ),
    (
        ["config", "set", "YOUTRACK_TOKEN", "abcdefgh"],
        ["config", "set", "YOUTRACK_TOKEN", M],
    ),
    (
        ["config", "set", "YT_CREDENTIAL_PASSPHRASE", "pw"],
        ["config", "set", "YT_CREDENTIAL_PASSPHRASE", M],
    ),
    (["auth", "login", "--token-stdin"], ["auth", "login", "--token-stdin"]),
    (
        ["issues", "create", "DEMO", f"leaked {PERM}"],
        ["issues", "create", "DEMO", f"leaked {M}"],
    ),
    (
        ["config", "set", "YT_TOKEN_WARNINGS", "false"],
        ["config", "set", "YT_TOKEN_WARNINGS", "false"],
    ),
]


@pytest.mark.parametrize(("argv", "expected"), ARGV_CASES)
def test_mask_argv_case(argv, expected):
    assert yt.mask_argv(argv) == expected


# ---------------------------------------------------- registered secrets

SECRET = 'Xy7/q+r=s"t&u v'
SECRET_FORMS = [
    SECRET,
    urllib.parse.quote(SECRET, safe=""),
    json.dumps(SECRET)[1:-1],
]


@pytest.mark.parametrize("form", SECRET_FORMS)
@pytest.mark.parametrize(
    "template", ["{}", "x{}y", "'{}'", '"{}"', "a={}&b", "_{}_", "{}{}"]
)
def test_mask_registered_secret(form, template):
    yt.SECRETS.add(SECRET)
    masked = yt.mask(template.format(form, form))
    for other in SECRET_FORMS:
        assert other not in masked
    assert M in masked


def test_mask_registered_secret_in_json():
    yt.SECRETS.add(SECRET)
    masked = yt.mask(json.dumps({"description": f"echo {SECRET}"}))
    assert json.loads(masked) == {"description": f"echo {M}"}


def test_mask_registry_ignores_short_values():
    yt.SECRETS.add("abc")
    yt.SECRETS.add("")
    yt.SECRETS.add(None)
    assert yt.mask("abc abc") == "abc abc"


def test_mask_registry_clear():
    yt.SECRETS.add("sup3rsecret")
    assert yt.mask("sup3rsecret") == M
    yt.SECRETS.clear()
    assert yt.mask("sup3rsecret") == "sup3rsecret"


def test_mask_longer_secret_first():
    yt.SECRETS.add("abcd1234")
    yt.SECRETS.add("abcd1234efgh")
    assert yt.mask("abcd1234efgh") == M


# ------------------------------------------------------------ properties

TOKEN_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:-_=+/~"
)
FRAGMENTS = [
    "token",
    "Token",
    "password",
    "api_key",
    "clientSecret",
    "secret",
    "passphrase",
    "Authorization",
    "=",
    ":",
    ": ",
    " ",
    "\t",
    "\n",
    '"',
    "'",
    "\\",
    "--",
    "-",
    "Bearer ",
    "Basic ",
    "perm:",
    "perm-",
    "eyJ",
    ".",
    "://",
    "@",
    "/",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&",
    "abc123XYZ",
    "ab",
    "0",
    M,
    "é",
    "\u2028",
]
fragment_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=30
).map("".join)
PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@PROPERTY_SETTINGS
@given(
    secret=st.text(TOKEN_ALPHABET, min_size=4, max_size=40),
    before=st.one_of(fragment_text, st.text(max_size=20)),
    after=st.one_of(fragment_text, st.text(max_size=20)),
)
def test_mask_property_secret_never_survives(secret, before, after):
    yt.SECRETS.clear()
    yt.SECRETS.add(secret)
    for form in (secret, urllib.parse.quote(secret, safe="")):
        masked = yt.mask(before + form + after)
        assert secret not in masked
        assert urllib.parse.quote(secret, safe="") not in masked


SECRET_KEYS = [
    "token",
    "password",
    "api_key",
    "apiKey",
    "clientSecret",
    "client_secret",
    "passphrase",
    "Authorization",
    "X-Api-Key",
    "YOUTRACK_TOKEN",
]
json_strings = st.one_of(fragment_text, st.text(max_size=10))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    json_strings,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(SECRET_KEYS), json_strings),
            children,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


@PROPERTY_SETTINGS
@given(
    data=json_values,
    indent=st.sampled_from([None, 0, 2]),
    ascii_only=st.booleans(),
)
def test_mask_property_json_stays_valid(data, indent, ascii_only):
    text = json.dumps(data, indent=indent, ensure_ascii=ascii_only)
    json.loads(yt.mask(text))


def _secret_key_values(value):
    """Yield the values of every SECRET_KEYS key in a JSON value."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key in SECRET_KEYS:
                yield child
            yield from _secret_key_values(child)
    elif isinstance(value, list):
        for child in value:
            yield from _secret_key_values(child)


@PROPERTY_SETTINGS
@given(
    data=st.dictionaries(
        st.sampled_from(SECRET_KEYS),
        st.text(TOKEN_ALPHABET + " \"'\\é", min_size=1, max_size=20),
        min_size=1,
    ),
    indent=st.sampled_from([None, 2]),
)
def test_mask_property_json_secret_keys_masked(data, indent):
    masked = json.loads(yt.mask(json.dumps(data, indent=indent)))
    assert list(_secret_key_values(masked)) == [M] * len(data)


@PROPERTY_SETTINGS
@given(text=st.one_of(fragment_text, st.text()))
def test_mask_property_idempotent(text):
    once = yt.mask(text)
    assert yt.mask(once) == once


@PROPERTY_SETTINGS
@given(data=json_values)
def test_mask_property_json_idempotent(data):
    once = yt.mask(json.dumps(data))
    assert yt.mask(once) == once


# ----------------------------------------------------------- linear time

# Each entry builds a text of about n characters that a backtracking or
# rescanning implementation would take quadratic time on.
ADVERSARIAL = {
    "bearer": lambda n: "Bearer " * (n // 7),
    "authorization": lambda n: "Authorization: Bearer " * (n // 22),
    "token_eq": lambda n: "token=" * (n // 6),
    "token_colon": lambda n: "token: " * (n // 7),
    "token_quote": lambda n: 'token="' * (n // 7),
    "token_backslash": lambda n: 'token="\\' * (n // 8),
    "json_key": lambda n: '"token": ' * (n // 9),
    "perm": lambda n: "perm:" * (n // 5),
    "perm_dash": lambda n: "perm-a." * (n // 7),
    "eyj": lambda n: "eyJ" * (n // 3),
    "eyj_dot": lambda n: "eyJ." * (n // 4),
    "flag": lambda n: "--token " * (n // 8),
    "flag_eq": lambda n: "--token=" * (n // 8),
    "flag_names": lambda n: "--ab-" * (n // 5),
    "flag_long_name": lambda n: ("--" + "a" * 70 + " ") * (n // 73),
    "flag_quote": lambda n: '--token "' * (n // 9),
    "dashes": lambda n: "-" * n,
    "url": lambda n: "://" * (n // 3),
    "userinfo": lambda n: "://a" * (n // 4),
    "deep_json": lambda n: "[" * (n // 2) + "]" * (n // 2),
    "deep_json_keys": lambda n: '{"token":' * (n // 9),
    "secret_value": lambda n: "token=" + "a" * n,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_mask_adversarial_input(name):
    # Time is measured by benchmarks/run.py, which checks that these
    # inputs take linear time; here they must mask correctly.
    text = ADVERSARIAL[name](200_000)

    masked = yt.mask(text)

    assert yt.mask(masked) == masked
    if name == "secret_value":
        assert masked == "token=***MASKED***"
