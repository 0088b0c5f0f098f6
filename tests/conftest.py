"""Shared fixtures: an isolated home, the fake YouTrack server, TLS
certificates, the in-process and subprocess CLI runners, and a real
Secret Service.

``tests/run.sh`` starts a private D-Bus session with gnome-keyring for the
whole run. Without it, tests that ask for ``secret_service`` skip, or fail
when ``YT_REQUIRE_KEYRING=1``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import subprocess
import sys
import textwrap
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
YT_PY = REPO / "yt.py"

for _path in (str(REPO), str(TESTS_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# Read before any fixture strips the YT_* variables from os.environ.
REQUIRE_KEYRING = os.environ.get("YT_REQUIRE_KEYRING") == "1"
REQUIRE_ARTIFACTS = os.environ.get("YT_REQUIRE_ARTIFACTS") == "1"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Set by tests/run.sh for the private keyring it starts, and by nothing
# else, so no test can reach a developer's own keyring.
_KEYRING_PASSWORD = os.environ.get("YT_TEST_KEYRING_PASSWORD", "")
_KEYRING_BUS = os.environ.get("YT_TEST_KEYRING_BUS", "")

KEYRING_SERVICE = "youtrack-cli"
NO_SECRET_SERVICE = (
    "no Secret Service: install gnome-keyring and run under "
    "dbus-run-session (tests/run.sh does this)"
)
FAIL_KEYRING = "keyring.backends.fail.Keyring"

# Removed from the environment of every test that uses yt_home, compared
# without regard to case.
_STRIPPED_PREFIXES = ("YOUTRACK_", "YT_")
_STRIPPED_NAMES = frozenset(
    {
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "NO_COLOR",
        "FORCE_COLOR",
        "CLICOLOR_FORCE",
        "COLUMNS",
    }
)

Result = namedtuple("Result", "code out err")


def skip_or_fail(reason: str, *, required: bool) -> None:
    """Skip the current test, or fail it when the caller requires it."""
    if required:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(items):
    # Lets `-m "not keyring"` deselect every test of the real keyring.
    for item in items:
        if "secret_service" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.keyring)


def _reset_keyring_backend() -> None:
    """Make an imported ``keyring`` choose its backend again.

    keyring reads PYTHON_KEYRING_BACKEND once, when it first picks a
    backend, so a test that changes the variable must ask it to pick again.
    """
    core = sys.modules.get("keyring.core")
    if core is None:
        return
    # With no usable backend (no session bus, say) keyring raises while
    # choosing; yt makes its own choice, so that is harmless here.
    with contextlib.suppress(Exception):
        core.init_backend()


def _env_value(value) -> str:
    """Convert a path, number or string to an environment value."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _env_overrides(mp: pytest.MonkeyPatch, env: dict | None) -> None:
    """Apply ``env``: a value of None removes the variable."""
    for name, value in (env or {}).items():
        if value is None:
            mp.delenv(name, raising=False)
        else:
            mp.setenv(name, _env_value(value))
    if env and "PYTHON_KEYRING_BACKEND" in env:
        _reset_keyring_backend()


