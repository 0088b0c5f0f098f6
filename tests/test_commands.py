"""Commands against the fake YouTrack: issues, projects, api and config.

Each command runs in this process through the ``cli`` fixture, in table
and JSON form, and the tests check both what yt prints and what the fake
server received or stored.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys

import pytest
from fake_youtrack import DEFAULT_TOKEN

import yt

ISSUE_HEADER = ["ID", "STATE", "PRIORITY", "ASSIGNEE", "SUMMARY"]
FIELD_NAMES = "Assignee, Estimation, Priority, State, Story points"


def api_requests(server, method=None, path=None) -> list:
    """Return the recorded requests, optionally of one method and path."""
    return [
        request
        for request in server.requests
        if (method is None or request.method == method)
        and (path is None or request.path == path)
    ]


def table_rows(out: str) -> list:
    """Split table output into rows of cells separated by 2+ spaces."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]


# ----------------------------------------------------------- issues list


def test_issues_list_table(cli, api):
    result = cli("issues", "list")

    assert result.code == 0, result.err
    rows = table_rows(result.out)
    assert rows[0] == ISSUE_HEADER
    assert rows[1:] == [
        ["DEMO-3", "Fixed", "Critical", "Jane Doe",
         "Crash on an empty search query"],
        ["DEMO-2", "In Progress", "Normal",
         "Add CSV export to the issue list"],
        ["DEMO-1", "Open", "Major", "Administrator",
         "Login fails when the token has expired"],
    ]
    assert result.err == ""


def test_issues_list_json(cli, api):
    result = cli("issues", "list", "--format", "json")

    assert result.code == 0, result.err
    issues = json.loads(result.out)
    assert [issue["idReadable"] for issue in issues] == [
        "DEMO-3", "DEMO-2", "DEMO-1",
    ]
    first = issues[0]
    assert first["summary"] == "Crash on an empty search query"
    assert first["project"] == {"$type": "Project", "shortName": "DEMO"}
    names = [field["name"] for field in first["customFields"]]
    assert "Priority" in names


def test_issues_list_query(cli, api):
    result = cli("issues", "list", "-q", "State: Open", "--format", "json")

    assert result.code == 0, result.err
    assert [i["idReadable"] for i in json.loads(result.out)] == ["DEMO-1"]
    (request,) = api_requests(api, "GET", "/api/issues")
    assert request.query["query"] == ["State: Open"]


@pytest.mark.parametrize(
    ("project", "query", "expected"),
    [
        ("DEMO", None, "project: DEMO"),
        ("DEMO", "#Unresolved", "project: DEMO #Unresolved"),
        ("Demo project", None, "project: {Demo project}"),
    ],
)
def test_issues_list_project(cli, api, project, query, expected):
    args = ["issues", "list", "-p", project, "--format", "json"]
    if query:
        args += ["-q", query]

    result = cli(*args)

    assert result.code == 0, result.err
    ids = [issue["idReadable"] for issue in json.loads(result.out)]
    assert set(ids) <= {"DEMO-1", "DEMO-2", "DEMO-3"}
    assert ids
    (request,) = api_requests(api, "GET", "/api/issues")
    assert request.query["query"] == [expected]


def test_issues_list_empty_project(cli, api):
    table = cli("issues", "list", "-p", "OPS")
    listing = cli("issues", "list", "-p", "OPS", "--format", "json")

    assert table.code == 0, table.err
    assert table.out == ""
    assert "No issues match." in table.err
    assert listing.code == 0, listing.err
    assert json.loads(listing.out) == []


def test_issues_list_limit(cli, api):
    result = cli("issues", "list", "--limit", "2", "--format", "json")

    assert result.code == 0, result.err
    assert len(json.loads(result.out)) == 2
    (request,) = api_requests(api, "GET", "/api/issues")
    assert request.query["$top"] == ["2"]
    assert request.query["$skip"] == ["0"]


@pytest.mark.parametrize("limit", ["-1", "-5"])
def test_issues_list_invalid_limit(cli, api, limit):
    result = cli("issues", "list", "--limit", limit)

    assert result.code == 2
    assert f"invalid --limit {limit}" in result.err
    assert api.requests == []


