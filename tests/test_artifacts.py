"""Run the files that build.py wrote to dist/ against the fake server.

Every test skips when its file is missing, or fails when
YT_REQUIRE_ARTIFACTS=1. yt.pyz runs under each python3.9 to python3.13
that build.py can find (PATH, then pyenv), the executable runs as built,
and yt-stdlib.pyz runs with ``python -I -S`` so that no installed
cryptography or keyring is importable. Tests that need root (a throwaway
user, a noexec tmpfs) skip for other users.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, REQUIRE_ARTIFACTS, skip_or_fail
from fake_youtrack import DEFAULT_TOKEN, FakeYouTrack

pytestmark = pytest.mark.artifacts

DIST = REPO / "dist"
TIMEOUT = 120
PYZ_TEST_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _load_build_module():
    spec = importlib.util.spec_from_file_location("yt_build",
                                                  REPO / "build.py")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while it executes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _load_build_module()


def _source_version() -> str:
    return build.source_version()


def _pinned_version(name: str) -> str:
    for pin in build.read_pins(build.RUNTIME_REQUIREMENTS):
        if pin.key == name:
            return pin.version
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def require_artifact(name: str) -> Path:
    path = DIST / name
    if not path.is_file():
        skip_or_fail(f"{path} not found: run `python3 build.py` first",
                     required=REQUIRE_ARTIFACTS)
    return path


# ------------------------------------------------------------ runners


@dataclass(frozen=True)
class Runner:
    """How to start one artifact: the command before yt's arguments."""

    kind: str  # "pyz", "exe" or "stdlib"
    prefix: tuple[str, ...]

    def command(self, *args) -> list[str]:
        return [*self.prefix, *(str(arg) for arg in args)]


@functools.cache
def interpreters() -> dict[str, Path]:
    return build.find_interpreters()


