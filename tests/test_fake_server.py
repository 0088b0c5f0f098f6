"""Tests of the fake YouTrack server that yt's own tests run against.

The checks use urllib3 and http.client as two clients independent of
yt, and compare the responses with the OpenAPI document of the YouTrack
REST API where that document is present.
"""

from __future__ import annotations

import datetime
import functools
import http.client
import ipaddress
import json
import os
import selectors
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import jsonschema
import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fake_youtrack import (
    DEFAULT_TOKEN,
    DEFAULT_TOP,
    ROUTES,
    FakeYouTrack,
    format_period,
    parse_fields,
    parse_period,
)

FAKE_PATH = Path(__file__).with_name("fake_youtrack.py")
# JetBrains' OpenAPI description of the YouTrack REST API, which a
# YouTrack server publishes at /api/openapi.json.  YT_OPENAPI_DOCUMENT
# points at a copy; by default it is looked for beside the checkout.
OPENAPI_PATH = Path(
    os.environ.get("YT_OPENAPI_DOCUMENT")
    or Path(__file__).resolve().parents[2] / "shared" / "reference"
    / "youtrack-openapi.json"
)
AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
JSON_TYPE = "application/json;charset=UTF-8"
SEEDED = ["DEMO-1", "DEMO-2", "DEMO-3"]


# ===================================================================
# Helpers and fixtures
# ===================================================================


@pytest.fixture
def fake():
    with FakeYouTrack() as server:
        yield server


@pytest.fixture(scope="module")
def pool():
    manager = urllib3.PoolManager(retries=False, timeout=5.0)
    yield manager
    manager.clear()


def api_url(server: FakeYouTrack, path: str, **params) -> str:
    url = server.url + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    return url


def call(
    pool, server, method, path, *, headers=AUTH, json_body=None, **params
):
    """Send one request with urllib3 and return the response."""
    return pool.request(
        method,
        api_url(server, path, **params),
        headers=headers,
        json=json_body,
        redirect=False,
    )


def get_json(pool, server, path, **params):
    response = call(pool, server, "GET", path, **params)
    assert response.status == 200, response.data
    return response.json()


def raw_connection(server: FakeYouTrack, timeout=5.0):
    return http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=timeout
    )


def readable_ids(issues: list) -> list:
    return [issue["idReadable"] for issue in issues]


def walk_objects(value):
    """Yield every JSON object inside ``value``."""
    if isinstance(value, dict):
        yield value
        for member in value.values():
            yield from walk_objects(member)
    elif isinstance(value, list):
        for item in value:
            yield from walk_objects(item)


