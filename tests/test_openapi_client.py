"""The client's requests against JetBrains' OpenAPI description of YouTrack.

Every command that talks to the server runs against the fake YouTrack.
Each request it sends must use a method, path template and query
parameters that the OpenAPI document lists. Request bodies may only use
properties of the schemas (Issue, IssueComment, IssueCustomField and the
value types). Every name in a ``fields`` parameter must be an attribute
of the returned entity or of one of its subtypes.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import pytest
from fake_youtrack import DEFAULT_TOKEN, parse_fields

# JetBrains' OpenAPI description of the YouTrack REST API, which a
# YouTrack server publishes at /api/openapi.json.  YT_OPENAPI_DOCUMENT
# points at a copy; by default it is looked for beside the checkout.
OPENAPI_PATH = Path(
    os.environ.get("YT_OPENAPI_DOCUMENT")
    or Path(__file__).resolve().parents[2] / "shared" / "reference"
    / "youtrack-openapi.json"
)
SCHEMA_PREFIX = "#/components/schemas/"
TOKEN_FILE_INPUT = f"{DEFAULT_TOKEN}\n"

# Each command is run with the server's URL and token in the environment,
# except those that read the token from stdin.
COMMANDS = {
    "issues list": (["issues", "list"], None),
    "issues list -q -p --limit": (
        ["issues", "list", "-q", "#Unresolved", "-p", "DEMO", "--limit",
         "150", "--format", "json"],
        None,
    ),
    "issues show": (["issues", "show", "DEMO-1"], None),
    "issues show --format json": (
        ["issues", "show", "DEMO-3", "--format", "json"], None,
    ),
    "issues create": (
        ["issues", "create", "DEMO", "New issue", "-d", "Text",
         "--field", "Priority=Major", "--field", "State=In Progress",
         "--field", "Assignee=jdoe", "--field", "Estimation=1h 30m",
         "--field", "Story points=8"],
        None,
    ),
    "issues update": (
        ["issues", "update", "DEMO-2", "-s", "Renamed", "-d", "New text",
         "--field", "State=Fixed", "--field", "Assignee="],
        None,
    ),
    "issues comment": (["issues", "comment", "DEMO-1", "Looks good"], None),
    "issues comment -": (["issues", "comment", "DEMO-1", "-"], "From stdin"),
    "projects list": (["projects", "list"], None),
    "api users/me": (["api", "users/me", "-f", "fields=login"], None),
    "auth login": (["auth", "login", "--token-stdin"], TOKEN_FILE_INPUT),
    "auth status": (["auth", "status"], None),
    "auth token --update": (
        ["auth", "token", "--update", "--token-stdin"], TOKEN_FILE_INPUT,
    ),
}


@functools.lru_cache(maxsize=1)
def _load_document() -> dict | None:
    if not OPENAPI_PATH.exists():
        return None
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def openapi() -> OpenApi:
    document = _load_document()
    if document is None:
        pytest.skip(f"the OpenAPI document is absent: {OPENAPI_PATH}")
    return OpenApi(document)


class OpenApi:
    """Lookups in the OpenAPI document: operations and schema properties."""

    def __init__(self, document: dict):
        self.document = document
        self.schemas = document["components"]["schemas"]
        self._templates = [
            (template, self._template_regex(template))
            for template in document["paths"]
        ]
        self._subtypes = self._find_subtypes()

    @staticmethod
    def _template_regex(template: str) -> re.Pattern:
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
        return re.compile(pattern + r"\Z")

    def template(self, api_path: str) -> str | None:
        """Return the path template that matches, preferring literals."""
        found = [t for t, regex in self._templates if regex.match(api_path)]
        if not found:
            return None
        return min(found, key=lambda template: template.count("{"))

    def operation(self, method: str, template: str) -> dict | None:
        return self.document["paths"][template].get(method.lower())

    def query_parameters(self, method: str, template: str) -> set:
        item = self.document["paths"][template]
        operation = item.get(method.lower()) or {}
        parameters = item.get("parameters", []) + operation.get(
            "parameters", []
        )
        return {p["name"] for p in parameters if p.get("in") == "query"}

    def response_schema(self, method: str, template: str) -> str | None:
        """Return the schema name of the 200 response (or its items)."""
        operation = self.operation(method, template) or {}
        response = operation.get("responses", {}).get("200", {})
        schema = (
            response.get("content", {})
            .get("application/json", {})
            .get("schema", {})
        )
        schema = schema.get("items", schema)
        return self._ref_name(schema)

    @staticmethod
    def _ref_name(schema: dict) -> str | None:
        reference = schema.get("$ref", "")
        if reference.startswith(SCHEMA_PREFIX):
            return reference[len(SCHEMA_PREFIX):]
        return None

    def _find_subtypes(self) -> dict:
        direct: dict = {}
        for name, schema in self.schemas.items():
            for part in schema.get("allOf", []):
                parent = self._ref_name(part)
                if parent:
                    direct.setdefault(parent, set()).add(name)
            mapping = schema.get("discriminator", {}).get("mapping", {})
            for reference in mapping.values():
                child = self._ref_name({"$ref": reference})
                if child and child != name:
                    direct.setdefault(name, set()).add(child)
        return direct

    def family(self, name: str) -> set:
        """Return the schema and all its subtypes."""
        seen = set()
        pending = [name]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            pending.extend(self._subtypes.get(current, ()))
        return seen

    def own_properties(self, name: str) -> dict:
        """Return the properties of one schema, including inherited ones."""
        schema = self.schemas[name]
        properties = dict(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            parent = self._ref_name(part)
            if parent:
                for key, value in self.own_properties(parent).items():
                    properties.setdefault(key, value)
            for key, value in part.get("properties", {}).items():
                properties[key] = value
        return properties

    def properties(self, name: str, exact: bool = False) -> dict:
        """Return property name -> list of definitions over the family.

        With exact, only the schema itself counts, not its subtypes.
        """
        merged: dict = {}
        for member in [name] if exact else sorted(self.family(name)):
            for key, value in self.own_properties(member).items():
                merged.setdefault(key, []).append(value)
        return merged

    def targets(self, definitions: list) -> list | None:
        """Return the schema names a property refers to, or None when one
        definition is a free-form value that may hold anything."""
        names = []
        for definition in definitions:
            item = definition.get("items", definition)
            target = self._ref_name(item)
            if target is None:
                if item.get("type") in (None, "object"):
                    return None
                continue
            names.append(target)
        return names


def check_names(openapi: OpenApi, schema: str, tree: dict, where: str,
                problems: list) -> None:
    """Check a parsed fields tree against a schema and its subtypes."""
    properties = openapi.properties(schema)
    for name, subtree in tree.items():
        if name == "$type":
            continue
        if name not in properties:
            problems.append(f"{where}: {schema} has no attribute {name!r}")
            continue
        if not subtree:
            continue
        targets = openapi.targets(properties[name])
        if targets is None:
            continue
        if not targets:
            problems.append(f"{where}: {schema}.{name} has no attributes")
            continue
        merged = {}
        for target in targets:
            for key in openapi.properties(target):
                merged[key] = target
        for child, grandchild in subtree.items():
            if child != "$type" and child not in merged:
                problems.append(
                    f"{where}: {'/'.join(targets)} (in {schema}.{name}) "
                    f"has no attribute {child!r}"
                )
            elif grandchild:
                check_names(openapi, merged[child], {child: grandchild},
                            where, problems)


def check_body(openapi: OpenApi, schema: str, value, where: str,
               problems: list) -> None:
    """Check that a request body uses only properties of the schema.

    An object's ``$type`` narrows the check to that subtype, which must
    belong to the expected schema's family.
    """
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_body(openapi, schema, item, f"{where}[{index}]", problems)
        return
    if not isinstance(value, dict):
        return
    exact = False
    declared = value.get("$type")
    if declared is not None:
        if declared not in openapi.family(schema):
            problems.append(
                f"{where}: $type {declared!r} is not a kind of {schema}"
            )
            return
        schema, exact = declared, True
    properties = openapi.properties(schema, exact=exact)
    for name, member in value.items():
        if name == "$type":
            continue
        if name not in properties:
            problems.append(f"{where}: {schema} has no property {name!r}")
            continue
        targets = openapi.targets(properties[name])
        if targets:
            check_body(openapi, targets[0], member, f"{where}.{name}",
                       problems)


# --------------------------------------------------------------- running


@pytest.fixture
def ran(cli, server, yt_home):
    """Run one command against the fake server; return its requests."""

    def run(name):
        args, stdin = COMMANDS[name]
        server.add_issues(200)
        env = {"YOUTRACK_BASE_URL": server.url}
        if stdin != TOKEN_FILE_INPUT:
            env["YOUTRACK_TOKEN"] = DEFAULT_TOKEN
        result = cli(*args, input=stdin, env=env)
        assert result.code == 0, result.err
        assert server.requests, f"{name} sent no request"
        return list(server.requests)

    return run


def api_path(request) -> str:
    assert request.path.startswith("/api/"), request.path
    return request.path[len("/api"):]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_operations_exist(openapi, ran, name):
    problems = []
    for request in ran(name):
        path = api_path(request)
        template = openapi.template(path)
        if template is None:
            problems.append(f"{request.method} {path}: no such path")
            continue
        if openapi.operation(request.method, template) is None:
            problems.append(f"{request.method} {template}: no such method")
            continue
        allowed = openapi.query_parameters(request.method, template)
        unknown = sorted(set(request.query) - allowed)
        if unknown:
            problems.append(
                f"{request.method} {template}: unknown query parameters "
                f"{unknown}; allowed {sorted(allowed)}"
            )
    assert problems == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_fields_name_attributes(openapi, ran, name):
    problems = []
    for request in ran(name):
        fields = request.query.get("fields")
        if not fields:
            continue
        template = openapi.template(api_path(request))
        schema = openapi.response_schema(request.method, template)
        assert schema, f"{request.method} {template} returns no schema"
        where = f"{request.method} {template} fields={fields[0]}"
        check_names(openapi, schema, parse_fields(fields[0]), where,
                    problems)
    assert problems == []


BODY_SCHEMAS = {
    ("POST", "/issues"): "Issue",
    ("POST", "/issues/{id}"): "Issue",
    ("POST", "/issues/{id}/comments"): "IssueComment",
}


@pytest.mark.parametrize(
    "name",
    ["issues create", "issues update", "issues comment", "issues comment -"],
)
def test_request_bodies_match_schemas(openapi, ran, name):
    problems = []
    posts = [r for r in ran(name) if r.method == "POST"]
    assert len(posts) == 1
    for request in posts:
        template = openapi.template(api_path(request))
        schema = BODY_SCHEMAS[(request.method, template)]
        operation = openapi.operation(request.method, template)
        declared = openapi._ref_name(
            operation["requestBody"]["content"]["application/json"]["schema"]
        )
        assert declared == schema
        check_body(openapi, schema, request.json(), template, problems)
    assert problems == []


def test_custom_field_bodies_use_issue_types(openapi, ran):
    posts = [r for r in ran("issues create") if r.method == "POST"]
    (body,) = [request.json() for request in posts]
    family = openapi.family("IssueCustomField")

    types = {item["name"]: item["$type"] for item in body["customFields"]}

    assert types == {
        "Priority": "SingleEnumIssueCustomField",
        "State": "StateIssueCustomField",
        "Assignee": "SingleUserIssueCustomField",
        "Estimation": "PeriodIssueCustomField",
        "Story points": "SimpleIssueCustomField",
    }
    assert set(types.values()) <= family


def test_commands_cover_client_operations(openapi, ran):
    used = set()
    for name in COMMANDS:
        for request in ran(name):
            used.add((request.method, openapi.template(api_path(request))))
    assert {
        ("GET", "/users/me"),
        ("GET", "/issues"),
        ("POST", "/issues"),
        ("GET", "/issues/{id}"),
        ("POST", "/issues/{id}"),
        ("POST", "/issues/{id}/comments"),
        ("GET", "/admin/projects"),
        ("GET", "/admin/projects/{id}/customFields"),
    } <= used


# ------------------------------------------------- checks of the checker


def test_checker_rejects_unknown_names(openapi):
    problems = []
    check_names(openapi, "Issue", parse_fields("id,summary,nonsense"),
                "fields", problems)
    check_names(openapi, "Issue", parse_fields("project(shortName,bogus)"),
                "fields", problems)
    check_body(openapi, "Issue", {"summary": "x", "colour": "red"}, "body",
               problems)
    check_body(openapi, "Issue",
               {"customFields": [{"$type": "Project", "name": "x"}]},
               "body", problems)
    check_body(openapi, "IssueComment", {"txt": "x"}, "body", problems)

    assert problems == [
        "fields: Issue has no attribute 'nonsense'",
        "fields: Project (in Issue.project) has no attribute 'bogus'",
        "body: Issue has no property 'colour'",
        "body.customFields[0]: $type 'Project' is not a kind of "
        "IssueCustomField",
        "body: IssueComment has no property 'txt'",
    ]


def test_checker_template_prefers_literal(openapi):
    assert openapi.template("/users/me") == "/users/me"
    assert openapi.template("/issues/DEMO-1/comments") == (
        "/issues/{id}/comments"
    )
    assert openapi.template("/no/such/path") is None
