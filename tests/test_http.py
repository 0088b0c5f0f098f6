"""HTTP behaviour against the fake YouTrack: projections, one kept-alive
connection, retries, redirects, error bodies, network failures, proxies.

Retries sleep through ``Transport.sleep``; the ``sleeps`` fixture records
the delays instead, so these tests do not wait.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import socket
import socketserver
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest
from fake_youtrack import DEFAULT_TOKEN, FakeYouTrack

import yt

UNRESOLVABLE = "yt-test.invalid"


def requests_to(server, method=None, path=None) -> list:
    return [
        request
        for request in server.requests
        if (method is None or request.method == method)
        and (path is None or request.path == path)
    ]


def assert_one_error_line(result, code):
    """Check the exit code and that stderr is one 'yt: error:' line."""
    assert result.code == code, result.err
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("yt: error: ")


def closed_port() -> int:
    """Return a loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------ projections

COMMANDS = {
    "issues list": ["issues", "list", "-q", "#Unresolved"],
    "issues list -p": ["issues", "list", "-p", "DEMO", "--limit", "500"],
    "issues show": ["issues", "show", "DEMO-1"],
    "issues create": [
        "issues", "create", "DEMO", "New", "-d", "text",
        "--field", "Priority=Minor", "--field", "Estimation=2h",
    ],
    "issues update": [
        "issues", "update", "DEMO-1", "-s", "Renamed",
        "--field", "Assignee=jdoe",
    ],
    "issues comment": ["issues", "comment", "DEMO-1", "A comment"],
    "projects list": ["projects", "list"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_request_has_fields(cli, api, command):
    result = cli(*COMMANDS[command])

    assert result.code == 0, result.err
    assert api.requests
    for request in api.requests:
        fields = request.query.get("fields")
        assert fields, f"{request.method} {request.path} has no fields="
        assert fields[0].strip()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_request_headers(cli, api, command):
    result = cli(*COMMANDS[command])

    assert result.code == 0, result.err
    for request in api.requests:
        assert request.headers["Authorization"] == f"Bearer {DEFAULT_TOKEN}"
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Host"] == f"127.0.0.1:{api.port}"
        assert request.headers["User-Agent"] == f"yt/{yt.__version__}"
        if request.method == "POST":
            assert request.headers["Content-Type"] == "application/json"


# -------------------------------------------------------- one connection


def test_paged_listing_uses_one_connection(cli, api):
    api.add_issues(250)

    result = cli("issues", "list", "--limit", "1000", "--format", "json")

    assert result.code == 0, result.err
    assert len(json.loads(result.out)) == 253
    assert len(requests_to(api, "GET", "/api/issues")) == 3
    assert api.connections == 1


def test_create_uses_one_connection(cli, api):
    result = cli(*COMMANDS["issues create"])

    assert result.code == 0, result.err
    assert len(api.requests) == 3
    assert api.connections == 1


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_get_retried_with_retry_after(cli, api, sleeps, status):
    api.fail_next(
        "status", status=status, headers={"Retry-After": "2"},
        match="/api/issues$",
    )

    result = cli("issues", "list", "--format", "json")

    assert result.code == 0, result.err
    assert len(json.loads(result.out)) == 3
    assert len(requests_to(api, "GET", "/api/issues")) == 2
    assert sleeps == [2.0]
    assert result.err == ""


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [("0", 0.0), ("7", 7.0), ("3600", yt.RETRY_AFTER_CAP)],
)
def test_retry_after_seconds(cli, api, sleeps, retry_after, delay):
    api.fail_next("status", status=503, headers={"Retry-After": retry_after})

    result = cli("api", "users/me")

    assert result.code == 0, result.err
    assert sleeps == [delay]


def test_retry_after_http_date(cli, api, sleeps, monkeypatch):
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    monkeypatch.setattr(yt, "utc_now", lambda: now)
    later = email.utils.format_datetime(now + timedelta(seconds=12),
                                        usegmt=True)
    api.fail_next("status", status=429, headers={"Retry-After": later})

    result = cli("api", "users/me")

    assert result.code == 0, result.err
    assert sleeps == [12.0]


def test_retry_backoff_without_retry_after(cli, api, sleeps):
    api.fail_next("status", status=503, count=3)

    result = cli("api", "users/me")

    assert result.code == 0, result.err
    assert len(api.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_retries_exhausted(cli, api, sleeps):
    api.fail_next("status", status=503, count=10, match="/api/issues$")

    result = cli("issues", "list")

    assert_one_error_line(result, 1)
    assert "listing issues failed: server error (503 Service Unavailable" in (
        result.err
    )
    assert len(api.requests) == yt.MAX_RETRIES + 1
    assert len(sleeps) == yt.MAX_RETRIES


@pytest.mark.parametrize("status", [500, 501, 418])
def test_other_status_not_retried(cli, api, sleeps, status):
    api.fail_next("status", status=status)

    result = cli("api", "users/me")

    assert_one_error_line(result, 1)
    assert f"({status} " in result.err
    assert len(api.requests) == 1
    assert sleeps == []


def test_get_retried_after_dropped_connection(cli, api, sleeps):
    api.fail_next("drop", match="/api/issues$")

    result = cli("issues", "list", "--format", "json")

    assert result.code == 0, result.err
    assert len(json.loads(result.out)) == 3
    assert len(api.requests) == 2
    assert len(sleeps) == 1


def test_dropped_connection_on_later_page(cli, api, sleeps):
    api.add_issues(250)
    original = api._take_fault

    # Drop the connection only for the second page.
    def take_fault(path):
        if len(api.requests) == 2:
            return {"kind": "drop", "options": {}}
        return original(path)

    api._take_fault = take_fault

    result = cli("issues", "list", "--limit", "1000", "--format", "json")

    assert result.code == 0, result.err
    issues = json.loads(result.out)
    assert len(issues) == 253
    assert len({issue["idReadable"] for issue in issues}) == 253
    skips = [r.query["$skip"][0] for r in api.requests]
    assert skips == ["0", "100", "100", "200"]


def test_dropped_connections_exhausted(cli, api, sleeps):
    api.fail_next("drop", count=10)

    result = cli("issues", "show", "DEMO-1")

    assert_one_error_line(result, 5)
    assert "was closed before a response arrived" in result.err
    assert len(api.requests) == yt.MAX_RETRIES + 1


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_post_never_retried_on_status(cli, api, sleeps, status):
    api.fail_next(
        "status", status=status, headers={"Retry-After": "1"},
        match="/api/issues$",
    )

    result = cli("issues", "create", "DEMO", "Only once")

    assert_one_error_line(result, 1)
    assert len(requests_to(api, "POST", "/api/issues")) == 1
    assert f"creating an issue in DEMO failed: server error ({status}" in (
        result.err
    )
    assert sleeps == []
    assert "DEMO-4" not in api.issues


def test_post_never_retried_on_drop(cli, api, sleeps):
    api.fail_next("drop", match="/comments$")

    result = cli("issues", "comment", "DEMO-1", "Only once")

    assert_one_error_line(result, 5)
    assert len(requests_to(api, "POST")) == 1
    assert sleeps == []


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT"])
def test_api_non_get_never_retried(cli, api, sleeps, method):
    api.fail_next("status", status=503)

    result = cli("api", "-X", method, "issues/DEMO-1", "-f", "summary=x")

    assert_one_error_line(result, 1)
    assert len(api.requests) == 1
    assert api.requests[0].method == method


# -------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("absolute", [False, True])
def test_redirect_same_host_followed(cli, api, status, absolute):
    location = "/api/users/me?fields=login"
    if absolute:
        location = api.url + location
    api.fail_next("redirect", status=status, location=location)

    result = cli("api", "users/me")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {"$type": "Me", "login": "admin"}
    assert len(api.requests) == 2
    assert api.requests[1].query == {"fields": ["login"]}
    assert api.connections == 1


@pytest.fixture
def other_server():
    with FakeYouTrack(issues=1) as server:
        yield server


@pytest.mark.parametrize("target", ["other port", "other host name"])
def test_redirect_other_host_refused(cli, api, other_server, target):
    if target == "other port":
        location = f"http://127.0.0.1:{other_server.port}/api/users/me"
    else:
        location = f"http://localhost:{api.port}/api/users/me"
    api.fail_next("redirect", location=location)

    result = cli("api", "users/me")

    assert_one_error_line(result, 1)
    assert f"the server redirected to {location}" in result.err
    assert "the token would be sent there" in result.err
    assert "set YOUTRACK_BASE_URL" in result.err
    assert len(api.requests) == 1
    assert other_server.requests == []


def test_redirect_https_to_http_refused(
    cli, yt_home, tls_server, tls_certs, other_server
):
    secure = tls_server("valid")
    location = f"http://127.0.0.1:{other_server.port}/api/users/me"
    secure.fail_next("redirect", status=301, location=location)
    env = {
        "YOUTRACK_BASE_URL": secure.url,
        "YOUTRACK_TOKEN": DEFAULT_TOKEN,
        "YOUTRACK_CA_BUNDLE": tls_certs.ca,
    }

    result = cli("api", "users/me", env=env)

    assert_one_error_line(result, 1)
    assert f"the server redirected to {location}" in result.err
    assert "another scheme or host" in result.err
    assert other_server.requests == []


def test_redirect_post_refused(cli, api):
    api.fail_next(
        "redirect", status=307, location="/api/issues/DEMO-2/comments",
        match="/comments$",
    )

    result = cli("issues", "comment", "DEMO-1", "Where does this go")

    assert_one_error_line(result, 1)
    assert "redirected a POST request" in result.err
    assert len(requests_to(api, "POST")) == 1
    assert api.issues["DEMO-2"]["comments"] == []


def test_redirect_loop_stops(cli, api):
    api.fail_next("redirect", count=20, location="/api/users/me")

    result = cli("api", "users/me")

    assert_one_error_line(result, 1)
    assert "too many redirects" in result.err
    assert len(api.requests) == yt.MAX_REDIRECTS + 1


# ------------------------------------------------------------ error bodies


@pytest.mark.parametrize("status", [500, 404])
def test_html_error_page(cli, api, status):
    api.fail_next("html", status=status)

    result = cli("issues", "list")

    assert_one_error_line(result, 1)
    assert "the server returned an HTML page" in result.err
    assert f"({status} " in result.err
    assert "<html" not in result.err


def test_html_error_page_after_retries(cli, api, sleeps):
    api.fail_next("html", status=502, count=10)

    result = cli("issues", "list")

    assert_one_error_line(result, 1)
    assert "HTML page (502 Bad Gateway)" in result.err
    assert len(api.requests) == yt.MAX_RETRIES + 1


def test_truncated_body_retried(cli, api, sleeps):
    api.fail_next("truncated")

    result = cli("issues", "list", "--format", "json")

    assert result.code == 0, result.err
    assert len(json.loads(result.out)) == 3
    assert len(api.requests) == 2


def test_truncated_body_error(cli, api, sleeps):
    api.fail_next("truncated", count=10)

    result = cli("issues", "list")

    assert_one_error_line(result, 5)
    assert "was cut off after" in result.err


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"maintenance mode", "the server sent invalid JSON"),
        (b"<p>Not JSON: maintenance</p>", "expected JSON from the server"),
        (b'{"unterminated": ', "the server sent invalid JSON"),
    ],
)
def test_non_json_body(cli, api, body, message):
    api.fail_next("not_json", body=body)

    result = cli("issues", "show", "DEMO-1")

    assert_one_error_line(result, 1)
    assert message in result.err


