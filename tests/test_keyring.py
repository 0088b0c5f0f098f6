"""Tests of the system keyring store: the real Secret Service of
tests/run.sh, and keyrings that are missing, locked or hang.

Tests that take the ``secret_service`` fixture run only under
``bash tests/run.sh``; the others need no keyring and run anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from credential_helpers import (
    config_values,
    encrypted_store,
    encrypted_tokens,
    hide_packages,
    login,
)
from fake_youtrack import DEFAULT_TOKEN

import yt

NEW_TOKEN = "perm:YWRtaW4=.eXQtbmV3.Q8wRt2Ls9Xn4Vb7Mk3Pz6Hd"
SECRET_SERVICE_BACKEND = "SecretService default collection"
# Time a run may take besides waiting for the keyring: interpreter start,
# the login request and the audit log.
SLACK = 5.0


# ---------------------------------------------------------------- helpers


def plant_in_keyring(base_url: str, token: str) -> None:
    import keyring

    keyring.set_password(yt.KEYRING_SERVICE, base_url, token)


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr
    for line in stderr.splitlines():
        assert not line.startswith((" ", "\t")), stderr


class FakeBus:
    """A unix socket posing as a D-Bus session bus that never replies.

    With ``authenticate=False`` it accepts connections and sends nothing,
    so the client's SASL handshake times out. With ``authenticate=True``
    it completes the handshake and then ignores every message, as a bus
    whose Secret Service is stuck would.
    """

    def __init__(self, authenticate: bool):
        self.authenticate = authenticate
        self._directory = tempfile.TemporaryDirectory(prefix="yt-bus-")
        self.path = os.path.join(self._directory.name, "bus")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._connections = []
        self.handshakes = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"unix:path={self.path}"

    def __enter__(self) -> FakeBus:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self._connections:
            connection.close()
        self._listener.close()
        self._directory.cleanup()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except socket.timeout:
                continue
            self._connections.append(connection)
            if self.authenticate:
                self._handshake(connection)

    def _handshake(self, connection) -> None:
        connection.settimeout(2)
        received = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in received:
                chunk = connection.recv(1024)
                if not chunk:
                    return
                received += chunk
            if b"AUTH" in received:
                connection.sendall(b"OK " + b"0" * 32 + b"\r\n")
                self.handshakes += 1


# ------------------------------------------------- real Secret Service


def test_login_stores_in_secret_service(cli, server, yt_home, secret_service):
    result = login(cli, server)

    assert result.code == 0, result.err
    assert (
        f"✅ Token stored in the system keyring ({SECRET_SERVICE_BACKEND})"
        in result.err
    )
    assert "Keyring unavailable" not in result.err
    assert secret_service.items() == {server.url: DEFAULT_TOKEN}
    assert not (yt_home.data_dir / "credentials.enc").exists()
    assert config_values(yt_home) == {"YOUTRACK_BASE_URL": server.url}


def test_status_reports_keyring_source(cli, server, yt_home, secret_service):
    assert login(cli, server).code == 0

    text = cli("auth", "status")
    data = cli("auth", "status", "--format", "json")

    assert text.code == 0, text.err
    assert f"Source:  system keyring ({SECRET_SERVICE_BACKEND})" in (
        text.out.splitlines()
    )
    assert data.code == 0, data.err
    status = json.loads(data.out)
    assert status["source"] == "keyring"
    assert status["token_status"]["source"] == "keyring"
    assert DEFAULT_TOKEN not in text.out + data.out
    assert cli("auth", "token", "--show").out == DEFAULT_TOKEN + "\n"


def test_keyring_package_reads_what_yt_stored(
    cli, server, yt_home, secret_service
):
    import keyring
    from keyring.backends import SecretService

    assert login(cli, server).code == 0

    backend = SecretService.Keyring()
    assert backend.get_password(yt.KEYRING_SERVICE, server.url) == (
        DEFAULT_TOKEN
    )
    [item] = secret_service.collection.search_items(
        {"service": yt.KEYRING_SERVICE}
    )
    attributes = item.get_attributes()
    # gnome-keyring adds xdg:schema to every item.
    attributes.pop("xdg:schema", None)
    assert attributes == {
        "application": "Python keyring library",
        "service": yt.KEYRING_SERVICE,
        "username": server.url,
    }
    assert item.get_label() == (
        f"Password for '{server.url}' on '{yt.KEYRING_SERVICE}'"
    )
    assert keyring.get_keyring() is not None


# Runs yt's main() and lists the keyring modules it imported.
_IMPORT_PROBE = """\
import sys
sys.path.insert(0, sys.argv.pop(1))
import yt
code = yt.main(["security", "token-status", "--format", "json"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "keyring")
print("keyring modules:", loaded, file=sys.stderr)
sys.exit(code)
"""


def test_token_status_reads_keyring_without_keyring_package(
    server, yt_home, secret_service
):
    plant_in_keyring(server.url, DEFAULT_TOKEN)
    env = dict(yt_home.env(), YOUTRACK_BASE_URL=server.url,
               DBUS_SESSION_BUS_ADDRESS=os.environ["DBUS_SESSION_BUS_ADDRESS"])

    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, os.path.dirname(yt.__file__)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"] == "keyring"
    assert "keyring modules: []" in result.stderr.splitlines()
    assert DEFAULT_TOKEN not in result.stdout + result.stderr


def test_keyring_config_file_selects_keyring_package(
    cli, server, yt_home, secret_service
):
    rc = yt_home.config_dir.parent / "python_keyring" / "keyringrc.cfg"
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_text("[backend]\n"
                  "default-keyring=keyring.backends.SecretService.Keyring\n")

    result = login(cli, server)

    assert result.code == 0, result.err
    assert ("Token stored in the system keyring "
            "(keyring.backends.SecretService.Keyring)") in result.err
    assert secret_service.items() == {server.url: DEFAULT_TOKEN}


def test_logout_removes_secret(cli, server, yt_home, secret_service):
    assert login(cli, server).code == 0

    result = cli("auth", "logout")

    assert result.code == 0, result.err
    assert f"Removed the token for {server.url} from: keyring" in result.err
    assert secret_service.items() == {}
    assert cli("auth", "token", "--show").code == 3


def test_logout_keeps_other_url_secret(cli, server, yt_home, secret_service):
    plant_in_keyring("https://other.example", NEW_TOKEN)
    assert login(cli, server).code == 0

    assert cli("auth", "logout").code == 0

    assert secret_service.items() == {"https://other.example": NEW_TOKEN}


def test_login_replaces_stale_token_everywhere(
    cli, server, yt_home, secret_service
):
    plant_in_keyring(server.url, DEFAULT_TOKEN)
    encrypted_store(yt_home).set(server.url, DEFAULT_TOKEN)
    path = yt_home.config_dir / ".env"
    path.write_text(
        f"YOUTRACK_BASE_URL={server.url}\nYOUTRACK_TOKEN={DEFAULT_TOKEN}\n"
    )
    path.chmod(0o600)
    server.tokens.add(NEW_TOKEN)

    result = login(cli, server, NEW_TOKEN)

    assert result.code == 0, result.err
    assert secret_service.items() == {server.url: NEW_TOKEN}
    assert encrypted_tokens(yt_home) == {}
    assert not (yt_home.data_dir / "credentials.enc").exists()
    assert config_values(yt_home) == {"YOUTRACK_BASE_URL": server.url}
    assert cli("auth", "token", "--show").out == NEW_TOKEN + "\n"
    server.requests.clear()
    assert cli("issues", "list").code == 0
    assert server.requests
    for request in server.requests:
        assert request.headers["Authorization"] == f"Bearer {NEW_TOKEN}"


def test_token_update_replaces_secret(cli, server, yt_home, secret_service):
    assert login(cli, server).code == 0
    server.tokens.add(NEW_TOKEN)

    result = cli("auth", "token", "--update", "--token-stdin",
                 input=NEW_TOKEN)

    assert result.code == 0, result.err
    assert "Token stored in the system keyring" in result.err
    assert secret_service.items() == {server.url: NEW_TOKEN}


def test_plain_file_login_clears_secret(cli, server, yt_home, secret_service):
    plant_in_keyring(server.url, DEFAULT_TOKEN)
    server.tokens.add(NEW_TOKEN)

    result = login(cli, server, NEW_TOKEN,
                   env={"YT_CREDENTIAL_ENCRYPTION": "false"})

    assert result.code == 0, result.err
    assert secret_service.items() == {}
    assert config_values(yt_home)["YOUTRACK_TOKEN"] == NEW_TOKEN


def test_passphrase_login_skips_keyring(cli, server, yt_home, secret_service):
    plant_in_keyring(server.url, NEW_TOKEN)
    env = {"YT_CREDENTIAL_PASSPHRASE": "correct horse battery staple"}

    result = login(cli, server, DEFAULT_TOKEN, "--passphrase", env=env)

    assert result.code == 0, result.err
    assert "protected by passphrase (scrypt)" in result.err
    assert secret_service.items() == {}
    show_result = cli("auth", "token", "--show", env=env)
    assert show_result.out == DEFAULT_TOKEN + "\n"


# ------------------------------------------------------- locked keyring


def test_locked_keyring_login_falls_back(
    cli, server, yt_home, secret_service
):
    secret_service.lock()

    started = time.monotonic()
    result = login(cli, server)
    elapsed = time.monotonic() - started

    assert result.code == 0, result.err
    assert elapsed < yt.KEYRING_TIMEOUT
    assert (
        "Keyring unavailable: the Secret Service collection "
        "is locked" in result.err
    )
    assert "⚠️ Token stored in the encrypted file" in result.err
    assert_no_traceback(result.err)
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}
    secret_service.unlock()
    assert secret_service.items() == {}


def test_locked_keyring_stale_token_warned(
    cli, server, yt_home, secret_service
):
    plant_in_keyring(server.url, DEFAULT_TOKEN)
    secret_service.lock()
    server.tokens.add(NEW_TOKEN)

    result = login(cli, server, NEW_TOKEN)

    assert result.code == 0, result.err
    assert (
        f"the keyring could not be checked for an older token for "
        f"{server.url}" in result.err
    )
    assert "run yt auth login again" in result.err
    assert encrypted_tokens(yt_home) == {server.url: NEW_TOKEN}

    secret_service.unlock()
    again = login(cli, server, NEW_TOKEN)

    assert again.code == 0, again.err
    assert secret_service.items() == {server.url: NEW_TOKEN}
    assert encrypted_tokens(yt_home) == {}


def test_locked_keyring_read_explains(cli, server, yt_home, secret_service):
    assert login(cli, server).code == 0
    secret_service.lock()

    started = time.monotonic()
    result = cli("auth", "token", "--show")
    elapsed = time.monotonic() - started

    assert result.code == 3
    assert elapsed < yt.KEYRING_TIMEOUT
    assert result.out == ""
    assert (
        f"no token found for {server.url}, and the keyring could not be "
        f"read (the Secret Service collection is locked"
        in result.err
    )
    assert_no_traceback(result.err)


def test_locked_keyring_logout_fails(cli, server, yt_home, secret_service):
    assert login(cli, server).code == 0
    secret_service.lock()

    result = cli("auth", "logout")

    assert result.code == 1
    assert "No stored token" not in result.err
    assert (
        f"so a token it may hold for {server.url} was not removed; fix "
        f"the keyring and run yt auth logout again" in result.err
    )
    secret_service.unlock()
    assert secret_service.items() == {server.url: DEFAULT_TOKEN}


def test_locked_keyring_uses_encrypted_file(
    cli, server, yt_home, secret_service
):
    encrypted_store(yt_home).set(server.url, DEFAULT_TOKEN)
    secret_service.lock()

    result = cli("auth", "token", "--show", "--base-url", server.url)

    assert result.code == 0, result.err
    assert result.out == DEFAULT_TOKEN + "\n"
    assert (
        "keyring unavailable (the Secret Service collection "
        "is locked" in result.err
    )


# ------------------------------------- no bus, silent bus, stalled bus


@pytest.mark.parametrize("bus", [None, "unix:path=/nonexistent/yt-bus"],
                         ids=["unset", "missing-socket"])
def test_no_session_bus_falls_back_fast(
    cli, server, yt_home, monkeypatch, bus
):
    # Set here rather than through cli(env=...), which would make keyring
    # in this process look for a backend on the missing bus.
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    if bus is None:
        monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus)

    started = time.monotonic()
    result = login(cli, server)
    elapsed = time.monotonic() - started

    assert result.code == 0, result.err
    assert elapsed < 2.0
    assert "⚠️ Token stored in the encrypted file" in result.err
    assert_no_traceback(result.err)
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}
    if bus is None:
        assert (
            "Keyring unavailable: no D-Bus session bus "
            "(DBUS_SESSION_BUS_ADDRESS unset)" in result.err
        )
    show_result = cli("auth", "token", "--show")
    assert show_result.code == 0, show_result.err
    assert show_result.out == DEFAULT_TOKEN + "\n"


def test_silent_bus_falls_back(run_yt, server, yt_home):
    with FakeBus(authenticate=False) as bus:
        env = {"PYTHON_KEYRING_BACKEND": None,
               "DBUS_SESSION_BUS_ADDRESS": bus.address}
        started = time.monotonic()
        result = run_yt("auth", "login", "--base-url", server.url,
                        "--token-stdin", input=DEFAULT_TOKEN, env=env,
                        timeout=30)
        elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert elapsed < yt.KEYRING_TIMEOUT + SLACK
    assert "Keyring unavailable:" in result.stderr
    assert "⚠️ Token stored in the encrypted file" in result.stderr
    assert_no_traceback(result.stderr)
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}


def test_stalled_bus_times_out(run_yt, server, yt_home):
    with FakeBus(authenticate=True) as bus:
        env = {"PYTHON_KEYRING_BACKEND": None,
               "DBUS_SESSION_BUS_ADDRESS": bus.address}
        started = time.monotonic()
        result = run_yt("auth", "login", "--base-url", server.url,
                        "--token-stdin", input=DEFAULT_TOKEN, env=env,
                        timeout=30)
        login_time = time.monotonic() - started
        started = time.monotonic()
        show_result = run_yt("auth", "token", "--show", env=env, timeout=30)
        show_time = time.monotonic() - started
        handshakes = bus.handshakes

    assert handshakes == 2
    assert result.returncode == 0, result.stderr
    # It waited for the keyring, but no longer than the time limit.
    assert yt.KEYRING_TIMEOUT <= login_time < yt.KEYRING_TIMEOUT + SLACK
    limit = f"the keyring did not respond within {yt.KEYRING_TIMEOUT:.0f} s"
    assert f"Keyring unavailable: {limit}" in result.stderr
    assert "⚠️ Token stored in the encrypted file" in result.stderr
    assert_no_traceback(result.stderr)
    assert len(result.stderr.splitlines()) == 4, result.stderr
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}

    assert show_result.returncode == 0, show_result.stderr
    assert show_time < yt.KEYRING_TIMEOUT + SLACK
    assert show_result.stdout == DEFAULT_TOKEN + "\n"
    assert f"keyring unavailable ({limit})" in show_result.stderr
    assert_no_traceback(show_result.stderr)


# ------------------------------------------------ missing keyring package


def test_missing_keyring_package_falls_back(
    run_yt, server, yt_home, tmp_path
):
    root = hide_packages(tmp_path / "shadow", *("keyring", "secretstorage"))
    env = {"PYTHONPATH": root}

    result = run_yt("auth", "login", "--base-url", server.url,
                    "--token-stdin", input=DEFAULT_TOKEN, env=env)

    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines()
             if "'keyring'" in line]
    assert lines == [
        "Keyring unavailable: the system keyring needs the Python package "
        "'keyring', which this build does not include; use the full build "
        "(yt.pyz or the yt executable) or run: pip install keyring"
    ]
    assert "⚠️ Token stored in the encrypted file" in result.stderr
    assert_no_traceback(result.stderr)
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}
    show_result = run_yt("auth", "token", "--show", env=env)
    assert show_result.returncode == 0, show_result.stderr
    assert show_result.stdout == DEFAULT_TOKEN + "\n"
    logout = run_yt("auth", "logout", env=env)
    assert logout.returncode == 0, logout.stderr
    assert not (yt_home.data_dir / "credentials.enc").exists()


def test_missing_both_packages(run_yt, server, yt_home, tmp_path):
    root = hide_packages(tmp_path / "shadow", *("keyring", "cryptography"))

    result = run_yt("auth", "login", "--base-url", server.url,
                    "--token-stdin", input=DEFAULT_TOKEN,
                    env={"PYTHONPATH": root})

    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("yt: error:")]
    assert errors == [
        "yt: error: the encrypted credential file needs the Python package "
        "'cryptography', which this build does not include; use the full "
        "build (yt.pyz or the yt executable) or run: pip install "
        "cryptography"
    ]
    assert_no_traceback(result.stderr)
    assert not (yt_home.data_dir / "credentials.enc").exists()


def test_backend_variable_honoured(cli, server, yt_home):
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}

    result = login(cli, server, env=env)

    assert result.code == 0, result.err
    assert "Keyring unavailable: no keyring backend is available" in (
        result.err
    )
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}


def test_backend_variable_invalid(cli, server, yt_home):
    env = {"PYTHON_KEYRING_BACKEND": "no.such.Backend"}

    result = login(cli, server, env=env)

    assert result.code == 0, result.err
    [line] = [line for line in result.err.splitlines()
              if line.startswith("Keyring unavailable")]
    assert line.startswith(
        "Keyring unavailable: PYTHON_KEYRING_BACKEND=no.such.Backend cannot "
        "be loaded (ModuleNotFoundError: ")
    assert line.endswith(
        "set it to a class such as keyring.backends.SecretService.Keyring, "
        "or unset it")
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}


def test_doctor_names_locked_backend(cli, yt_home, secret_service):
    secret_service.lock()

    result = cli("doctor", "--format", "json")

    report = json.loads(result.out)
    assert report["keyring"]["available"] is False
    assert report["keyring"]["backend"] == SECRET_SERVICE_BACKEND
    assert "locked" in report["keyring"]["detail"]


# ------------------------------------------ secretstorage without keyring


def test_secretstorage_without_keyring_package(
    run_yt, server, yt_home, secret_service, tmp_path
):
    root = hide_packages(tmp_path / "shadow", "keyring")
    env = {"PYTHONPATH": root,
           "DBUS_SESSION_BUS_ADDRESS": os.environ["DBUS_SESSION_BUS_ADDRESS"]}

    stored = run_yt("auth", "login", "--base-url", server.url,
                    "--token-stdin", input=DEFAULT_TOKEN, env=env)
    show_result = run_yt("auth", "token", "--show", env=env)
    status = run_yt("auth", "status", "--format", "json", env=env)

    assert stored.returncode == 0, stored.stderr
    assert "Token stored in the system keyring" in stored.stderr
    assert secret_service.items() == {server.url: DEFAULT_TOKEN}
    assert show_result.returncode == 0, show_result.stderr
    assert show_result.stdout == DEFAULT_TOKEN + "\n"
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["source"] == "keyring"


def test_keyring_property_selects_keyring_package(
    run_yt, server, yt_home, secret_service, monkeypatch
):
    from keyring.backends import SecretService

    # keyring reads KEYRING_PROPERTY_* when a backend is created.
    monkeypatch.setenv("KEYRING_PROPERTY_SCHEME", "KeePassXC")
    SecretService.Keyring().set_password(yt.KEYRING_SERVICE, server.url,
                                         DEFAULT_TOKEN)
    [item] = secret_service.collection.search_items(
        {"Title": yt.KEYRING_SERVICE})
    assert item.get_attributes()["UserName"] == server.url
    env = {"YOUTRACK_BASE_URL": server.url,
           "KEYRING_PROPERTY_SCHEME": "KeePassXC",
           "DBUS_SESSION_BUS_ADDRESS": os.environ["DBUS_SESSION_BUS_ADDRESS"],
           "PYTHON_KEYRING_BACKEND": None}

    show_result = run_yt("auth", "token", "--show", env=env)
    removed = run_yt("auth", "logout", env=env)

    assert show_result.returncode == 0, show_result.stderr
    assert show_result.stdout == DEFAULT_TOKEN + "\n"
    assert removed.returncode == 0, removed.stderr
    assert not list(secret_service.collection.search_items(
        {"Title": yt.KEYRING_SERVICE}))


# ----------------------------------------- tokens stored by other tools


def test_keyring_token_trailing_newline(cli, server, yt_home,
                                        secret_service):
    plant_in_keyring(server.url, DEFAULT_TOKEN + "\n")
    env = {"YOUTRACK_BASE_URL": server.url}

    show_result = cli("auth", "token", "--show", env=env)
    listed = cli("issues", "list", env=env)

    assert show_result.code == 0, show_result.err
    assert show_result.out == DEFAULT_TOKEN + "\n"
    assert listed.code == 0, listed.err
    for request in server.requests:
        assert request.headers["Authorization"] == f"Bearer {DEFAULT_TOKEN}"


def test_keyring_token_with_space_rejected(cli, server, yt_home,
                                           secret_service):
    broken = DEFAULT_TOKEN[:10] + " " + DEFAULT_TOKEN[10:]
    plant_in_keyring(server.url, broken)

    result = cli("issues", "list", env={"YOUTRACK_BASE_URL": server.url})

    assert result.code == 3, result.err
    assert result.err.splitlines() == [
        f"yt: error: the token stored in the keyring for {server.url} is "
        f"not valid: the token contains 1 space, control or non-ASCII "
        f"character(s); paste it again without line breaks or spaces; "
        f"store it again with: yt auth login"
    ]
    assert DEFAULT_TOKEN[10:] not in result.out + result.err


# --------------------------------------- bus without a Secret Service


@pytest.fixture
def bare_bus(tmp_path):
    """Address of a private D-Bus session bus with no services on it."""
    config = tmp_path / "bus.conf"
    config.write_text(
        "<!DOCTYPE busconfig PUBLIC "
        "\"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" "
        "\"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig><type>session</type><keep_umask/>"
        f"<listen>unix:dir={tmp_path}</listen><auth>EXTERNAL</auth>"
        "<policy context=\"default\">"
        "<allow send_destination=\"*\" eavesdrop=\"true\"/>"
        "<allow eavesdrop=\"true\"/><allow own=\"*\"/>"
        "</policy></busconfig>\n"
    )
    try:
        daemon = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork",
             "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
    except FileNotFoundError:
        pytest.skip("dbus-daemon is not installed")
    try:
        yield daemon.stdout.readline().strip()
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_bus_without_secret_service_is_no_keyring(
    run_yt, server, yt_home, bare_bus
):
    env = {"DBUS_SESSION_BUS_ADDRESS": bare_bus,
           "PYTHON_KEYRING_BACKEND": None}

    stored = run_yt("auth", "login", "--base-url", server.url,
                    "--token-stdin", input=DEFAULT_TOKEN, env=env)

    assert stored.returncode == 0, stored.stderr
    assert ("Keyring unavailable: no Secret Service on the D-Bus session "
            "bus (nothing provides org.freedesktop.secrets)") in stored.stderr
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}

    listed = run_yt("issues", "list", env=env)
    removed = run_yt("auth", "logout", env=env)

    assert listed.returncode == 0, listed.stderr
    assert "keyring" not in listed.stderr.lower()
    assert removed.returncode == 0, removed.stderr
    assert f"Removed the token for {server.url} from: encrypted file" in (
        removed.stderr)
    assert_no_traceback(stored.stderr + listed.stderr + removed.stderr)


# ------------------------------------------------- logout, partly failed


def test_logout_reports_keyring_removal_when_file_fails(
    cli, server, yt_home, secret_service
):
    passphrase = {"YT_CREDENTIAL_PASSPHRASE": "correct horse battery staple"}
    assert login(cli, server, DEFAULT_TOKEN, "--passphrase",
                 env=passphrase).code == 0
    plant_in_keyring(server.url, NEW_TOKEN)

    result = cli("auth", "logout")
    entries = [json.loads(line) for line in
               (yt_home.data_dir / "audit.jsonl").read_text().splitlines()]

    assert result.code == 3, result.err
    assert f"Removed the token for {server.url} from: keyring" in result.err
    assert secret_service.items() == {}
    [logout] = [entry for entry in entries
                if entry.get("action") == "logout"]
    assert logout["removed"] == ["keyring"]


@pytest.mark.parametrize("address", ["unix:path=/nonexistent/bus",
                                     "garbage"])
def test_unreachable_bus_named(run_yt, server, yt_home, address):
    env = {"DBUS_SESSION_BUS_ADDRESS": address,
           "PYTHON_KEYRING_BACKEND": None}

    result = run_yt("auth", "login", "--base-url", server.url,
                    "--token-stdin", input=DEFAULT_TOKEN, env=env)

    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines()
              if line.startswith("Keyring unavailable")]
    assert line.startswith(
        f"Keyring unavailable: cannot connect to the D-Bus session bus at "
        f"{address} (")
    assert line.endswith("check DBUS_SESSION_BUS_ADDRESS, or unset it where "
                         "no desktop session runs")
    assert encrypted_tokens(yt_home) == {server.url: DEFAULT_TOKEN}
    assert_no_traceback(result.stderr)