@pytest.mark.parametrize(
    ("limit", "pages", "count"),
    [
        ("1000", [("100", "0"), ("100", "100"), ("100", "200")], 253),
        ("150", [("100", "0"), ("50", "100")], 150),
        ("200", [("100", "0"), ("100", "100")], 200),
    ],
)
def test_issues_list_pages(cli, api, limit, pages, count):
    api.add_issues(250)

    result = cli("issues", "list", "--limit", limit, "--format", "json")

    assert result.code == 0, result.err
    issues = json.loads(result.out)
    assert isinstance(issues, list)
    assert len(issues) == count
    ids = [issue["idReadable"] for issue in issues]
    assert len(set(ids)) == count
    sent = [
        (r.query["$top"][0], r.query["$skip"][0])
        for r in api_requests(api, "GET", "/api/issues")
    ]
    assert sent == pages


def test_issues_list_pages_table(cli, api):
    api.add_issues(250)

    result = cli("issues", "list", "--limit", "1000")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert table_rows(result.out)[0] == ISSUE_HEADER
    assert len(lines) == 1 + 253
    # Widths are fixed by the first page, so every row still lines up.
    offset = lines[0].index("SUMMARY")
    assert all(line[offset - 2 : offset] == "  " for line in lines[1:])


class _RecordingStream(io.TextIOWrapper):
    """A captured stdout that notes the server's request count for each
    write that contains an issue id."""

    def __init__(self, server):
        super().__init__(io.BytesIO(), encoding="utf-8", newline="\n")
        self.server = server
        self.requests_at_write = []

    def write(self, text):
        if "DEMO-" in text:
            self.requests_at_write.append(len(self.server.requests))
        return super().write(text)

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("utf-8")


@pytest.mark.parametrize("output_format", ["json", "table"])
def test_issues_list_streams_rows(api, monkeypatch, output_format):
    api.add_issues(250)
    stdout = _RecordingStream(api)
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setattr(sys, "stdin", io.StringIO())

    code = yt.main(
        ["issues", "list", "--limit", "1000", "--format", output_format]
    )

    assert code == 0
    # Rows of the first page reach stdout before the second page is
    # requested.
    assert stdout.requests_at_write[0] == 1
    assert stdout.requests_at_write[-1] == 3
    if output_format == "json":
        assert len(json.loads(stdout.text())) == 253
    else:
        assert len(stdout.text().splitlines()) == 254


# ----------------------------------------------------------- issues show


def test_issues_show_table(cli, api):
    result = cli("issues", "show", "DEMO-1")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "DEMO-1: Login fails when the token has expired"
    assert "  Project:       DEMO" in lines
    assert "  Reporter:      Administrator" in lines
    assert "  Created:       2024-05-06 09:00 UTC" in lines
    assert "  Resolved:      no" in lines
    assert "  Priority:      Major" in lines
    assert "  State:         Open" in lines
    assert "  Assignee:      Administrator" in lines
    assert "  Estimation:    1h 30m" in lines
    assert "  Story points:  -" in lines
    assert "  Run `yt auth login` with an expired token." in lines
    assert "Comments (1):" in lines
    assert "  jdoe, 2024-05-06 10:00 UTC:" in lines
    assert "    I can reproduce this with a revoked token." in lines


def test_issues_show_json(cli, api):
    result = cli("issues", "show", "DEMO-3", "--format", "json")

    assert result.code == 0, result.err
    issue = json.loads(result.out)
    assert issue["idReadable"] == "DEMO-3"
    assert issue["summary"] == "Crash on an empty search query"
    assert issue["description"] == "An empty query string raises KeyError."
    assert issue["project"]["shortName"] == "DEMO"
    values = {f["name"]: f["value"] for f in issue["customFields"]}
    assert values["Story points"] == 3
    assert values["Estimation"]["presentation"] == "2h"
    assert values["Assignee"]["login"] == "jdoe"


