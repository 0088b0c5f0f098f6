"""Tests of the AES-256-GCM credential file and the other file stores.

The file format is checked with an independent decryption (cryptography's
AESGCM and hashlib.scrypt), so these tests pin the associated data:
``yt-credentials/v1|<kdf as canonical JSON>|<base URL>``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import hashlib
import json
import os
import stat
import textwrap

import pytest
from credential_helpers import hide_packages
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fake_youtrack import DEFAULT_TOKEN, FakeYouTrack

import yt

NEW_TOKEN = "perm:YWRtaW4=.eXQtbmV3.Q8wRt2Ls9Xn4Vb7Mk3Pz6Hd"
PASSPHRASE = "correct horse battery staple"
OTHER_URL = "https://other.example"


# ---------------------------------------------------------------- helpers


def login(cli, server, token=DEFAULT_TOKEN, *args, env=None):
    """Run ``yt auth login --token-stdin`` for the fake server."""
    return cli(
        "auth", "login", "--base-url", server.url, "--token-stdin", *args,
        input=token + "\n", env=env,
    )


def enc_path(yt_home):
    return yt_home.data_dir / "credentials.enc"


def key_path(yt_home):
    return yt_home.config_dir / "credentials.key"


def load_document(yt_home) -> dict:
    return json.loads(enc_path(yt_home).read_text())


def write_private(path, data: bytes) -> None:
    """Write data to path with mode 0600, as yt would have."""
    path.write_bytes(data)
    path.chmod(0o600)


def associated_data(kdf: dict, base_url: str) -> bytes:
    canonical = json.dumps(kdf, sort_keys=True, separators=(",", ":"))
    return f"yt-credentials/v1|{canonical}|{base_url}".encode()


def derive_key(yt_home, kdf: dict, passphrase=None) -> bytes:
    if kdf["name"] == "keyfile":
        key = base64.b64decode(key_path(yt_home).read_bytes().strip())
        assert len(key) == 32
        return key
    return hashlib.scrypt(
        passphrase.encode(),
        salt=base64.b64decode(kdf["salt"]),
        n=kdf["n"], r=kdf["r"], p=kdf["p"],
        maxmem=2**28, dklen=32,
    )


def decrypt_entries(yt_home, passphrase=None) -> dict:
    """Decrypt credentials.enc without yt's code: {base URL: token}."""
    document = load_document(yt_home)
    kdf = document["kdf"]
    cipher = AESGCM(derive_key(yt_home, kdf, passphrase))
    tokens = {}
    for base_url, blob in document["entries"].items():
        plain = cipher.decrypt(
            base64.b64decode(blob["nonce"]),
            base64.b64decode(blob["ciphertext"]),
            associated_data(kdf, base_url),
        )
        tokens[base_url] = json.loads(plain)["token"]
    return tokens


def token_forms(token: str) -> list:
    raw = token.encode()
    return [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw)]


def assert_no_token(text: str, token=DEFAULT_TOKEN) -> None:
    for form in token_forms(token):
        assert form not in text.encode()


def assert_damaged(result, path, token=DEFAULT_TOKEN) -> None:
    """Check the exit code and message for an unusable credential file."""
    assert result.code == 3, result.err
    assert f"credential file {path} cannot be used" in result.err
    assert "it was left unchanged" in result.err
    assert result.out == ""
    assert_no_token(result.err, token)


