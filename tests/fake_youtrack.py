"""Fake YouTrack REST API server for yt's tests.

The server speaks enough of the YouTrack REST API (paths under
``<base>/api``) to test the client: the current user, issues with custom
fields and comments, and projects with their custom field settings.
It copies these behaviours of a real YouTrack server:

* A response carries only ``$type`` and ``id`` unless the ``fields``
  parameter names more, and ``fields`` applies to nested entities too
  (``project(shortName)``). Unknown field names are dropped without an
  error, but unbalanced parentheses are a 400 ``bad_request``.
* Collections are bare JSON arrays of at most 42 entries unless ``$top``
  sets another size, and ``$skip`` pages through them. Issues are sorted by
  ``updated``, newest first, which is YouTrack's default order.
* Errors are JSON objects with ``error`` and ``error_description``. The
  401, 404, 400 ``invalid_query``, 400 ``bad_request`` (for ``fields``)
  and 500 (for a non-numeric ``$top``) bodies copy those that YouTrack
  Server 2025.2 was seen to return. The 400 bodies for invalid issue
  data have the same shape with this server's own wording.

Tests queue transport faults (error statuses, HTML pages, truncated or
non-JSON bodies, delays, dropped connections, redirects) with
``FakeYouTrack.fail_next``.

Run alone, ``python tests/fake_youtrack.py [--port N] [--prefix /yt]
[--issues N] [--tls-cert PEM --tls-key PEM]`` prints ``URL TOKEN`` on one
line and serves until it is killed.

The module uses the standard library only and runs on Python 3.9+.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import http
import http.server
import json
import logging
import re
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple

__all__ = [
    "DEFAULT_TOKEN",
    "DEFAULT_TOP",
    "FAULT_KINDS",
    "FIELD_SPECS",
    "ROUTES",
    "USERS",
    "ApiError",
    "FakeYouTrack",
    "FieldSpec",
    "RecordedRequest",
    "Route",
    "format_period",
    "main",
    "parse_fields",
    "parse_period",
]

logger = logging.getLogger("fake_youtrack")


# ===================================================================
# Constants and seed data
# ===================================================================

# Shaped like a YouTrack permanent token: "perm:" and three parts joined
# by dots, the base64 of the login ("admin"), the base64 of the token
# name ("yt-tests") and a random part.
DEFAULT_TOKEN = "perm:YWRtaW4=.eXQtdGVzdHM=.5Jg7kQ2mXv9pLr3sTz8wNc4bHd"

# NOTE: YouTrack documents 42 for most collections, but its /api/issues
# page also names the "Max issues to export" setting (500 by default).
DEFAULT_TOP = 42
JSON_TYPE = "application/json;charset=UTF-8"
MAX_BODY_BYTES = 16 * 1024 * 1024
FAULT_KINDS = (
    "status",
    "html",
    "truncated",
    "not_json",
    "delay",
    "drop",
    "redirect",
)
_FAULT_OPTIONS = {
    "status": {"status", "headers", "body", "content_type"},
    "html": {"status", "headers"},
    "truncated": set(),
    "not_json": {"body"},
    "delay": {"seconds"},
    "drop": set(),
    "redirect": {"status", "location", "headers"},
}

USERS = (
    {
        "id": "1-1",
        "login": "admin",
        "fullName": "Administrator",
        "email": "admin@example.com",
        "ringId": "8f2a6c1e-0b1d-4c55-9a73-2d7e61b0c001",
    },
    {
        "id": "1-2",
        "login": "jdoe",
        "fullName": "Jane Doe",
        "email": "jane.doe@example.com",
        "ringId": "8f2a6c1e-0b1d-4c55-9a73-2d7e61b0c002",
    },
)


class FieldSpec(NamedTuple):
    """Settings of one custom field, the same in every project."""

    name: str
    kind: str  # "enum", "state", "user", "period" or "integer"
    field_type: str  # FieldType.id, as YouTrack names the type
    project_type: str  # $type of the ProjectCustomField
    issue_type: str  # $type of the IssueCustomField
    values: tuple = ()  # (name, is_resolved) pairs for enum and state
    default: Any = None
    can_be_empty: bool = True
    empty_text: str = "?"


FIELD_SPECS = (
    FieldSpec(
        "Priority",
        "enum",
        "enum[1]",
        "EnumProjectCustomField",
        "SingleEnumIssueCustomField",
        values=(
            ("Critical", False),
            ("Major", False),
            ("Normal", False),
            ("Minor", False),
        ),
        default="Normal",
        can_be_empty=False,
        empty_text="No Priority",
    ),
    FieldSpec(
        "State",
        "state",
        "state[1]",
        "StateProjectCustomField",
        "StateIssueCustomField",
        values=(
            ("Open", False),
            ("In Progress", False),
            ("Fixed", True),
            ("Won't fix", True),
        ),
        default="Open",
        can_be_empty=False,
        empty_text="No State",
    ),
    FieldSpec(
        "Assignee",
        "user",
        "user[1]",
        "UserProjectCustomField",
        "SingleUserIssueCustomField",
        empty_text="Unassigned",
    ),
    FieldSpec(
        "Estimation",
        "period",
        "period",
        "PeriodProjectCustomField",
        "PeriodIssueCustomField",
    ),
    FieldSpec(
        "Story points",
        "integer",
        "integer",
        "SimpleProjectCustomField",
        "SimpleIssueCustomField",
    ),
)
_SPECS_BY_NAME = {spec.name.lower(): spec for spec in FIELD_SPECS}
_ELEMENT_TYPES = {"enum": "EnumBundleElement", "state": "StateBundleElement"}
_BUNDLE_TYPES = {
    "enum": "EnumBundle",
    "state": "StateBundle",
    "user": "UserBundle",
}
# Database id prefixes, in the "<type>-<number>" form of YouTrack ids.
_BUNDLE_PREFIX = {"enum": "65", "state": "66", "user": "69"}
_ELEMENT_PREFIX = {"enum": "67", "state": "68"}

_SEED_TIME = datetime(2024, 5, 6, 9, 0, tzinfo=timezone.utc)
_SEED_MS = int(_SEED_TIME.timestamp() * 1000)
_HOUR_MS = 3_600_000
_MINUTE_MS = 60_000

_SEED_PROJECTS = (
    ("DEMO", "Demo project", "Sample project for the yt client's tests."),
    ("OPS", "Operations", None),
)
_SEED_ISSUES = (
    {
        "summary": "Login fails when the token has expired",
        "description": "Run `yt auth login` with an expired token.\n"
        "Expected: a clear message. Actual: a stack trace.",
        "fields": {
            "State": "Open",
            "Priority": "Major",
            "Assignee": "admin",
            "Estimation": 90,
        },
        "comments": (("jdoe", "I can reproduce this with a revoked token."),),
    },
    {
        "summary": "Add CSV export to the issue list",
        "description": None,
        "fields": {"State": "In Progress", "Priority": "Normal"},
        "comments": (),
    },
    {
        "summary": "Crash on an empty search query",
        "description": "An empty query string raises KeyError.",
        "fields": {
            "State": "Fixed",
            "Priority": "Critical",
            "Assignee": "jdoe",
            "Estimation": 120,
            "Story points": 3,
        },
        "comments": (),
    },
)


# ===================================================================
# Errors
# ===================================================================


class ApiError(Exception):
    """Raised by a request handler and sent to the client as JSON."""

    def __init__(self, status: int, error: str, description: str, **extra):
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.body = {"error": error, "error_description": description}
        self.body.update(extra)


def _not_found(entity_id: str) -> ApiError:
    return ApiError(404, "Not Found", f"Entity with id {entity_id} not found")


def _no_such_path() -> ApiError:
    return ApiError(404, "Not Found", "HTTP 404 Not Found")


def _bad_request(description: str) -> ApiError:
    return ApiError(
        400,
        "bad_request",
        description,
        error_developer_message=description,
    )


def _invalid_query(reason: str) -> ApiError:
    return ApiError(
        400,
        "invalid_query",
        "Can't parse search query, please check and update query syntax",
        error_developer_message="Can't parse search query",
        error_field="query",
        error_children=[{"error": reason, "error_description": ""}],
    )


# ===================================================================
# The fields parameter and projection
# ===================================================================


def parse_fields(text: str) -> dict:
    """Parse a ``fields`` parameter into a tree of requested names.

    ``"id,project(name,leader(login))"`` becomes ``{"id": None,
    "project": {"name": None, "leader": {"login": None}}}``. A name
    given twice merges its subtrees. Raises ApiError (400) on unbalanced
    parentheses.
    """
    position = 0

    def syntax_error() -> ApiError:
        return ApiError(400, "bad_request", "Query string has invalid syntax")

    def parse_list(depth: int) -> dict:
        nonlocal position
        tree: dict = {}
        while True:
            start = position
            while position < len(text) and text[position] not in ",()":
                position += 1
            name = text[start:position].strip()
            subtree = None
            if position < len(text) and text[position] == "(":
                position += 1
                subtree = parse_list(depth + 1)
                if position >= len(text) or text[position] != ")":
                    raise syntax_error()
                position += 1
            if name:
                _merge_field(tree, name, subtree)
            elif subtree is not None:
                raise syntax_error()
            if position >= len(text):
                if depth:
                    raise syntax_error()
                return tree
            if text[position] == ",":
                position += 1
            elif text[position] == ")" and depth:
                return tree
            else:
                raise syntax_error()

    return parse_list(0)


def _merge_field(tree: dict, name: str, subtree: dict | None) -> None:
    existing = tree.get(name)
    if existing is None:
        tree[name] = subtree
    elif subtree is not None:
        for child, grandchild in subtree.items():
            _merge_field(existing, child, grandchild)


def project_entity(value: Any, tree: dict | None) -> Any:
    """Return the part of ``value`` that the fields ``tree`` selects.

    Entities are dicts with a ``$type``. Their values may be callables,
    which build nested entities only when a request selects them. An
    entity without a subtree becomes ``$type`` and ``id``, as YouTrack
    returns when ``fields`` is absent.

    NOTE: for a nested entity named without a subtree (``fields=project``)
    YouTrack may return ``$type`` alone, which is not checked.
    """
    if isinstance(value, list):
        return [project_entity(item, tree) for item in value]
    if not isinstance(value, dict) or "$type" not in value:
        return value
    if tree is None:
        tree = {"id": None}
    selected = {"$type": value["$type"]}
    for name, subtree in tree.items():
        if name == "$type" or name not in value:
            continue
        member = value[name]
        if callable(member):
            member = member()
        selected[name] = project_entity(member, subtree)
    return selected


# ===================================================================
# Periods
# ===================================================================

# YouTrack's default work schedule: 5-day weeks of 8-hour days.
_PERIOD_UNITS = (("w", 5 * 8 * 60), ("d", 8 * 60), ("h", 60), ("m", 1))
_PERIOD_RE = re.compile(r"(?:\s*\d+\s*[wdhm])+\s*", re.IGNORECASE)
_PERIOD_PART_RE = re.compile(r"(\d+)\s*([wdhm])", re.IGNORECASE)


def format_period(minutes: int) -> str:
    """Format minutes as YouTrack presents a period: ``"1h 30m"``."""
    parts = []
    rest = minutes
    for unit, size in _PERIOD_UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0m"


def parse_period(text: str) -> int:
    """Return the minutes in a period such as ``"1w 2d 3h 4m"``.

    A bare number counts as minutes. Raises ValueError for other text.
    """
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    if not _PERIOD_RE.fullmatch(stripped):
        raise ValueError(f"invalid period {text!r}, expected e.g. 1h 30m")
    units = dict(_PERIOD_UNITS)
    return sum(
        int(count) * units[unit.lower()]
        for count, unit in _PERIOD_PART_RE.findall(stripped)
    )


# ===================================================================
# Search queries
# ===================================================================

_QUERY_SPECIAL = '(){}":,'


def _tokenize_query(text: str) -> list:
    """Split a search query into (kind, text) tokens."""
    tokens = []
    position = 0
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
        elif char in "(),:":
            tokens.append((char, char))
            position += 1
        elif char in '{"':
            closing = "}" if char == "{" else '"'
            end = text.find(closing, position + 1)
            if end < 0:
                raise _invalid_query(f"Missing {closing} in the query.")
            kind = "braced" if char == "{" else "phrase"
            tokens.append((kind, text[position + 1 : end].strip()))
            position = end + 1
        elif char == "}":
            raise _invalid_query("Unexpected } in the query.")
        elif char == "#":
            tokens.append(("tag", None))
            position += 1
        else:
            end = position
            while (
                end < len(text)
                and not text[end].isspace()
                and text[end] not in _QUERY_SPECIAL
            ):
                end += 1
            tokens.append(("word", text[position:end]))
            position = end
    return _attach_tags(tokens)


def _attach_tags(tokens: list) -> list:
    """Join each ``#`` token with the word or braced value after it."""
    joined = []
    iterator = iter(tokens)
    for kind, value in iterator:
        if kind != "tag":
            joined.append((kind, value))
            continue
        following = next(iterator, (None, None))
        if following[0] not in ("word", "braced") or not following[1]:
            raise _invalid_query("Missing a value after # in the query.")
        joined.append(("tag", following[1]))
    return joined