def test_issues_show_by_database_id(cli, api):
    result = cli("issues", "show", "2-2", "--format", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["idReadable"] == "DEMO-2"


def test_issues_show_not_found(cli, api):
    result = cli("issues", "show", "DEMO-99")

    assert result.code == 4
    assert result.out == ""
    assert "reading issue DEMO-99 failed: not found" in result.err
    assert "Entity with id DEMO-99 not found" in result.err


@pytest.mark.parametrize("issue_id", ["../admin", "DEMO 1", "DEMO-1?x=1"])
def test_issues_show_invalid_id(cli, api, issue_id):
    result = cli("issues", "show", issue_id)

    assert result.code == 2
    assert f"invalid issue id {issue_id!r}" in result.err
    assert api.requests == []


# --------------------------------------------------------- issues create


def test_issues_create_custom_fields(cli, api):
    result = cli(
        "issues", "create", "DEMO", "Export fails on Windows",
        "-d", "Steps to reproduce",
        "--field", "Priority=Critical",
        "--field", "state=In Progress",
        "--field", "Assignee=jdoe",
        "--field", "Estimation=1h 30m",
        "--field", "Story points=5",
    )

    assert result.code == 0, result.err
    assert result.out == "DEMO-4\n"
    assert "Created DEMO-4: Export fails on Windows" in result.err
    issue = api.issues["DEMO-4"]
    assert issue["summary"] == "Export fails on Windows"
    assert issue["description"] == "Steps to reproduce"
    assert issue["fields"] == {
        "Priority": "Critical",
        "State": "In Progress",
        "Assignee": "jdoe",
        "Estimation": 90,
        "Story points": 5,
    }
    (post,) = api_requests(api, "POST", "/api/issues")
    body = post.json()
    assert body["project"] == {"id": "0-1"}
    sent = {item["name"]: item for item in body["customFields"]}
    assert sent["Priority"]["$type"] == "SingleEnumIssueCustomField"
    assert sent["Priority"]["value"] == {"name": "Critical"}
    assert sent["State"]["$type"] == "StateIssueCustomField"
    assert sent["Assignee"]["value"] == {"login": "jdoe"}
    assert sent["Estimation"]["value"] == {"presentation": "1h 30m"}
    assert sent["Story points"]["value"] == 5


def test_issues_create_json(cli, api):
    result = cli(
        "issues", "create", "OPS", "Rotate the backups", "--format", "json"
    )

    assert result.code == 0, result.err
    issue = json.loads(result.out)
    assert issue["idReadable"] == "OPS-1"
    assert issue["summary"] == "Rotate the backups"
    assert issue["project"]["shortName"] == "OPS"
    assert api.issues["OPS-1"]["fields"]["State"] == "Open"


def test_issues_create_description_stdin(cli, api):
    result = cli(
        "issues", "create", "DEMO", "From a pipe", "-d", "-",
        input="first line\nsecond line\n",
    )

    assert result.code == 0, result.err
    description = api.issues["DEMO-4"]["description"]
    assert description.rstrip("\n") == "first line\nsecond line"


def test_issues_create_unknown_field(cli, api):
    result = cli(
        "issues", "create", "DEMO", "Nope", "--field", "Severity=High"
    )

    assert result.code == 2
    assert "project DEMO has no field 'Severity'" in result.err
    assert f"its fields are: {FIELD_NAMES}" in result.err
    assert api_requests(api, "POST") == []
    assert "DEMO-4" not in api.issues


def test_issues_create_unknown_project(cli, api):
    result = cli("issues", "create", "NOPE", "Lost")

    assert result.code == 4
    assert "project 'NOPE' not found" in result.err
    assert api_requests(api, "POST") == []


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("Priority=Urgent", "Unknown value for the Priority field: Urgent."),
        ("Assignee=nobody", "Unknown user for the Assignee field: nobody."),
        ("Estimation=soon", "Invalid period for the Estimation field"),
    ],
)
def test_issues_create_invalid_value(cli, api, field, message):
    result = cli("issues", "create", "DEMO", "Bad value", "--field", field)

    assert result.code == 1
    assert "creating an issue in DEMO failed: invalid request" in result.err
    assert message in result.err
    assert "DEMO-4" not in api.issues


def test_issues_create_integer_field_rejects_text(cli, api):
    result = cli(
        "issues", "create", "DEMO", "Points", "--field", "Story points=many"
    )

    assert result.code == 2
    assert "invalid value 'many' for field 'Story points'" in result.err
    assert api_requests(api, "POST") == []