def private_mode(path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


# ----------------------------------------------------------------- format


def test_file_decrypts_independently(cli, server, yt_home):
    assert login(cli, server).code == 0

    document = load_document(yt_home)

    assert document["format"] == "yt-credentials"
    assert document["version"] == 1
    assert document["kdf"] == {"name": "keyfile"}
    blob = document["entries"][server.url]
    assert len(base64.b64decode(blob["nonce"])) == 12
    assert decrypt_entries(yt_home) == {server.url: DEFAULT_TOKEN}
    assert_no_token(enc_path(yt_home).read_text())
    assert private_mode(enc_path(yt_home)) == oct(0o600)
    assert private_mode(key_path(yt_home)) == oct(0o600)


def test_key_file_outside_data_dir(cli, server, yt_home):
    assert login(cli, server).code == 0

    assert not (yt_home.data_dir / "credentials.key").exists()
    data_files = {p.name for p in yt_home.data_dir.iterdir()}
    key = key_path(yt_home).read_bytes().strip()
    for name in data_files:
        assert key not in (yt_home.data_dir / name).read_bytes()


def test_fresh_nonce_each_write(cli, server, yt_home):
    blobs = []
    for _ in range(2):
        assert login(cli, server).code == 0
        blobs.append(load_document(yt_home)["entries"][server.url])
    store = yt.EncryptedFileStore(
        str(yt_home.data_dir), str(yt_home.config_dir)
    )
    for _ in range(6):
        store.set(server.url, DEFAULT_TOKEN)
        blobs.append(load_document(yt_home)["entries"][server.url])

    nonces = [blob["nonce"] for blob in blobs]
    ciphertexts = [blob["ciphertext"] for blob in blobs]
    assert len(set(nonces)) == len(blobs)
    assert len(set(ciphertexts)) == len(blobs)
    assert decrypt_entries(yt_home) == {server.url: DEFAULT_TOKEN}


def test_every_entry_gets_fresh_nonce(cli, server, yt_home):
    store = yt.EncryptedFileStore(
        str(yt_home.data_dir), str(yt_home.config_dir)
    )
    store.set(OTHER_URL, NEW_TOKEN)
    before = load_document(yt_home)["entries"][OTHER_URL]

    assert login(cli, server).code == 0

    after = load_document(yt_home)["entries"][OTHER_URL]
    assert after["nonce"] != before["nonce"]
    assert decrypt_entries(yt_home) == {
        OTHER_URL: NEW_TOKEN,
        server.url: DEFAULT_TOKEN,
    }


def test_aad_binds_base_url(cli, server, yt_home):
    assert login(cli, server).code == 0
    document = load_document(yt_home)
    document["entries"][OTHER_URL] = document["entries"].pop(server.url)
    moved = json.dumps(document).encode()
    write_private(enc_path(yt_home), moved)

    result = cli("auth", "token", "--show", "--base-url", OTHER_URL)

    assert_damaged(result, enc_path(yt_home))
    assert "it fails authentication (wrong key file, or the file was " \
        "altered)" in result.err
    assert enc_path(yt_home).read_bytes() == moved
    with pytest.raises(InvalidTag):
        decrypt_entries(yt_home)


def test_aad_swapped_entries_fail(cli, server, yt_home):
    store = yt.EncryptedFileStore(
        str(yt_home.data_dir), str(yt_home.config_dir)
    )
    store.set(OTHER_URL, NEW_TOKEN)
    assert login(cli, server).code == 0
    document = load_document(yt_home)
    entries = document["entries"]
    entries[OTHER_URL], entries[server.url] = (
        entries[server.url], entries[OTHER_URL],
    )
    swapped = json.dumps(document).encode()
    write_private(enc_path(yt_home), swapped)

    result = cli("auth", "token", "--show")

    assert_damaged(result, enc_path(yt_home))
    assert_no_token(result.err, NEW_TOKEN)
    assert enc_path(yt_home).read_bytes() == swapped


@pytest.mark.parametrize(
    ("field", "value"),
    [("version", 2), ("format", "other"), ("kdf", {"name": "pbkdf2"})],
)
def test_unsupported_header_rejected(cli, server, yt_home, field, value):
    assert login(cli, server).code == 0
    document = load_document(yt_home)
    document[field] = value
    changed = json.dumps(document).encode()
    write_private(enc_path(yt_home), changed)

    result = cli("auth", "token", "--show")

    assert_damaged(result, enc_path(yt_home))
    assert "it is not valid" in result.err
    assert enc_path(yt_home).read_bytes() == changed


def test_aad_includes_kdf_and_version(cli, server, yt_home):
    assert login(cli, server).code == 0
    document = load_document(yt_home)
    blob = document["entries"][server.url]
    cipher = AESGCM(derive_key(yt_home, document["kdf"]))
    nonce = base64.b64decode(blob["nonce"])
    ciphertext = base64.b64decode(blob["ciphertext"])
    wrong = [
        associated_data({"name": "scrypt"}, server.url),
        associated_data(document["kdf"], server.url).replace(b"/v1", b"/v2"),
        associated_data(document["kdf"], server.url + "/"),
        b"",
    ]

    for aad in wrong:
        with pytest.raises(InvalidTag):
            cipher.decrypt(nonce, ciphertext, aad)


# ------------------------------------------------------ damaged ciphertext


@pytest.fixture
def fast_runs(yt_home, monkeypatch):
    """Speed up loops of hundreds of cli runs: one parser, no audit log.

    Building the argument parser takes most of an in-process run, and the
    audit log is not under test here.
    """
    monkeypatch.setattr(yt, "build_parser", functools.cache(yt.build_parser))
    monkeypatch.setenv("YT_AUDIT_LOGGING", "false")


def _check_damaged_file(cli, server, yt_home, data: bytes, label) -> None:
    """Write data as credentials.enc; reading and login must both fail."""
    path = enc_path(yt_home)
    write_private(path, data)

    read = cli("auth", "token", "--show")
    assert read.code == 3, (label, read.err)
    assert f"credential file {path}" in read.err, (label, read.err)
    assert read.out == "", label
    assert_no_token(read.err)
    assert path.read_bytes() == data, label

    again = login(cli, server, NEW_TOKEN)
    assert again.code == 3, (label, again.err)
    assert f"credential file {path}" in again.err, (label, again.err)
    assert_no_token(again.err)
    assert_no_token(again.err, NEW_TOKEN)
    assert path.read_bytes() == data, label


def test_every_flipped_byte_rejected(cli, fast_runs, server, yt_home):
    assert login(cli, server).code == 0
    server.tokens.add(NEW_TOKEN)
    original = enc_path(yt_home).read_bytes()
    # Two runs per byte and bit: sample the offsets if the file grows.
    assert len(original) < 600

    for offset in range(len(original)):
        for bit in (0x01, 0x80):
            damaged = bytearray(original)
            damaged[offset] ^= bit
            _check_damaged_file(
                cli, server, yt_home, bytes(damaged), (offset, bit)
            )


def test_every_truncation_rejected(cli, fast_runs, server, yt_home):
    assert login(cli, server).code == 0
    server.tokens.add(NEW_TOKEN)
    original = enc_path(yt_home).read_bytes()

    for length in range(len(original)):
        _check_damaged_file(
            cli, server, yt_home, original[:length], length
        )


@pytest.mark.parametrize(
    "data",
    [b"\x00" * 64, b"\xff\xfe{}", b"[]", b"null", b'{"format": 1}'],
    ids=["zeros", "not-utf8", "list", "null", "bad-format"],
)
def test_garbage_file_rejected(cli, server, yt_home, data):
    assert login(cli, server).code == 0
    server.tokens.add(NEW_TOKEN)

    _check_damaged_file(cli, server, yt_home, data, data)


def test_token_update_rejects_damaged_file(cli, server, yt_home):
    assert login(cli, server).code == 0
    document = load_document(yt_home)
    blob = document["entries"][server.url]
    blob["ciphertext"] = blob["ciphertext"][::-1]
    damaged = json.dumps(document).encode()
    write_private(enc_path(yt_home), damaged)
    server.tokens.add(NEW_TOKEN)

    result = cli("auth", "token", "--update", "--token-stdin",
                 input=NEW_TOKEN)

    assert_damaged(result, enc_path(yt_home), NEW_TOKEN)
    assert enc_path(yt_home).read_bytes() == damaged


# -------------------------------------------------------------- key file


@pytest.mark.parametrize(
    "content",
    [b"", b"not base64!\n", base64.b64encode(b"k" * 16) + b"\n",
     base64.b64encode(b"k" * 33) + b"\n"],
    ids=["empty", "not-base64", "short", "long"],
)
def test_damaged_key_file_not_replaced(cli, server, yt_home, content):
    assert login(cli, server).code == 0
    write_private(key_path(yt_home), content)
    ciphertext = enc_path(yt_home).read_bytes()
    server.tokens.add(NEW_TOKEN)

    show_result = cli("auth", "token", "--show")
    again = login(cli, server, NEW_TOKEN)

    for result in (show_result, again):
        assert result.code == 1, result.err
        assert (
            f"credential key file {key_path(yt_home)} is damaged (expected "
            f"32 bytes in base64)" in result.err
        )
        assert result.out == ""
    assert key_path(yt_home).read_bytes() == content
    assert enc_path(yt_home).read_bytes() == ciphertext


def test_wrong_key_file_fails_authentication(cli, server, yt_home):
    assert login(cli, server).code == 0
    other_key = base64.b64encode(os.urandom(32)) + b"\n"
    write_private(key_path(yt_home), other_key)
    ciphertext = enc_path(yt_home).read_bytes()

    result = cli("auth", "token", "--show")

    assert_damaged(result, enc_path(yt_home))
    assert "wrong key file, or the file was altered" in result.err
    assert key_path(yt_home).read_bytes() == other_key
    assert enc_path(yt_home).read_bytes() == ciphertext


def test_missing_key_file_not_regenerated(cli, server, yt_home):
    assert login(cli, server).code == 0
    key_path(yt_home).unlink()
    ciphertext = enc_path(yt_home).read_bytes()
    server.tokens.add(NEW_TOKEN)

    show_result = cli("auth", "token", "--show")
    again = login(cli, server, NEW_TOKEN)

    for result in (show_result, again):
        assert_damaged(result, enc_path(yt_home))
        assert f"its key file {key_path(yt_home)} is missing" in result.err
    assert not key_path(yt_home).exists()
    assert enc_path(yt_home).read_bytes() == ciphertext


def test_key_file_recreated_when_empty(cli, server, yt_home):
    assert login(cli, server).code == 0
    assert cli("auth", "logout").code == 0
    assert not enc_path(yt_home).exists()
    key_path(yt_home).unlink()

    assert login(cli, server).code == 0

    assert decrypt_entries(yt_home) == {server.url: DEFAULT_TOKEN}


# ------------------------------------------------------------- passphrase


def test_passphrase_round_trip(cli, server, yt_home):
    env = {"YT_CREDENTIAL_PASSPHRASE": PASSPHRASE}

    result = login(cli, server, DEFAULT_TOKEN, "--passphrase", env=env)

    assert result.code == 0, result.err
    assert (
        f"Token stored in the encrypted file {enc_path(yt_home)} "
        f"(keyring unavailable), protected by passphrase (scrypt)"
        in result.err
    )
    assert PASSPHRASE not in result.err
    kdf = load_document(yt_home)["kdf"]
    assert kdf["name"] == "scrypt"
    assert (kdf["n"], kdf["r"], kdf["p"]) == (2**17, 8, 1)
    assert len(base64.b64decode(kdf["salt"])) == 16
    assert not key_path(yt_home).exists()
    assert decrypt_entries(yt_home, PASSPHRASE) == {
        server.url: DEFAULT_TOKEN
    }
    assert_no_token(enc_path(yt_home).read_text())

    show_result = cli("auth", "token", "--show", env=env)
    assert show_result.code == 0, show_result.err
    assert show_result.out == DEFAULT_TOKEN + "\n"
    status = cli("auth", "status", "--format", "json", env=env)
    assert status.code == 0, status.err
    data = json.loads(status.out)
    assert data["source_detail"] == (
        f"encrypted file {enc_path(yt_home)} (passphrase (scrypt))"
    )
    assert PASSPHRASE not in status.out + status.err


def test_wrong_or_missing_passphrase(cli, server, yt_home):
    env = {"YT_CREDENTIAL_PASSPHRASE": PASSPHRASE}
    assert login(cli, server, DEFAULT_TOKEN, "--passphrase",
                 env=env).code == 0
    ciphertext = enc_path(yt_home).read_bytes()

    wrong = cli("auth", "token", "--show",
                env={"YT_CREDENTIAL_PASSPHRASE": "not the passphrase"})
    missing = cli("auth", "token", "--show")

    assert_damaged(wrong, enc_path(yt_home))
    assert "wrong passphrase, or the file was altered" in wrong.err
    assert "not the passphrase" not in wrong.err
    assert missing.code == 3
    assert (
        f"credential file {enc_path(yt_home)} is protected by a "
        f"passphrase; set YT_CREDENTIAL_PASSPHRASE" in missing.err
    )
    assert missing.out == ""
    assert enc_path(yt_home).read_bytes() == ciphertext
    assert not key_path(yt_home).exists()


def test_passphrase_flag_needs_terminal(cli, server, yt_home):
    result = login(cli, server, DEFAULT_TOKEN, "--passphrase")

    assert result.code == 2
    assert (
        "yt needs a terminal to ask for a new passphrase (--passphrase); "
        "run it on a terminal, or set YT_CREDENTIAL_PASSPHRASE" in result.err
    )
    assert not enc_path(yt_home).exists()


# ------------------------------------------------------------ permissions


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
@pytest.mark.parametrize("name", ["credentials.key", "credentials.enc"])
def test_loose_permissions_rejected(cli, server, yt_home, name, mode):
    assert login(cli, server).code == 0
    path = key_path(yt_home) if name.endswith("key") else enc_path(yt_home)
    path.chmod(mode)
    before = {p: p.read_bytes() for p in (key_path(yt_home),
                                          enc_path(yt_home))}
    server.tokens.add(NEW_TOKEN)

    show_result = cli("auth", "token", "--show")
    again = login(cli, server, NEW_TOKEN)

    for result in (show_result, again):
        assert result.code == 1, result.err
        assert f"is accessible by group or others (mode {mode:04o})" in (
            result.err
        )
        assert f"fix it with: chmod 600 {path}\n" in result.err
        assert result.out == ""
        assert_no_token(result.err)
    assert private_mode(path) == oct(mode)
    for file, data in before.items():
        assert file.read_bytes() == data


def test_loose_config_with_token_rejected(cli, server, yt_home):
    env = {"YT_CREDENTIAL_ENCRYPTION": "false"}
    assert login(cli, server, env=env).code == 0
    path = yt_home.config_dir / ".env"
    path.chmod(0o644)

    result = cli("auth", "token", "--show", env=env)

    assert result.code == 1
    assert f"fix it with: chmod 600 {path}\n" in result.err
    assert result.out == ""


def test_private_modes_with_umask_zero(run_yt, server, yt_home):
    deep = yt_home.home / "deep"
    env = {
        "YT_CONFIG_DIR": deep / "config" / "yt",
        "YT_DATA_DIR": deep / "data" / "yt",
    }

    login_result = run_yt(
        "auth", "login", "--base-url", server.url, "--token-stdin",
        input=DEFAULT_TOKEN, env=env, umask=0,
    )
    plain_result = run_yt(
        "auth", "login", "--base-url", server.url, "--token-stdin",
        input=DEFAULT_TOKEN, umask=0,
        env=dict(env, YT_CREDENTIAL_ENCRYPTION="false"),
    )

    assert login_result.returncode == 0, login_result.stderr
    assert plain_result.returncode == 0, plain_result.stderr
    paths = sorted(deep.rglob("*"))
    names = {p.name for p in paths}
    assert {"credentials.key", ".env", "audit.jsonl"} <= names
    assert "credentials.enc" not in names
    for path in [deep, *paths]:
        expected = 0o700 if path.is_dir() else 0o600
        assert private_mode(path) == oct(expected), path


def test_encrypted_file_mode_with_umask_zero(run_yt, server, yt_home):
    result = run_yt(
        "auth", "login", "--base-url", server.url, "--token-stdin",
        input=DEFAULT_TOKEN, umask=0,
    )

    assert result.returncode == 0, result.stderr
    for directory in (yt_home.config_dir, yt_home.data_dir):
        assert private_mode(directory) == oct(0o700)
        for path in directory.rglob("*"):
            assert private_mode(path) == oct(0o600), path
    assert decrypt_entries(yt_home) == {server.url: DEFAULT_TOKEN}


# ------------------------------------------------------------ concurrency


def test_concurrent_logins_same_url(run_yt, server, yt_home):
    tokens = [f"perm:Y29uY3VycmVudA==.dGVzdA==.Tk{n}q8Lz3Wv" for n in
              range(4)]
    server.tokens.update(tokens)

    def run(token):
        return run_yt("auth", "login", "--base-url", server.url,
                      "--token-stdin", input=token)

    with concurrent.futures.ThreadPoolExecutor(len(tokens)) as pool:
        results = list(pool.map(run, tokens))

    for result in results:
        assert result.returncode == 0, result.stderr
    stored = decrypt_entries(yt_home)
    assert list(stored) == [server.url]
    assert stored[server.url] in tokens
    show_result = run_yt("auth", "token", "--show")
    assert show_result.stdout == stored[server.url] + "\n"


def test_concurrent_logins_keep_every_url(run_yt, yt_home):
    servers = [FakeYouTrack(token=f"perm:c2VydmVy.{n}.Xq7Lm2Kd9") for n in
               range(3)]
    try:
        for srv in servers:
            srv.start()

        def run(srv):
            token = next(iter(srv.tokens))
            return run_yt("auth", "login", "--base-url", srv.url,
                          "--token-stdin", input=token)

        expected = {srv.url: next(iter(srv.tokens)) for srv in servers}
        with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
            results = list(pool.map(run, servers))
    finally:
        for srv in servers:
            srv.stop()

    for result in results:
        assert result.returncode == 0, result.stderr
    assert decrypt_entries(yt_home) == expected


# ------------------------------------------------------ missing packages


def _shadow_package(tmp_path, name: str):
    """Make a directory whose ``name`` package raises ImportError."""
    return hide_packages(tmp_path / "shadow", name)


def _error_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if "cryptography" in line]