@pytest.fixture(autouse=True)
def _no_personal_keyring(monkeypatch):
    """Keep every test away from the developer's own keyring."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", FAIL_KEYRING)
    _reset_keyring_backend()


# ---------------------------------------------------------------- yt_home


@dataclass
class YtHome:
    """Temporary home directory and yt's locations in it.

    ``config_dir`` and ``data_dir`` are yt's own directories, which do not
    exist until yt creates them; ``cache_dir`` is XDG_CACHE_HOME.
    """

    home: Path
    config_dir: Path
    data_dir: Path
    cache_dir: Path

    def env(self) -> dict[str, str]:
        """Return a copy of the current environment for a subprocess."""
        return dict(os.environ)


def _is_stripped(name: str) -> bool:
    upper = name.upper()
    return upper in _STRIPPED_NAMES or upper.startswith(_STRIPPED_PREFIXES)


@pytest.fixture
def yt_home(tmp_path, monkeypatch) -> YtHome:
    """Point HOME and the XDG directories at a new empty home.

    Also removes yt's settings, TLS and proxy variables, selects keyring's
    fail backend and makes the home the working directory. The yt
    directories themselves are left for yt to create. XDG_RUNTIME_DIR is
    kept, because the D-Bus session of tests/run.sh may live there.
    """
    home = tmp_path / "home"
    config_home = home / ".config"
    data_home = home / ".local" / "share"
    cache_home = home / ".cache"
    for directory in (config_home, data_home, cache_home):
        directory.mkdir(mode=0o700, parents=True)

    for name in list(os.environ):
        if _is_stripped(name):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", FAIL_KEYRING)
    _reset_keyring_backend()
    monkeypatch.chdir(home)

    return YtHome(
        home=home,
        config_dir=config_home / "youtrack-cli",
        data_dir=data_home / "youtrack-cli",
        cache_dir=cache_home,
    )


# ------------------------------------------------------------ CLI runners


def _captured_stream(encoding: str, errors: str) -> io.TextIOWrapper:
    # A text stream over bytes, like a redirected sys.stdout: it has a
    # .buffer, a fixed encoding and isatty() is False.
    return io.TextIOWrapper(
        io.BytesIO(), encoding=encoding, errors=errors, newline="\n"
    )


def _read_captured(stream: io.TextIOWrapper) -> str:
    stream.flush()
    raw = stream.buffer.getvalue()
    return raw.decode(stream.encoding, errors="backslashreplace")


def _getpass_from_stdin(prompt: str = "Password: ", stream=None) -> str:
    """Read one line from sys.stdin in place of getpass.getpass.

    The real getpass reads from the controlling terminal when there is
    one, so a test run from a developer's shell would block on it.
    """
    stream = stream or sys.stderr
    stream.write(prompt)
    stream.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line[:-1] if line.endswith("\n") else line


@pytest.fixture
def cli(yt_home, monkeypatch):
    """Run ``yt.main(args)`` in this process and capture its output.

    ``cli(*args, input=None, env=None, encoding="utf-8")`` returns
    ``Result(code, out, err)``. ``input`` becomes sys.stdin (empty when
    None), ``env`` sets variables for this call only (None removes one)
    and ``encoding`` is that of the captured stdout and stderr. getpass
    reads from ``input`` as it does when there is no terminal. SystemExit
    becomes the code as the interpreter would set it.
    """
    import yt

    def run(*args, input=None, env=None, encoding="utf-8"):
        stdin = _captured_stream(encoding, "strict")
        stdin.buffer.write((input or "").encode(encoding))
        stdin.buffer.seek(0)
        stdout = _captured_stream(encoding, "strict")
        stderr = _captured_stream(encoding, "backslashreplace")
        with monkeypatch.context() as mp:
            _env_overrides(mp, env)
            mp.setattr(sys, "stdin", stdin)
            mp.setattr(sys, "stdout", stdout)
            mp.setattr(sys, "stderr", stderr)
            mp.setattr("getpass.getpass", _getpass_from_stdin)
            try:
                code = yt.main([str(arg) for arg in args])
            except SystemExit as exc:
                code = exc.code
                if code is None:
                    code = 0
                elif not isinstance(code, int):
                    print(code, file=stderr)
                    code = 1
        if env and "PYTHON_KEYRING_BACKEND" in env:
            _reset_keyring_backend()
        return Result(code, _read_captured(stdout), _read_captured(stderr))

    return run


@pytest.fixture
def run_yt(yt_home):
    """Run ``python yt.py ARGS`` in a subprocess with the isolated home.

    ``run_yt(*args, env=None, input=None, timeout=60, **kwargs)`` returns
    the subprocess.CompletedProcess in text mode; ``env`` adds to or (with
    None) removes from yt_home's environment, and other keyword arguments
    go to subprocess.run. The child runs in a new session without a
    controlling terminal, so getpass reads from ``input``.
    """

    def run(*args, env=None, input=None, timeout=60, **kwargs):
        child_env = yt_home.env()
        for name, value in (env or {}).items():
            if value is None:
                child_env.pop(name, None)
            else:
                child_env[name] = _env_value(value)
        kwargs.setdefault("cwd", yt_home.home)
        kwargs.setdefault("start_new_session", True)
        return subprocess.run(
            [sys.executable, str(YT_PY), *(str(arg) for arg in args)],
            env=child_env,
            input=input,
            timeout=timeout,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="backslashreplace",
            check=False,
            **kwargs,
        )

    return run


# ------------------------------------------------------ servers and TLS


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """Test CA and leaf certificates, generated once per session."""
    import tls_certs as certificate_factory

    return certificate_factory.generate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server():
    """A started FakeYouTrack with 3 issues over plain HTTP."""
    from fake_youtrack import FakeYouTrack

    with FakeYouTrack(issues=3) as srv:
        yield srv


@pytest.fixture
def api(server, yt_home, monkeypatch):
    """The fake server, with YOUTRACK_BASE_URL and YOUTRACK_TOKEN set."""
    from fake_youtrack import DEFAULT_TOKEN

    monkeypatch.setenv("YOUTRACK_BASE_URL", server.url)
    monkeypatch.setenv("YOUTRACK_TOKEN", DEFAULT_TOKEN)
    return server


@pytest.fixture
def sleeps(monkeypatch):
    """Record the retry delays of every Transport instead of sleeping."""
    import yt

    delays = []
    original_init = yt.Transport.__init__

    def init(self, *args, **kwargs):
        kwargs["sleep"] = delays.append
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(yt.Transport, "__init__", init)
    return delays


@pytest.fixture
def tls_server(tls_certs):
    """Start HTTPS FakeYouTrack servers: ``tls_server(kind="valid")``.

    ``kind`` names the certificate the server presents (see tls_certs);
    other keyword arguments go to FakeYouTrack. Every server is stopped
    after the test.
    """
    from fake_youtrack import FakeYouTrack

    with contextlib.ExitStack() as stack:

        def start(kind="valid", **kwargs):
            kwargs.setdefault("issues", 3)
            context = tls_certs.server_context(kind)
            return stack.enter_context(
                FakeYouTrack(ssl_context=context, **kwargs)
            )

        yield start


# --------------------------------------------------------- Secret Service

# Run in a child process, so that a D-Bus call that hangs meets a timeout.
_PROBE_SCRIPT = textwrap.dedent(
    """
    import sys
    from contextlib import closing
    import secretstorage

    with closing(secretstorage.dbus_init()) as connection:
        if not secretstorage.check_service_availability(connection):
            sys.exit("org.freedesktop.secrets is not on the session bus")
        collection = secretstorage.get_default_collection(connection)
        if collection.is_locked():
            sys.exit("the default collection is locked")
    """
)


@functools.cache
def _secret_service_problem() -> str | None:
    """Return why the test Secret Service is unusable, or None."""
    if shutil.which("gnome-keyring-daemon") is None:
        return "gnome-keyring-daemon not found on PATH"
    bus = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if not bus:
        return "DBUS_SESSION_BUS_ADDRESS is unset"
    if not _KEYRING_PASSWORD or bus != _KEYRING_BUS:
        return (
            "this D-Bus session is not the private one that tests/run.sh "
            "starts, and the tests never use a personal keyring"
        )
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE_SCRIPT],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "the Secret Service did not answer within 30 seconds"
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines() or ["no output"]
        return f"Secret Service probe failed: {lines[-1]}"
    return None


class SecretServiceSession:
    """Connection to the test keyring's default collection."""

    _PATH = "/org/freedesktop/secrets"
    # gnome-keyring's own interface for unlocking without a prompt.
    _GNOME_INTERFACE = (
        "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface"
    )

    def __init__(self, password: str):
        import secretstorage

        self._password = password
        self.connection = secretstorage.dbus_init()
        self.collection = secretstorage.get_default_collection(self.connection)

    def close(self) -> None:
        self.connection.close()

    def is_locked(self) -> bool:
        return self.collection.is_locked()

    def lock(self) -> None:
        """Lock the default collection, as a screen lock would."""
        self.collection.lock()

    def unlock(self) -> None:
        """Unlock the default collection with the test password."""
        from secretstorage.util import (
            DBusAddressWrapper,
            format_secret,
            open_session,
        )

        session = open_session(self.connection)
        interface = DBusAddressWrapper(
            self._PATH, self._GNOME_INTERFACE, self.connection
        )
        secret = format_secret(session, self._password.encode(), "text/plain")
        interface.call(
            "UnlockWithMasterPassword",
            "o(oayays)",
            self.collection.collection_path,
            secret,
        )

    def items(self, service: str = KEYRING_SERVICE) -> dict[str, str]:
        """Return ``{username: password}`` that keyring stored for
        ``service``; the collection must be unlocked."""
        found = {}
        for item in self.collection.search_items({"service": service}):
            username = item.get_attributes().get("username", "")
            found[username] = item.get_secret().decode()
        return found

    def delete_items(self, service: str = KEYRING_SERVICE) -> int:
        """Delete every item stored for ``service``; return how many."""
        items = list(self.collection.search_items({"service": service}))
        for item in items:
            item.delete()
        return len(items)


@pytest.fixture
def secret_service(yt_home, monkeypatch):
    """Make keyring use the test Secret Service for this test.

    Skips when there is none, and fails instead when YT_REQUIRE_KEYRING=1.
    Items of the ``youtrack-cli`` service are deleted before and after the
    test, and the default collection is unlocked again if the test locked
    it.
    """
    problem = _secret_service_problem()
    if problem is not None:
        reason = f"{NO_SECRET_SERVICE} ({problem})"
        skip_or_fail(reason, required=REQUIRE_KEYRING)

    service = SecretServiceSession(_KEYRING_PASSWORD)
    try:
        if service.is_locked():
            service.unlock()
        service.delete_items()
        monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
        _reset_keyring_backend()
        yield service
    finally:
        try:
            if service.is_locked():
                service.unlock()
            service.delete_items()
        finally:
            service.close()
            monkeypatch.setenv("PYTHON_KEYRING_BACKEND", FAIL_KEYRING)
            _reset_keyring_backend()
