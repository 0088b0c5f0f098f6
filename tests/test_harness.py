"""Checks that the test harness is real: the Secret Service, the generated
certificates, a TLS peer that is not Python, and the isolated home."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import IN_CI, KEYRING_SERVICE, skip_or_fail
from cryptography import x509

import tls_certs as certificate_factory

HARNESS_SERVICE = "yt-harness-test"
TIMEOUT = 10


def _require_openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        skip_or_fail("openssl binary not found", required=IN_CI)
    return path


# ---------------------------------------------------------- Secret Service


def test_keyring_selects_secret_service(secret_service):
    import keyring

    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__qualname__}"
    assert name == "keyring.backends.SecretService.Keyring"


def test_keyring_store_read_delete(secret_service):
    import keyring

    keyring.set_password(HARNESS_SERVICE, "alice", "s3cret-value")
    try:
        assert keyring.get_password(HARNESS_SERVICE, "alice") == (
            "s3cret-value"
        )
        stored = secret_service.items(HARNESS_SERVICE)
        assert stored == {"alice": "s3cret-value"}
    finally:
        keyring.delete_password(HARNESS_SERVICE, "alice")
    assert keyring.get_password(HARNESS_SERVICE, "alice") is None
    assert secret_service.items(HARNESS_SERVICE) == {}


def test_secret_service_deletes_youtrack_items(secret_service):
    import keyring

    keyring.set_password(KEYRING_SERVICE, "https://a.example", "token-a")
    keyring.set_password(KEYRING_SERVICE, "https://b.example", "token-b")
    assert len(secret_service.items()) == 2

    assert secret_service.delete_items() == 2
    assert secret_service.items() == {}


def test_locked_collection_raises_keyring_locked(secret_service):
    import keyring
    from keyring.errors import KeyringLocked

    keyring.set_password(HARNESS_SERVICE, "bob", "before-lock")
    secret_service.lock()
    assert secret_service.is_locked()

    started = time.monotonic()
    with pytest.raises(KeyringLocked):
        keyring.get_password(HARNESS_SERVICE, "bob")
    # The test bus starts no password prompter, so this fails at once.
    assert time.monotonic() - started < TIMEOUT

    secret_service.unlock()
    assert not secret_service.is_locked()
    assert keyring.get_password(HARNESS_SERVICE, "bob") == "before-lock"
    keyring.delete_password(HARNESS_SERVICE, "bob")


# ------------------------------------------------------------ Certificates


@contextlib.contextmanager
def _tls_listener(context: ssl.SSLContext):
    """Accept one TLS connection on 127.0.0.1 in a thread.

    Yields ``(port, outcome)``. After the block, ``outcome["peer"]`` is
    the client's certificate (a dict, empty when it sent none), or
    ``outcome["error"]`` the exception that the server side raised.
    """
    outcome: dict = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)

        def serve():
            try:
                connection, _ = listener.accept()
                connection.settimeout(TIMEOUT)
                with context.wrap_socket(connection, server_side=True) as tls:
                    outcome["peer"] = tls.getpeercert() or {}
                    tls.sendall(b"hello\n")
                    tls.recv(1)
            except (OSError, ssl.SSLError) as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield listener.getsockname()[1], outcome
        finally:
            thread.join(TIMEOUT)


def _handshake(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    server_hostname: str = "localhost",
) -> bytes:
    """Connect over loopback; return the server certificate in DER."""
    with _tls_listener(server_context) as (port, _):
        raw = socket.create_connection(("127.0.0.1", port), TIMEOUT)
        with client_context.wrap_socket(
            raw, server_hostname=server_hostname
        ) as tls:
            return tls.getpeercert(binary_form=True)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_valid_certificate_verifies_with_ca(tls_certs, host):
    der = _handshake(
        tls_certs.server_context("valid"), tls_certs.client_context(), host
    )
    certificate = x509.load_der_x509_certificate(der)
    issuer = certificate.issuer.rfc4514_string()
    assert issuer == "CN=yt test CA,O=yt tests"


def test_valid_certificate_names_loopback(tls_certs):
    certfile, _ = tls_certs.pair("valid")
    certificate = x509.load_pem_x509_certificate(certfile.read_bytes())
    names = certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    addresses = {str(a) for a in names.get_values_for_type(x509.IPAddress)}
    assert addresses == {"127.0.0.1", "::1"}


@pytest.mark.parametrize(
    ("kind", "host", "verify_code", "message"),
    [
        ("expired", "localhost", 10, "certificate has expired"),
        ("wrong-host", "localhost", 62, "Hostname mismatch"),
        ("wrong-host", "127.0.0.1", 64, "IP address mismatch"),
        ("self-signed", "localhost", 18, "self-signed certificate"),
        ("untrusted", "localhost", 20, "unable to get local issuer"),
    ],
)
def test_bad_certificate_fails_for_its_reason(
    tls_certs, kind, host, verify_code, message
):
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        _handshake(
            tls_certs.server_context(kind), tls_certs.client_context(), host
        )
    assert caught.value.verify_code == verify_code
    assert message in caught.value.verify_message


def _trusting(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


def test_wrong_host_certificate_fits_its_own_name(tls_certs):
    _handshake(
        tls_certs.server_context("wrong-host"),
        tls_certs.client_context(),
        certificate_factory.WRONG_HOST_NAME,
    )


def test_untrusted_certificate_verifies_with_its_ca(tls_certs):
    _handshake(
        tls_certs.server_context("untrusted"),
        _trusting(tls_certs.untrusted_ca),
    )


def test_self_signed_certificate_verifies_as_own_anchor(tls_certs):
    certfile, _ = tls_certs.pair("self-signed")
    _handshake(tls_certs.server_context("self-signed"), _trusting(certfile))


def test_expired_certificate_dates(tls_certs):
    now = datetime.datetime.now(datetime.timezone.utc)
    expired_pem = tls_certs.pair("expired")[0].read_bytes()
    valid_pem = tls_certs.pair("valid")[0].read_bytes()
    expired = x509.load_pem_x509_certificate(expired_pem)
    valid = x509.load_pem_x509_certificate(valid_pem)
    assert expired.not_valid_after_utc < now
    assert valid.not_valid_before_utc < now < valid.not_valid_after_utc


def test_fingerprint_matches_presented_certificate(tls_certs):
    der = _handshake(
        tls_certs.server_context("valid"), tls_certs.client_context()
    )
    digest = hashlib.sha256(der).hexdigest().upper()
    expected = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    assert tls_certs.fingerprint("valid") == expected
    assert tls_certs.fingerprint("self-signed") != expected


def test_kind_names_accept_underscores(tls_certs):
    assert tls_certs.pair("wrong_host") == tls_certs.pair("wrong-host")
    assert tls_certs.fingerprint("self_signed") == tls_certs.fingerprint(
        "self-signed"
    )
    with pytest.raises(ValueError, match="unknown certificate kind"):
        tls_certs.pair("nonexistent")


def test_key_files_are_owner_only(tls_certs):
    for kind in certificate_factory.KINDS:
        _, keyfile = tls_certs.pair(kind)
        assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600, kind


def test_ca_dir_verifies_valid_certificate(tls_certs):
    context = ssl.create_default_context(capath=str(tls_certs.ca_dir))
    _handshake(tls_certs.server_context("valid"), context)


def test_ca_dir_name_matches_openssl_hash(tls_certs):
    openssl = _require_openssl()
    result = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(tls_certs.ca)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    names = [path.name for path in tls_certs.ca_dir.iterdir()]
    assert names == [f"{result.stdout.strip()}.0"]


def test_client_certificate_accepted_by_server(tls_certs):
    server_context = tls_certs.server_context("valid")
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_verify_locations(cafile=str(tls_certs.ca))
    client_context = tls_certs.client_context()
    client_context.load_cert_chain(*tls_certs.pair("client"))

    with _tls_listener(server_context) as (port, outcome):
        raw = socket.create_connection(("127.0.0.1", port), TIMEOUT)
        with client_context.wrap_socket(
            raw, server_hostname="localhost"
        ) as tls:
            assert tls.recv(6) == b"hello\n"

    assert "error" not in outcome
    subject = dict(field[0] for field in outcome["peer"]["subject"])
    assert subject["commonName"] == "yt test client"


# ---------------------------------------------------- Non-Python TLS peer


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"openssl s_server exited early: {output}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        time.sleep(0.05)
    pytest.fail(f"openssl s_server did not listen on port {port}")


@pytest.fixture
def openssl_server(tls_certs):
    """``openssl s_server -www`` on 127.0.0.1 with the valid certificate."""
    openssl = _require_openssl()
    certfile, keyfile = tls_certs.pair("valid")
    port = _free_port()
    process = subprocess.Popen(
        [
            openssl,
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            str(certfile),
            "-key",
            str(keyfile),
            "-www",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(TIMEOUT)
        if process.stdout:
            process.stdout.close()


def test_openssl_server_reachable_with_ca(tls_certs, openssl_server):
    import urllib3

    with urllib3.HTTPSConnectionPool(
        "localhost",
        openssl_server,
        ca_certs=str(tls_certs.ca),
        cert_reqs="CERT_REQUIRED",
        timeout=TIMEOUT,
        retries=False,
    ) as pool:
        response = pool.request("GET", "/")
    assert response.status == 200
    assert b"s_server" in response.data


def test_openssl_server_rejected_without_ca(tls_certs, openssl_server):
    import urllib3

    pool = urllib3.HTTPSConnectionPool(
        "localhost",
        openssl_server,
        ca_certs=str(tls_certs.untrusted_ca),
        cert_reqs="CERT_REQUIRED",
        timeout=TIMEOUT,
        retries=False,
    )
    with pool, pytest.raises(urllib3.exceptions.SSLError):
        pool.request("GET", "/")


@pytest.mark.parametrize(
    ("kind", "verified"), [("valid", True), ("expired", False)]
)
def test_openssl_client_verifies_python_server(tls_certs, kind, verified):
    openssl = _require_openssl()
    with _tls_listener(tls_certs.server_context(kind)) as (port, _):
        result = subprocess.run(
            [
                openssl,
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-CAfile",
                str(tls_certs.ca),
                "-verify_hostname",
                "localhost",
                "-verify_return_error",
            ],
            input="",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    output = result.stdout + result.stderr
    if verified:
        assert result.returncode == 0, output
        assert "Verify return code: 0 (ok)" in output
    else:
        assert result.returncode != 0, output
        assert "certificate has expired" in output


# ----------------------------------------------------------- Fake servers


def _get_me(url: str, **pool_options):
    import urllib3
    from fake_youtrack import DEFAULT_TOKEN

    with urllib3.PoolManager(
        timeout=TIMEOUT, retries=False, **pool_options
    ) as pool:
        return pool.request(
            "GET",
            f"{url}/api/users/me",
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        )


def test_server_fixture_answers_over_http(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert _get_me(server.url).status == 200


def test_tls_server_fixture_verifies_with_ca(tls_certs, tls_server):
    srv = tls_server("valid")
    assert srv.url.startswith("https://")
    response = _get_me(srv.url, ca_certs=str(tls_certs.ca))
    assert response.status == 200


# ---------------------------------------------------------------- yt_home


def test_yt_home_isolates_home(yt_home, tmp_path):
    assert yt_home.home.is_relative_to(tmp_path)
    assert Path.home() == yt_home.home
    assert Path(os.path.expanduser("~")) == yt_home.home
    assert Path.cwd() == yt_home.home
    assert os.environ["XDG_CONFIG_HOME"] == str(yt_home.home / ".config")
    assert yt_home.config_dir == yt_home.home / ".config" / "youtrack-cli"
    assert yt_home.data_dir == (
        yt_home.home / ".local" / "share" / "youtrack-cli"
    )
    assert not yt_home.config_dir.exists()
    assert not yt_home.data_dir.exists()


def test_yt_home_strips_settings(monkeypatch, request):
    stripped = [
        "YOUTRACK_TOKEN",
        "YOUTRACK_BASE_URL",
        "YT_CREDENTIAL_PASSPHRASE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "https_proxy",
        "HTTP_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "NO_COLOR",
        "COLUMNS",
    ]
    for name in stripped:
        monkeypatch.setenv(name, "leaked")
    monkeypatch.setenv("YT_TEST_UNRELATED_LOOKING", "leaked")

    yt_home = request.getfixturevalue("yt_home")

    child_env = yt_home.env()
    for name in [*stripped, "YT_TEST_UNRELATED_LOOKING"]:
        assert name not in os.environ, name
        assert name not in child_env, name
    assert child_env["HOME"] == str(yt_home.home)


def test_yt_home_reaches_subprocess(yt_home):
    result = subprocess.run(
        [sys.executable, "-c", "import pathlib; print(pathlib.Path.home())"],
        env=yt_home.env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert result.stdout.strip() == str(yt_home.home)


def test_yt_home_selects_fail_keyring(yt_home):
    import keyring
    from keyring.backends import fail

    assert isinstance(keyring.get_keyring(), fail.Keyring)


# ------------------------------------------------------------- CLI runners


def test_cli_and_run_yt_print_same_version(cli, run_yt):
    in_process = cli("--version")
    child = run_yt("--version")
    assert in_process.code == 0
    assert child.returncode == 0, child.stderr
    assert in_process.out.strip()
    assert in_process.out == child.stdout


def test_cli_turns_usage_error_into_code(cli):
    result = cli("--no-such-option")
    assert result.code == 2
    assert "usage" in result.err.lower()
    assert result.out == ""


def test_cli_restores_streams_and_environment(cli):
    stdout = sys.stdout
    result = cli("--version", env={"YOUTRACK_TIMEOUT": 5})
    assert result.code == 0
    assert sys.stdout is stdout
    assert "YOUTRACK_TIMEOUT" not in os.environ