@pytest.mark.parametrize(
    ("project_type", "type_id", "value", "expected"),
    [
        ("EnumProjectCustomField", "enum[1]", "UI",
         ("SingleEnumIssueCustomField", {"name": "UI"})),
        ("EnumProjectCustomField", "enum[*]", "UI, API",
         ("MultiEnumIssueCustomField", [{"name": "UI"}, {"name": "API"}])),
        ("UserProjectCustomField", "user[*]", "admin,jdoe",
         ("MultiUserIssueCustomField",
          [{"login": "admin"}, {"login": "jdoe"}])),
        ("VersionProjectCustomField", "version[*]", "",
         ("MultiVersionIssueCustomField", [])),
        ("StateProjectCustomField", "state[1]", "",
         ("StateIssueCustomField", None)),
        ("TextProjectCustomField", "text", "Some text",
         ("TextIssueCustomField", {"text": "Some text"})),
        ("SimpleProjectCustomField", "float", "1.5",
         ("SimpleIssueCustomField", 1.5)),
        ("SimpleProjectCustomField", "string", "free text",
         ("SimpleIssueCustomField", "free text")),
    ],
)
def test_custom_field_value_types(project_type, type_id, value, expected):
    item = {
        "$type": project_type,
        "field": {"name": "Field", "fieldType": {"id": type_id}},
    }

    body = yt._custom_field_value(item, value)

    issue_type, sent = expected
    assert body == {"name": "Field", "$type": issue_type, "value": sent}


@pytest.mark.parametrize("pair", ["Priority", "=Major"])
def test_issues_create_malformed_field(cli, api, pair):
    result = cli("issues", "create", "DEMO", "Bad", "--field", pair)

    assert result.code == 2
    assert "expected NAME=VALUE" in result.err
    assert api_requests(api, "POST") == []


# --------------------------------------------------------- issues update


def test_issues_update_fields(cli, api):
    result = cli(
        "issues", "update", "DEMO-2",
        "--summary", "CSV and TSV export",
        "-d", "Both formats",
        "--field", "State=Fixed",
        "--field", "Assignee=admin",
    )

    assert result.code == 0, result.err
    assert "Updated DEMO-2" in result.err
    issue = api.issues["DEMO-2"]
    assert issue["summary"] == "CSV and TSV export"
    assert issue["description"] == "Both formats"
    assert issue["fields"]["State"] == "Fixed"
    assert issue["fields"]["Assignee"] == "admin"
    assert issue["resolved"] is not None


def test_issues_update_json(cli, api):
    result = cli(
        "issues", "update", "DEMO-1", "--field", "Priority=Minor",
        "--format", "json",
    )

    assert result.code == 0, result.err
    issue = json.loads(result.out)
    assert issue["idReadable"] == "DEMO-1"
    values = {f["name"]: f["value"] for f in issue["customFields"]}
    assert values["Priority"]["name"] == "Minor"
    assert api.issues["DEMO-1"]["summary"] == (
        "Login fails when the token has expired"
    )


def test_issues_update_clears_field(cli, api):
    result = cli("issues", "update", "DEMO-1", "--field", "Assignee=")

    assert result.code == 0, result.err
    assert api.issues["DEMO-1"]["fields"]["Assignee"] is None
    (post,) = api_requests(api, "POST", "/api/issues/DEMO-1")
    assert post.json()["customFields"] == [
        {"name": "Assignee", "$type": "SingleUserIssueCustomField",
         "value": None}
    ]


def test_issues_update_summary_only_sends_summary(cli, api):
    result = cli("issues", "update", "DEMO-1", "-s", "Shorter")

    assert result.code == 0, result.err
    (post,) = api_requests(api, "POST", "/api/issues/DEMO-1")
    assert post.json() == {"summary": "Shorter"}
    assert api.issues["DEMO-1"]["description"].startswith("Run `yt auth")


def test_issues_update_nothing(cli, api):
    result = cli("issues", "update", "DEMO-1")

    assert result.code == 2
    assert "nothing to update" in result.err
    assert api.requests == []


def test_issues_update_unknown_field(cli, api):
    result = cli("issues", "update", "DEMO-1", "--field", "Colour=red")

    assert result.code == 2
    assert "has no field 'Colour'" in result.err
    assert FIELD_NAMES in result.err
    assert api_requests(api, "POST") == []


def test_issues_update_not_found(cli, api):
    result = cli("issues", "update", "DEMO-42", "-s", "Gone")

    assert result.code == 4
    assert "updating issue DEMO-42 failed: not found" in result.err