def make_certificate(directory: Path) -> tuple:
    """Write a self-signed certificate for 127.0.0.1 and its key as PEM.

    Returns the paths of the certificate and the key.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "server.pem"
    key_path = directory / "server-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_fake(tls_files):
    cert_path, key_path = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    with FakeYouTrack(ssl_context=context) as server:
        yield server


# ===================================================================
# Projection with the fields parameter
# ===================================================================


def test_no_fields_returns_type_and_id(pool, fake):
    assert get_json(pool, fake, "/api/users/me") == {
        "$type": "Me",
        "id": "1-1",
    }
    issues = get_json(pool, fake, "/api/issues")
    assert all(set(issue) == {"$type", "id"} for issue in issues)


def test_fields_select_user_properties(pool, fake):
    me = get_json(pool, fake, "/api/users/me", fields="login,fullName")
    assert me == {
        "$type": "Me",
        "login": "admin",
        "fullName": "Administrator",
    }


def test_nested_projection_of_issue(pool, fake):
    fields = (
        "id,idReadable,summary,project(shortName),"
        "customFields(name,value(name,login,presentation))"
    )
    issue = get_json(pool, fake, "/api/issues/DEMO-1", fields=fields)
    assert issue["$type"] == "Issue"
    assert issue["id"] == "2-1"
    assert issue["idReadable"] == "DEMO-1"
    assert issue["summary"] == "Login fails when the token has expired"
    assert issue["project"] == {"$type": "Project", "shortName": "DEMO"}
    by_name = {field["name"]: field for field in issue["customFields"]}
    assert by_name["Priority"] == {
        "$type": "SingleEnumIssueCustomField",
        "name": "Priority",
        "value": {"$type": "EnumBundleElement", "name": "Major"},
    }
    assert by_name["State"]["value"] == {
        "$type": "StateBundleElement",
        "name": "Open",
    }
    assert by_name["Assignee"]["$type"] == "SingleUserIssueCustomField"
    assert by_name["Assignee"]["value"] == {"$type": "User", "login": "admin"}
    assert by_name["Estimation"]["value"] == {
        "$type": "PeriodValue",
        "presentation": "1h 30m",
    }
    assert by_name["Story points"]["value"] is None


def test_nested_entity_without_subfields(pool, fake):
    issue = get_json(pool, fake, "/api/issues/DEMO-1", fields="project")
    assert issue["project"] == {"$type": "Project", "id": "0-1"}


def test_type_on_every_object(pool, fake):
    fields = (
        "id,summary,reporter(login),updater(login),project(name,leader(login),"
        "customFields(field(name,fieldType(id)),bundle(values(name)))),"
        "customFields(name,value(name,login,minutes,isResolved),"
        "projectCustomField(field(name))),comments(text,author(login))"
    )
    issues = get_json(pool, fake, "/api/issues", fields=fields)
    objects = list(walk_objects(issues))
    assert len(objects) > 50
    assert [obj for obj in objects if "$type" not in obj] == []


def test_unknown_field_names_are_dropped(pool, fake):
    issue = get_json(
        pool, fake, "/api/issues/DEMO-1", fields="idReadable,bogusField"
    )
    assert issue == {"$type": "Issue", "idReadable": "DEMO-1"}


@pytest.mark.parametrize(
    "fields", ["id,project(name", "id)", "project(name))", "(name)", "a(b)c"]
)
def test_malformed_fields_is_bad_request(pool, fake, fields):
    response = call(pool, fake, "GET", "/api/issues", fields=fields)
    assert response.status == 400
    assert response.json() == {
        "error": "bad_request",
        "error_description": "Query string has invalid syntax",
    }


def test_parse_fields_merges_repeated_names():
    tree = parse_fields("id, project(name), project(leader(login)),summary")
    assert tree == {
        "id": None,
        "project": {"name": None, "leader": {"login": None}},
        "summary": None,
    }


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("90", 90), ("1h 30m", 90), ("2h", 120), ("1w 1d", 2880), ("3M", 3)],
)
def test_parse_period(text, minutes):
    assert parse_period(text) == minutes


@pytest.mark.parametrize("text", ["", "1x", "h", "1h and 2m"])
def test_parse_period_rejects_other_text(text):
    with pytest.raises(ValueError, match="invalid period"):
        parse_period(text)


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(0, "0m"), (90, "1h 30m"), (480, "1d"), (2400 + 61, "1w 1h 1m")],
)
def test_format_period(minutes, text):
    assert format_period(minutes) == text


# ===================================================================
# Collections and paging
# ===================================================================


def test_collection_is_bare_array(pool, fake):
    response = call(pool, fake, "GET", "/api/admin/projects")
    assert response.status == 200
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.json() == [
        {"$type": "Project", "id": "0-1"},
        {"$type": "Project", "id": "0-2"},
    ]


def test_default_top_is_42(pool, fake):
    fake.add_issues(100)
    issues = get_json(pool, fake, "/api/issues", fields="idReadable")
    assert len(issues) == DEFAULT_TOP == 42


def test_issues_sorted_by_updated_newest_first(pool, fake):
    fake.add_issues(2)
    issues = get_json(pool, fake, "/api/issues", fields="idReadable,updated")
    assert readable_ids(issues) == [
        "DEMO-5",
        "DEMO-4",
        "DEMO-3",
        "DEMO-2",
        "DEMO-1",
    ]
    updated = [issue["updated"] for issue in issues]
    assert updated == sorted(updated, reverse=True)


def test_update_moves_issue_to_front(pool, fake):
    call(
        pool,
        fake,
        "POST",
        "/api/issues/DEMO-1",
        json_body={"summary": "Login fails with an expired token"},
    )
    issues = get_json(pool, fake, "/api/issues", fields="idReadable")
    assert readable_ids(issues)[0] == "DEMO-1"


def test_paging_with_top_and_skip(pool, fake):
    fake.add_issues(47)
    everything = get_json(
        pool, fake, "/api/issues", fields="idReadable", **{"$top": "-1"}
    )
    assert len(everything) == 50
    pages = []
    for skip in range(0, 60, 20):
        pages.append(
            get_json(
                pool,
                fake,
                "/api/issues",
                fields="idReadable",
                **{"$top": "20", "$skip": str(skip)},
            )
        )
    assert [len(page) for page in pages] == [20, 20, 10]
    assert [issue for page in pages for issue in page] == everything


def test_top_zero_returns_empty_array(pool, fake):
    assert get_json(pool, fake, "/api/issues", **{"$top": "0"}) == []


def test_non_numeric_top_is_server_error(pool, fake):
    response = call(pool, fake, "GET", "/api/issues", **{"$top": "abc"})
    assert response.status == 500
    assert response.json() == {
        "error": "server_error",
        "error_description": "HTTP 404 Not Found",
    }


def test_sort_by_clause_in_query(pool, fake):
    issues = get_json(
        pool,
        fake,
        "/api/issues",
        fields="idReadable",
        query="project: DEMO sort by: created asc",
    )
    assert readable_ids(issues) == SEEDED


def test_custom_fields_parameter_filters_fields(pool, fake):
    response = call(
        pool,
        fake,
        "GET",
        "/api/issues?customFields=State&customFields=Priority&fields="
        "customFields(name)",
    )
    issues = response.json()
    names = {field["name"] for field in issues[0]["customFields"]}
    assert names == {"State", "Priority"}


def test_paging_5000_issues_on_one_connection(fake):
    started = time.monotonic()
    fake.add_issues(5000)
    assert time.monotonic() - started < 2.0
    connection = raw_connection(fake)
    seen = []
    skip = 0
    while True:
        query = urllib.parse.urlencode(
            {"fields": "idReadable", "$top": 500, "$skip": skip}
        )
        connection.request("GET", f"/api/issues?{query}", headers=AUTH)
        response = connection.getresponse()
        page = json.loads(response.read())
        seen.extend(readable_ids(page))
        if len(page) < 500:
            break
        skip += 500
    connection.close()
    assert len(seen) == len(set(seen)) == 5003
    assert fake.connections == 1


# ===================================================================
# Addressing, errors and authentication
# ===================================================================


def test_issue_by_readable_or_database_id(pool, fake):
    by_readable = get_json(
        pool, fake, "/api/issues/DEMO-2", fields="id,idReadable"
    )
    by_database = get_json(
        pool, fake, "/api/issues/2-2", fields="id,idReadable"
    )
    assert by_readable == by_database
    assert by_readable == {
        "$type": "Issue",
        "id": "2-2",
        "idReadable": "DEMO-2",
    }


@pytest.mark.parametrize(
    ("path", "entity_id"),
    [
        ("/api/issues/DEMO-99", "DEMO-99"),
        ("/api/issues/2-99", "2-99"),
        ("/api/issues/DEMO-99/comments", "DEMO-99"),
        ("/api/admin/projects/NOPE", "NOPE"),
        ("/api/admin/projects/0-9/customFields", "0-9"),
    ],
)
def test_unknown_entity_is_not_found(pool, fake, path, entity_id):
    response = call(pool, fake, "GET", path)
    assert response.status == 404
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.json() == {
        "error": "Not Found",
        "error_description": f"Entity with id {entity_id} not found",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nothing"),
        ("GET", "/api/issues/DEMO-1/links"),
        ("DELETE", "/api/issues/DEMO-1"),
        ("PUT", "/api/issues"),
        ("GET", "/favicon.ico"),
    ],
)
def test_unserved_path_is_not_found(pool, fake, method, path):
    response = call(pool, fake, method, path)
    assert response.status == 404
    assert response.json() == {
        "error": "Not Found",
        "error_description": "HTTP 404 Not Found",
    }


def test_missing_token_is_unauthorized(pool, fake):
    response = call(pool, fake, "GET", "/api/users/me", headers={})
    assert response.status == 401
    assert response.json() == {
        "error": "Unauthorized",
        "error_description": "You are not logged in.",
    }
    assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize(
    "header",
    [
        "Bearer perm:invalid.invalid.invalid",
        f"Basic {DEFAULT_TOKEN}",
        f"Bearer {DEFAULT_TOKEN}x",
        "Bearer",
    ],
)
def test_wrong_token_is_unauthorized(pool, fake, header):
    response = call(
        pool, fake, "GET", "/api/issues", headers={"Authorization": header}
    )
    assert response.status == 401
    assert response.json() == {
        "error": "Unauthorized",
        "error_description": "Invalid token",
    }


def test_added_token_is_accepted(pool, fake):
    fake.tokens.add("perm-second.token.value")
    response = call(
        pool,
        fake,
        "GET",
        "/api/users/me",
        headers={"Authorization": "Bearer perm-second.token.value"},
    )
    assert response.status == 200


def test_custom_token(pool):
    with FakeYouTrack(token="perm:abc.def.ghi", issues=0) as server:
        assert server.tokens == {"perm:abc.def.ghi"}
        ok = call(
            pool,
            server,
            "GET",
            "/api/issues",
            headers={"Authorization": "Bearer perm:abc.def.ghi"},
        )
        assert ok.status == 200
        assert ok.json() == []
        assert call(pool, server, "GET", "/api/issues").status == 401


def test_requests_are_recorded(pool, fake):
    call(
        pool,
        fake,
        "POST",
        "/api/issues/DEMO-1/comments",
        json_body={"text": "Noted."},
        fields="id,text",
    )
    recorded = fake.requests[-1]
    assert recorded.method == "POST"
    assert recorded.path == "/api/issues/DEMO-1/comments"
    assert recorded.query == {"fields": ["id,text"]}
    assert recorded.headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert recorded.headers["Content-Type"] == "application/json"
    assert recorded.json() == {"text": "Noted."}


def test_chunked_request_body(fake):
    connection = raw_connection(fake)
    body = iter([b'{"text": ', b'"Sent in chunks."}'])
    connection.request(
        "POST",
        "/api/issues/DEMO-2/comments?fields=text",
        body=body,
        headers={**AUTH, "Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["text"] == "Sent in chunks."
    connection.close()


# ===================================================================
# Search queries
# ===================================================================


@pytest.fixture
def query_fake(fake):
    fake.add_issue("OPS", "Rotate the backup keys", State="Open")
    return fake


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["DEMO-1", "DEMO-2", "DEMO-3", "OPS-1"]),
        ("project: DEMO", SEEDED),
        ("project: {Demo project}", SEEDED),
        ("project: demo", SEEDED),
        ("project:OPS", ["OPS-1"]),
        ("project: DEMO, OPS", ["DEMO-1", "DEMO-2", "DEMO-3", "OPS-1"]),
        ("#Unresolved", ["DEMO-1", "DEMO-2", "OPS-1"]),
        ("#Resolved", ["DEMO-3"]),
        ("#Critical", ["DEMO-3"]),
        ("#{In Progress}", ["DEMO-2"]),
        ("State: Open", ["DEMO-1", "OPS-1"]),
        ("state: open", ["DEMO-1", "OPS-1"]),
        ("State: {In Progress}", ["DEMO-2"]),
        ("State: Open, Fixed", ["DEMO-1", "DEMO-3", "OPS-1"]),
        ("Priority: Critical", ["DEMO-3"]),
        ("Assignee: jdoe", ["DEMO-3"]),
        ("Assignee: me", ["DEMO-1"]),
        ("Assignee: Unassigned", ["DEMO-2", "OPS-1"]),
        ("Estimation: {1h 30m}", ["DEMO-1"]),
        ("{Story points}: 3", ["DEMO-3"]),
        ("reporter: admin", ["DEMO-1", "DEMO-2", "DEMO-3", "OPS-1"]),
        ("token", ["DEMO-1"]),
        ("TOKEN", ["DEMO-1"]),
        ("expired token", ["DEMO-1"]),
        ('"empty search"', ["DEMO-3"]),
        ("summary: CSV", ["DEMO-2"]),
        ("description: KeyError", ["DEMO-3"]),
        ("summary: KeyError", []),
        ("project: DEMO #Unresolved", ["DEMO-1", "DEMO-2"]),
        ("project: DEMO and State: Open", ["DEMO-1"]),
        ("State: Fixed or Assignee: me", ["DEMO-1", "DEMO-3"]),
        ("(State: Fixed or State: Open) project: OPS", ["OPS-1"]),
        ("((#Resolved))", ["DEMO-3"]),
    ],
)
def test_query_selects_issues(pool, query_fake, query, expected):
    issues = get_json(
        pool,
        query_fake,
        "/api/issues",
        fields="idReadable",
        query=query,
    )
    assert sorted(readable_ids(issues)) == expected


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("Foo: bar", "Unknown field: Foo."),
        ("State: Nope", 'The value "Nope" isn\'t used for the State field.'),
        (
            "project: NOPE",
            'The value "NOPE" isn\'t used for the project field.',
        ),
        ("Assignee: nobody", "isn't used for the Assignee field"),
        ("{Story points}: many", "isn't used for the Story points field"),
        ("(State: Open", "Missing )"),
        ("State: Open)", "Unexpected )"),
        ("project: {Demo project", "Missing }"),
        ("Demo}", "Unexpected }"),
        ('"unclosed', 'Missing "'),
        ("summary:", "Missing a value"),
        ("#", "Missing a value after #"),
        ("#Nope", "isn't used in any field"),
        ("sort by: votes", "sorts only by created or updated"),
        ("State: Open or", "ends where a term is expected"),
    ],
)
def test_bad_query_is_invalid_query(pool, fake, query, reason):
    response = call(pool, fake, "GET", "/api/issues", query=query)
    assert response.status == 400
    body = response.json()
    assert body["error"] == "invalid_query"
    assert body["error_description"] == (
        "Can't parse search query, please check and update query syntax"
    )
    assert body["error_developer_message"] == "Can't parse search query"
    assert body["error_field"] == "query"
    assert reason in body["error_children"][0]["error"]


# ===================================================================
# Creating and updating issues, comments
# ===================================================================

FULL_CREATE = {
    "project": {"id": "0-1"},
    "summary": "Token masking misses JWTs",
    "description": "Seen in --debug output.",
    "customFields": [
        {
            "name": "Priority",
            "$type": "SingleEnumIssueCustomField",
            "value": {"name": "Major"},
        },
        {
            "name": "State",
            "$type": "StateIssueCustomField",
            "value": {"name": "In Progress"},
        },
        {
            "name": "Assignee",
            "$type": "SingleUserIssueCustomField",
            "value": {"login": "jdoe"},
        },
        {
            "name": "Estimation",
            "$type": "PeriodIssueCustomField",
            "value": {"$type": "PeriodValue", "presentation": "2h"},
        },
        {
            "name": "Story points",
            "$type": "SimpleIssueCustomField",
            "value": 5,
        },
    ],
}


def test_create_issue_with_custom_fields(pool, fake):
    response = call(
        pool,
        fake,
        "POST",
        "/api/issues",
        json_body=FULL_CREATE,
        fields="idReadable,summary,resolved,reporter(login)",
    )
    assert response.status == 200
    assert response.json() == {
        "$type": "Issue",
        "idReadable": "DEMO-4",
        "summary": "Token masking misses JWTs",
        "resolved": None,
        "reporter": {"$type": "User", "login": "admin"},
    }
    record = fake.issues["DEMO-4"]
    assert record["id"] == "2-4"
    assert record["description"] == "Seen in --debug output."
    assert record["fields"] == {
        "Priority": "Major",
        "State": "In Progress",
        "Assignee": "jdoe",
        "Estimation": 120,
        "Story points": 5,
    }


def test_create_issue_without_fields_returns_id(pool, fake):
    body = {"project": {"id": "0-2"}, "summary": "Minimal"}
    response = call(pool, fake, "POST", "/api/issues", json_body=body)
    assert response.json() == {"$type": "Issue", "id": "2-4"}
    record = fake.issues["OPS-1"]
    assert record["fields"]["State"] == "Open"
    assert record["fields"]["Priority"] == "Normal"
    assert record["description"] is None


def test_create_resolved_issue_sets_resolved(pool, fake):
    fake.clock = lambda: 1_800_000_000_000
    body = {
        "project": {"id": "0-1"},
        "summary": "Already fixed",
        "customFields": [
            {
                "name": "State",
                "$type": "StateIssueCustomField",
                "value": {"name": "Fixed"},
            }
        ],
    }
    response = call(
        pool,
        fake,
        "POST",
        "/api/issues",
        json_body=body,
        fields="created,updated,resolved",
    )
    assert response.json() == {
        "$type": "Issue",
        "created": 1_800_000_000_000,
        "updated": 1_800_000_000_000,
        "resolved": 1_800_000_000_000,
    }


def _create_with_field(name, field_type, value):
    return {
        "project": {"id": "0-1"},
        "summary": "Bad field",
        "customFields": [{"name": name, "$type": field_type, "value": value}],
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"summary": "No project"}, "The issue has no project"),
        ({"project": {"id": "0-1"}}, "summary is required"),
        ({"project": {"id": "0-1"}, "summary": "  "}, "summary is required"),
        (
            {"project": {"id": "0-1"}, "summary": "x", "description": 5},
            "description must be a string",
        ),
        (
            _create_with_field("Severity", "SingleEnumIssueCustomField", {}),
            "Unknown custom field: Severity.",
        ),
        (
            _create_with_field(
                "Priority", "SingleEnumIssueCustomField", {"name": "Blocker"}
            ),
            "Unknown value for the Priority field: Blocker.",
        ),
        (
            _create_with_field(
                "Priority", "SimpleIssueCustomField", {"name": "Major"}
            ),
            "needs $type SingleEnumIssueCustomField",
        ),
        (
            {
                "project": {"id": "0-1"},
                "summary": "x",
                "customFields": [{"name": "Priority", "value": {}}],
            },
            "needs $type SingleEnumIssueCustomField, got None",
        ),
        (
            _create_with_field("State", "StateIssueCustomField", None),
            "The State field cannot be empty.",
        ),
        (
            _create_with_field(
                "Assignee", "SingleUserIssueCustomField", {"login": "ghost"}
            ),
            "Unknown user for the Assignee field: ghost.",
        ),
        (
            _create_with_field(
                "Estimation", "PeriodIssueCustomField", {"presentation": "x"}
            ),
            "Invalid period for the Estimation field",
        ),
        (
            _create_with_field("Story points", "SimpleIssueCustomField", "3"),
            "The Story points field takes an integer.",
        ),
    ],
)
def test_invalid_issue_data_is_bad_request(pool, fake, body, message):
    response = call(pool, fake, "POST", "/api/issues", json_body=body)
    assert response.status == 400
    error = response.json()
    assert error["error"] == "bad_request"
    assert message in error["error_description"]
    assert error["error_developer_message"] == error["error_description"]
    assert len(fake.issues) == 3


def test_create_in_unknown_project_is_not_found(pool, fake):
    for project_id in ("0-9", "DEMO"):
        body = {"project": {"id": project_id}, "summary": "x"}
        response = call(pool, fake, "POST", "/api/issues", json_body=body)
        assert response.status == 404
        assert response.json()["error_description"] == (
            f"Entity with id {project_id} not found"
        )


def test_body_that_is_not_json_is_bad_request(pool, fake):
    response = pool.request(
        "POST",
        api_url(fake, "/api/issues"),
        body=b"{summary",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert "not valid JSON" in response.json()["error_description"]


def test_post_needs_json_content_type(pool, fake):
    response = pool.request(
        "POST",
        api_url(fake, "/api/issues"),
        body=json.dumps({"project": {"id": "0-1"}, "summary": "x"}),
        headers={**AUTH, "Content-Type": "text/plain"},
    )
    assert response.status == 415
    assert response.json()["error"] == "Unsupported Media Type"


def test_update_issue_fields_and_resolution(pool, fake):
    fake.clock = lambda: 1_900_000_000_000
    body = {
        "summary": "Login fails for expired tokens",
        "customFields": [
            {
                "name": "State",
                "$type": "StateIssueCustomField",
                "value": {"name": "Fixed"},
            },
            {
                "name": "Assignee",
                "$type": "SingleUserIssueCustomField",
                "value": None,
            },
            {
                "name": "Estimation",
                "$type": "PeriodIssueCustomField",
                "value": {"minutes": 45},
            },
        ],
    }
    response = call(
        pool,
        fake,
        "POST",
        "/api/issues/2-1",
        json_body=body,
        fields="summary,description,updated,resolved",
    )
    assert response.status == 200
    assert response.json() == {
        "$type": "Issue",
        "summary": "Login fails for expired tokens",
        "description": fake.issues["DEMO-1"]["description"],
        "updated": 1_900_000_000_000,
        "resolved": 1_900_000_000_000,
    }
    record = fake.issues["DEMO-1"]
    assert record["fields"]["State"] == "Fixed"
    assert record["fields"]["Assignee"] is None
    assert record["fields"]["Estimation"] == 45
    assert record["fields"]["Priority"] == "Major"


def test_reopening_clears_resolved(pool, fake):
    assert fake.issues["DEMO-3"]["resolved"] is not None
    body = {
        "customFields": [
            {
                "name": "State",
                "$type": "StateIssueCustomField",
                "value": {"name": "Open"},
            }
        ]
    }
    call(pool, fake, "POST", "/api/issues/DEMO-3", json_body=body)
    assert fake.issues["DEMO-3"]["resolved"] is None


def test_update_description_to_null(pool, fake):
    body = {"description": None}
    call(pool, fake, "POST", "/api/issues/DEMO-1", json_body=body)
    assert fake.issues["DEMO-1"]["description"] is None
    assert fake.issues["DEMO-1"]["summary"].startswith("Login fails")


def test_update_with_empty_summary_is_rejected(pool, fake):
    response = call(
        pool, fake, "POST", "/api/issues/DEMO-1", json_body={"summary": ""}
    )
    assert response.status == 400


def test_comments_list_and_add(pool, fake):
    fake.clock = lambda: 1_750_000_000_000
    comments = get_json(
        pool,
        fake,
        "/api/issues/DEMO-1/comments",
        fields="id,text,created,author(login,fullName)",
    )
    assert comments == [
        {
            "$type": "IssueComment",
            "id": "4-1",
            "text": "I can reproduce this with a revoked token.",
            "created": fake.issues["DEMO-1"]["comments"][0]["created"],
            "author": {
                "$type": "User",
                "login": "jdoe",
                "fullName": "Jane Doe",
            },
        }
    ]
    response = call(
        pool,
        fake,
        "POST",
        "/api/issues/2-1/comments",
        json_body={"text": "Fixed in the next build."},
        fields="text,created,author(login),issue(idReadable)",
    )
    assert response.json() == {
        "$type": "IssueComment",
        "text": "Fixed in the next build.",
        "created": 1_750_000_000_000,
        "author": {"$type": "User", "login": "admin"},
        "issue": {"$type": "Issue", "idReadable": "DEMO-1"},
    }
    texts = get_json(pool, fake, "/api/issues/DEMO-1/comments", fields="text")
    assert [comment["text"] for comment in texts] == [
        "I can reproduce this with a revoked token.",
        "Fixed in the next build.",
    ]


def test_empty_comment_is_rejected(pool, fake):
    response = call(
        pool,
        fake,
        "POST",
        "/api/issues/DEMO-1/comments",
        json_body={"text": " "},
    )
    assert response.status == 400
    assert response.json()["error_description"] == (
        "The comment text is required."
    )


def test_add_issue_helper(fake):
    issue = fake.add_issue(
        summary="Helper issue",
        State="Fixed",
        Assignee="jdoe",
        Estimation="1h 15m",
        **{"Story points": 8},
    )
    assert issue["idReadable"] == "DEMO-4"
    assert fake.issues["DEMO-4"] is issue
    assert issue["fields"]["Estimation"] == 75
    assert issue["resolved"] == issue["created"]


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        ({"Severity": "High"}, "no custom field named 'Severity'"),
        ({"State": "Closed"}, "'Closed' is not a value of the State field"),
        ({"Assignee": "ghost"}, "no user with login 'ghost'"),
        ({"Priority": None}, "the Priority field cannot be empty"),
        ({"Estimation": "soon"}, "invalid period"),
    ],
)
def test_add_issue_helper_rejects_bad_values(fake, custom, message):
    with pytest.raises(ValueError, match=message):
        fake.add_issue(**custom)


def test_add_issue_helper_rejects_unknown_project(fake):
    with pytest.raises(ValueError, match="no project 'NOPE'"):
        fake.add_issue("NOPE")


def test_concurrent_creates_get_unique_ids(pool, fake):
    def create(worker):
        for index in range(10):
            body = {"project": {"id": "0-1"}, "summary": f"{worker}/{index}"}
            call(pool, fake, "POST", "/api/issues", json_body=body)

    threads = [threading.Thread(target=create, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = sorted(
        issue["numberInProject"]
        for issue in fake.issues.values()
        if issue["project"] == "DEMO"
    )
    assert numbers == list(range(1, 64))
    assert len({issue["id"] for issue in fake.issues.values()}) == 63


# ===================================================================
# Projects
# ===================================================================


def test_projects_by_id_and_short_name(pool, fake):
    fields = "id,shortName,name,leader(login)"
    by_id = get_json(pool, fake, "/api/admin/projects/0-1", fields=fields)
    by_name = get_json(pool, fake, "/api/admin/projects/DEMO", fields=fields)
    assert (
        by_id
        == by_name
        == {
            "$type": "Project",
            "id": "0-1",
            "shortName": "DEMO",
            "name": "Demo project",
            "leader": {"$type": "User", "login": "admin"},
        }
    )


def test_projects_paging(pool, fake):
    fake.add_project("WEB", "Website")
    page = get_json(
        pool,
        fake,
        "/api/admin/projects",
        fields="shortName",
        **{"$top": "2", "$skip": "1"},
    )
    assert [project["shortName"] for project in page] == ["OPS", "WEB"]


def test_project_custom_fields(pool, fake):
    fields = (
        "id,canBeEmpty,emptyFieldText,field(name,fieldType(id,isMultiValue)),"
        "bundle(values(name,isResolved)),defaultValues(name)"
    )
    settings = get_json(
        pool, fake, "/api/admin/projects/0-1/customFields", fields=fields
    )
    by_name = {item["field"]["name"]: item for item in settings}
    assert {name: item["$type"] for name, item in by_name.items()} == {
        "Priority": "EnumProjectCustomField",
        "State": "StateProjectCustomField",
        "Assignee": "UserProjectCustomField",
        "Estimation": "PeriodProjectCustomField",
        "Story points": "SimpleProjectCustomField",
    }
    assert by_name["Priority"]["field"]["fieldType"] == {
        "$type": "FieldType",
        "id": "enum[1]",
        "isMultiValue": False,
    }
    states = by_name["State"]["bundle"]["values"]
    assert [(s["name"], s["isResolved"]) for s in states] == [
        ("Open", False),
        ("In Progress", False),
        ("Fixed", True),
        ("Won't fix", True),
    ]
    assert by_name["Priority"]["defaultValues"] == [
        {"$type": "EnumBundleElement", "name": "Normal"}
    ]
    assert by_name["Assignee"]["canBeEmpty"] is True
    assert by_name["Assignee"]["emptyFieldText"] == "Unassigned"
    assert "bundle" not in by_name["Estimation"]


# ===================================================================
# Faults
# ===================================================================


def test_status_fault_default(pool, fake):
    fake.fail_next("status")
    response = call(pool, fake, "GET", "/api/users/me")
    assert response.status == 503
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.json() == {
        "error": "Service Unavailable",
        "error_description": "HTTP 503 Service Unavailable",
    }
    assert call(pool, fake, "GET", "/api/users/me").status == 200


def test_status_fault_count_and_headers(pool, fake):
    fake.fail_next("status", count=2, status=429, headers={"Retry-After": "1"})
    statuses = []
    for _ in range(3):
        response = call(pool, fake, "GET", "/api/issues")
        statuses.append(response.status)
        if response.status == 429:
            assert response.headers["Retry-After"] == "1"
    assert statuses == [429, 429, 200]


def test_status_fault_with_body(pool, fake):
    fake.fail_next("status", status=500, body=b'{"error":"server_error"}')
    response = call(pool, fake, "GET", "/api/issues")
    assert response.status == 500
    assert response.data == b'{"error":"server_error"}'


def test_fault_comes_before_authentication(pool, fake):
    fake.fail_next("status", status=504)
    response = call(pool, fake, "GET", "/api/issues", headers={})
    assert response.status == 504


def test_fault_match_selects_paths(pool, fake):
    fake.fail_next("status", match=r"^/api/issues$", status=502)
    assert call(pool, fake, "GET", "/api/users/me").status == 200
    assert call(pool, fake, "GET", "/api/issues/DEMO-1").status == 200
    assert call(pool, fake, "GET", "/api/issues").status == 502
    assert call(pool, fake, "GET", "/api/issues").status == 200


def test_html_fault(pool, fake):
    fake.fail_next("html")
    response = call(pool, fake, "GET", "/api/issues")
    assert response.status == 502
    assert response.headers["Content-Type"] == "text/html"
    assert response.data.startswith(b"<!DOCTYPE html>")
    assert b"502 Bad Gateway" in response.data


def test_truncated_fault(fake):
    fake.fail_next("truncated")
    connection = raw_connection(fake)
    connection.request("GET", "/api/issues", headers=AUTH)
    response = connection.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    connection.close()


def test_not_json_fault(pool, fake):
    fake.fail_next("not_json")
    response = call(pool, fake, "GET", "/api/issues")
    assert response.status == 200
    assert response.headers["Content-Type"] == JSON_TYPE
    with pytest.raises(ValueError):
        json.loads(response.data)


def test_delay_fault_times_out_client(fake):
    fake.fail_next("delay", seconds=2)
    connection = raw_connection(fake, timeout=0.2)
    connection.request("GET", "/api/users/me", headers=AUTH)
    with pytest.raises(socket.timeout):
        connection.getresponse()
    connection.close()


def test_delay_fault_then_normal_answer(pool, fake):
    fake.fail_next("delay", seconds=0.3)
    started = time.monotonic()
    response = call(pool, fake, "GET", "/api/users/me", fields="login")
    assert time.monotonic() - started >= 0.3
    assert response.status == 200
    assert response.json()["login"] == "admin"


def test_drop_fault(fake):
    fake.fail_next("drop")
    connection = raw_connection(fake)
    connection.request("GET", "/api/users/me", headers=AUTH)
    with pytest.raises(http.client.RemoteDisconnected):
        connection.getresponse()
    connection.close()


def test_redirect_fault(pool, fake):
    fake.fail_next("redirect", location="http://127.0.0.1:9/elsewhere")
    response = call(pool, fake, "GET", "/api/users/me")
    assert response.status == 302
    assert response.headers["Location"] == "http://127.0.0.1:9/elsewhere"
    fake.fail_next("redirect", status=307, location="/api/users/me")
    assert call(pool, fake, "GET", "/api/issues").status == 307


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("slow", {}, "unknown fault kind 'slow'"),
        ("drop", {"seconds": 1}, "fault 'drop' takes no option seconds"),
        ("redirect", {}, "a redirect fault needs location=URL"),
        ("status", {"count": 0}, "count must be at least 1"),
    ],
)
def test_fail_next_rejects_bad_arguments(fake, kind, options, message):
    with pytest.raises(ValueError, match=message):
        fake.fail_next(kind, **options)


# ===================================================================
# Connections, prefix, TLS, IPv6
# ===================================================================


def test_keep_alive_serves_many_requests(fake):
    connection = raw_connection(fake)
    for path in ("/api/users/me", "/api/issues", "/api/admin/projects"):
        connection.request("GET", path, headers=AUTH)
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Connection") != "close"
        response.read()
    connection.request("GET", "/api/issues/DEMO-99", headers=AUTH)
    missing = connection.getresponse()
    assert missing.status == 404
    missing.read()
    connection.close()
    assert fake.connections == 1
    assert len(fake.requests) == 4


def test_urllib3_pool_reuses_connection(fake):
    with urllib3.HTTPConnectionPool(
        "127.0.0.1", fake.port, maxsize=1, retries=False
    ) as connection_pool:
        for _ in range(5):
            response = connection_pool.request(
                "GET", "/api/users/me", headers=AUTH
            )
            assert response.status == 200
    assert fake.connections == 1


def test_stop_closes_idle_connections(fake):
    connection = raw_connection(fake)
    connection.request("GET", "/api/users/me", headers=AUTH)
    connection.getresponse().read()
    port = fake.port
    fake.stop()
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.request("GET", "/api/users/me", headers=AUTH)
        connection.getresponse()
    connection.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_url_and_port_need_a_running_server():
    server = FakeYouTrack()
    with pytest.raises(RuntimeError, match="not running"):
        server.url  # noqa: B018


def test_prefix(pool):
    with FakeYouTrack(prefix="/youtrack/") as server:
        assert server.url == f"http://127.0.0.1:{server.port}/youtrack"
        me = get_json(pool, server, "/api/users/me", fields="login")
        assert me["login"] == "admin"
        assert server.requests[-1].path == "/api/users/me"
        outside = pool.request(
            "GET",
            f"http://127.0.0.1:{server.port}/api/users/me",
            headers=AUTH,
        )
        assert outside.status == 404
        assert server.requests[-1].path == "/api/users/me"
        near = pool.request(
            "GET",
            f"http://127.0.0.1:{server.port}/youtrackx/api/users/me",
            headers=AUTH,
        )
        assert near.status == 404


def test_prefix_must_start_with_slash():
    with pytest.raises(ValueError, match="must start with /"):
        FakeYouTrack(prefix="youtrack")


def test_https_with_trusted_certificate(tls_files, tls_fake):
    cert_path, _ = tls_files
    assert tls_fake.url.startswith("https://127.0.0.1:")
    with urllib3.PoolManager(
        ca_certs=str(cert_path), retries=False, timeout=5.0
    ) as secure_pool:
        for _ in range(3):
            me = get_json(
                secure_pool, tls_fake, "/api/users/me", fields="login"
            )
            assert me == {"$type": "Me", "login": "admin"}
    assert tls_fake.connections == 1


def test_https_rejects_untrusted_client(tls_fake):
    with (
        urllib3.PoolManager(retries=False, timeout=5.0) as default_pool,
        pytest.raises(urllib3.exceptions.SSLError),
    ):
        call(default_pool, tls_fake, "GET", "/api/users/me")
    # The server keeps serving after a failed handshake.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection(
        "127.0.0.1", tls_fake.port, timeout=5, context=context
    )
    connection.request("GET", "/api/users/me", headers=AUTH)
    assert connection.getresponse().status == 200
    connection.close()


def test_https_truncated_fault_closes_connection(tls_files, tls_fake):
    cert_path, _ = tls_files
    tls_fake.fail_next("truncated")
    context = ssl.create_default_context(cafile=str(cert_path))
    connection = http.client.HTTPSConnection(
        "127.0.0.1", tls_fake.port, timeout=5, context=context
    )
    connection.request("GET", "/api/issues", headers=AUTH)
    response = connection.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    connection.close()


def test_ipv6_loopback(pool):
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    try:
        server = FakeYouTrack(host="::1").start()
    except OSError as error:
        pytest.skip(f"cannot bind ::1: {error}")
    with server:
        assert server.url == f"http://[::1]:{server.port}"
        me = get_json(pool, server, "/api/users/me", fields="login")
        assert me["login"] == "admin"


# ===================================================================
# Command-line mode
# ===================================================================


def read_first_line(process: subprocess.Popen, timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no URL line within {timeout} s")
    return process.stdout.readline()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_main_mode_serves_until_killed(tls_files, tls):
    command = [
        sys.executable,
        str(FAKE_PATH),
        "--port",
        "0",
        "--prefix",
        "/yt",
        "--issues",
        "5",
    ]
    cert_path, key_path = tls_files
    if tls:
        command += ["--tls-cert", str(cert_path), "--tls-key", str(key_path)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url, token = read_first_line(process, timeout=10).split()
        assert token == DEFAULT_TOKEN
        assert url.startswith("https://" if tls else "http://")
        assert url.endswith("/yt")
        options = {"ca_certs": str(cert_path)} if tls else {}
        with urllib3.PoolManager(
            retries=False, timeout=5.0, **options
        ) as client:
            me = client.request(
                "GET",
                f"{url}/api/users/me?fields=login",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert me.status == 200
            assert me.json() == {"$type": "Me", "login": "admin"}
            issues = client.request(
                "GET",
                f"{url}/api/issues",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert len(issues.json()) == 5
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "GET /yt/api/users/me?fields=login -> 200" in stderr


# ===================================================================
# Conformance with the OpenAPI document
# ===================================================================

# Properties that YouTrack returns but the document leaves out. The
# FieldType samples in the YouTrack 2019.1 REST docs show isMultiValue.
EXTRA_PROPERTIES = {"FieldType": {"isMultiValue": {"type": "boolean"}}}
# YouTrack returns null for an empty user field, though the document
# does not mark the value nullable.
KNOWN_NULLABLE = {("SingleUserIssueCustomField", "value")}

CREATE_BODY = {
    "project": {"id": "0-1"},
    "summary": "Conformance sample",
    "customFields": FULL_CREATE["customFields"],
}
# One request per served operation: (method, template, path, body).
SAMPLES = [
    ("GET", "/users/me", "/users/me", None),
    ("GET", "/issues", "/issues", None),
    ("POST", "/issues", "/issues", CREATE_BODY),
    ("GET", "/issues/{id}", "/issues/DEMO-3", None),
    ("POST", "/issues/{id}", "/issues/DEMO-2", {"summary": "Renamed"}),
    ("GET", "/issues/{id}/comments", "/issues/DEMO-1/comments", None),
    (
        "POST",
        "/issues/{id}/comments",
        "/issues/DEMO-1/comments",
        {"text": "Looks good."},
    ),
    ("GET", "/admin/projects", "/admin/projects", None),
    ("GET", "/admin/projects/{id}", "/admin/projects/0-1", None),
    (
        "GET",
        "/admin/projects/{id}/customFields",
        "/admin/projects/0-1/customFields",
        None,
    ),
]
_USER = "id,login,fullName,email,ringId,guest,online,banned,avatarUrl"
_PROJECT_FIELD = (
    "id,canBeEmpty,emptyFieldText,ordinal,isPublic,"
    "field(id,name,localizedName,ordinal,fieldType(id,isMultiValue)),"
    "bundle(id,isUpdateable,values(id,name,localizedName,description,"
    f"ordinal,archived,isResolved),aggregatedUsers({_USER})),"
    "defaultValues(id,name,isResolved,login)"
)
_PROJECT = (
    "id,name,shortName,description,archived,template,"
    f"leader({_USER}),createdBy(login)"
)
_ISSUE = (
    "id,idReadable,numberInProject,summary,description,created,updated,"
    f"resolved,isDraft,votes,commentsCount,tags,links,project({_PROJECT}),"
    f"reporter({_USER}),updater(login),"
    "customFields(id,name,value(id,name,isResolved,ordinal,login,fullName,"
    f"minutes,presentation),projectCustomField({_PROJECT_FIELD})),"
    "comments(id,text,created,author(login))"
)
_COMMENT = (
    "id,text,created,updated,deleted,pinned,attachments,reactions,"
    f"author({_USER}),issue(id,idReadable)"
)
# Fields that select every property the server returns, by template.
DEEP_FIELDS = {
    "/users/me": _USER,
    "/issues": _ISSUE,
    "/issues/{id}": _ISSUE,
    "/issues/{id}/comments": _COMMENT,
    "/admin/projects": f"{_PROJECT},customFields({_PROJECT_FIELD})",
    "/admin/projects/{id}": f"{_PROJECT},customFields({_PROJECT_FIELD})",
    "/admin/projects/{id}/customFields": f"{_PROJECT_FIELD},project(id)",
}


@functools.cache
def _load_openapi(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def openapi_document() -> dict:
    """Return the YouTrack OpenAPI document, or skip the calling test."""
    if not OPENAPI_PATH.is_file():
        pytest.skip(f"the YouTrack OpenAPI document is absent: {OPENAPI_PATH}")
    return _load_openapi(OPENAPI_PATH)


def _reference_name(reference: str) -> str:
    return reference.rsplit("/", 1)[-1]


class SchemaChecker:
    """Check JSON values against the schemas of the OpenAPI document.

    Each object's ``$type`` selects its schema, which must extend the
    declared one. jsonschema checks the types of the object's own
    properties and rejects undeclared ones. The checker then descends
    into nested objects.
    """

    def __init__(self, document: dict):
        self.schemas = document["components"]["schemas"]
        self.problems: list = []

    def check(self, value, schema: dict, where: str) -> None:
        if "$ref" in schema:
            self.check_object(value, _reference_name(schema["$ref"]), where)
        elif schema.get("type") == "array":
            if not isinstance(value, list):
                self.problems.append(f"{where}: expected an array")
                return
            for index, item in enumerate(value):
                self.check(item, schema["items"], f"{where}[{index}]")

    def check_object(self, value, declared: str, where: str) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{where}: expected a {declared} object")
            return
        type_name = value.get("$type")
        if not isinstance(type_name, str):
            self.problems.append(f"{where}: object without $type")
            return
        name = self.concrete_schema(declared, type_name)
        if name is None:
            self.problems.append(
                f"{where}: $type {type_name} does not extend {declared}"
            )
            return
        properties = self.properties(name)
        leaf_schema = {
            "type": "object",
            "properties": {
                key: self.leaf(name, key, prop)
                for key, prop in properties.items()
            },
            "additionalProperties": False,
        }
        validator = jsonschema.Draft7Validator(leaf_schema)
        for error in validator.iter_errors(value):
            self.problems.append(f"{where} ({name}): {error.message}")
        for key, member in value.items():
            self.check_member(properties.get(key), member, f"{where}.{key}")

    def check_member(self, prop, member, where: str) -> None:
        if prop is None or member is None:
            return
        if "$ref" in prop:
            self.check_object(member, _reference_name(prop["$ref"]), where)
        elif prop.get("type") == "array" and "$ref" in prop.get("items", {}):
            item_name = _reference_name(prop["items"]["$ref"])
            for index, item in enumerate(member):
                self.check_object(item, item_name, f"{where}[{index}]")

    def concrete_schema(self, declared: str, type_name: str):
        candidate = type_name
        for ancestor in self.ancestors(declared):
            mapping = self.schemas[ancestor].get("discriminator", {})
            if type_name in mapping.get("mapping", {}):
                candidate = _reference_name(mapping["mapping"][type_name])
                break
        if candidate not in self.schemas:
            return None
        if declared not in self.ancestors(candidate):
            return None
        return candidate

    def ancestors(self, name: str) -> frozenset:
        found = {name}
        for part in self.schemas[name].get("allOf", []):
            if "$ref" in part:
                found |= self.ancestors(_reference_name(part["$ref"]))
        return frozenset(found)

    def properties(self, name: str) -> dict:
        schema = self.schemas[name]
        merged: dict = {}
        for part in schema.get("allOf", []):
            if "$ref" in part:
                merged.update(self.properties(_reference_name(part["$ref"])))
            else:
                merged.update(part.get("properties", {}))
        merged.update(schema.get("properties", {}))
        merged.update(EXTRA_PROPERTIES.get(name, {}))
        return merged

    def leaf(self, name: str, key: str, prop: dict) -> dict:
        """Return a JSON schema for one property, without descending."""
        nullable = prop.get("nullable", False) or (name, key) in KNOWN_NULLABLE
        if "$ref" in prop:
            types = ["object"]
        elif prop.get("type") == "object" and "properties" not in prop:
            # The document gives no shape for a polymorphic value such
            # as IssueCustomField.value, so any JSON value fits.
            return {}
        else:
            types = [prop["type"]]
        if nullable:
            types.append("null")
        leaf = {"type": types}
        if "enum" in prop:
            leaf["enum"] = prop["enum"] + ([None] if nullable else [])
        return leaf


def test_served_routes_are_in_openapi():
    paths = openapi_document()["paths"]
    for route in ROUTES:
        assert route.template in paths, route
        operation = paths[route.template].get(route.method.lower())
        assert operation is not None, route
        names = {parameter["name"] for parameter in operation["parameters"]}
        missing = set(route.parameters) - names
        assert not missing, f"{route}: parameters {missing} not in document"


def test_samples_cover_every_route():
    sampled = {(method, template) for method, template, _, _ in SAMPLES}
    assert sampled == {(route.method, route.template) for route in ROUTES}


@pytest.mark.parametrize(
    ("method", "template", "path", "body"),
    SAMPLES,
    ids=[f"{method} {template}" for method, template, _, _ in SAMPLES],
)
def test_responses_match_openapi_schema(pool, method, template, path, body):
    document = openapi_document()
    operation = document["paths"][template][method.lower()]
    schema = operation["responses"]["200"]["content"]["application/json"]
    default_fields = next(
        parameter["schema"]["default"]
        for parameter in operation["parameters"]
        if parameter["name"] == "fields"
    )
    checker = SchemaChecker(document)
    for fields in (None, default_fields, DEEP_FIELDS[template]):
        with FakeYouTrack(issues=4) as server:
            params = {"fields": fields} if fields else {}
            response = call(
                pool, server, method, "/api" + path, json_body=body, **params
            )
            assert response.status == 200, response.data
            checker.check(response.json(), schema["schema"], f"{fields}")
    assert checker.problems == []


def test_schema_checker_reports_problems():
    checker = SchemaChecker(openapi_document())
    checker.check_object(
        {
            "$type": "Issue",
            "summary": 5,
            "bogus": True,
            "project": {"$type": "User"},
            "customFields": [{"$type": "SimpleIssueCustomField", "value": 1}],
        },
        "Issue",
        "issue",
    )
    assert any("5 is not of type 'string'" in p for p in checker.problems)
    assert any("'bogus' was unexpected" in p for p in checker.problems)
    assert any("User does not extend Project" in p for p in checker.problems)
    assert len(checker.problems) == 3