class _QueryCompiler:
    """Compile a YouTrack search query into a predicate over issues.

    The supported subset of the query language:

    - ``field: value, {two words}`` for project, summary, description,
      reporter and each custom field
    - ``#Unresolved``, ``#Resolved`` and ``#value`` of an enum or state
    - free words and "quoted phrases", found in summary or description
    - ``and``, ``or`` and parentheses
    - ``sort by: created|updated [asc|desc]``
    """

    def __init__(self, fake: FakeYouTrack, me: str):
        self.fake = fake
        self.me = me
        self.tokens: list = []
        self.position = 0
        self.sort = ("updated", True)

    def compile(self, text: str) -> Callable[[dict], bool]:
        self.tokens = _tokenize_query(text)
        self.position = 0
        if not self.tokens:
            return lambda issue: True
        predicate = self._parse_or()
        if self.position < len(self.tokens):
            raise _invalid_query(
                f"Unexpected {self.tokens[self.position][1]} in the query."
            )
        return predicate

    # -- grammar --------------------------------------------------------

    def _peek(self, offset: int = 0) -> tuple:
        index = self.position + offset
        if index < len(self.tokens):
            return self.tokens[index]
        return (None, None)

    def _is_keyword(self, token: tuple, word: str) -> bool:
        return token[0] == "word" and token[1].lower() == word

    def _parse_or(self) -> Callable[[dict], bool]:
        alternatives = [self._parse_and()]
        while self._is_keyword(self._peek(), "or"):
            self.position += 1
            alternatives.append(self._parse_and())
        if len(alternatives) == 1:
            return alternatives[0]
        return lambda issue: any(match(issue) for match in alternatives)

    def _parse_and(self) -> Callable[[dict], bool]:
        terms = [self._parse_term()]
        while True:
            token = self._peek()
            if token[0] in (None, ")") or self._is_keyword(token, "or"):
                break
            if self._is_keyword(token, "and"):
                self.position += 1
            terms.append(self._parse_term())
        if len(terms) == 1:
            return terms[0]
        return lambda issue: all(match(issue) for match in terms)

    def _parse_term(self) -> Callable[[dict], bool]:
        kind, value = self._peek()
        if kind is None:
            raise _invalid_query("The query ends where a term is expected.")
        self.position += 1
        if kind == "(":
            inner = self._parse_or()
            if self._peek()[0] != ")":
                raise _invalid_query("Missing ) in the query.")
            self.position += 1
            return inner
        if kind == "tag":
            return self._tag(value)
        if kind in ("word", "braced") and self._peek()[0] == ":":
            self.position += 1
            return self._attribute(value)
        if (
            kind == "word"
            and value.lower() == "sort"
            and self._is_keyword(self._peek(), "by")
            and self._peek(1)[0] == ":"
        ):
            self.position += 2
            return self._sort_clause()
        if kind in ("word", "phrase", "braced"):
            return self._text(value)
        raise _invalid_query(f"Unexpected {value} in the query.")

    def _values(self) -> list:
        values = []
        while True:
            kind, value = self._peek()
            if kind not in ("word", "braced", "phrase"):
                raise _invalid_query("Missing a value after : in the query.")
            values.append(value)
            self.position += 1
            if self._peek()[0] != ",":
                return values
            self.position += 1

    # -- terms ----------------------------------------------------------

    def _attribute(self, name: str) -> Callable[[dict], bool]:
        values = self._values()
        key = name.lower()
        if key == "project":
            projects = {self._project(value) for value in values}
            return lambda issue: issue["project"] in projects
        if key in ("summary", "description"):
            words = [value.lower() for value in values]
            return lambda issue: any(
                word in (issue[key] or "").lower() for word in words
            )
        if key == "reporter":
            logins = {self._login(value, "reporter") for value in values}
            return lambda issue: issue["reporter"] in logins
        spec = _SPECS_BY_NAME.get(key)
        if spec is None:
            raise _invalid_query(f"Unknown field: {name}.")
        accepted = {self._field_value(spec, value) for value in values}
        return lambda issue: issue["fields"].get(spec.name) in accepted

    def _project(self, value: str) -> str:
        for project in self.fake.projects:
            if value.lower() in (
                project["shortName"].lower(),
                project["name"].lower(),
            ):
                return project["shortName"]
        raise _invalid_query(
            f'The value "{value}" isn\'t used for the project field.'
        )

    def _login(self, value: str, field: str) -> str | None:
        if value.lower() == "me":
            return self.me
        if field != "reporter" and value.lower() == "unassigned":
            return None
        if value in self.fake.users:
            return value
        raise _invalid_query(
            f'The value "{value}" isn\'t used for the {field} field.'
        )

    def _field_value(self, spec: FieldSpec, value: str) -> Any:
        if spec.kind in ("enum", "state"):
            for name, _resolved in spec.values:
                if name.lower() == value.lower():
                    return name
        elif spec.kind == "user":
            return self._login(value, spec.name)
        elif spec.kind == "period":
            try:
                return parse_period(value)
            except ValueError:
                pass
        elif value.lstrip("-").isdigit():
            return int(value)
        raise _invalid_query(
            f'The value "{value}" isn\'t used for the {spec.name} field.'
        )

    def _tag(self, value: str) -> Callable[[dict], bool]:
        key = value.lower()
        if key == "unresolved":
            return lambda issue: issue["resolved"] is None
        if key == "resolved":
            return lambda issue: issue["resolved"] is not None
        for spec in FIELD_SPECS:
            for name, _resolved in spec.values:
                if name.lower() == key:
                    field = spec.name
                    return lambda issue: issue["fields"].get(field) == name
        raise _invalid_query(f'The value "{value}" isn\'t used in any field.')

    def _text(self, value: str) -> Callable[[dict], bool]:
        word = value.lower()

        def matches(issue: dict) -> bool:
            return word in issue["summary"].lower() or word in (
                (issue["description"] or "").lower()
            )

        return matches

    def _sort_clause(self) -> Callable[[dict], bool]:
        kind, field = self._peek()
        if kind != "word" or field.lower() not in ("created", "updated"):
            raise _invalid_query(
                "This server sorts only by created or updated."
            )
        self.position += 1
        descending = False
        direction = self._peek()
        if self._is_keyword(direction, "desc"):
            descending = True
            self.position += 1
        elif self._is_keyword(direction, "asc"):
            self.position += 1
        self.sort = (field.lower(), descending)
        return lambda issue: True