def test_wrong_content_type(cli, api):
    api.fail_next("status", status=200, body="OK", content_type="text/plain")

    result = cli("projects", "list")

    assert_one_error_line(result, 1)
    assert "expected JSON from the server but got text/plain" in result.err


def test_unexpected_json_shape(cli, api):
    api.fail_next("status", status=200, body='{"not": "a list"}')

    result = cli("issues", "list")

    assert_one_error_line(result, 1)
    assert "expected a JSON array from the server, got an object" \
        in result.err


def test_unauthorized(cli, api):
    wrong = "perm:d3Jvbmc=.dG9rZW4=.WrongWrongWrong"

    result = cli("issues", "list", env={"YOUTRACK_TOKEN": wrong})

    assert_one_error_line(result, 3)
    assert "the server rejected the token (401 Unauthorized: Invalid token)" \
        in result.err
    assert "run yt auth login, or check YOUTRACK_TOKEN" in result.err
    assert "WrongWrong" not in result.err


def test_forbidden(cli, api):
    api.fail_next(
        "status", status=403,
        body='{"error":"Forbidden","error_description":"Access denied"}',
    )

    result = cli("issues", "show", "DEMO-1")

    assert_one_error_line(result, 3)
    assert "permission denied (403 Forbidden: Access denied)" in result.err