# -------------------------------------------------------- issues comment


def test_issues_comment_text(cli, api):
    result = cli("issues", "comment", "DEMO-2", "Works for me")

    assert result.code == 0, result.err
    assert "Commented on DEMO-2" in result.err
    comment = api.issues["DEMO-2"]["comments"][-1]
    assert comment["text"] == "Works for me"
    assert comment["author"] == "admin"


def test_issues_comment_stdin(cli, api):
    text = "Line one\nLine two with `code`\n"

    result = cli("issues", "comment", "DEMO-2", "-", input=text)

    assert result.code == 0, result.err
    stored = api.issues["DEMO-2"]["comments"][-1]["text"]
    assert stored.rstrip("\n") == text.rstrip("\n")


def test_issues_comment_json(cli, api):
    result = cli(
        "issues", "comment", "DEMO-1", "Fixed in main", "--format", "json"
    )

    assert result.code == 0, result.err
    comment = json.loads(result.out)
    assert comment["text"] == "Fixed in main"
    assert comment["author"]["login"] == "admin"
    assert comment["id"] == api.issues["DEMO-1"]["comments"][-1]["id"]


@pytest.mark.parametrize(("text", "stdin"), [("", None), ("-", " \n")])
def test_issues_comment_empty(cli, api, text, stdin):
    result = cli("issues", "comment", "DEMO-1", text, input=stdin)

    assert result.code == 2
    assert "the comment text is empty" in result.err
    assert api.requests == []


def test_issues_comment_not_found(cli, api):
    result = cli("issues", "comment", "DEMO-77", "Anyone?")

    assert result.code == 4
    assert "commenting on issue DEMO-77 failed: not found" in result.err


# --------------------------------------------------------- projects list


def test_projects_list_table(cli, api):
    result = cli("projects", "list")

    assert result.code == 0, result.err
    assert table_rows(result.out) == [
        ["SHORT NAME", "NAME", "ID"],
        ["DEMO", "Demo project", "0-1"],
        ["OPS", "Operations", "0-2"],
    ]


def test_projects_list_json(cli, api):
    result = cli("projects", "list", "--format", "json")

    assert result.code == 0, result.err
    projects = json.loads(result.out)
    assert [p["shortName"] for p in projects] == ["DEMO", "OPS"]
    assert projects[0]["name"] == "Demo project"
    assert projects[0]["description"] == (
        "Sample project for the yt client's tests."
    )
    assert projects[1]["archived"] is False


def test_projects_list_pages(cli, api):
    for number in range(150):
        api.add_project(f"P{number:03d}", f"Project {number}")

    result = cli("projects", "list", "--format", "json")

    assert result.code == 0, result.err
    assert len(json.loads(result.out)) == 152
    sent = [
        request.query["$skip"][0]
        for request in api_requests(api, "GET", "/api/admin/projects")
    ]
    assert sent == ["0", "100"]


# -------------------------------------------------------------------- api


@pytest.mark.parametrize("path", ["users/me", "/users/me", "/api/users/me"])
def test_api_path_forms(cli, api, path):
    result = cli("api", path)

    assert result.code == 0, result.err
    assert json.loads(result.out) == {"$type": "Me", "id": "1-1"}
    (request,) = api.requests
    assert request.method == "GET"
    assert request.path == "/api/users/me"


def test_api_get_fields_become_query(cli, api):
    result = cli("api", "users/me", "-f", "fields=login,fullName")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "$type": "Me", "login": "admin", "fullName": "Administrator",
    }
    (request,) = api.requests
    assert request.query == {"fields": ["login,fullName"]}
    assert request.body == b""


def test_api_get_query_in_path(cli, api):
    result = cli(
        "api", "/api/issues?fields=idReadable", "-f", "query=State: Fixed"
    )

    assert result.code == 0, result.err
    assert json.loads(result.out) == [
        {"$type": "Issue", "idReadable": "DEMO-3"}
    ]
    (request,) = api.requests
    assert request.query == {
        "fields": ["idReadable"], "query": ["State: Fixed"],
    }