def find_python(version: str) -> Path | None:
    """Return a working ``python<version>`` from PATH or pyenv, or None."""
    if version in build.PYZ_PYTHONS:
        return interpreters().get(version)
    pyenv_root = Path(os.environ.get("PYENV_ROOT",
                                     Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(pyenv_root.glob(
        f"versions/{version}.*/bin/python{version}"))
    for candidate in filter(None, candidates):
        probe = subprocess.run([str(candidate), "-c", "pass"],
                               capture_output=True, check=False)
        if probe.returncode == 0:
            return Path(candidate)
    return None


def make_runner(spec: str) -> Runner:
    if spec.startswith("pyz-"):
        version = spec[len("pyz-"):]
        pyz = require_artifact(build.PYZ_NAME)
        python = find_python(version)
        if python is None:
            pytest.skip(f"python{version} not found on PATH or in pyenv")
        return Runner("pyz", (str(python), str(pyz)))
    if spec == "exe":
        return Runner("exe", (str(require_artifact(build.EXE_NAME)),))
    stdlib = require_artifact(build.STDLIB_PYZ_NAME)
    return Runner("stdlib", (sys.executable, "-I", "-S", str(stdlib)))


RUNNER_SPECS = [f"pyz-{version}" for version in PYZ_TEST_PYTHONS]
RUNNER_SPECS += ["exe", "stdlib"]


@pytest.fixture(params=RUNNER_SPECS)
def runner(request) -> Runner:
    return make_runner(request.param)


@pytest.fixture
def fake_server():
    with FakeYouTrack(issues=5) as srv:
        yield srv


def run(command, env, timeout=TIMEOUT, input=None, **kwargs):
    """Run ``command`` with ``input`` (or no stdin) and capture text."""
    if input is None:
        kwargs["stdin"] = subprocess.DEVNULL
    return subprocess.run(
        [str(part) for part in command], env=env, timeout=timeout,
        input=input, capture_output=True, text=True, encoding="utf-8",
        errors="backslashreplace", check=False, **kwargs,
    )


def server_env(yt_home, srv, **extra) -> dict[str, str]:
    env = yt_home.env()
    env.update(YOUTRACK_BASE_URL=srv.url, YOUTRACK_TOKEN=DEFAULT_TOKEN)
    env.update(extra)
    return env


def assert_lists_issues(result, srv) -> None:
    assert result.returncode == 0, result.stderr
    for issue_id in srv.issues:
        assert issue_id in result.stdout
    assert "Traceback" not in result.stderr


# ------------------------------------------------------ dist/ contents


def test_sha256sums_cover_artifacts():
    sums = require_artifact(build.SUMS_NAME)
    listed = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    for name in (build.PYZ_NAME, build.EXE_NAME, build.STDLIB_PYZ_NAME,
                 build.BUILDINFO_NAME):
        assert name in listed
    for name, digest in listed.items():
        data = (DIST / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name


@pytest.mark.skipif(shutil.which("sha256sum") is None,
                    reason="sha256sum not found")
def test_sha256sums_pass_sha256sum_check():
    require_artifact(build.SUMS_NAME)
    result = run(["sha256sum", "-c", build.SUMS_NAME], dict(os.environ),
                 cwd=DIST)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buildinfo_states_glibc_floor():
    info = require_artifact(build.BUILDINFO_NAME).read_text("utf-8")
    facts = dict(line.split("=", 1) for line in info.splitlines())
    assert facts["version"] == _source_version()
    assert re.fullmatch(r"\d+\.\d+", facts["exe_glibc"])
    assert facts["pyz_libc"].startswith("glibc 2.")
    host = os.confstr("CS_GNU_LIBC_VERSION").split()[1]
    assert build._parse_version(facts["exe_glibc"]) <= (
        build._parse_version(host))


@pytest.mark.skipif(shutil.which("objdump") is None,
                    reason="objdump not found (binutils)")
def test_elf_reader_agrees_with_objdump():
    exe = require_artifact(build.EXE_NAME)
    dump = run(["objdump", "-p", exe], dict(os.environ)).stdout
    references = dump.split("Version References:", 1)[1]
    expected = set(re.findall(r"\b(GLIBC_[0-9.]+)\b", references))
    found = {name for name in build.elf_needed_versions(exe.read_bytes())
             if name.startswith("GLIBC_")}
    assert found == expected


# --------------------------------------------------- commands, each file


def test_version(runner, yt_home):
    result = run(runner.command("--version"), yt_home.env())
    assert result.returncode == 0, result.stderr
    assert _source_version() in result.stdout


def test_issues_list(runner, yt_home, fake_server):
    result = run(runner.command("issues", "list"),
                 server_env(yt_home, fake_server))
    assert_lists_issues(result, fake_server)


def test_issues_list_json(runner, yt_home, fake_server):
    result = run(runner.command("issues", "list", "--format", "json"),
                 server_env(yt_home, fake_server))
    assert result.returncode == 0, result.stderr
    ids = {issue["idReadable"] for issue in json.loads(result.stdout)}
    assert ids == set(fake_server.issues)


def test_security_audit_records_command(runner, yt_home, fake_server):
    env = server_env(yt_home, fake_server)
    assert run(runner.command("issues", "list"), env).returncode == 0
    result = run(runner.command("security", "audit", "--format", "json"),
                 env)
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    commands = [entry.get("command") for entry in entries]
    assert "issues list" in commands
    verify = run(runner.command("security", "audit", "--verify"), env)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_token_status(runner, yt_home, fake_server):
    result = run(
        runner.command("security", "token-status", "--format", "json"),
        server_env(yt_home, fake_server))
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["status"] == "permanent"
    assert DEFAULT_TOKEN not in result.stdout + result.stderr


def test_doctor(runner, yt_home, fake_server):
    result = run(runner.command("doctor"), server_env(yt_home, fake_server))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _source_version() in result.stdout
    assert DEFAULT_TOKEN not in result.stdout + result.stderr
    expected_runtime = "frozen" if runner.kind == "exe" else "zipapp"
    assert expected_runtime in result.stdout
    if runner.kind != "stdlib":
        for name in ("cryptography", "keyring"):
            assert f"{name} {_pinned_version(name)}" in result.stdout


@pytest.mark.parametrize("command", [["issues", "list"], ["doctor"]])
def test_c_locale(runner, yt_home, fake_server, command):
    env = server_env(yt_home, fake_server, LANG="C", LC_ALL="C")
    env.pop("PYTHONIOENCODING", None)
    env.pop("PYTHONUTF8", None)
    result = run(runner.command(*command), env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    if command[0] == "issues":
        assert_lists_issues(result, fake_server)


# ------------------------------------------------------------ yt.pyz


@pytest.mark.parametrize("version", ["3.8", "3.7"])
def test_pyz_rejects_old_python(yt_home, version):
    pyz = require_artifact(build.PYZ_NAME)
    python = find_python(version)
    if python is None:
        pytest.skip(f"python{version} not found on PATH or in pyenv")
    result = run([python, pyz, "--version"], yt_home.env())
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("yt.pyz: error:")
    assert "CPython 3.9.2" in lines[0]
    assert f"Python {version}." in lines[0]
    assert not (yt_home.home / ".shiv").exists()


def _pyz_runner() -> Runner:
    return make_runner(f"pyz-{PYZ_TEST_PYTHONS[0]}")


def test_pyz_extracts_to_private_home_dir(yt_home):
    runner = _pyz_runner()
    result = run(runner.command("--version"), yt_home.env())
    assert result.returncode == 0, result.stderr
    root = yt_home.home / ".shiv"
    assert root.stat().st_mode & 0o777 == 0o700
    extractions = [path for path in root.iterdir()
                   if path.name.startswith("yt.pyz_")]
    assert len(extractions) == 1


def test_pyz_warm_start_uses_bytecode_and_no_json(yt_home):
    """The Python that built yt.pyz runs its launcher from bytecode.

    Pythons of other versions compile the sources instead; every pyz-3.x
    runner above runs that way.
    """
    pyz = require_artifact(build.PYZ_NAME)
    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
        stored = {info.filename: info.compress_type
                  for info in archive.infolist() if "/" not in info.filename}
        inner = zipfile.ZipFile(io.BytesIO(
            archive.read(build.SITE_PACKAGES_ARCHIVE))).namelist()
    for name in ("__main__.py", "__main__.pyc", "_yt_launcher.py",
                 "_yt_launcher.pyc", build.SITE_PACKAGES_ARCHIVE):
        assert stored.get(name) == zipfile.ZIP_STORED, stored
    # Python reads the outer table of contents on every start.
    assert len(names) < 20, names
    assert not [name for name in names if name.startswith("site-packages/")]
    assert "site-packages/yt.py" in inner
    assert "site-packages/keyring/__init__.py" in inner
    env = yt_home.env()
    assert run([sys.executable, str(pyz), "--version"], env).returncode == 0

    result = run([sys.executable, "-vv", "-X", "importtime", str(pyz),
                  "--version"], env)

    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert f"# trying {pyz}/_yt_launcher.pyc" in lines
    assert f"# trying {pyz}/_yt_launcher.py" not in lines
    imported = {line.rsplit("|", 1)[1].strip() for line in lines
                if line.startswith("import time:") and "|" in line}
    assert "yt" in imported
    for name in ("json", "zlib", "zipfile", "_bootstrap"):
        assert name not in imported


def test_pyz_removes_old_extraction(yt_home):
    runner = _pyz_runner()
    root = yt_home.home / ".shiv"
    root.mkdir(mode=0o700)
    old = root / ("yt.pyz_" + "0" * 64)
    (old / "site-packages").mkdir(parents=True)
    unrelated = root / "other.pyz_1234"
    unrelated.mkdir()
    result = run(runner.command("--version"), yt_home.env())
    assert result.returncode == 0, result.stderr
    assert not old.exists()
    assert unrelated.exists()


def test_pyz_keeps_extraction_in_use(yt_home):
    import fcntl

    runner = _pyz_runner()
    root = yt_home.home / ".shiv"
    root.mkdir(mode=0o700)
    name = "yt.pyz_" + "1" * 64
    (root / name / "site-packages").mkdir(parents=True)
    with open(root / f".{name}_inuse", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        result = run(runner.command("--version"), yt_home.env())
    assert result.returncode == 0, result.stderr
    assert (root / name).exists()


def test_pyz_rejects_shared_shiv_root(yt_home, tmp_path):
    runner = _pyz_runner()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    env = yt_home.env()
    env["SHIV_ROOT"] = str(shared)
    result = run(runner.command("--version"), env)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "SHIV_ROOT" in lines[0]
    assert "writable by group or others" in lines[0]
    assert list(shared.iterdir()) == []


def test_pyz_uses_shiv_root(yt_home, tmp_path):
    runner = _pyz_runner()
    root = tmp_path / "private" / "root"
    env = yt_home.env()
    env["SHIV_ROOT"] = str(root)
    result = run(runner.command("--version"), env)
    assert result.returncode == 0, result.stderr
    assert root.stat().st_mode & 0o777 == 0o700
    assert not (yt_home.home / ".shiv").exists()


def _rejection_line(result) -> str:
    """Return the one stderr line of a yt.pyz run that stopped early."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("yt.pyz: error: SHIV_ROOT=")
    return lines[0]


def _extractions(root: Path) -> list[str]:
    return [path.name for path in root.iterdir()
            if path.name.startswith("yt.pyz_")]


@pytest.mark.parametrize("parent_mode", [0o777, 0o770, 0o703], ids=oct)
def test_pyz_rejects_shiv_root_in_writable_parent(yt_home, tmp_path,
                                                  parent_mode):
    runner = _pyz_runner()
    parent = tmp_path / "parent"
    root = parent / "root"
    root.mkdir(mode=0o700, parents=True)
    parent.chmod(parent_mode)
    env = yt_home.env()
    env["SHIV_ROOT"] = str(root)

    line = _rejection_line(run(runner.command("--version"), env))

    real_parent = os.path.realpath(parent)
    assert f"SHIV_ROOT={root} " in line
    assert f" {real_parent} is writable by group or others" in line
    assert "without the sticky bit" in line
    assert f"chmod go-w {real_parent})" in line
    assert list(root.iterdir()) == []


def test_pyz_creates_nothing_in_writable_parent(yt_home, tmp_path):
    runner = _pyz_runner()
    parent = tmp_path / "parent"
    parent.mkdir()
    parent.chmod(0o777)
    env = yt_home.env()
    env["SHIV_ROOT"] = str(parent / "missing" / "root")

    line = _rejection_line(run(runner.command("--version"), env))

    assert f" {os.path.realpath(parent)} is writable" in line
    assert list(parent.iterdir()) == []


def test_pyz_checks_parents_of_resolved_shiv_root(yt_home, tmp_path):
    runner = _pyz_runner()
    parent = tmp_path / "parent"
    root = parent / "root"
    root.mkdir(mode=0o700, parents=True)
    parent.chmod(0o777)
    link = tmp_path / "link"
    link.symlink_to(root)
    env = yt_home.env()
    env["SHIV_ROOT"] = str(link)

    line = _rejection_line(run(runner.command("--version"), env))

    assert f"SHIV_ROOT={link} " in line
    assert f" {os.path.realpath(parent)} is writable" in line
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("mode", [0o1777, 0o1770], ids=oct)
def test_pyz_sticky_shiv_root_advises_subdirectory(yt_home, tmp_path,
                                                   mode):
    """A shared directory like /tmp gets advice to use a subdirectory."""
    runner = _pyz_runner()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    env = yt_home.env()
    env["SHIV_ROOT"] = str(shared)

    line = _rejection_line(run(runner.command("--version"), env))

    assert "is a shared directory" in line
    assert "private directory inside it" in line
    assert f"mkdir -m 700 {os.path.realpath(shared)}/yt-$USER" in line
    assert "chmod" not in line
    assert list(shared.iterdir()) == []


def test_pyz_writable_shiv_root_advises_chmod(yt_home, tmp_path):
    runner = _pyz_runner()
    root = tmp_path / "root"
    root.mkdir()
    root.chmod(0o777)
    env = yt_home.env()
    env["SHIV_ROOT"] = str(root)

    line = _rejection_line(run(runner.command("--version"), env))

    assert "is writable by group or others" in line
    assert f"chmod go-w {os.path.realpath(root)})" in line
    assert "mkdir" not in line
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("exists", [True, False])
def test_pyz_uses_private_dir_in_sticky_parent(yt_home, tmp_path, exists):
    runner = _pyz_runner()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    root = shared / "mine"
    if exists:
        root.mkdir(mode=0o700)
    env = yt_home.env()
    env["SHIV_ROOT"] = str(root)

    result = run(runner.command("--version"), env)

    assert result.returncode == 0, result.stderr
    assert root.stat().st_mode & 0o777 == 0o700
    assert len(_extractions(root)) == 1
    assert not (yt_home.home / ".shiv").exists()


def test_pyz_creates_missing_parents_private(yt_home, tmp_path):
    """Parents made for SHIV_ROOT get mode 0700 whatever the umask."""
    runner = _pyz_runner()
    top = tmp_path / "top"
    root = top / "middle" / "root"
    env = yt_home.env()
    env["SHIV_ROOT"] = str(root)

    result = run(runner.command("--version"), env,
                 preexec_fn=lambda: os.umask(0o002))

    assert result.returncode == 0, result.stderr
    for directory in (top, top / "middle", root):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    assert len(_extractions(root)) == 1


@pytest.mark.parametrize("shiv_exists", [False, True])
def test_pyz_skips_home_in_writable_dir(yt_home, tmp_path, shiv_exists):
    """~/.shiv is not used when others could replace it."""
    runner = _pyz_runner()
    home_shiv = yt_home.home / ".shiv"
    if shiv_exists:
        home_shiv.mkdir(mode=0o700)
    yt_home.home.chmod(0o777)
    runtime_dir = tmp_path / "runtime"
    runtime_dir.mkdir(mode=0o700)
    env = yt_home.env()
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)

    result = run(runner.command("--version"), env)

    assert result.returncode == 0, result.stderr
    assert _source_version() in result.stdout
    assert len(_extractions(runtime_dir / "yt-pyz")) == 1
    if shiv_exists:
        assert list(home_shiv.iterdir()) == []
        [note] = result.stderr.splitlines()
        assert note.startswith(f"yt.pyz: note: {home_shiv.resolve()} is "
                               f"unsafe because {yt_home.home.resolve()} is "
                               f"writable by group or others")
        assert note.endswith(f"; using {runtime_dir.resolve()}/yt-pyz "
                             f"instead")
    else:
        assert not home_shiv.exists()
        assert result.stderr == ""


def test_pyz_writable_home_falls_back_to_tmp(yt_home, tmp_path):
    """With ~/.shiv unsafe and no XDG_RUNTIME_DIR, a temporary dir is used."""
    runner = _pyz_runner()
    yt_home.home.chmod(0o777)
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    env = yt_home.env()
    env.pop("XDG_RUNTIME_DIR", None)
    env["TMPDIR"] = str(tmp)

    result = run(runner.command("--version"), env)

    assert result.returncode == 0, result.stderr
    assert _source_version() in result.stdout
    assert result.stderr == ""
    assert not (yt_home.home / ".shiv").exists()
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("runtime_dir", [True, False])
def test_pyz_notes_unsafe_home_shiv(yt_home, tmp_path, runtime_dir):
    """An existing ~/.shiv that is rejected gets a note on every run."""
    runner = _pyz_runner()
    home_shiv = yt_home.home / ".shiv"
    home_shiv.mkdir(mode=0o700)
    home_shiv.chmod(0o777)
    env = yt_home.env()
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    env["TMPDIR"] = str(tmp)
    env.pop("XDG_RUNTIME_DIR", None)
    if runtime_dir:
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        replacement = f"{runtime.resolve()}/yt-pyz instead"
    else:
        replacement = f"{tmp.resolve()}/yt-pyz-"
    real_shiv = home_shiv.resolve()

    for attempt in ("first", "second"):
        result = run(runner.command("--version"), env)

        assert result.returncode == 0, result.stderr
        assert _source_version() in result.stdout
        lines = result.stderr.splitlines()
        assert len(lines) == 1, (attempt, result.stderr)
        assert lines[0].startswith(
            f"yt.pyz: note: {real_shiv} is writable by group or others "
            f"(fix: chmod go-w {real_shiv}); set SHIV_ROOT to ")
        assert f"; using {replacement}" in lines[0]
        if not runtime_dir:
            assert lines[0].endswith(" for this run only")
    assert list(home_shiv.iterdir()) == []


def _bundled_files(pyz: Path) -> dict[str, bytes]:
    """Return the files that yt.pyz unpacks, by path below the extraction."""
    with zipfile.ZipFile(pyz) as archive:
        inner = archive.read(build.SITE_PACKAGES_ARCHIVE)
    with zipfile.ZipFile(io.BytesIO(inner)) as packed:
        return {info.filename: packed.read(info)
                for info in packed.infolist() if not info.is_dir()}


def _damage_yt_py(site_packages: Path, damage: str) -> None:
    yt_py = site_packages / "yt.py"
    source = yt_py.read_bytes()
    main_at = source.index(b"\ndef main(")
    if damage == "removed":
        yt_py.unlink()
    elif damage == "syntax_error":
        yt_py.write_bytes(source[:main_at + len(b"\ndef main(")])
    elif damage == "no_main":
        yt_py.write_bytes(source[:main_at + 1])
    elif damage == "null_bytes":
        yt_py.write_bytes(source[:main_at] + b"\0" * 16
                          + source[main_at + 16:])
    elif damage == "site_packages_file":
        shutil.rmtree(site_packages)
        site_packages.write_text("not a directory\n")
    else:
        raise AssertionError(f"unknown damage {damage}")


@pytest.mark.parametrize("damage", ["removed", "syntax_error", "no_main",
                                    "null_bytes", "site_packages_file"])
def test_pyz_repairs_damaged_extraction(yt_home, damage):
    runner = _pyz_runner()
    env = yt_home.env()
    assert run(runner.command("--version"), env).returncode == 0
    root = yt_home.home / ".shiv"
    [name] = _extractions(root)
    site_packages = root / name / "site-packages"
    _damage_yt_py(site_packages, damage)

    result = run(runner.command("--version"), env)

    assert result.returncode == 0, result.stderr
    assert _source_version() in result.stdout
    assert result.stderr == ""
    assert _extractions(root) == [name]
    assert not (root / f"{name}.tmp").exists()
    bundled = _bundled_files(require_artifact(build.PYZ_NAME))
    for path, data in bundled.items():
        assert (root / name / path).read_bytes() == data, path


def test_pyz_main_import_error_not_repaired(yt_home, fake_server):
    """An ImportError inside yt.main() does not trigger a repair."""
    runner = _pyz_runner()
    env = server_env(yt_home, fake_server,
                     PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    assert run(runner.command("--version"), env).returncode == 0
    root = yt_home.home / ".shiv"
    [name] = _extractions(root)
    keyring = root / name / "site-packages" / "keyring"
    shutil.rmtree(keyring)

    result = run(runner.command("doctor"), env)

    assert "Python package 'keyring'" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not [line for line in result.stderr.splitlines()
                if line.startswith("yt.pyz:")]
    assert not keyring.exists()


def _damaged_copy(pyz: Path, directory: Path) -> Path:
    """Copy ``pyz`` into ``directory`` with 16 bytes of its data overwritten.

    The bytes lie inside the inner site-packages archive, so that the copy
    starts but cannot unpack.
    """
    directory.mkdir()
    copy = directory / pyz.name
    data = bytearray(pyz.read_bytes())
    with zipfile.ZipFile(pyz) as archive:
        info = archive.getinfo(build.SITE_PACKAGES_ARCHIVE)
    offset = 2_000_000
    assert info.header_offset + 100 < offset
    assert offset + 16 < info.header_offset + info.compress_size
    data[offset:offset + 16] = bytes(
        byte ^ 0xFF for byte in data[offset:offset + 16])
    copy.write_bytes(data)
    return copy


def _assert_damaged_archive_line(result, archive: Path) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"yt.pyz: error: {archive.resolve()} is damaged (BadZipFile: ")
    assert lines[0].endswith(
        "; download it again and check it against SHA256SUMS")


def test_pyz_reports_damaged_archive(yt_home, tmp_path):
    runner = _pyz_runner()
    pyz = require_artifact(build.PYZ_NAME)
    python = runner.prefix[0]
    damaged = _damaged_copy(pyz, tmp_path / "damaged")
    env = yt_home.env()

    result = run([python, damaged, "--version"], env)

    _assert_damaged_archive_line(result, damaged)
    root = yt_home.home / ".shiv"
    assert _extractions(root) == []
    intact = tmp_path / "intact" / pyz.name
    intact.parent.mkdir()
    shutil.copy2(pyz, intact)
    result = run([python, intact, "--version"], env)
    assert result.returncode == 0, result.stderr
    assert _source_version() in result.stdout
    assert len(_extractions(root)) == 1


def test_pyz_damaged_archive_keeps_extraction(yt_home, tmp_path):
    """A repair that finds the archive damaged changes nothing."""
    runner = _pyz_runner()
    pyz = require_artifact(build.PYZ_NAME)
    python = runner.prefix[0]
    damaged = _damaged_copy(pyz, tmp_path / "damaged")
    env = yt_home.env()
    assert run([python, pyz, "--version"], env).returncode == 0
    root = yt_home.home / ".shiv"
    [name] = _extractions(root)
    (root / name / "site-packages" / "yt.py").unlink()

    result = run([python, damaged, "--version"], env)

    _assert_damaged_archive_line(result, damaged)
    assert _extractions(root) == [name]
    assert run([python, pyz, "--version"], env).returncode == 0


def test_pyz_removes_partial_extraction(yt_home, tmp_path):
    """Damage inside one bundled file leaves no extraction directory."""
    runner = _pyz_runner()
    pyz = require_artifact(build.PYZ_NAME)
    with zipfile.ZipFile(pyz) as archive:
        entries = [(info, archive.read(info))
                   for info in archive.infolist()]
    [inner] = [data for info, data in entries
               if info.filename == build.SITE_PACKAGES_ARCHIVE]
    with zipfile.ZipFile(io.BytesIO(inner)) as packed:
        infos = packed.infolist()
    # Damage a file in the middle, so that earlier files are written first.
    victim = max(infos[len(infos) // 2:], key=lambda info: info.compress_size)
    # A local file header is 30 bytes, ending with the lengths of the name
    # and the extra field, which may differ from the central directory's.
    header = victim.header_offset
    name_length = int.from_bytes(inner[header + 26:header + 28], "little")
    extra_length = int.from_bytes(inner[header + 28:header + 30], "little")
    start = header + 30 + name_length + extra_length
    middle = start + victim.compress_size // 2
    damaged_inner = bytearray(inner)
    damaged_inner[middle:middle + 16] = bytes(16)
    damaged = tmp_path / "damaged" / pyz.name
    damaged.parent.mkdir()
    with zipfile.ZipFile(damaged, "w") as archive:
        for info, data in entries:
            if info.filename == build.SITE_PACKAGES_ARCHIVE:
                data = bytes(damaged_inner)
            archive.writestr(info, data)
    env = yt_home.env()

    result = run([runner.prefix[0], damaged, "--version"], env)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"yt.pyz: error: {damaged.resolve()} is damaged (")
    assert _extractions(yt_home.home / ".shiv") == []


@pytest.mark.slow
def test_pyz_build_is_reproducible(tmp_path):
    """Two builds from the same inputs give byte-identical pyz files."""
    require_artifact(build.PYZ_NAME)
    digests = []
    for attempt in ("first", "second"):
        dist = tmp_path / attempt
        result = run([sys.executable, REPO / "build.py", "--skip-exe",
                      "--dist", dist], dict(os.environ), timeout=900,
                     cwd=REPO)
        assert result.returncode == 0, result.stdout + result.stderr
        digests.append({name: hashlib.sha256(
            (dist / name).read_bytes()).hexdigest()
            for name in (build.PYZ_NAME, build.STDLIB_PYZ_NAME)})
    assert digests[0] == digests[1]


# ------------------------------------------------------ yt-stdlib.pyz


def test_stdlib_pyz_has_no_dependencies():
    stdlib = require_artifact(build.STDLIB_PYZ_NAME)
    with zipfile.ZipFile(stdlib) as archive:
        assert sorted(archive.namelist()) == ["__main__.py", "yt.py"]
    probe = run([sys.executable, "-I", "-S", "-c", "import cryptography"],
                dict(os.environ))
    assert probe.returncode != 0


def test_stdlib_pyz_login_needs_full_build(yt_home, fake_server):
    runner = make_runner("stdlib")
    result = run(
        runner.command("auth", "login", "--base-url", fake_server.url,
                       "--token-stdin"),
        yt_home.env(), input=DEFAULT_TOKEN + "\n")
    assert result.returncode != 0
    assert "cryptography" in result.stderr
    assert "full build" in result.stderr
    assert "Traceback" not in result.stderr
    assert DEFAULT_TOKEN not in result.stdout + result.stderr


# ------------------------------------------ full builds and the keyring


@pytest.mark.parametrize("spec", ["exe", f"pyz-{PYZ_TEST_PYTHONS[0]}"])
def test_full_build_uses_secret_service(spec, secret_service, yt_home,
                                        fake_server):
    runner = make_runner(spec)
    env = yt_home.env()
    doctor = run(runner.command("doctor"), env)
    assert "SecretService" in doctor.stdout, doctor.stdout + doctor.stderr
    login = run(
        runner.command("auth", "login", "--base-url", fake_server.url,
                       "--token-stdin"),
        env, input=DEFAULT_TOKEN + "\n")
    assert login.returncode == 0, login.stdout + login.stderr
    assert DEFAULT_TOKEN in secret_service.items().values()
    listed = run(runner.command("--base-url", fake_server.url, "issues",
                                "list"), env)
    assert_lists_issues(listed, fake_server)


def test_exe_runs_without_python_on_path(yt_home, fake_server, tmp_path):
    runner = make_runner("exe")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = server_env(yt_home, fake_server, PATH=str(empty_bin))
    for name in ("python", "python3"):
        assert shutil.which(name, path=env["PATH"]) is None
    for command in (["issues", "list"], ["doctor"]):
        result = run(runner.command(*command), env)
        assert result.returncode == 0, result.stdout + result.stderr
    assert_lists_issues(run(runner.command("issues", "list"), env),
                        fake_server)


# ------------------------------------------------------- root only

needs_root = pytest.mark.skipif(
    not IS_ROOT or shutil.which("setpriv") is None
    or shutil.which("useradd") is None,
    reason="needs root with setpriv and useradd (util-linux, passwd)",
)


@dataclass(frozen=True)
class ThrowawayUser:
    """A system user made for this test session, removed at its end."""

    name: str
    uid: int
    gid: int

    def command(self, command) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                "--clear-groups", "--", *(str(part) for part in command)]

    def private_dir(self, parent: Path, name: str) -> Path:
        path = parent / name
        path.mkdir(mode=0o700)
        os.chown(path, self.uid, self.gid)
        return path


@pytest.fixture(scope="session")
def throwaway_user():
    import pwd

    name = "ytart" + uuid.uuid4().hex[:8]
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir",
         "/nonexistent", "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"useradd {name} failed: {result.stderr.strip()}")
    try:
        entry = pwd.getpwnam(name)
        yield ThrowawayUser(name, entry.pw_uid, entry.pw_gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


@pytest.fixture(scope="session")
def shared_dir():
    """A world-readable copy of dist/ and a place for per-test dirs.

    pytest's tmp_path sits below a 0700 directory that other users cannot
    enter, and so may the checkout.
    """
    path = Path(tempfile.mkdtemp(prefix="yt-artifacts-"))
    path.chmod(0o755)
    dist = path / "dist"
    dist.mkdir(mode=0o755)
    for name in (build.PYZ_NAME, build.EXE_NAME):
        if (DIST / name).is_file():
            shutil.copy2(DIST / name, dist / name)
            (dist / name).chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def user_dirs(throwaway_user, shared_dir):
    """A read-only HOME (owned by root, mode 0555) and a private TMPDIR."""
    base = Path(tempfile.mkdtemp(dir=shared_dir))
    base.chmod(0o755)
    home = base / "home"
    home.mkdir()
    home.chmod(0o555)
    tmp = throwaway_user.private_dir(base, "tmp")
    try:
        yield home, tmp
    finally:
        shutil.rmtree(base, ignore_errors=True)


def user_python(user: ThrowawayUser) -> Path:
    """Return a Python 3.9+ that ``user`` can run (pyenv may be private)."""
    candidates = [find_python(version) for version in PYZ_TEST_PYTHONS]
    candidates.append(shutil.which("python3"))
    candidates.append("/usr/bin/python3")
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            user.command([candidate, "-c",
                          "import sys; assert sys.version_info >= (3, 9)"]),
            capture_output=True, check=False)
        if probe.returncode == 0:
            return Path(candidate)
    pytest.skip(f"no Python 3.9+ that user {user.name} can run")


def user_env(home: Path, tmp: Path, srv, **extra) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "YOUTRACK_BASE_URL": srv.url,
        "YOUTRACK_TOKEN": DEFAULT_TOKEN,
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def noexec_dir(shared_dir):
    """A tmpfs mounted noexec, mode 1777 like /tmp."""
    if shutil.which("mount") is None:
        pytest.skip("mount not found")
    path = shared_dir / "noexec"
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "noexec,nosuid,nodev,size=64m",
         "yt-noexec", str(path)], capture_output=True, text=True,
        check=False)
    if result.returncode != 0:
        skip_or_fail(f"cannot mount a noexec tmpfs: {result.stderr.strip()}",
                     required=REQUIRE_ARTIFACTS)
    try:
        path.chmod(0o1777)
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True,
                       check=False)


@needs_root
def test_pyz_read_only_home_as_user(throwaway_user, shared_dir, user_dirs,
                                    fake_server):
    require_artifact(build.PYZ_NAME)
    home, tmp = user_dirs
    python = user_python(throwaway_user)
    pyz = shared_dir / "dist" / build.PYZ_NAME
    env = user_env(home, tmp, fake_server)
    for command in (["issues", "list"], ["doctor"],
                    ["security", "token-status"]):
        result = run(throwaway_user.command([python, pyz, *command]), env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    listed = run(throwaway_user.command([python, pyz, "issues", "list"]),
                 env)
    assert_lists_issues(listed, fake_server)
    # The fallback extraction directory lives for one run only.
    assert list(tmp.iterdir()) == []
    assert list(home.iterdir()) == []


@needs_root
def test_exe_read_only_home_as_user(throwaway_user, shared_dir, user_dirs,
                                    fake_server):
    require_artifact(build.EXE_NAME)
    home, tmp = user_dirs
    exe = shared_dir / "dist" / build.EXE_NAME
    env = user_env(home, tmp, fake_server)
    for command in (["issues", "list"], ["doctor"]):
        result = run(throwaway_user.command([exe, *command]), env)
        assert result.returncode == 0, result.stdout + result.stderr
    listed = run(throwaway_user.command([exe, "issues", "list"]), env)
    assert_lists_issues(listed, fake_server)


@needs_root
def test_pyz_noexec_tmp_names_shiv_root(throwaway_user, shared_dir,
                                        user_dirs, noexec_dir, fake_server):
    require_artifact(build.PYZ_NAME)
    home, tmp = user_dirs
    python = user_python(throwaway_user)
    pyz = shared_dir / "dist" / build.PYZ_NAME
    env = user_env(home, noexec_dir, fake_server)
    result = run(throwaway_user.command([python, pyz, "issues", "list"]),
                 env)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "SHIV_ROOT" in lines[0]
    assert "noexec" in lines[0]
    env["SHIV_ROOT"] = str(tmp / "shiv")
    result = run(throwaway_user.command([python, pyz, "issues", "list"]),
                 env)
    assert_lists_issues(result, fake_server)


@needs_root
def test_pyz_rejects_shiv_root_in_other_users_dir(throwaway_user, yt_home,
                                                   tmp_path):
    runner = _pyz_runner()
    other = tmp_path / "other"
    other.mkdir(mode=0o755)
    root = other / "root"
    root.mkdir(mode=0o700)
    os.chown(other, throwaway_user.uid, throwaway_user.gid)
    env = yt_home.env()
    env["SHIV_ROOT"] = str(root)

    line = _rejection_line(run(runner.command("--version"), env))

    assert (f" {os.path.realpath(other)} is owned by uid "
            f"{throwaway_user.uid}, not by root or you") in line
    assert list(root.iterdir()) == []


@needs_root
def test_pyz_noexec_tmp_uses_home(yt_home, noexec_dir, fake_server):
    runner = _pyz_runner()
    env = server_env(yt_home, fake_server, TMPDIR=str(noexec_dir))
    assert_lists_issues(run(runner.command("issues", "list"), env),
                        fake_server)


# Run the rest of the arguments after "--" in a private mount namespace
# in which each directory before "--" is bind-mounted onto itself noexec.
# The bind mount keeps the directory's files, such as the yt home under
# pytest's tmp_path, and hides the change from the rest of the system.
NOEXEC_NAMESPACE_SCRIPT = """\
mount --make-rprivate / || exit 97
while [ "$1" != -- ]; do
    mount --bind "$1" "$1" || exit 97
    mount -o remount,bind,noexec "$1" || exit 97
    shift
done
shift
exec "$@"
"""
NOEXEC_SETUP_FAILED = 97


def run_with_noexec(dirs, command, env) -> subprocess.CompletedProcess:
    """Run ``command`` as root with each of ``dirs`` mounted noexec."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare not found (util-linux)")
    result = run(["unshare", "--mount", "sh", "-c",
                  NOEXEC_NAMESPACE_SCRIPT, "sh", *dirs, "--", *command],
                 env)
    if result.returncode == NOEXEC_SETUP_FAILED:
        skip_or_fail("cannot bind-mount noexec in a new mount namespace: "
                     + result.stderr.strip(), required=REQUIRE_ARTIFACTS)
    return result


def is_noexec(path: str) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_NOEXEC)


def require_patched_bootloader() -> Path:
    """Return dist/yt, built with the bootloader that skips noexec dirs."""
    exe = require_artifact(build.EXE_NAME)
    info = require_artifact(build.BUILDINFO_NAME).read_text("utf-8")
    if "exe_bootloader=patched" not in info.splitlines():
        skip_or_fail(f"{exe} was built with PyInstaller's stock bootloader "
                     "(build.py could not build the patched one)",
                     required=REQUIRE_ARTIFACTS)
    for directory in ("/tmp", "/var/tmp"):
        if Path(directory) in exe.resolve().parents:
            pytest.skip(f"{exe} is below {directory}, which the test "
                        "mounts noexec")
    return exe


@needs_root
def test_exe_noexec_tmp_falls_back(yt_home, noexec_dir, fake_server):
    """The executable skips TMPDIR and /tmp on noexec mounts.

    It unpacks into the next candidate, /var/tmp, and runs.
    """
    exe = require_patched_bootloader()
    if is_noexec("/var/tmp"):
        pytest.skip("/var/tmp is mounted noexec on this host")
    env = server_env(yt_home, fake_server, TMPDIR=str(noexec_dir))
    env.pop("TEMP", None)
    env.pop("TMP", None)
    result = run_with_noexec(["/tmp"], [exe, "issues", "list"], env)
    assert_lists_issues(result, fake_server)


@needs_root
def test_exe_noexec_everywhere_names_tmpdir(yt_home, noexec_dir,
                                           fake_server, tmp_path):
    """With every candidate noexec, yt exits 1 with one line on TMPDIR.

    TMPDIR pointing at a private directory on an exec mount is the fix
    that line names.
    """
    exe = require_patched_bootloader()
    env = server_env(yt_home, fake_server, TMPDIR=str(noexec_dir))
    env.pop("TEMP", None)
    env.pop("TMP", None)
    dirs = [path for path in ("/tmp", "/var/tmp", "/usr/tmp")
            if Path(path).is_dir() and not Path(path).is_symlink()]
    failed = run_with_noexec(dirs, [exe, "--version"], env)
    assert failed.returncode == 1, failed.stderr
    assert failed.stdout == ""
    lines = failed.stderr.splitlines()
    assert len(lines) == 1, failed.stderr
    assert lines[0].startswith("yt: error: ")
    assert "TMPDIR=" in lines[0]
    assert f"({noexec_dir} is mounted noexec)" in lines[0]

    private_tmp = tmp_path / "exec-tmp"
    private_tmp.mkdir(mode=0o700)
    env["TMPDIR"] = str(private_tmp)
    assert_lists_issues(run([exe, "issues", "list"], env), fake_server)
    # PyInstaller removes its _MEI directory when the program exits.
    assert list(private_tmp.iterdir()) == []