def test_missing_cryptography_login(run_yt, server, yt_home, tmp_path):
    shadow = _shadow_package(tmp_path, "cryptography")

    result = run_yt(
        "auth", "login", "--base-url", server.url, "--token-stdin",
        input=DEFAULT_TOKEN, env={"PYTHONPATH": shadow},
    )

    assert result.returncode == 1, result.stderr
    assert _error_lines(result.stderr) == [
        "yt: error: the encrypted credential file needs the Python package "
        "'cryptography', which this build does not include; use the full "
        "build (yt.pyz or the yt executable) or run: pip install "
        "cryptography"
    ]
    assert "Traceback" not in result.stderr
    assert not enc_path(yt_home).exists()
    assert_no_token(result.stderr)


def test_broken_cryptography_login(run_yt, server, yt_home, tmp_path):
    # An import error that names no missing module: a damaged binding.
    root = hide_packages(
        tmp_path / "shadow", "cryptography",
        error="raise ImportError('cannot load _rust binding: invalid ELF "
              "header')",
    )

    result = run_yt(
        "auth", "login", "--base-url", server.url, "--token-stdin",
        input=DEFAULT_TOKEN, env={"PYTHONPATH": root},
    )

    assert result.returncode == 1, result.stderr
    assert _error_lines(result.stderr) == [
        "yt: error: the encrypted credential file needs the Python package "
        "'cryptography', which is installed but cannot be loaded "
        "(ImportError: cannot load _rust binding: invalid ELF header); "
        "reinstall it, or for yt.pyz run it once with SHIV_FORCE_EXTRACT=1 "
        "to unpack it again"
    ]
    assert "Traceback" not in result.stderr
    assert not enc_path(yt_home).exists()