def test_not_found(cli, api):
    result = cli("issues", "show", "DEMO-404")

    assert_one_error_line(result, 4)
    assert "not found (404 Not Found: Entity with id DEMO-404 not found)" in (
        result.err
    )


def test_invalid_query(cli, api):
    result = cli("issues", "list", "-q", "summary: {open")

    assert_one_error_line(result, 1)
    assert (
        "listing issues failed: invalid request (400 Bad Request: Can't "
        "parse search query, please check and update query syntax)"
    ) in result.err


def test_error_description_masked_and_escaped(cli, api):
    body = json.dumps({
        "error": "bad",
        "error_description": "token perm:abc.def.ghi rejected \x1b[2J\x07",
    })
    api.fail_next("status", status=400, body=body)

    result = cli("api", "users/me")

    assert_one_error_line(result, 1)
    assert "perm:abc" not in result.err
    assert yt.MASK in result.err
    assert "\x1b" not in result.err
    assert "\x07" not in result.err
    assert "\\x1b[2J" in result.err


def test_server_error_without_body(cli, api):
    api.fail_next("status", status=500, body="")

    result = cli("api", "users/me")

    assert_one_error_line(result, 1)
    assert "server error (500 Internal Server Error)" in result.err


# ------------------------------------------------------- network failures