def test_api_post_fields_become_json_body(cli, api):
    result = cli(
        "api", "-X", "POST", "/api/issues/DEMO-1?fields=summary",
        "-f", "summary=Renamed through api",
    )

    assert result.code == 0, result.err
    assert json.loads(result.out)["summary"] == "Renamed through api"
    (request,) = api.requests
    assert request.method == "POST"
    assert request.json() == {"summary": "Renamed through api"}
    assert request.headers["Content-Type"] == "application/json"
    assert request.query == {"fields": ["summary"]}
    assert api.issues["DEMO-1"]["summary"] == "Renamed through api"


def test_api_input_file(cli, api, tmp_path):
    body = b'{"text": "Comment from a file"}'
    path = tmp_path / "comment.json"
    path.write_bytes(body)

    result = cli(
        "api", "-X", "post", "issues/DEMO-3/comments?fields=text",
        "--input", path,
    )

    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "$type": "IssueComment", "text": "Comment from a file",
    }
    (request,) = api.requests
    assert request.method == "POST"
    assert request.body == body
    assert api.issues["DEMO-3"]["comments"][-1]["text"] == (
        "Comment from a file"
    )


def test_api_input_stdin(cli, api):
    body = '{"summary": "From stdin", "project": {"id": "0-2"}}'

    result = cli(
        "api", "-X", "POST", "/api/issues?fields=idReadable",
        "--input", "-", input=body,
    )

    assert result.code == 0, result.err
    assert json.loads(result.out)["idReadable"] == "OPS-1"
    (request,) = api.requests
    assert request.body == body.encode()


def test_api_input_missing_file(cli, api, tmp_path):
    missing = tmp_path / "missing.json"

    result = cli("api", "-X", "POST", "issues", "--input", missing)

    assert result.code == 2
    assert f"cannot read --input {missing}" in result.err
    assert api.requests == []


def test_api_fields_and_input_conflict(cli, api, tmp_path):
    path = tmp_path / "body.json"
    path.write_text("{}")

    result = cli(
        "api", "-X", "POST", "issues", "-f", "summary=x", "--input", path
    )

    assert result.code == 2
    assert "either -f fields or --input" in result.err
    assert api.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/api/users/me",
        "http://127.0.0.1:1/api/users/me",
        "HTTPS://youtrack.example.com/api/issues",
    ],
)
def test_api_full_url_rejected(cli, api, url):
    result = cli("api", url)

    assert result.code == 2
    assert "not a full URL" in result.err
    assert "YOUTRACK_BASE_URL" in result.err
    assert api.requests == []


def test_api_invalid_method(cli, api):
    result = cli("api", "-X", "GE T", "users/me")

    assert result.code == 2
    assert "invalid method 'GE T'" in result.err
    assert api.requests == []


def test_api_not_found(cli, api):
    result = cli("api", "/api/no/such/thing")

    assert result.code == 4
    assert "GET /api/no/such/thing failed: not found" in result.err