def test_missing_cryptography_read(cli, run_yt, server, yt_home, tmp_path):
    assert login(cli, server).code == 0
    ciphertext = enc_path(yt_home).read_bytes()
    shadow = _shadow_package(tmp_path, "cryptography")

    result = run_yt("auth", "token", "--show", env={"PYTHONPATH": shadow})

    assert result.returncode == 1, result.stderr
    assert len(_error_lines(result.stderr)) == 1
    assert "needs the Python package 'cryptography'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert enc_path(yt_home).read_bytes() == ciphertext


def test_missing_cryptography_other_commands_work(
    run_yt, server, yt_home, tmp_path
):
    shadow = _shadow_package(tmp_path, "cryptography")
    env = {"PYTHONPATH": shadow, "YOUTRACK_TOKEN": DEFAULT_TOKEN,
           "YOUTRACK_BASE_URL": server.url}

    result = run_yt("issues", "list", "--format", "json", env=env)

    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 3


# ---------------------------------------------------------- legacy file


def test_legacy_file_read_with_warning(cli, server, yt_home):
    yt_home.config_dir.mkdir(mode=0o700, parents=True)
    path = yt_home.config_dir / ".env"
    write_private(path, textwrap.dedent(f"""\
        # written by an older yt
        YOUTRACK_BASE_URL={server.url}
        YOUTRACK_TOKEN={DEFAULT_TOKEN}
    """).encode())

    result = cli("auth", "status", "--format", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["source"] == "plain file"
    assert f"the token is read from the plain-text file {path}" in result.err


def test_legacy_file_other_url_ignored(cli, server, yt_home):
    yt_home.config_dir.mkdir(mode=0o700, parents=True)
    write_private(
        yt_home.config_dir / ".env",
        f"YOUTRACK_BASE_URL={OTHER_URL}\nYOUTRACK_TOKEN={NEW_TOKEN}\n"
        .encode(),
    )

    result = cli("auth", "token", "--show", "--base-url", server.url)

    assert result.code == 3
    assert result.out == ""


def test_login_moves_legacy_token_into_encrypted_file(cli, server, yt_home):
    yt_home.config_dir.mkdir(mode=0o700, parents=True)
    path = yt_home.config_dir / ".env"
    write_private(path, (
        "# keep this comment\n"
        f"YOUTRACK_BASE_URL={server.url}\n"
        f"YOUTRACK_TOKEN={DEFAULT_TOKEN}\n"
        "YOUTRACK_TIMEOUT=20\n"
    ).encode())

    assert login(cli, server).code == 0

    assert path.read_text() == (
        f"# keep this comment\nYOUTRACK_BASE_URL={server.url}\n"
        "YOUTRACK_TIMEOUT=20\n"
    )
    assert decrypt_entries(yt_home) == {server.url: DEFAULT_TOKEN}