def test_connection_refused(cli, yt_home, sleeps):
    port = closed_port()
    env = {
        "YOUTRACK_BASE_URL": f"http://127.0.0.1:{port}",
        "YOUTRACK_TOKEN": DEFAULT_TOKEN,
    }

    result = cli("issues", "list", env=env)

    assert_one_error_line(result, 5)
    assert f"cannot connect to 127.0.0.1:{port}: connection refused" in (
        result.err
    )
    assert len(sleeps) == yt.MAX_RETRIES


def test_dns_failure(cli, yt_home, sleeps):
    env = {
        "YOUTRACK_BASE_URL": f"https://{UNRESOLVABLE}",
        "YOUTRACK_TOKEN": DEFAULT_TOKEN,
    }

    result = cli("issues", "list", env=env)

    assert_one_error_line(result, 5)
    assert f"cannot resolve the host name '{UNRESOLVABLE}'" in result.err
    assert "check YOUTRACK_BASE_URL and DNS" in result.err


def test_timeout(cli, api, sleeps):
    api.fail_next("delay", seconds=5, count=10)
    started = time.monotonic()

    result = cli("issues", "list", env={"YOUTRACK_TIMEOUT": "0.5"})

    elapsed = time.monotonic() - started
    assert_one_error_line(result, 5)
    assert "timed out after 0.5 s" in result.err
    assert "raise YOUTRACK_TIMEOUT" in result.err
    assert len(api.requests) == yt.MAX_RETRIES + 1
    # Four attempts of 0.5 s each, far below the 5 s the server waits.
    assert elapsed < 10


def test_timeout_retried(cli, api, sleeps):
    api.fail_next("delay", seconds=3)

    result = cli(
        "issues", "list", "--format", "json",
        env={"YOUTRACK_TIMEOUT": "0.5"},
    )

    assert result.code == 0, result.err
    assert len(json.loads(result.out)) == 3
    assert len(sleeps) == 1


def test_post_timeout_not_retried(cli, api, sleeps):
    api.fail_next("delay", seconds=2, match="/api/issues$")

    result = cli(
        "issues", "create", "DEMO", "Slow", env={"YOUTRACK_TIMEOUT": "0.5"}
    )

    assert_one_error_line(result, 5)
    assert "timed out" in result.err
    assert len(requests_to(api, "POST")) == 1


# ---------------------------------------------------------------- proxies


class LoopbackProxy:
    """A small HTTP proxy on 127.0.0.1 that records each request head.

    CONNECT opens a tunnel; other methods (absolute-form request lines)
    are relayed byte for byte to the target. Only loopback targets are
    served.
    """

    def __init__(self):
        self.heads = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(
            ("127.0.0.1", 0), Handler
        )
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()

    @property
    def request_lines(self) -> list:
        return [head.split("\r\n", 1)[0] for head in self.heads]

    def _serve(self, client):
        head = self._read_head(client)
        if not head:
            return
        self.heads.append(head.decode("latin-1"))
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
        else:
            parts = urllib.parse.urlsplit(target)
            host, port = parts.hostname, parts.port or 80
        if host not in ("127.0.0.1", "localhost"):
            client.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            return
        with socket.create_connection((host, int(port)), timeout=10) as up:
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up.sendall(head)
            relay = threading.Thread(
                target=self._pipe, args=(up, client), daemon=True
            )
            relay.start()
            self._pipe(client, up)
            relay.join(timeout=10)

    @staticmethod
    def _read_head(sock) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(1)
            if not chunk:
                return b""
            data += chunk
        return data

    @staticmethod
    def _pipe(source, target):
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy():
    with LoopbackProxy() as running:
        yield running