def test_api_sends_token(cli, api):
    result = cli("api", "users/me")

    assert result.code == 0, result.err
    (request,) = api.requests
    assert request.headers["Authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert DEFAULT_TOKEN not in result.out + result.err


# ----------------------------------------------------------------- config


def config_path(yt_home):
    return yt_home.config_dir / ".env"


def write_config(yt_home, text: str, mode: int = 0o600):
    yt_home.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = config_path(yt_home)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_config_set_get_unset(cli, yt_home):
    set_result = cli("config", "set", "YOUTRACK_TIMEOUT", "12")
    get_result = cli("config", "get", "YOUTRACK_TIMEOUT")
    unset_result = cli("config", "unset", "YOUTRACK_TIMEOUT")
    after = cli("config", "get", "YOUTRACK_TIMEOUT")

    assert set_result.code == 0, set_result.err
    assert f"Set YOUTRACK_TIMEOUT in {config_path(yt_home)}" in (
        set_result.err
    )
    assert get_result.code == 0
    assert get_result.out == "12\n"
    assert unset_result.code == 0, unset_result.err
    assert config_path(yt_home).read_text() == ""
    # Unset in the file, the default applies again.
    assert after.out == "30\n"


def test_config_file_mode(cli, yt_home):
    previous = os.umask(0)
    try:
        result = cli("config", "set", "YOUTRACK_TIMEOUT", "12")
    finally:
        os.umask(previous)

    assert result.code == 0, result.err
    path = config_path(yt_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == "YOUTRACK_TIMEOUT=12\n"


def test_config_set_keeps_other_lines(cli, yt_home):
    original = (
        "# written by hand\n"
        "export YOUTRACK_BASE_URL=https://youtrack.example.com\n"
        "\n"
        "OTHER_TOOL_SETTING='keep me'\n"
        "YOUTRACK_TIMEOUT=5  # slow VPN\n"
        "# trailing comment\n"
    )
    path = write_config(yt_home, original, mode=0o644)

    changed = cli("config", "set", "YOUTRACK_TIMEOUT", "45")
    text_after_set = path.read_text()
    added = cli("config", "set", "YT_TOKEN_WARNING_DAYS", "14")
    removed = cli("config", "unset", "YOUTRACK_BASE_URL")

    assert changed.code == 0, changed.err
    assert text_after_set == original.replace(
        "YOUTRACK_TIMEOUT=5  # slow VPN", "YOUTRACK_TIMEOUT=45"
    )
    assert added.code == 0, added.err
    assert removed.code == 0, removed.err
    assert path.read_text() == (
        "# written by hand\n"
        "\n"
        "OTHER_TOOL_SETTING='keep me'\n"
        "YOUTRACK_TIMEOUT=45\n"
        "# trailing comment\n"
        "YT_TOKEN_WARNING_DAYS=14\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_config_set_quotes_value(cli, yt_home, tmp_path):
    bundle = tmp_path / "my certs" / "ca.pem"
    bundle.parent.mkdir()
    bundle.write_text("")

    result = cli("config", "set", "YOUTRACK_CA_BUNDLE", str(bundle))
    read_back = cli("config", "get", "YOUTRACK_CA_BUNDLE")

    assert result.code == 0, result.err
    assert config_path(yt_home).read_text() == (
        f'YOUTRACK_CA_BUNDLE="{bundle}"\n'
    )
    assert read_back.out == f"{bundle}\n"


def test_config_list(cli, yt_home, monkeypatch):
    write_config(yt_home, "YOUTRACK_TIMEOUT=20\nOTHER=1\n")
    monkeypatch.setenv("YT_TOKEN_WARNING_DAYS", "3")

    table = cli("config", "list")
    listing = cli("config", "list", "--format", "json")

    assert table.code == 0, table.err
    assert listing.code == 0, listing.err
    rows = {row["key"]: row for row in json.loads(listing.out)}
    assert set(yt.SETTINGS) <= set(rows)
    assert rows["YOUTRACK_TIMEOUT"]["value"] == "20"
    assert rows["YOUTRACK_TIMEOUT"]["source"] == "config file"
    assert rows["YT_TOKEN_WARNING_DAYS"]["source"] == "environment"
    assert rows["YT_AUDIT_MAX_ENTRIES"]["value"] == "1000"
    assert rows["YT_AUDIT_MAX_ENTRIES"]["source"] == "default"
    assert rows["YOUTRACK_BASE_URL"]["value"] is None
    assert rows["OTHER"]["source"] == "config file (not a yt setting)"
    table_lines = {row[0]: row for row in table_rows(table.out)}
    assert table_lines["YOUTRACK_TIMEOUT"] == [
        "YOUTRACK_TIMEOUT", "20", "config file"
    ]
    assert f"Config file: {config_path(yt_home)}" in table.err


def test_config_list_marks_invalid(cli, yt_home):
    write_config(yt_home, "YOUTRACK_TIMEOUT=soon\n")

    table = cli("config", "list")
    listing = cli("config", "list", "--format", "json")

    assert table.code == 0, table.err
    rows = {row["key"]: row for row in json.loads(listing.out)}
    assert "invalid value 'soon' for YOUTRACK_TIMEOUT" in (
        rows["YOUTRACK_TIMEOUT"]["problem"]
    )
    assert "config file (INVALID)" in table.out


SECRET_TOKEN = "perm:c2VjcmV0.dG9rZW4=.Zz9SECRETvalue1234"
SECRET_PASSPHRASE = "correct horse battery staple"


@pytest.mark.parametrize("output_format", ["table", "json"])
def test_config_list_hides_secrets(cli, yt_home, monkeypatch, output_format):
    write_config(yt_home, f"YOUTRACK_TOKEN={SECRET_TOKEN}\n")
    monkeypatch.setenv("YT_CREDENTIAL_PASSPHRASE", SECRET_PASSPHRASE)

    result = cli("config", "list", "--format", output_format)

    assert result.code == 0, result.err
    assert SECRET_TOKEN not in result.out + result.err
    assert "SECRETvalue" not in result.out + result.err
    assert SECRET_PASSPHRASE not in result.out + result.err
    assert "horse" not in result.out
    assert yt.MASK in result.out


@pytest.mark.parametrize(
    ("key", "where"),
    [("YOUTRACK_TOKEN", "file"), ("YOUTRACK_TOKEN", "env"),
     ("YT_CREDENTIAL_PASSPHRASE", "env")],
)
def test_config_get_secret_masked(cli, yt_home, monkeypatch, key, where):
    value = SECRET_TOKEN if key == "YOUTRACK_TOKEN" else SECRET_PASSPHRASE
    if where == "file":
        write_config(yt_home, f"{key}={value}\n")
    else:
        monkeypatch.setenv(key, value)

    result = cli("config", "get", key)

    assert result.code == 0, result.err
    assert result.out == f"{yt.MASK}\n"
    assert value not in result.err
    assert "never shown" in result.err


@pytest.mark.parametrize("key", ["YOUTRACK_TOKEN", "YT_CREDENTIAL_PASSPHRASE"])
def test_config_set_secret_rejected(cli, yt_home, key):
    result = cli("config", "set", key, SECRET_TOKEN)

    assert result.code == 2
    assert f"{key} is a secret" in result.err
    assert SECRET_TOKEN not in result.err
    assert "SECRETvalue" not in result.err
    assert not config_path(yt_home).exists()


def test_config_set_secret_not_in_audit(cli, yt_home):
    cli("config", "set", "YOUTRACK_TOKEN", SECRET_TOKEN)

    audit = yt_home.data_dir / "audit.jsonl"
    assert audit.exists()
    assert "SECRETvalue" not in audit.read_text()


@pytest.mark.parametrize(
    ("key", "value", "form"),
    [
        ("YOUTRACK_VERIFY_SSL", "maybe", "true/false/1/0/yes/no/on/off"),
        ("YT_AUDIT_LOGGING", "enabled", "true/false/1/0/yes/no/on/off"),
        ("YOUTRACK_TIMEOUT", "0", "a number greater than 0"),
        ("YOUTRACK_TIMEOUT", "ten", "a number greater than 0"),
        ("YT_AUDIT_MAX_ENTRIES", "5", "a whole number from 10"),
        ("YT_TOKEN_WARNING_DAYS", "-1", "a whole number from 0 to 3650"),
        ("YOUTRACK_BASE_URL", "ftp://host", "https://youtrack.example.com"),
        ("YOUTRACK_CERT_SHA256", "abcd", "64 hex digits"),
        ("YOUTRACK_CA_BUNDLE", "/no/such/ca.pem", "a PEM file"),
    ],
)
def test_config_set_invalid_value(cli, yt_home, key, value, form):
    write_config(yt_home, "# mine\n")

    result = cli("config", "set", key, value)

    assert result.code == 2
    assert f"invalid value {value!r}" in result.err
    assert key in result.err
    assert form in result.err
    assert config_path(yt_home).read_text() == "# mine\n"


def test_config_unknown_key(cli, yt_home):
    result = cli("config", "set", "YOUTRACK_URL", "https://x.example")

    assert result.code == 2
    assert "unknown setting 'YOUTRACK_URL'" in result.err
    assert "YOUTRACK_BASE_URL" in result.err
    assert not config_path(yt_home).exists()


def test_config_get_unset_key(cli, yt_home):
    result = cli("config", "get", "YOUTRACK_BASE_URL")

    assert result.code == 1
    assert result.out == ""
    assert "YOUTRACK_BASE_URL is not set" in result.err


def test_config_unset_absent_key(cli, yt_home):
    write_config(yt_home, "YOUTRACK_TIMEOUT=9\n")

    result = cli("config", "unset", "YT_AUDIT_LOGGING")

    assert result.code == 0, result.err
    assert "YT_AUDIT_LOGGING is not in" in result.err
    assert config_path(yt_home).read_text() == "YOUTRACK_TIMEOUT=9\n"
