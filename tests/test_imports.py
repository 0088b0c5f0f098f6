"""Lazy imports: the commands that need no server or secret store start
without ssl, http.client, urllib.request, cryptography or keyring."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

FORBIDDEN = (
    "ssl",
    "_ssl",
    "http.client",
    "urllib.request",
    "cryptography",
    "keyring",
    "secretstorage",
    "jeepney",
)

# Runs yt.main in a fresh interpreter, then writes the exit code and the
# names in sys.modules to the file named by the first argument.
PROBE = textwrap.dedent(
    """
    import json
    import sys

    report, args = sys.argv[1], sys.argv[2:]
    sys.path.insert(0, {repo!r})
    import yt

    try:
        code = yt.main(args)
    except SystemExit as exc:
        code = exc.code
    with open(report, "w") as handle:
        json.dump({{"code": code, "modules": sorted(sys.modules)}}, handle)
    """
).format(repo=str(REPO))


def loaded_forbidden(modules) -> list:
    return sorted(
        name
        for name in modules
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    )


def probe(yt_home, tmp_path, *args):
    report = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        env=yt_home.env(),
        cwd=yt_home.home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        start_new_session=True,
    )
    assert report.exists(), result.stderr
    data = json.loads(report.read_text())
    return data["code"], data["modules"], result


def test_probe_detects_imports(yt_home, tmp_path):
    # The probe must see a module that a command does load.
    code, modules, _ = probe(yt_home, tmp_path, "--bogus-option")

    assert code == 2
    assert "yt" in modules
    assert "argparse" in modules


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("--help",),
        ("security", "audit"),
        ("security", "audit", "--format", "json"),
        ("security", "audit", "--verify"),
    ],
    ids=" ".join,
)
def test_light_commands_skip_heavy_imports(run_yt, yt_home, tmp_path, args):
    # An audit log with entries, its key and state file, made beforehand.
    for _ in range(2):
        setup = run_yt("config", "set", "YOUTRACK_TIMEOUT", "15")
        assert setup.returncode == 0, setup.stderr
    assert (yt_home.data_dir / "audit.jsonl").exists()

    code, modules, result = probe(yt_home, tmp_path, *args)

    assert code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert loaded_forbidden(modules) == []
    if args == ("--version",):
        assert result.stdout.startswith("yt ")


def test_audit_without_log_skips_heavy_imports(yt_home, tmp_path):
    code, modules, result = probe(yt_home, tmp_path, "security", "audit")

    assert code == 0, result.stderr
    assert loaded_forbidden(modules) == []


def test_server_command_loads_http(server, yt_home, tmp_path, monkeypatch):
    # A positive control: talking to the server does load http.client.
    from fake_youtrack import DEFAULT_TOKEN

    monkeypatch.setenv("YOUTRACK_BASE_URL", server.url)
    monkeypatch.setenv("YOUTRACK_TOKEN", DEFAULT_TOKEN)

    code, modules, result = probe(yt_home, tmp_path, "issues", "list")

    assert code == 0, result.stderr
    assert "http.client" in modules