# ===================================================================
# Routes
# ===================================================================


class Route(NamedTuple):
    """One served operation, written as in the OpenAPI document."""

    method: str
    template: str  # path after /api, e.g. "/issues/{id}"
    parameters: tuple  # query parameters the handler reads
    handler: str  # FakeYouTrack method name


_PAGED = ("fields", "$top", "$skip")
ROUTES = (
    Route("GET", "/users/me", ("fields",), "_get_me"),
    Route(
        "GET",
        "/issues",
        ("query", "customFields", *_PAGED),
        "_list_issues",
    ),
    Route("POST", "/issues", ("fields",), "_create_issue"),
    Route("GET", "/issues/{id}", ("fields",), "_get_issue"),
    Route("POST", "/issues/{id}", ("fields",), "_update_issue"),
    Route("GET", "/issues/{id}/comments", _PAGED, "_list_comments"),
    Route("POST", "/issues/{id}/comments", ("fields",), "_add_comment"),
    Route("GET", "/admin/projects", _PAGED, "_list_projects"),
    Route("GET", "/admin/projects/{id}", ("fields",), "_get_project"),
    Route(
        "GET",
        "/admin/projects/{id}/customFields",
        _PAGED,
        "_list_project_fields",
    ),
)


def _template_regex(template: str) -> re.Pattern:
    pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(pattern + r"\Z")