@pytest.fixture
def secure_env(tls_server, tls_certs):
    """An HTTPS fake server and the settings that trust it."""
    server = tls_server("valid")
    env = {
        "YOUTRACK_BASE_URL": server.url,
        "YOUTRACK_TOKEN": DEFAULT_TOKEN,
        "YOUTRACK_CA_BUNDLE": str(tls_certs.ca),
    }
    return server, env


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_https_proxy_connect(cli, yt_home, proxy, secure_env, variable):
    server, env = secure_env
    api_port = server.port

    result = cli(
        "issues", "create", "DEMO", "Through a proxy",
        "--field", "Priority=Major", env=dict(env, **{variable: proxy.url}),
    )

    assert result.code == 0, result.err
    # One tunnel serves the command's three requests. http.client sends
    # CONNECT as HTTP/1.0 before Python 3.12 and as HTTP/1.1 after.
    (line,) = proxy.request_lines
    assert line.startswith(f"CONNECT 127.0.0.1:{api_port} HTTP/1.")
    assert len(server.requests) == 3
    assert server.issues["DEMO-4"]["summary"] == "Through a proxy"


def test_https_proxy_credentials(cli, yt_home, proxy, secure_env):
    import base64

    server, env = secure_env
    proxy_url = f"http://proxyuser:proxy-pass-42@127.0.0.1:{proxy.port}"
    env = dict(env, HTTPS_PROXY=proxy_url)

    result = cli("--debug", "api", "users/me", env=env)

    assert result.code == 0, result.err
    expected = base64.b64encode(b"proxyuser:proxy-pass-42").decode()
    assert f"Proxy-Authorization: Basic {expected}" in proxy.heads[0]
    assert "proxy-pass-42" not in result.err
    assert expected not in result.err
    # The proxy credentials go to the proxy only, never to the server.
    assert "Proxy-Authorization" not in server.requests[0].headers


@pytest.mark.parametrize(
    "no_proxy", ["127.0.0.1", "*", "example.com, 127.0.0.1"]
)
def test_no_proxy_bypasses_proxy(cli, yt_home, proxy, secure_env, no_proxy):
    server, env = secure_env
    env = dict(env, HTTPS_PROXY=proxy.url, NO_PROXY=no_proxy)

    result = cli("api", "users/me", env=env)

    assert result.code == 0, result.err
    assert proxy.heads == []
    assert len(server.requests) == 1


def test_http_proxy_absolute_form(cli, api, proxy):
    api.add_issues(150)

    result = cli(
        "issues", "list", "--limit", "200", "--format", "json",
        env={"HTTP_PROXY": proxy.url},
    )

    assert result.code == 0, result.err
    assert len(json.loads(result.out)) == 153
    line = proxy.request_lines[0]
    assert line.startswith(f"GET http://127.0.0.1:{api.port}/api/issues?")
    assert line.endswith(" HTTP/1.1")
    assert len(api.requests) == 2


def test_https_proxy_ignored_for_http(cli, api, proxy):
    result = cli("api", "users/me", env={"HTTPS_PROXY": proxy.url})

    assert result.code == 0, result.err
    assert proxy.heads == []


def test_proxy_unreachable(cli, secure_env, sleeps):
    _server, env = secure_env
    port = closed_port()
    env = dict(env, HTTPS_PROXY=f"http://127.0.0.1:{port}")

    result = cli("api", "users/me", env=env)

    assert_one_error_line(result, 5)
    assert "through the proxy 127.0.0.1" in result.err


@pytest.mark.parametrize(
    "value", ["socks5://127.0.0.1:1080", "https://127.0.0.1:3128"]
)
def test_unsupported_proxy(cli, secure_env, value):
    _server, env = secure_env

    result = cli("api", "users/me", env=dict(env, HTTPS_PROXY=value))

    assert_one_error_line(result, 2)
    assert "invalid proxy" in result.err
    assert "HTTPS_PROXY" in result.err
    assert "expected http://host:port" in result.err


# ----------------------------------------------------- clear-text warning


def test_http_to_remote_host_warned(cli, yt_home, sleeps):
    env = {
        "YOUTRACK_BASE_URL": f"http://{UNRESOLVABLE}",
        "YOUTRACK_TOKEN": DEFAULT_TOKEN,
    }

    result = cli("issues", "list", env=env)

    assert result.code == 5
    warning = (
        f"http://{UNRESOLVABLE} uses plain http, so the token travels in "
        f"clear text; use https"
    )
    assert warning in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_http_to_loopback_not_warned(cli, yt_home, sleeps, host):
    port = closed_port()
    env = {
        "YOUTRACK_BASE_URL": f"http://{host}:{port}",
        "YOUTRACK_TOKEN": DEFAULT_TOKEN,
    }

    result = cli("issues", "list", env=env)

    assert result.code == 5
    assert "clear text" not in result.err


def test_https_not_warned(cli, secure_env):
    _server, env = secure_env

    result = cli("issues", "list", env=env)

    assert result.code == 0, result.err
    assert result.err == ""