_ROUTE_PATTERNS = [
    (route, _template_regex(route.template)) for route in ROUTES
]


class _Call(NamedTuple):
    """One authenticated API request, as passed to a handler."""

    query: dict
    headers: Any
    body: bytes
    login: str

    def parameter(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def fields(self) -> dict | None:
        text = self.parameter("fields")
        return parse_fields(text) if text else None


class RecordedRequest(NamedTuple):
    """A request as the server received it, kept for test assertions."""

    method: str
    path: str  # decoded, after the prefix: "/api/issues"
    query: dict  # name -> list of decoded values
    headers: Any  # http.client.HTTPMessage, case-insensitive
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


# ===================================================================
# The fake server
# ===================================================================


def _now_ms() -> int:
    return int(time.time() * 1000)


class FakeYouTrack:
    """In-memory YouTrack with an HTTP(S) front end on loopback.

    The data sits in public attributes that tests may read and change
    between requests: ``projects`` (records with ``id``, ``shortName``
    and ``name``), ``issues`` (records by idReadable, with custom field
    values by field name in ``fields``), ``users`` (by login) and
    ``tokens``. Every accepted token acts as the user whose login is in
    ``current_login`` (``admin``). ``clock`` returns the time in
    milliseconds since the epoch that new issues and comments get.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        prefix: str = "",
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        issues: int = 3,
    ):
        prefix = prefix.rstrip("/")
        if prefix and not prefix.startswith("/"):
            raise ValueError(f"prefix {prefix!r} must start with /")
        if issues < 0:
            raise ValueError(f"issues must be 0 or more, got {issues}")
        self.prefix = prefix
        self.ssl_context = ssl_context
        self.host = host
        self.requested_port = port

        self.tokens = {token}
        self.requests: list = []
        self.connections = 0
        self.current_login = "admin"
        self.users = {user["login"]: dict(user) for user in USERS}
        self.projects: list = []
        self.issues: dict = {}
        self.clock: Callable[[], int] = _now_ms

        self._lock = threading.RLock()
        self._faults: list = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._open_sockets: set = set()
        self._issue_sequence = 0
        self._comment_sequence = 0
        self._next_number: dict = {}
        self._by_database_id: dict = {}

        for short_name, name, description in _SEED_PROJECTS:
            self.add_project(short_name, name, description)
        self._seed_issues(issues)

    # -- lifecycle ------------------------------------------------------

    def start(self) -> FakeYouTrack:
        """Bind the port and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the fake YouTrack server is already running")
        self._stopping.clear()
        self._server = _Server((self.host, self.requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # stop() waits up to one poll interval for the loop to end.
            kwargs={"poll_interval": 0.01},
            name=f"fake-youtrack-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("fake YouTrack serving at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            open_sockets = list(self._open_sockets)
        for sock in open_sockets:
            # An OSError means the client has closed the socket already.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.info("fake YouTrack stopped")

    def __enter__(self) -> FakeYouTrack:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake YouTrack server is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base URL with the prefix and no trailing slash."""
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{self.prefix}"

    # -- test set-up ----------------------------------------------------

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        match: str | None = None,
        **options,
    ) -> None:
        """Queue a fault for the next ``count`` requests matching ``match``.

        ``match`` is a regular expression searched in the request path
        after the prefix (``/api/issues``), and None matches every path.
        Faults apply before authentication. The kinds and their options:

        - ``status``: respond with ``status`` (503) and extra ``headers``
          (a dict). The body is ``body`` (bytes) with ``content_type``,
          or a YouTrack-style JSON error when ``body`` is absent.
        - ``html``: an HTML error page like a reverse proxy's, with
          ``status`` (502) and ``headers``.
        - ``truncated``: 200 with a Content-Length larger than the body,
          then the connection closes.
        - ``not_json``: 200 with the JSON content type and a ``body``
          that is not JSON.
        - ``delay``: wait ``seconds`` (1.0), then handle the request.
        - ``drop``: close the connection without a response.
        - ``redirect``: respond ``status`` (302) with ``Location:
          location`` and ``headers``.

        Raises ValueError for an unknown kind or option.
        """
        if kind not in _FAULT_OPTIONS:
            raise ValueError(
                f"unknown fault kind {kind!r}, expected one of "
                + ", ".join(FAULT_KINDS)
            )
        unknown = set(options) - _FAULT_OPTIONS[kind]
        if unknown:
            raise ValueError(
                f"fault {kind!r} takes no option " + ", ".join(sorted(unknown))
            )
        if kind == "redirect" and "location" not in options:
            raise ValueError("a redirect fault needs location=URL")
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        pattern = re.compile(match) if match is not None else None
        with self._lock:
            self._faults.append(
                {
                    "kind": kind,
                    "remaining": count,
                    "match": pattern,
                    "options": options,
                }
            )

    def add_project(
        self, short_name: str, name: str, description: str | None = None
    ) -> dict:
        """Create a project with the standard custom fields."""
        with self._lock:
            if any(p["shortName"] == short_name for p in self.projects):
                raise ValueError(f"project {short_name} already exists")
            project = {
                "id": f"0-{len(self.projects) + 1}",
                "shortName": short_name,
                "name": name,
                "description": description,
                "leader": "admin",
                "archived": False,
            }
            self.projects.append(project)
            self._next_number[short_name] = 1
            return project

    def add_issue(
        self,
        project: str = "DEMO",
        summary: str = "Sample issue",
        description: str | None = None,
        **custom,
    ) -> dict:
        """Create an issue now and return its record.

        ``custom`` sets custom fields by name in plain form: names of
        enum and state values, logins, periods as minutes or ``"1h
        30m"``, integers. Use ``**{"Story points": 3}`` for names with
        spaces. Raises ValueError for an unknown field or value.
        """
        with self._lock:
            self._check_project(project)
            values = {}
            for name, value in custom.items():
                spec = _SPECS_BY_NAME.get(name.lower())
                if spec is None:
                    raise ValueError(f"no custom field named {name!r}")
                values[spec.name] = self._plain_value(spec, value)
            return self._insert_issue(
                project, summary, description, values, created=self.clock()
            )

    def add_issues(self, n: int, project: str = "DEMO") -> None:
        """Create ``n`` generated issues quickly, for paging tests."""
        states = [name for name, _ in _SPECS_BY_NAME["state"].values]
        priorities = [name for name, _ in _SPECS_BY_NAME["priority"].values]
        assignees = [None, "admin", "jdoe"]
        with self._lock:
            self._check_project(project)
            # Generated issues come after the seeded ones, a minute apart.
            first = _SEED_MS + len(_SEED_ISSUES) * _HOUR_MS
            for index in range(n):
                created = first + (self._issue_sequence + 1) * _MINUTE_MS
                values = {
                    "State": states[index % len(states)],
                    "Priority": priorities[index % len(priorities)],
                    "Assignee": assignees[index % len(assignees)],
                }
                number = self._next_number[project]
                self._insert_issue(
                    project,
                    f"Generated issue {number}",
                    None,
                    values,
                    created=created,
                )

    def _seed_issues(self, count: int) -> None:
        for index, seed in enumerate(_SEED_ISSUES[:count]):
            created = _SEED_MS + index * _HOUR_MS
            issue = self._insert_issue(
                "DEMO",
                seed["summary"],
                seed["description"],
                dict(seed["fields"]),
                created=created,
                updated=created + 30 * _MINUTE_MS,
            )
            for author, text in seed["comments"]:
                self._insert_comment(issue, author, text, created + _HOUR_MS)
        if count > len(_SEED_ISSUES):
            self.add_issues(count - len(_SEED_ISSUES))

    def _insert_issue(
        self,
        project: str,
        summary: str,
        description: str | None,
        values: dict,
        *,
        created: int,
        updated: int | None = None,
    ) -> dict:
        self._issue_sequence += 1
        number = self._next_number[project]
        self._next_number[project] = number + 1
        fields = {spec.name: spec.default for spec in FIELD_SPECS}
        fields.update(values)
        issue = {
            "id": f"2-{self._issue_sequence}",
            "idReadable": f"{project}-{number}",
            "numberInProject": number,
            "project": project,
            "summary": summary,
            "description": description,
            "created": created,
            "updated": updated if updated is not None else created,
            "resolved": None,
            "reporter": self.current_login,
            "updater": self.current_login,
            "fields": fields,
            "comments": [],
        }
        if self._is_resolved(issue):
            issue["resolved"] = issue["updated"]
        self.issues[issue["idReadable"]] = issue
        self._by_database_id[issue["id"]] = issue["idReadable"]
        return issue

    def _insert_comment(
        self, issue: dict, author: str, text: str, created: int
    ) -> dict:
        self._comment_sequence += 1
        comment = {
            "id": f"4-{self._comment_sequence}",
            "text": text,
            "author": author,
            "created": created,
            "updated": None,
        }
        issue["comments"].append(comment)
        return comment

    # -- lookups --------------------------------------------------------

    def _project_record(self, key: str) -> dict:
        """Find a project by database id or short name."""
        for project in self.projects:
            if key in (project["id"], project["shortName"]):
                return project
        raise KeyError(key)

    def _check_project(self, short_name: str) -> None:
        if short_name not in self._next_number:
            raise ValueError(
                f"no project {short_name!r}; add it with add_project()"
            )

    def _find_issue(self, key: str) -> dict:
        readable = self._by_database_id.get(key, key)
        issue = self.issues.get(readable)
        if issue is None:
            raise _not_found(key)
        return issue

    def _is_resolved(self, issue: dict) -> bool:
        for spec in FIELD_SPECS:
            if spec.kind == "state":
                state = issue["fields"].get(spec.name)
                if not dict(spec.values).get(state, False):
                    return False
        return True

    def _plain_value(self, spec: FieldSpec, value: Any) -> Any:
        """Check a custom field value given in plain Python form."""
        if value is None:
            if not spec.can_be_empty:
                raise ValueError(f"the {spec.name} field cannot be empty")
            return None
        if spec.kind in ("enum", "state"):
            if value not in dict(spec.values):
                raise ValueError(
                    f"{value!r} is not a value of the {spec.name} field"
                )
            return value
        if spec.kind == "user":
            if value not in self.users:
                raise ValueError(f"no user with login {value!r}")
            return value
        if spec.kind == "period":
            return value if isinstance(value, int) else parse_period(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"the {spec.name} field takes an integer")
        return value

    # -- entities -------------------------------------------------------

    def _user_entity(self, login: str | None, type_name="User") -> Any:
        if login is None:
            return None
        user = self.users[login]
        return {
            "$type": type_name,
            "id": user["id"],
            "login": user["login"],
            "fullName": user["fullName"],
            "email": user["email"],
            "ringId": user["ringId"],
            "guest": False,
            "online": True,
            "banned": False,
            "avatarUrl": f"/hub/api/rest/avatar/{user['ringId']}",
        }

    def _project_entity(self, project: dict) -> dict:
        return {
            "$type": "Project",
            "id": project["id"],
            "name": project["name"],
            "shortName": project["shortName"],
            "description": project["description"],
            "archived": project["archived"],
            "template": False,
            "leader": lambda: self._user_entity(project["leader"]),
            "createdBy": lambda: self._user_entity(project["leader"]),
            "customFields": lambda: [
                self._project_field_entity(project, spec)
                for spec in FIELD_SPECS
            ],
        }

    def _project_field_id(self, project: dict, spec: FieldSpec) -> str:
        project_number = int(project["id"].split("-")[1])
        return f"92-{project_number * 10 + FIELD_SPECS.index(spec)}"

    def _project_field_entity(self, project: dict, spec: FieldSpec) -> dict:
        ordinal = FIELD_SPECS.index(spec)
        entity = {
            "$type": spec.project_type,
            "id": self._project_field_id(project, spec),
            "field": {
                "$type": "CustomField",
                "id": f"58-{ordinal}",
                "name": spec.name,
                "localizedName": None,
                "ordinal": ordinal,
                "fieldType": {
                    "$type": "FieldType",
                    "id": spec.field_type,
                    "isMultiValue": False,
                },
            },
            "project": lambda: self._project_entity(project),
            "canBeEmpty": spec.can_be_empty,
            "emptyFieldText": spec.empty_text,
            "ordinal": ordinal,
            "isPublic": True,
        }
        if spec.kind in _BUNDLE_TYPES:
            entity["bundle"] = lambda: self._bundle_entity(spec)
        if spec.kind in _ELEMENT_TYPES:
            entity["defaultValues"] = [
                self._element_entity(spec, spec.default)
            ]
        elif spec.kind == "user":
            entity["defaultValues"] = []
        return entity

    def _bundle_entity(self, spec: FieldSpec) -> dict:
        bundle = {
            "$type": _BUNDLE_TYPES[spec.kind],
            "id": f"{_BUNDLE_PREFIX[spec.kind]}-1",
            "isUpdateable": True,
        }
        if spec.kind == "user":
            bundle["aggregatedUsers"] = [
                self._user_entity(login) for login in self.users
            ]
        else:
            bundle["values"] = [
                self._element_entity(spec, name) for name, _ in spec.values
            ]
        return bundle

    def _element_entity(self, spec: FieldSpec, name: str) -> dict:
        names = [value for value, _ in spec.values]
        ordinal = names.index(name)
        element = {
            "$type": _ELEMENT_TYPES[spec.kind],
            "id": f"{_ELEMENT_PREFIX[spec.kind]}-{ordinal}",
            "name": name,
            "localizedName": None,
            "description": None,
            "ordinal": ordinal,
            "archived": False,
        }
        if spec.kind == "state":
            element["isResolved"] = dict(spec.values)[name]
        return element

    def _value_entity(self, spec: FieldSpec, value: Any) -> Any:
        if value is None:
            return None
        if spec.kind in _ELEMENT_TYPES:
            return self._element_entity(spec, value)
        if spec.kind == "user":
            return self._user_entity(value)
        if spec.kind == "period":
            return {
                "$type": "PeriodValue",
                "minutes": value,
                "presentation": format_period(value),
            }
        return value

    def _issue_field_entity(
        self, project: dict, spec: FieldSpec, value: Any
    ) -> dict:
        return {
            "$type": spec.issue_type,
            "id": self._project_field_id(project, spec),
            "name": spec.name,
            "projectCustomField": lambda: self._project_field_entity(
                project, spec
            ),
            "value": lambda: self._value_entity(spec, value),
        }

    def _issue_entity(self, issue: dict, only: list | None = None):
        project = self._project_record(issue["project"])
        specs = [
            spec for spec in FIELD_SPECS if only is None or spec.name in only
        ]
        return {
            "$type": "Issue",
            "id": issue["id"],
            "idReadable": issue["idReadable"],
            "numberInProject": issue["numberInProject"],
            "summary": issue["summary"],
            "description": issue["description"],
            "created": issue["created"],
            "updated": issue["updated"],
            "resolved": issue["resolved"],
            "isDraft": False,
            "votes": 0,
            "commentsCount": len(issue["comments"]),
            "tags": [],
            "links": [],
            "project": lambda: self._project_entity(project),
            "reporter": lambda: self._user_entity(issue["reporter"]),
            "updater": lambda: self._user_entity(issue["updater"]),
            "customFields": lambda: [
                self._issue_field_entity(
                    project, spec, issue["fields"].get(spec.name)
                )
                for spec in specs
            ],
            "comments": lambda: [
                self._comment_entity(issue, comment)
                for comment in issue["comments"]
            ],
        }

    def _comment_entity(self, issue: dict, comment: dict) -> dict:
        return {
            "$type": "IssueComment",
            "id": comment["id"],
            "text": comment["text"],
            "created": comment["created"],
            "updated": comment["updated"],
            "deleted": False,
            "pinned": False,
            "attachments": [],
            "reactions": [],
            "author": lambda: self._user_entity(comment["author"]),
            "issue": lambda: self._issue_entity(issue),
        }

    # -- request dispatch -----------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_fault(self, path: str) -> dict | None:
        with self._lock:
            for fault in self._faults:
                pattern = fault["match"]
                if pattern is None or pattern.search(path):
                    fault["remaining"] -= 1
                    if fault["remaining"] == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _strip_prefix(self, path: str) -> tuple:
        """Return (path after the prefix, whether the prefix matched)."""
        if not self.prefix:
            return path, True
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return path[len(self.prefix) :] or "/", True
        return path, False

    def _authenticate(self, headers: Any) -> str:
        header = headers.get("Authorization")
        if not header:
            raise ApiError(401, "Unauthorized", "You are not logged in.")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.tokens:
            raise ApiError(401, "Unauthorized", "Invalid token")
        return self.current_login

    def respond(
        self, method: str, path: str, query: dict, headers: Any, body: bytes
    ) -> tuple:
        """Run one API request and return (status, JSON-ready payload)."""
        try:
            if not path.startswith("/api/"):
                raise _no_such_path()
            login = self._authenticate(headers)
            api_path = path[len("/api") :]
            if method == "HEAD":
                method = "GET"
            for route, pattern in _ROUTE_PATTERNS:
                found = pattern.match(api_path)
                if found and route.method == method:
                    call = _Call(query, headers, body, login)
                    handler = getattr(self, route.handler)
                    with self._lock:
                        return 200, handler(call, *found.groups())
            raise _no_such_path()
        except ApiError as error:
            logger.debug("%s %s failed: %s", method, path, error)
            return error.status, error.body

    def _page(self, call: _Call, items: list) -> list:
        skip = max(self._integer_parameter(call, "$skip", 0), 0)
        top = self._integer_parameter(call, "$top", DEFAULT_TOP)
        if top < 0:
            return items[skip:]
        return items[skip : skip + top]

    def _integer_parameter(self, call: _Call, name: str, default: int):
        text = call.parameter(name)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            # YouTrack 2025.2 returns this 500 for a non-numeric $top, and
            # this server does the same for $skip.
            raise ApiError(500, "server_error", "HTTP 404 Not Found") from None

    def _json_body(self, call: _Call) -> dict:
        media_type = call.headers.get("Content-Type", "")
        if media_type.split(";")[0].strip().lower() != "application/json":
            raise ApiError(
                415,
                "Unsupported Media Type",
                "HTTP 415 Unsupported Media Type",
            )
        try:
            data = json.loads(call.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise _bad_request(
                f"The request body is not valid JSON: {error}"
            ) from None
        if not isinstance(data, dict):
            raise _bad_request("The request body must be a JSON object.")
        return data

    # -- handlers -------------------------------------------------------

    def _get_me(self, call: _Call) -> dict:
        me = self._user_entity(call.login, type_name="Me")
        return project_entity(me, call.fields())

    def _list_issues(self, call: _Call) -> list:
        compiler = _QueryCompiler(self, call.login)
        matches = compiler.compile(call.parameter("query") or "")
        field, descending = compiler.sort
        found = [issue for issue in self.issues.values() if matches(issue)]
        found.sort(key=lambda issue: issue[field] or 0, reverse=descending)
        only = call.query.get("customFields")
        fields = call.fields()
        return [
            project_entity(self._issue_entity(issue, only), fields)
            for issue in self._page(call, found)
        ]

    def _get_issue(self, call: _Call, issue_id: str) -> dict:
        issue = self._find_issue(issue_id)
        return project_entity(self._issue_entity(issue), call.fields())

    def _create_issue(self, call: _Call) -> dict:
        data = self._json_body(call)
        reference = data.get("project")
        if not isinstance(reference, dict) or "id" not in reference:
            raise _bad_request(
                'The issue has no project. Send "project": {"id": ...}.'
            )
        try:
            project = self._project_record(str(reference["id"]))
        except KeyError:
            raise _not_found(str(reference["id"])) from None
        if project["id"] != reference["id"]:
            raise _not_found(str(reference["id"]))
        summary = self._summary(data, required=True)
        description = self._description(data)
        values = self._body_field_values(data)
        issue = self._insert_issue(
            project["shortName"],
            summary,
            description,
            values,
            created=self.clock(),
        )
        issue["reporter"] = issue["updater"] = call.login
        return project_entity(self._issue_entity(issue), call.fields())

    def _update_issue(self, call: _Call, issue_id: str) -> dict:
        issue = self._find_issue(issue_id)
        data = self._json_body(call)
        summary = self._summary(data, required=False)
        description = self._description(data)
        values = self._body_field_values(data)
        if summary is not None:
            issue["summary"] = summary
        if "description" in data:
            issue["description"] = description
        issue["fields"].update(values)
        now = self.clock()
        issue["updated"] = now
        issue["updater"] = call.login
        if not self._is_resolved(issue):
            issue["resolved"] = None
        elif issue["resolved"] is None:
            issue["resolved"] = now
        return project_entity(self._issue_entity(issue), call.fields())

    def _summary(self, data: dict, required: bool) -> str | None:
        summary = data.get("summary")
        if summary is None and not required and "summary" not in data:
            return None
        if not isinstance(summary, str) or not summary.strip():
            raise _bad_request("The issue summary is required.")
        return summary

    def _description(self, data: dict) -> str | None:
        description = data.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad_request("The issue description must be a string.")
        return description

    def _body_field_values(self, data: dict) -> dict:
        """Convert the customFields of a request body to plain values."""
        items = data.get("customFields", [])
        if not isinstance(items, list):
            raise _bad_request("customFields must be a JSON array.")
        values = {}
        for item in items:
            if not isinstance(item, dict) or not isinstance(
                item.get("name"), str
            ):
                raise _bad_request("Each custom field needs a name.")
            spec = _SPECS_BY_NAME.get(item["name"].lower())
            if spec is None or spec.name != item["name"]:
                raise _bad_request(f"Unknown custom field: {item['name']}.")
            if item.get("$type") != spec.issue_type:
                raise _bad_request(
                    f"The {spec.name} field needs $type {spec.issue_type}, "
                    f"got {item.get('$type')!r}."
                )
            if "value" not in item:
                raise _bad_request(f"The {spec.name} field has no value.")
            values[spec.name] = self._body_value(spec, item["value"])
        return values

    def _body_value(self, spec: FieldSpec, value: Any) -> Any:
        """Convert one custom field value in API form to plain form."""
        if value is None:
            if not spec.can_be_empty:
                raise _bad_request(f"The {spec.name} field cannot be empty.")
            return None
        if spec.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad_request(f"The {spec.name} field takes an integer.")
            return value
        if not isinstance(value, dict):
            raise _bad_request(
                f"The value of the {spec.name} field must be an object."
            )
        if spec.kind in _ELEMENT_TYPES:
            return self._body_element(spec, value)
        if spec.kind == "user":
            return self._body_user(spec, value)
        return self._body_period(spec, value)

    def _body_element(self, spec: FieldSpec, value: dict) -> str:
        for name, _resolved in spec.values:
            element = self._element_entity(spec, name)
            if value.get("name") == name or value.get("id") == element["id"]:
                return name
        given = value.get("name", value.get("id"))
        raise _bad_request(
            f"Unknown value for the {spec.name} field: {given}."
        )

    def _body_user(self, spec: FieldSpec, value: dict) -> str:
        for login, user in self.users.items():
            if value.get("login") == login or value.get("id") == user["id"]:
                return login
        given = value.get("login", value.get("id"))
        raise _bad_request(f"Unknown user for the {spec.name} field: {given}.")

    def _body_period(self, spec: FieldSpec, value: dict) -> int:
        minutes = value.get("minutes")
        if isinstance(minutes, int) and not isinstance(minutes, bool):
            if minutes < 0:
                raise _bad_request(f"The {spec.name} period is negative.")
            return minutes
        presentation = value.get("presentation")
        if isinstance(presentation, str):
            try:
                return parse_period(presentation)
            except ValueError:
                pass
        raise _bad_request(
            f"Invalid period for the {spec.name} field: {value}. "
            'Send {"presentation": "1h 30m"} or {"minutes": 90}.'
        )

    def _list_comments(self, call: _Call, issue_id: str) -> list:
        issue = self._find_issue(issue_id)
        fields = call.fields()
        return [
            project_entity(self._comment_entity(issue, comment), fields)
            for comment in self._page(call, issue["comments"])
        ]

    def _add_comment(self, call: _Call, issue_id: str) -> dict:
        issue = self._find_issue(issue_id)
        data = self._json_body(call)
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _bad_request("The comment text is required.")
        comment = self._insert_comment(issue, call.login, text, self.clock())
        return project_entity(
            self._comment_entity(issue, comment), call.fields()
        )

    def _list_projects(self, call: _Call) -> list:
        fields = call.fields()
        return [
            project_entity(self._project_entity(project), fields)
            for project in self._page(call, self.projects)
        ]

    def _project_by_path(self, key: str) -> dict:
        # NOTE: this server also finds a project by its short name here;
        # whether YouTrack does is not checked.
        try:
            return self._project_record(key)
        except KeyError:
            raise _not_found(key) from None

    def _get_project(self, call: _Call, project_id: str) -> dict:
        project = self._project_by_path(project_id)
        return project_entity(self._project_entity(project), call.fields())

    def _list_project_fields(self, call: _Call, project_id: str) -> list:
        project = self._project_by_path(project_id)
        fields = call.fields()
        return [
            project_entity(self._project_field_entity(project, spec), fields)
            for spec in self._page(call, list(FIELD_SPECS))
        ]


# ===================================================================
# HTTP front end
# ===================================================================


class _BodyError(Exception):
    """Raised when a request body cannot be read, with the status to send."""

    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple, fake: FakeYouTrack):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.fake = fake
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host name in DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]

    def handle_error(self, request, client_address) -> None:
        # Clients that reject the certificate or vanish mid-request end
        # up here. They are expected in tests, so log them quietly.
        logger.debug(
            "connection from %s failed", client_address, exc_info=True
        )


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "YouTrack"
    timeout = 30  # seconds an idle keep-alive connection stays open
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        fake = self.server.fake
        with fake._lock:
            fake.connections += 1
        if fake.ssl_context is not None:
            self.request.settimeout(self.timeout)
            self.request = fake.ssl_context.wrap_socket(
                self.request, server_side=True
            )
        with fake._lock:
            fake._open_sockets.add(self.request)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            fake = self.server.fake
            with fake._lock:
                fake._open_sockets.discard(self.request)
            if isinstance(self.request, ssl.SSLSocket):
                # socketserver closes only the plain socket it accepted,
                # which the TLS wrapper has detached.
                self.request.close()

    def log_request(self, code="-", size="-") -> None:
        logger.info("%s %s -> %s", self.command, self.path, code)

    def log_message(self, message_format, *args) -> None:
        logger.debug(message_format, *args)

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _handle(self) -> None:
        fake = self.server.fake
        split = urllib.parse.urlsplit(self.path)
        raw_path = urllib.parse.unquote(split.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except _BodyError as error:
            logger.info(
                "rejected the body of %s %s: %s",
                self.command,
                self.path,
                error.description,
            )
            self.close_connection = True
            phrase = http.HTTPStatus(error.status).phrase
            self._send_json(
                error.status,
                {"error": phrase, "error_description": error.description},
                [("Connection", "close")],
            )
            return
        path, under_prefix = fake._strip_prefix(raw_path)
        fake._record(
            RecordedRequest(self.command, path, query, self.headers, body)
        )
        fault = fake._take_fault(path)
        if fault is not None and self._apply_fault(fault):
            return
        if under_prefix:
            status, payload = fake.respond(
                self.command, path, query, self.headers, body
            )
        else:
            status, payload = 404, _no_such_path().body
        self._send_json(status, payload)

    def _read_body(self) -> bytes:
        encoding = self.headers.get("Transfer-Encoding", "")
        if "chunked" in encoding.lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BodyError(
                400, f"Invalid Content-Length {length!r}"
            ) from None
        if size < 0:
            raise _BodyError(400, f"Invalid Content-Length {length!r}")
        if size > MAX_BODY_BYTES:
            raise _BodyError(
                413, f"Request body larger than {MAX_BODY_BYTES} bytes"
            )
        return self.rfile.read(size)

    def _read_chunked(self) -> bytes:
        chunks = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BodyError(
                    400, "Invalid chunk size in the body"
                ) from None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # skip trailer fields
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(
                    413, f"Request body larger than {MAX_BODY_BYTES} bytes"
                )
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Any = (),
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: Any = ()):
        body = json.dumps(
            payload, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
        self._send(status, body, JSON_TYPE, headers)

    def _apply_fault(self, fault: dict) -> bool:
        """Act out a queued fault and return whether it sent a response."""
        kind = fault["kind"]
        options = fault["options"]
        logger.info("fault %s for %s %s", kind, self.command, self.path)
        headers = list(options.get("headers", {}).items())
        if kind == "delay":
            self.server.fake._stopping.wait(options.get("seconds", 1.0))
            return False
        if kind == "drop":
            self.close_connection = True
            return True
        if kind == "status":
            status = options.get("status", 503)
            body = options.get("body")
            content_type = options.get("content_type", JSON_TYPE)
            if isinstance(body, str):
                body = body.encode("utf-8")
            if body is None:
                phrase = _reason_phrase(status)
                body = json.dumps(
                    {
                        "error": phrase,
                        "error_description": f"HTTP {status} {phrase}",
                    }
                ).encode("utf-8")
            self._send(status, body, content_type, headers)
        elif kind == "html":
            status = options.get("status", 502)
            self._send(status, _html_error_page(status), "text/html", headers)
        elif kind == "not_json":
            body = options.get("body", b"<p>Not JSON: maintenance</p>\n")
            self._send(200, body, JSON_TYPE, headers)
        elif kind == "redirect":
            headers.append(("Location", options["location"]))
            self._send(options.get("status", 302), b"", None, headers)
        elif kind == "truncated":
            self._send_truncated()
        return True

    def _send_truncated(self) -> None:
        body = b'[{"$type":"Issue","id":"2-1"},{"$type":"Iss'
        self.send_response(200)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(body) + 4096))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _html_error_page(status: int) -> bytes:
    title = html.escape(f"{status} {_reason_phrase(status)}")
    page = (
        "<!DOCTYPE html>\n<html><head><title>"
        f"{title}</title></head>\n<body><h1>{title}</h1>\n"
        "<p>The reverse proxy could not get a valid response "
        "from the upstream server.</p>\n</body></html>\n"
    )
    return page.encode("utf-8")


# ===================================================================
# Command line
# ===================================================================


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Serve a fake YouTrack REST API on 127.0.0.1 until "
        "killed. Prints 'URL TOKEN' on the first line of stdout."
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="TCP port (default: a free port that the OS picks)",
    )
    parser.add_argument(
        "--prefix", default="", help="path prefix, e.g. /youtrack"
    )
    parser.add_argument(
        "--issues",
        type=int,
        default=3,
        help="issues created in project DEMO (default: 3)",
    )
    parser.add_argument(
        "--token", default=DEFAULT_TOKEN, help="accepted Bearer token"
    )
    parser.add_argument(
        "--tls-cert", help="PEM certificate chain, which turns on HTTPS"
    )
    parser.add_argument(
        "--tls-key", help="PEM private key, when not in --tls-cert"
    )
    return parser


def _server_context(parser, args) -> ssl.SSLContext | None:
    """Load the TLS certificate options, or return None for plain HTTP."""
    if args.tls_key and not args.tls_cert:
        parser.error("--tls-key needs --tls-cert")
    if not args.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as error:
        parser.error(f"cannot load --tls-cert/--tls-key: {error}")
    return context


def main(argv: list | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C, then return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(message)s"
    )
    context = _server_context(parser, args)

    try:
        fake = FakeYouTrack(
            token=args.token,
            prefix=args.prefix,
            ssl_context=context,
            port=args.port,
            issues=args.issues,
        )
    except ValueError as error:
        parser.error(str(error))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        fake.start()
    except OSError as error:
        print(
            f"error: cannot listen on 127.0.0.1:{args.port}: {error}",
            file=sys.stderr,
        )
        return 1

    with fake:
        print(f"{fake.url} {args.token}", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
