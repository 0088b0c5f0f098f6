#!/usr/bin/env python3
"""Build yt's release artifacts from hash-pinned requirements.

``python3 build.py`` creates the virtualenv ``.venv`` with the interpreter
that runs this script, installs packaging/requirements*.txt into it with
``pip --require-hashes --no-deps --only-binary=:all:`` and writes to dist/:

* ``yt.pyz``: a shiv zipapp with cryptography and keyring bundled, for every
  CPython from 3.9.2 up that the pinned wheels support on this platform.
  Its ``__main__.py`` (packaging/pyz_main.py) rejects other interpreters
  with one line, and packaging/pyz_launcher.py picks a private extraction
  directory before shiv's bootstrap runs. It also contains ``__main__.pyc``
  and ``_yt_launcher.pyc``, compiled by the Python that runs build.py, so
  two builds from the same inputs are byte-identical only when the same
  Python version runs them.
* ``yt``: a PyInstaller one-file executable for this host. On Linux its
  bootloader is rebuilt from the pinned PyInstaller sdist with
  packaging/bootloader-noexec.patch, or is PyInstaller's stock one, with
  a warning, when that build fails.
* ``yt-stdlib.pyz``: yt.py alone, made with the stdlib zipapp module.
* ``BUILDINFO`` and ``SHA256SUMS`` (``cd dist && sha256sum -c SHA256SUMS``).

Run ``python3 build.py --help`` for the subcommands and options.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import filecmp
import hashlib
import io
import json
import os
import platform
import re
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipapp
import zipfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: builds in one tree are not serialized
    fcntl = None

# ------------------------------------------------------------ constants

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "yt.py"
PACKAGING = ROOT / "packaging"
VENV = ROOT / ".venv"
BUILD = ROOT / "build"
DIST = ROOT / "dist"

RUNTIME_REQUIREMENTS = PACKAGING / "requirements.txt"
BUILD_REQUIREMENTS = PACKAGING / "requirements-build.txt"
TEST_REQUIREMENTS = PACKAGING / "requirements-test.txt"
ALL_REQUIREMENTS = (RUNTIME_REQUIREMENTS, BUILD_REQUIREMENTS,
                    TEST_REQUIREMENTS)

BOOTLOADER_SDIST = PACKAGING / "pyinstaller-sdist.txt"
BOOTLOADER_PATCH = PACKAGING / "bootloader-noexec.patch"
PYZ_MAIN = PACKAGING / "pyz_main.py"
PYZ_LAUNCHER = PACKAGING / "pyz_launcher.py"
TARGET_SENTINEL = "TARGET = None\n"
BUILD_SENTINEL = "BUILD = None\n"

# CPython versions whose wheels go into yt.pyz. cryptography 50 excludes
# 3.9.0 and 3.9.1, so 3.9 stands for 3.9.2 when resolving.
PYZ_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
PYTHON_FLOOR = (3, 9, 2)
SHEBANG = "/usr/bin/env python3"

PYZ_NAME = "yt.pyz"
EXE_NAME = "yt.exe" if os.name == "nt" else "yt"
STDLIB_PYZ_NAME = "yt-stdlib.pyz"
BUILDINFO_NAME = "BUILDINFO"
SUMS_NAME = "SHA256SUMS"

# 1980-01-01 00:00:00 UTC, the earliest time a zip entry can hold: the
# timestamp of every entry in yt.pyz and yt-stdlib.pyz unless
# SOURCE_DATE_EPOCH is set.
ZIP_EPOCH = 315532800

# Output of pip and PyInstaller is shown only when they fail, cut to this
# many last lines.
FAILURE_TAIL_LINES = 60


@dataclasses.dataclass(frozen=True)
class Platform:
    """A platform that yt.pyz can be built for."""

    name: str
    sys_platform: str
    platform_system: str
    machine: str
    # platform.machine() values accepted at run time
    machines: tuple[str, ...]
    # pip --platform tags, most preferred first: the oldest C library
    # first, so the pyz runs on as many systems as the wheels allow
    wheel_tags: tuple[str, ...]


def _manylinux_tags(arch: str) -> tuple[str, ...]:
    return (f"manylinux_2_17_{arch}", f"manylinux2014_{arch}",
            f"manylinux_2_28_{arch}")


PLATFORMS = {
    platform_.name: platform_ for platform_ in (
        Platform("linux-x86_64", "linux", "Linux", "x86_64", ("x86_64",),
                 _manylinux_tags("x86_64")),
        Platform("linux-aarch64", "linux", "Linux", "aarch64",
                 ("aarch64", "arm64"), _manylinux_tags("aarch64")),
        Platform("macos-arm64", "darwin", "Darwin", "arm64", ("arm64",),
                 ("macosx_11_0_arm64",)),
    )
}


# --------------------------------------------------------------- errors


class BuildError(Exception):
    """Raised for any failure that stops the build; main() prints it."""


# ------------------------------------------------------ process helpers


@contextlib.contextmanager
def build_lock():
    """Hold an exclusive lock on build/.lock for the whole command.

    Two build.py runs in one tree would replace each other's .venv, build/
    and dist/ files midway; the second one waits here instead.
    """
    BUILD.mkdir(exist_ok=True)
    with (BUILD / ".lock").open("a") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log("waiting for another build.py run in this tree")
                fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def log(message: str) -> None:
    print(f"build.py: {message}", flush=True)


def run(command, *, step: str, env=None, cwd=None, show=False):
    """Run ``command``; raise BuildError naming ``step`` if it fails.

    Output is captured and printed only on failure, unless ``show``.
    """
    command = [str(part) for part in command]
    try:
        result = subprocess.run(
            command, cwd=cwd, env=env, check=False, text=True,
            stdout=None if show else subprocess.PIPE,
            stderr=None if show else subprocess.STDOUT,
        )
    except OSError as exc:
        raise BuildError(f"{step}: cannot run {command[0]}: {exc}") from exc
    if result.returncode != 0:
        if result.stdout:
            lines = result.stdout.splitlines()[-FAILURE_TAIL_LINES:]
            print("\n".join(lines), file=sys.stderr)
        raise BuildError(
            f"{step} failed with exit code {result.returncode}"
            + ("" if show else "; its output is above")
        )
    return result


def pip_environment(wheelhouse: Path | None) -> dict[str, str]:
    """Return the environment for pip, isolated from pip config offline."""
    env = dict(os.environ)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if wheelhouse is not None:
        # Offline: only the wheelhouse, ignoring pip.conf and PIP_* index
        # settings.
        env["PIP_CONFIG_FILE"] = os.devnull
        for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
                     "PIP_FIND_LINKS", "PIP_NO_INDEX"):
            env.pop(name, None)
    return env


def pip_source_args(wheelhouse: Path | None) -> list[str]:
    if wheelhouse is None:
        return []
    return ["--no-index", "--find-links", str(wheelhouse)]


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def venv_script(name: str) -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / f"{name}.exe"
    return VENV / "bin" / name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_version() -> str:
    """Return ``__version__`` from yt.py without importing it."""
    try:
        text = SOURCE.read_text(encoding="utf-8")
    except OSError as exc:
        raise BuildError(f"cannot read {SOURCE}: {exc.strerror}") from exc
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text,
                      re.MULTILINE)
    if match is None:
        raise BuildError(f"{SOURCE} defines no __version__ = '...' line")
    return match.group(1)


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", str(ZIP_EPOCH))
    try:
        return max(int(value), ZIP_EPOCH)
    except ValueError:
        raise BuildError(
            f"SOURCE_DATE_EPOCH={value!r} is not an integer number of "
            "seconds since 1970"
        ) from None


# ------------------------------------------------- requirement markers
#
# pip evaluates environment markers against the interpreter that runs it,
# even with --python-version and --platform, so the pyz's target Python
# versions and platforms need their own evaluation. uv writes markers of
# the PEP 508 form `name op 'value'` joined by and/or with parentheses;
# that is the grammar accepted here.

_MARKER_TOKEN = re.compile(r"""
    \s*(?:
        (?P<paren>[()])
      | (?P<op>===|==|!=|<=|>=|~=|<|>|not\s+in\b|in\b)
      | (?P<bool>and\b|or\b)
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<name>[a-z_]+)
    )""", re.VERBOSE)
_VERSION_MARKERS = {"python_version", "python_full_version",
                    "implementation_version"}


class MarkerError(BuildError):
    """Raised for an environment marker outside the supported grammar."""


def _tokenize_marker(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _MARKER_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise MarkerError(f"cannot parse marker {text!r} at {position}")
        kind = match.lastgroup
        tokens.append((kind, re.sub(r"\s+", " ", match.group(kind))))
        position = match.end()
    return tokens


def _parse_version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        raise MarkerError(f"unsupported version {text!r} in marker") from None


def _compare_versions(left: str, op: str, right: str) -> bool:
    if op in ("==", "!=") and right.endswith(".*"):
        prefix = _parse_version(right[:-2])
        equal = _parse_version(left)[:len(prefix)] == prefix
        return equal if op == "==" else not equal
    if op == "===":
        return left == right
    lhs, rhs = _parse_version(left), _parse_version(right)
    width = max(len(lhs), len(rhs))
    lhs += (0,) * (width - len(lhs))
    padded = rhs + (0,) * (width - len(rhs))
    if op == "~=":
        return lhs >= padded and lhs[:len(rhs) - 1] == rhs[:-1]
    return {
        "==": lhs == padded, "!=": lhs != padded, "<": lhs < padded,
        "<=": lhs <= padded, ">": lhs > padded, ">=": lhs >= padded,
    }[op]


class _MarkerParser:
    def __init__(self, text: str, environment: dict[str, str]):
        self.text = text
        self.tokens = _tokenize_marker(text)
        self.position = 0
        self.environment = environment

    def evaluate(self) -> bool:
        result = self._or()
        if self.position != len(self.tokens):
            raise MarkerError(f"unexpected text in marker {self.text!r}")
        return result

    def _peek(self):
        if self.position < len(self.tokens):
            return self.tokens[self.position]
        return (None, None)

    def _take(self, kind: str) -> str:
        token_kind, value = self._peek()
        if token_kind != kind:
            raise MarkerError(f"expected {kind} in marker {self.text!r}")
        self.position += 1
        return value

    def _or(self) -> bool:
        result = self._and()
        while self._peek() == ("bool", "or"):
            self.position += 1
            right = self._and()
            result = result or right
        return result

    def _and(self) -> bool:
        result = self._atom()
        while self._peek() == ("bool", "and"):
            self.position += 1
            right = self._atom()
            result = result and right
        return result

    def _atom(self) -> bool:
        if self._peek() == ("paren", "("):
            self.position += 1
            result = self._or()
            self._take("paren")
            return result
        left_kind, left = self._value()
        op = self._take("op")
        right_kind, right = self._value()
        if _VERSION_MARKERS & {left_kind, right_kind} and op not in (
                "in", "not in"):
            return _compare_versions(left, op, right)
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        if op == "in":
            return left in right
        if op == "not in":
            return left not in right
        raise MarkerError(f"operator {op} needs versions in {self.text!r}")

    def _value(self) -> tuple[str, str]:
        kind, value = self._peek()
        self.position += 1
        if kind == "string":
            return "string", value[1:-1]
        if kind == "name":
            if value not in self.environment:
                raise MarkerError(f"unknown marker variable {value!r}")
            return value, self.environment[value]
        raise MarkerError(f"expected a value in marker {self.text!r}")


def evaluate_marker(text: str, environment: dict[str, str]) -> bool:
    return _MarkerParser(text, environment).evaluate()


def marker_environment(target: Platform, python: str) -> dict[str, str]:
    """Return PEP 508 marker values for CPython ``python`` on ``target``."""
    full = ".".join(map(str, PYTHON_FLOOR)) if (
        python == "3.9") else f"{python}.0"
    return {
        "python_version": python,
        "python_full_version": full,
        "implementation_version": full,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": target.sys_platform,
        "platform_system": target.platform_system,
        "platform_machine": target.machine,
        "os_name": "posix",
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


# --------------------------------------------------- requirement files


@dataclasses.dataclass(frozen=True)
class Pin:
    """One ``name==version ; marker --hash=...`` entry of a lock file."""

    name: str
    version: str
    marker: str | None
    hashes: tuple[str, ...]

    @property
    def key(self) -> str:
        return re.sub(r"[-_.]+", "-", self.name).lower()

    def line(self) -> str:
        hashes = " ".join(f"--hash={value}" for value in self.hashes)
        return f"{self.name}=={self.version} {hashes}"


_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+?)"
    r"\s*(?:;\s*(?P<marker>.*?))?\s*$")
_HASH = re.compile(r"--hash[= ](sha256:[0-9a-f]{64})")


def read_pins(path: Path) -> list[Pin]:
    """Parse a lock file written by packaging/lock.py."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror}") from exc
    logical = text.replace("\\\n", " ")
    pins = []
    for number, line in enumerate(logical.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        hashes = tuple(_HASH.findall(line))
        match = _PIN.match(_HASH.sub("", line).strip())
        if match is None or not hashes:
            raise BuildError(
                f"{path.relative_to(ROOT)}: entry {number} is not "
                f"'name==version --hash=sha256:...': {line[:60]!r}; "
                "regenerate it with packaging/lock.py"
            )
        pins.append(Pin(match["name"], match["version"], match["marker"],
                        hashes))
    return pins


def pins_for(path: Path, target: Platform, python: str) -> list[Pin]:
    environment = marker_environment(target, python)
    return [pin for pin in read_pins(path)
            if pin.marker is None
            or evaluate_marker(pin.marker, environment)]


def write_requirements(pins: list[Pin], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(pin.line() + "\n" for pin in pins),
                    encoding="utf-8")
    return path


# ---------------------------------------------------------- virtualenv


def requirements_stamp() -> str:
    digest = hashlib.sha256()
    for path in ALL_REQUIREMENTS:
        digest.update(path.read_bytes())
    return f"{sys.version}\n{digest.hexdigest()}\n"


def ensure_venv(wheelhouse: Path | None) -> Path:
    """Create .venv and install all pinned requirements into it."""
    python = venv_python()
    stamp_path = VENV / ".yt-build-stamp"
    stamp = requirements_stamp()
    if python.exists() and stamp_path.exists() and (
            stamp_path.read_text(encoding="utf-8") == stamp):
        log(f"{VENV.name} is up to date")
        return python
    if not python.exists() or not stamp_path.exists() or (
            stamp_path.read_text(encoding="utf-8").split("\n")[0]
            != sys.version):
        log(f"creating {VENV.name} with {sys.executable} "
            f"(Python {platform.python_version()})")
        run([sys.executable, "-m", "venv", "--clear", VENV],
            step="creating the virtualenv")
    log(f"installing {', '.join(p.name for p in ALL_REQUIREMENTS)} "
        f"into {VENV.name}")
    command = [python, "-m", "pip", "install", "--require-hashes",
               "--no-deps", "--only-binary=:all:", "--no-input",
               *pip_source_args(wheelhouse)]
    for path in ALL_REQUIREMENTS:
        command += ["-r", path]
    run(command, step="pip install into .venv",
        env=pip_environment(wheelhouse))
    stamp_path.write_text(stamp, encoding="utf-8")
    return python


# ------------------------------------------------------------ yt.pyz


def host_platform() -> Platform | None:
    machine = platform.machine().lower()
    for candidate in PLATFORMS.values():
        if sys.platform == candidate.sys_platform and (
                machine in candidate.machines):
            return candidate
    return None


def pip_target_args(target: Platform, python: str) -> list[str]:
    """Return pip options that select wheels for ``python`` on ``target``.

    The 3.9 floor is given as 3.9.2 because cryptography declares
    Requires-Python ``!=3.9.0,!=3.9.1`` and pip reads ``3.9`` as 3.9.0.
    """
    full = ".".join(map(str, PYTHON_FLOOR)) if python == "3.9" else python
    args = ["--only-binary=:all:", "--implementation", "cp",
            "--python-version", full, "--abi", "cp" + python.replace(".", "")]
    for tag in target.wheel_tags:
        args += ["--platform", tag]
    return args


def wheel_tags(dist_info: Path) -> list[str]:
    text = (dist_info / "WHEEL").read_text(encoding="utf-8")
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("Tag:")]


def is_version_specific(tags: list[str]) -> bool:
    """Tell whether a wheel loads on one CPython minor version only."""
    return any(tag.split("-")[1] not in ("none", "abi3") for tag in tags)


def installed_dists(site_packages: Path) -> dict[str, Path]:
    dists = {}
    for dist_info in site_packages.glob("*.dist-info"):
        name = dist_info.name[:-len(".dist-info")].rsplit("-", 1)[0]
        dists[re.sub(r"[-_.]+", "-", name).lower()] = dist_info
    return dists


def merge_tree(source: Path, target: Path, python: str) -> None:
    """Copy files of ``source`` missing from ``target`` into it.

    A file present in both must be identical, except dist-info metadata,
    of which the copy from the lowest Python version is kept.
    """
    for path in sorted(source.rglob("*")):
        if path.is_dir():
            continue
        relative = path.relative_to(source)
        destination = target / relative
        if destination.exists():
            if relative.parts[0].endswith(".dist-info"):
                continue
            if not filecmp.cmp(path, destination, shallow=False):
                raise BuildError(
                    f"{relative} differs between the wheels for Python "
                    f"{PYZ_PYTHONS[0]} and {python}; one site-packages "
                    "cannot hold both"
                )
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)


def remove_scripts(site_packages: Path) -> None:
    """Delete the console scripts pip wrote, and their RECORD lines.

    Their first line names the python of the build venv, so they would
    make the pyz depend on where the checkout is. yt never runs them.
    """
    shutil.rmtree(site_packages / "bin", ignore_errors=True)
    for record in site_packages.glob("*.dist-info/RECORD"):
        lines = record.read_text(encoding="utf-8").splitlines(True)
        remaining = [line for line in lines
                     if not re.match(r"(\.\./)*bin/", line)]
        if remaining != lines:
            record.write_text("".join(remaining), encoding="utf-8")


def normalize_modes(tree: Path) -> None:
    """Set modes to 0755/0644 so the umask does not change the pyz."""
    for path in tree.rglob("*"):
        executable = path.is_dir() or path.stat().st_mode & stat.S_IXUSR
        path.chmod(0o755 if executable else 0o644)


def stage_site_packages(python: Path, target: Platform,
                        wheelhouse: Path | None) -> tuple[Path, str]:
    """Install the runtime wheels for every PYZ_PYTHONS into one tree.

    Returns the tree and the C library floor of the chosen wheels.
    A package whose wheel for the lowest version is pure Python or abi3 is
    installed once. A version-specific one (cffi) is installed for each
    version, which adds only that version's extension module.
    """
    work = BUILD / f"pyz-{target.name}"
    shutil.rmtree(work, ignore_errors=True)
    site_packages = work / "site-packages"
    site_packages.mkdir(parents=True)
    pinned: dict[str, str] = {}
    shared: set[str] = set()
    for version in PYZ_PYTHONS:
        pins = []
        for pin in pins_for(RUNTIME_REQUIREMENTS, target, version):
            if pinned.setdefault(pin.key, pin.version) != pin.version:
                raise BuildError(
                    f"{RUNTIME_REQUIREMENTS.relative_to(ROOT)} pins "
                    f"{pin.name} at {pinned[pin.key]} and {pin.version}; "
                    "the pyz needs one version: regenerate it with "
                    "packaging/lock.py"
                )
            if pin.key not in shared:
                pins.append(pin)
        if not pins:
            continue
        stage = work / f"cp{version.replace('.', '')}"
        requirements = write_requirements(pins, work / f"{stage.name}.txt")
        run([python, "-m", "pip", "install", "--target", stage,
             "--require-hashes", "--no-deps", "--no-compile", "--no-input",
             *pip_target_args(target, version),
             *pip_source_args(wheelhouse), "-r", requirements],
            step=f"pip install of the {target.name} wheels for "
                 f"Python {version}",
            env=pip_environment(wheelhouse))
        for key, dist_info in installed_dists(stage).items():
            if not is_version_specific(wheel_tags(dist_info)):
                shared.add(key)
        merge_tree(stage, site_packages, version)
        shutil.rmtree(stage)
    remove_scripts(site_packages)
    shutil.copyfile(SOURCE, site_packages / SOURCE.name)
    normalize_modes(site_packages)
    return site_packages, libc_floor(site_packages, target)


def libc_floor(site_packages: Path, target: Platform):
    """Return ("glibc" | "macos", version) the bundled wheels need."""
    floor: tuple[int, ...] = ()
    kind = "glibc" if target.sys_platform == "linux" else "macos"
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12),
              "manylinux2014": (2, 17)}
    for dist_info in installed_dists(site_packages).values():
        for tag in wheel_tags(dist_info):
            needs = []
            for plat in tag.split("-")[2].split("."):
                match = re.match(r"(?:manylinux|macosx)_(\d+)_(\d+)_", plat)
                if match:
                    needs.append((int(match[1]), int(match[2])))
                elif plat.rsplit("_", 1)[0] in legacy:
                    needs.append(legacy[plat.rsplit("_", 1)[0]])
            if needs:
                floor = max(floor, min(needs))
    return (kind, floor) if floor else None


def pyz_target(target: Platform, libc) -> dict:
    return {
        "pythons": tuple(tuple(int(part) for part in version.split("."))
                         for version in PYZ_PYTHONS),
        "floor": PYTHON_FLOOR,
        "sys_platform": target.sys_platform,
        "machines": target.machines,
        "libc": libc,
    }


def pyz_main_source(target: dict) -> bytes:
    text = PYZ_MAIN.read_text(encoding="utf-8")
    if text.count(TARGET_SENTINEL) != 1:
        raise BuildError(f"{PYZ_MAIN} must contain one line "
                         f"{TARGET_SENTINEL.strip()!r}")
    return text.replace(TARGET_SENTINEL, f"TARGET = {target!r}\n").encode()


def pyz_launcher_source(environment: bytes) -> bytes:
    """Return the launcher with shiv's settings written into BUILD."""
    text = PYZ_LAUNCHER.read_text(encoding="utf-8")
    if text.count(BUILD_SENTINEL) != 1:
        raise BuildError(f"{PYZ_LAUNCHER} must contain one line "
                         f"{BUILD_SENTINEL.strip()!r}")
    settings = json.loads(environment)
    return text.replace(BUILD_SENTINEL, f"BUILD = {settings!r}\n").encode()


def bytecode(name: str, source: bytes) -> bytes:
    """Compile source for this Python into a .pyc checked by source hash.

    zipimport then loads name.pyc instead of compiling name.py on every
    start, but only while the source matches it.  Other Pythons see a
    foreign magic number and compile the source as before.
    """
    import py_compile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, name)
        path.write_bytes(source)
        compiled = path.with_suffix(".pyc")
        py_compile.compile(
            str(path), str(compiled), dfile=name, doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
        return compiled.read_bytes()


# Name of the inner archive that contains shiv's site-packages entries.  It
# must match SITE_PACKAGES_ARCHIVE in packaging/pyz_launcher.py.
SITE_PACKAGES_ARCHIVE = "site-packages.zip"


def _normalized(info: zipfile.ZipInfo, date_time, compress_type):
    """Return a ZipInfo like info's with fixed time, system and mode."""
    mode = info.external_attr >> 16
    entry = zipfile.ZipInfo(info.filename, date_time)
    entry.create_system = 3  # Unix, so the modes apply
    entry.compress_type = compress_type
    perms = 0o755 if mode & stat.S_IXUSR else 0o644
    entry.external_attr = (stat.S_IFREG | perms) << 16
    return entry


def rewrite_pyz(raw: Path, output: Path, main_source: bytes) -> None:
    """Copy shiv's archive with our __main__.py and launcher added.

    Both also go in as bytecode for this Python, stored uncompressed, so
    that a start needs no zlib.  shiv's site-packages entries move into
    one inner archive: Python reads the whole table of contents of the
    outer archive on every start, in pure Python, and a few hundred
    entries cost about a millisecond.  The launcher unpacks the inner
    archive on the first run.  Entries keep shiv's order and timestamp
    and modes are normalized, so the result depends only on the inputs
    and the Python that runs this script.
    """
    with zipfile.ZipFile(raw) as source:
        sources = {
            "__main__.py": main_source,
            "_yt_launcher.py": pyz_launcher_source(
                source.read("environment.json")),
        }
        extra = dict(sources)
        for name, text in sources.items():
            extra[name + "c"] = bytecode(name, text)
        entries = [(info, source.read(info)) for info in source.infolist()
                   if info.filename not in extra]
    date_time = entries[0][0].date_time
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as packed:
        for info, data in entries:
            if info.filename.startswith("site-packages/"):
                packed.writestr(
                    _normalized(info, date_time, zipfile.ZIP_DEFLATED), data)
    extra[SITE_PACKAGES_ARCHIVE] = inner.getvalue()
    entries = [(info, data) for info, data in entries
               if not info.filename.startswith("site-packages/")]
    entries += [(zipfile.ZipInfo(name, date_time), data)
                for name, data in sorted(extra.items())]
    temporary = output.with_name(output.name + ".tmp")
    with temporary.open("wb") as stream:
        stream.write(f"#!{SHEBANG}\n".encode())
        with zipfile.ZipFile(stream, "w") as archive:
            for info, data in entries:
                compress_type = (zipfile.ZIP_STORED if info.filename in extra
                                 else zipfile.ZIP_DEFLATED)
                archive.writestr(
                    _normalized(info, date_time, compress_type), data)
    temporary.chmod(0o755)
    os.replace(temporary, output)


def build_pyz(python: Path, target: Platform, wheelhouse: Path | None,
              output: Path) -> dict:
    """Build a shiv pyz for ``target``; return facts for BUILDINFO."""
    log(f"staging the {target.name} wheels for Python "
        f"{PYZ_PYTHONS[0]} to {PYZ_PYTHONS[-1]}")
    site_packages, libc = stage_site_packages(python, target, wheelhouse)
    raw = site_packages.parent / "shiv.pyz"
    log(f"running shiv for {output.name}")
    env = dict(os.environ)
    env["SOURCE_DATE_EPOCH"] = str(source_date_epoch())
    run([venv_script("shiv"), "--site-packages", site_packages,
         "--entry-point", "yt:main", "--python", SHEBANG, "--reproducible",
         "--output-file", raw],
        step="shiv", env=env)
    target_info = pyz_target(target, libc)
    rewrite_pyz(raw, output, pyz_main_source(target_info))
    return {
        "platform": target.name,
        "pythons": f"{'.'.join(map(str, PYTHON_FLOOR))} to "
                   f"{PYZ_PYTHONS[-1]}",
        "libc": f"{libc[0]} {'.'.join(map(str, libc[1]))}" if libc
                else "any",
    }


# ------------------------------------------------------- yt-stdlib.pyz

STDLIB_MAIN = '''\
import sys

if sys.version_info < {floor!r}:
    sys.stderr.write(
        "yt-stdlib.pyz: error: needs Python {floor_text} or newer, not "
        + sys.version.split()[0] + "\\n"
    )
    sys.exit(1)

import yt  # noqa: E402

sys.exit(yt.main())
'''


def build_stdlib_pyz(output: Path) -> None:
    """Build yt.py alone into a zipapp with fixed timestamps and order.

    zipapp before Python 3.11 adds a directory's files in scandir order,
    so the entries are written to an in-memory zip first and zipapp only
    adds the interpreter line.
    """
    log(f"building {output.name} with zipapp")
    floor = PYTHON_FLOOR[:2]
    files = {
        "__main__.py": STDLIB_MAIN.format(
            floor=floor, floor_text=".".join(map(str, floor))).encode(),
        SOURCE.name: SOURCE.read_bytes(),
    }
    date_time = time.gmtime(source_date_epoch())[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in sorted(files.items()):
            entry = zipfile.ZipInfo(name, date_time)
            entry.create_system = 3
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(entry, data)
    buffer.seek(0)
    zipapp.create_archive(buffer, output, interpreter=SHEBANG)


# ----------------------------------------------------- the executable


PYINSTALLER_OPTIONS = (
    "--onefile", "--name", "yt", "--noconfirm", "--clean", "--log-level",
    "WARN",
    # Symbol tables are a third of the archive, which a one-file build
    # unpacks on every start (docs/benchmarks.md).
    "--strip",
    # keyring finds its backends through entry points in its metadata.
    "--copy-metadata", "keyring",
    "--collect-submodules", "keyring.backends",
    "--copy-metadata", "cryptography",
    "--hidden-import", "secretstorage",
    "--collect-submodules", "secretstorage",
    "--copy-metadata", "secretstorage",
    "--collect-submodules", "jeepney",
    "--hidden-import", "cryptography.hazmat.primitives.ciphers.aead",
    "--hidden-import", "cryptography.hazmat.primitives.kdf.scrypt",
    # PyInstaller's pkg_resources runtime hook imports setuptools on every
    # start, which yt never uses: leaving it out halves the start-up time
    # (docs/benchmarks.md).
    "--exclude-module", "setuptools",
    "--exclude-module", "pkg_resources",
    "--exclude-module", "_distutils_hack",
)


# The stock Linux bootloader extracts a one-file executable to $TMPDIR,
# /tmp, /var/tmp or /usr/tmp, and on a noexec mount it then fails to load
# libpython with a loader error. packaging/bootloader-noexec.patch makes it
# skip noexec candidates and, when none is left, print one line naming
# TMPDIR and exit 1. build.py builds that bootloader from the pinned
# PyInstaller sdist and installs it into .venv's PyInstaller package.

BOOTLOADER_QUERY = """\
import base64, importlib.metadata, json
import PyInstaller
name = f"PyInstaller/bootloader/{PyInstaller.PLATFORM}/run"
for file in importlib.metadata.distribution("pyinstaller").files or ():
    if str(file) == name and file.hash is not None:
        digest = base64.urlsafe_b64decode(file.hash.value + "==").hex()
        print(json.dumps({"path": str(file.locate()), "sha256": digest,
                          "platform": PyInstaller.PLATFORM}))
        break
"""


class BootloaderBuildError(Exception):
    """Failure to build the patched bootloader, with the cause as message."""


def bootloader_sdist_pin() -> Pin:
    """Return the sdist pin, checked against the pinned PyInstaller wheel."""
    pins = read_pins(BOOTLOADER_SDIST)
    wheel = [pin for pin in read_pins(BUILD_REQUIREMENTS)
             if pin.key == "pyinstaller"]
    if len(pins) != 1 or pins[0].key != "pyinstaller":
        raise BuildError(f"{BOOTLOADER_SDIST.relative_to(ROOT)} must pin "
                         "exactly one entry, pyinstaller==VERSION")
    if not wheel or wheel[0].version != pins[0].version:
        raise BuildError(
            f"{BOOTLOADER_SDIST.relative_to(ROOT)} pins pyinstaller "
            f"{pins[0].version} but {BUILD_REQUIREMENTS.relative_to(ROOT)} "
            f"pins {wheel[0].version if wheel else 'none'}; pin the same "
            "version in both"
        )
    if not set(pins[0].hashes) & set(wheel[0].hashes):
        raise BuildError(
            f"the hash in {BOOTLOADER_SDIST.relative_to(ROOT)} is not among "
            f"the pyinstaller hashes in "
            f"{BUILD_REQUIREMENTS.relative_to(ROOT)}"
        )
    return pins[0]


def run_bootloader_step(command, *, step: str, log_path: Path,
                        cwd=None, env=None) -> None:
    """Run one bootloader build step, appending its output to log_path."""
    command = [str(part) for part in command]
    with log_path.open("a", encoding="utf-8") as log_file:
        log_file.write(f"$ {' '.join(command)}\n")
        log_file.flush()
        try:
            result = subprocess.run(
                command, cwd=cwd, env=env, check=False, text=True,
                stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BootloaderBuildError(f"{step}: {exc}") from exc
    if result.returncode != 0:
        raise BootloaderBuildError(
            f"{step} failed with exit code {result.returncode}")


def fetch_bootloader_sdist(pin: Pin, wheelhouse: Path | None,
                           directory: Path, log_path: Path) -> Path:
    """Return the pinned sdist, from wheelhouse, cache or pip download."""
    name = f"pyinstaller-{pin.version}.tar.gz"
    expected = {value.split(":", 1)[1] for value in pin.hashes}
    candidates = [directory / name]
    if wheelhouse is not None:
        candidates.insert(0, wheelhouse / name)
    for path in candidates:
        if path.is_file() and sha256_file(path) in expected:
            return path
    if wheelhouse is not None:
        raise BootloaderBuildError(f"{name} is not in {wheelhouse}")
    requirements = write_requirements([pin], directory / "sdist.txt")
    # NOTE: pip prepares the sdist's metadata and so fetches and runs its
    # build backend (hatchling), which no hash pins. --require-hashes
    # checks only the sdist itself.
    run_bootloader_step(
        [sys.executable, "-m", "pip", "download", "--require-hashes",
         "--no-deps", "--no-binary=:all:", "--no-input", "--dest",
         directory, "-r", requirements],
        step=f"pip download {name}", log_path=log_path,
        env=pip_environment(None))
    path = directory / name
    if not path.is_file() or sha256_file(path) not in expected:
        raise BootloaderBuildError(f"pip download wrote no pinned {name}")
    return path


def build_patched_bootloader(wheelhouse: Path | None,
                             platform_name: str) -> Path:
    """Build the patched bootloader, or return it from build/bootloader."""
    pin = bootloader_sdist_pin()
    directory = BUILD / "bootloader"
    directory.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256()
    key.update(" ".join(pin.hashes).encode())
    key.update(BOOTLOADER_PATCH.read_bytes())
    key.update(platform_name.encode())
    cached = directory / key.hexdigest()[:16] / "run"
    if cached.is_file():
        return cached

    log_path = directory / "build.log"
    log_path.write_text("", encoding="utf-8")
    sdist = fetch_bootloader_sdist(pin, wheelhouse, directory, log_path)
    source = directory / "source"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir()
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(source, filter="data")
        else:  # Python 3.9 to 3.11.3: the pinned sdist is trusted
            archive.extractall(source)  # noqa: S202 (hash-checked)
    tree = source / f"pyinstaller-{pin.version}"
    run_bootloader_step(
        ["patch", "-p1", "--forward", "--batch", "-i", BOOTLOADER_PATCH],
        step=f"patch -p1 < {BOOTLOADER_PATCH.name}", log_path=log_path,
        cwd=tree)
    run_bootloader_step(
        [sys.executable, "./waf", "all"], step="waf all",
        log_path=log_path, cwd=tree / "bootloader")
    built = tree / "PyInstaller" / "bootloader" / platform_name / "run"
    if not built.is_file():
        raise BootloaderBuildError(f"waf all wrote no {built}")
    cached.parent.mkdir(exist_ok=True)
    shutil.copy2(built, cached)
    shutil.rmtree(source, ignore_errors=True)
    return cached


def install_file(source: Path, target: Path) -> None:
    """Replace target with a copy of source, mode 0755, atomically."""
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    partial.chmod(0o755)
    os.replace(partial, target)


def choose_bootloader(python: Path, wheelhouse: Path | None) -> str:
    """Install the patched or the stock bootloader into .venv.

    Returns "patched" or "stock" for BUILDINFO. The stock file is kept
    next to it as run.stock, checked against the wheel's RECORD hash, so
    a later build that cannot compile the patch restores it.
    """
    if not sys.platform.startswith("linux"):
        return "stock"
    result = run([python, "-c", BOOTLOADER_QUERY],
                 step="locating PyInstaller's bootloader")
    if not result.stdout.strip():
        raise BuildError("found no bootloader in the RECORD of .venv's "
                         "pyinstaller; run `build.py clean --all`")
    facts = json.loads(result.stdout)
    installed = Path(facts["path"])
    stock_copy = installed.with_name("run.stock")
    if sha256_file(installed) == facts["sha256"]:
        shutil.copy2(installed, stock_copy)
    try:
        patched = build_patched_bootloader(wheelhouse, facts["platform"])
    except (BootloaderBuildError, OSError, tarfile.TarError) as exc:
        print(f"build.py: warning: using PyInstaller's stock bootloader, "
              f"which fails when /tmp is noexec, because building the "
              f"patched one failed: {exc} (log: build/bootloader/build.log)",
              file=sys.stderr, flush=True)
        if sha256_file(installed) != facts["sha256"]:
            if not (stock_copy.is_file()
                    and sha256_file(stock_copy) == facts["sha256"]):
                raise BuildError(
                    f"{installed} is not PyInstaller's stock bootloader "
                    "and no stock copy is left; run `build.py clean --all`"
                ) from None
            install_file(stock_copy, installed)
        return "stock"
    install_file(patched, installed)
    log("installed the bootloader that skips noexec temporary directories")
    return "patched"


def build_exe(python: Path, output: Path) -> dict:
    """Build the PyInstaller one-file executable; return BUILDINFO facts."""
    log(f"running PyInstaller for {output.name}")
    work = BUILD / "pyinstaller"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run([python, "-m", "PyInstaller", *PYINSTALLER_OPTIONS,
         "--distpath", work / "dist", "--workpath", work / "work",
         "--specpath", work, SOURCE],
        step="PyInstaller", cwd=work)
    shutil.copy2(work / "dist" / EXE_NAME, output)
    info = {}
    if sys.platform.startswith("linux"):
        glibc = executable_glibc_floor(python, output, work / "unpacked")
        info["glibc"] = glibc
        log(f"{output.name} needs glibc {glibc} or newer "
            "(highest GLIBC_ symbol version it and its libraries use)")
    return info


UNPACK_SCRIPT = """\
import sys
from pathlib import Path
from PyInstaller.archive.readers import CArchiveReader

archive = CArchiveReader(sys.argv[1])
out = Path(sys.argv[2])
for number, name in enumerate(sorted(archive.toc)):
    data = archive.extract(name)
    if data and data[:4] == b"\\x7fELF":
        (out / str(number)).write_bytes(data)
"""


def executable_glibc_floor(python: Path, executable: Path,
                           unpacked: Path) -> str:
    """Return the highest GLIBC_x.y version needed by the executable.

    Covers the bootloader and every ELF file in its archive, read with
    PyInstaller's own archive reader in the build venv.
    """
    unpacked.mkdir(parents=True, exist_ok=True)
    run([python, "-c", UNPACK_SCRIPT, executable, unpacked],
        step="unpacking the executable to scan its libraries")
    versions = set(elf_needed_versions(executable.read_bytes()))
    for path in unpacked.iterdir():
        versions.update(elf_needed_versions(path.read_bytes()))
    glibc = [_parse_version(v[len("GLIBC_"):]) for v in versions
             if re.fullmatch(r"GLIBC_\d+(\.\d+)+", v)]
    if not glibc:
        raise BuildError(f"found no GLIBC_ symbol versions in {executable}")
    return ".".join(map(str, max(glibc)))


SHT_GNU_VERNEED = 0x6FFFFFFE


def elf_needed_versions(data: bytes) -> list[str]:
    """Return the symbol version names an ELF file needs (.gnu.version_r).

    This is the list ``objdump -p`` prints under "Version References".
    """
    if data[:4] != b"\x7fELF":
        return []
    is64 = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
        section_format = order + "IIQQQQIIQQ"
    else:
        shoff, = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
        section_format = order + "IIIIIIIIII"
    sections = [struct.unpack_from(section_format, data,
                                   shoff + index * shentsize)
                for index in range(shnum)]
    names = []
    for section in sections:
        _, kind, _, _, offset, _, link, count, _, _ = section
        if kind != SHT_GNU_VERNEED:
            continue
        strings = sections[link][4]
        entry = offset
        for _ in range(count):
            _, _, _, aux, next_entry = struct.unpack_from(
                order + "HHIII", data, entry)
            aux_offset = entry + aux
            while True:
                _, _, _, name, next_aux = struct.unpack_from(
                    order + "IHHII", data, aux_offset)
                end = data.index(b"\0", strings + name)
                names.append(data[strings + name:end].decode("ascii"))
                if not next_aux:
                    break
                aux_offset += next_aux
            if not next_entry:
                break
            entry += next_entry
    return names


# ---------------------------------------------------------- smoke tests


def smoke_test(command: list, step: str, version: str) -> None:
    """Run ``command --version`` and check that it prints ``version``."""
    with tempfile.TemporaryDirectory(prefix="yt-smoke-") as scratch:
        env = dict(os.environ)
        # A private extraction root and data dirs, so the smoke test
        # leaves nothing behind in the home directory.
        root = Path(scratch, "shiv")
        root.mkdir(mode=0o700)
        env.update(SHIV_ROOT=str(root), YT_CONFIG_DIR=scratch,
                   YT_DATA_DIR=scratch)
        try:
            result = subprocess.run(
                [*map(str, command), "--version"], env=env, check=False,
                capture_output=True, text=True, timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BuildError(f"smoke test of {step}: {exc}") from exc
    output = result.stdout + result.stderr
    if result.returncode != 0 or version not in output:
        print(output[-3000:], file=sys.stderr)
        raise BuildError(
            f"smoke test of {step} failed: `--version` exited "
            f"{result.returncode} and printed no {version!r}"
        )
    log(f"smoke test passed: {step} --version")


def smoke_test_pyz(pyz: Path, version: str) -> str:
    """Run the pyz under every Python found; return their versions."""
    interpreters = find_interpreters()
    if not interpreters:
        raise BuildError(
            f"found no python{PYZ_PYTHONS[0]} to python{PYZ_PYTHONS[-1]} "
            f"to test {pyz.name} with"
        )
    for python_version, interpreter in interpreters.items():
        smoke_test([interpreter, pyz],
                   f"{pyz.name} on Python {python_version}", version)
    return " ".join(interpreters)


def find_interpreters() -> dict[str, Path]:
    """Return python3.X executables that can run, by version.

    Looks on PATH, then in pyenv's versions directory, because pyenv shims
    on PATH only run the versions that pyenv has activated.
    """
    found = {}
    pyenv_root = Path(os.environ.get("PYENV_ROOT",
                                     Path.home() / ".pyenv"))
    for version in PYZ_PYTHONS:
        candidates = [shutil.which(f"python{version}")]
        candidates += sorted(pyenv_root.glob(
            f"versions/{version}.*/bin/python{version}"), reverse=True)
        for candidate in filter(None, candidates):
            try:
                probe = subprocess.run(
                    [str(candidate), "-c", "import sys; print(sys.version)"],
                    capture_output=True, check=False, timeout=30,
                )
            except (OSError, subprocess.TimeoutExpired):
                continue
            if probe.returncode == 0:
                found[version] = Path(candidate)
                break
    return found


# --------------------------------------------------- summary and sums


def write_sums(directory: Path, names: list[str]) -> None:
    lines = [f"{sha256_file(directory / name)}  {name}\n"
             for name in sorted(names)]
    (directory / SUMS_NAME).write_text("".join(lines), encoding="utf-8")


def write_buildinfo(path: Path, facts: dict[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n"
                            for key, value in facts.items()),
                    encoding="utf-8")


def human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size} B"
        size /= 1024
    return str(size)


def print_summary(dist: Path, names: list[str], facts: dict[str, str],
                  started: float) -> None:
    print(f"\nbuild.py: built in {time.monotonic() - started:.0f} s "
          f"into {dist}")
    for name in sorted(names):
        path = dist / name
        print(f"  {name:<24} {human_size(path.stat().st_size):>10}  "
              f"sha256 {sha256_file(path)}")
    if "exe_glibc" in facts:
        print(f"  glibc floor of {EXE_NAME}: {facts['exe_glibc']}")
    if "pyz_libc" in facts:
        print(f"  {PYZ_NAME}: CPython {facts['pyz_pythons']} on "
              f"{facts['pyz_platform']}, {facts['pyz_libc']}")


# ------------------------------------------------------------ commands


def command_env(args) -> int:
    check_build_python()
    ensure_venv(args.wheelhouse)
    log(f"ready: {venv_python()} -m pytest")
    return 0


def chosen_platform(name: str | None) -> Platform:
    """Return the --platform target, or the host's when none is given."""
    if name is not None:
        return PLATFORMS[name]
    target = host_platform()
    if target is None:
        raise BuildError(
            f"no pyz platform matches this host ({sys.platform} "
            f"{platform.machine()}); choose one with --platform "
            f"({', '.join(PLATFORMS)})"
        )
    return target


def command_build(args) -> int:
    started = time.monotonic()
    check_build_python()
    os.umask(0o022)
    version = source_version()
    target = chosen_platform(args.platform)
    native = target is host_platform()
    with_exe = native and not args.skip_exe
    python = ensure_venv(args.wheelhouse)
    dist = args.dist
    clear_artifacts(dist)

    facts = {"version": version,
             "build_python": platform.python_version(),
             "source_date_epoch": str(source_date_epoch())}
    pyz = dist / (PYZ_NAME if native else f"yt-{target.name}.pyz")
    pyz_facts = build_pyz(python, target, args.wheelhouse, pyz)
    facts.update({f"pyz_{key}": value for key, value in pyz_facts.items()})
    build_stdlib_pyz(dist / STDLIB_PYZ_NAME)
    if with_exe:
        facts["exe_bootloader"] = choose_bootloader(python, args.wheelhouse)
        exe_facts = build_exe(python, dist / EXE_NAME)
        facts.update({f"exe_{key}": value
                      for key, value in exe_facts.items()})

    if native:
        facts["pyz_tested_on"] = smoke_test_pyz(pyz, version)
    smoke_test([sys.executable, dist / STDLIB_PYZ_NAME], STDLIB_PYZ_NAME,
               version)
    if with_exe:
        smoke_test([dist / EXE_NAME], EXE_NAME, version)

    write_buildinfo(dist / BUILDINFO_NAME, facts)
    artifacts = sorted(path.name for path in dist.iterdir()
                       if is_artifact(path.name) and path.name != SUMS_NAME)
    write_sums(dist, artifacts)
    print_summary(dist, artifacts, facts, started)
    return 0


def is_artifact(name: str) -> bool:
    return name in (PYZ_NAME, EXE_NAME, STDLIB_PYZ_NAME, BUILDINFO_NAME,
                    SUMS_NAME) or re.fullmatch(r"yt-[a-z0-9_-]+\.pyz", name)


def clear_artifacts(dist: Path) -> None:
    """Remove the files an earlier build wrote, so dist/ stays consistent.

    Only names that a build writes are removed; other files stay.
    """
    dist.mkdir(parents=True, exist_ok=True)
    for path in dist.iterdir():
        if path.is_file() and is_artifact(path.name):
            path.unlink()


def command_download_wheels(args) -> int:
    """Fill a wheelhouse with every pinned wheel for every target Python."""
    check_build_python()
    directory = args.directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    target = PLATFORMS[args.platform] if args.platform else host_platform()
    if target is None:
        raise BuildError("no pyz platform matches this host; choose one "
                         "with --platform")
    native = target is host_platform()
    # pip runs from the interpreter of this script; its version does not
    # matter for pip download with --python-version.
    for version in PYZ_PYTHONS:
        sources = [RUNTIME_REQUIREMENTS]
        if native:
            sources += [BUILD_REQUIREMENTS, TEST_REQUIREMENTS]
        pins, seen = [], set()
        for path in sources:
            for pin in pins_for(path, target, version):
                if (pin.key, pin.version) not in seen:
                    seen.add((pin.key, pin.version))
                    pins.append(pin)
        requirements = write_requirements(
            pins, BUILD / "wheelhouse" / f"cp{version}.txt")
        log(f"downloading {len(pins)} wheels for Python {version} on "
            f"{target.name}")
        run([sys.executable, "-m", "pip", "download", "--dest", directory,
             "--require-hashes", "--no-deps", "--no-input",
             *pip_target_args(target, version), "-r", requirements],
            step=f"pip download for Python {version}",
            env=pip_environment(None))
    count = len(list(directory.glob("*.whl")))
    log(f"{directory} holds {count} wheels; build offline with "
        f"`python3 build.py --wheelhouse {directory}`")
    return 0


def command_clean(args) -> int:
    for path in BUILD.glob("*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name != ".lock":
            path.unlink()
    shutil.rmtree(DIST, ignore_errors=True)
    if args.all:
        shutil.rmtree(VENV, ignore_errors=True)
    log("removed build/ and dist/" + (" and .venv/" if args.all else ""))
    return 0


def check_build_python() -> None:
    if sys.version_info[:3] < PYTHON_FLOOR:
        raise BuildError(
            f"build.py needs Python {'.'.join(map(str, PYTHON_FLOOR))} "
            f"or newer, not {platform.python_version()}"
        )


# -------------------------------------------------------------- parser


def existing_directory(text: str) -> Path:
    path = Path(text).expanduser().resolve()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a directory")
    return path


def run_demo(args) -> int:
    """Run packaging/demo.py on the executable, or on yt.pyz without it."""
    dist = args.dist
    if (dist / EXE_NAME).exists() and not args.skip_exe:
        command = [str(dist / EXE_NAME)]
    else:
        command = [sys.executable, str(dist / PYZ_NAME)]
    print(f"\nDemo: {' '.join(command)} against the fake YouTrack server\n",
          flush=True)
    return subprocess.call(
        [sys.executable, str(PACKAGING / "demo.py"), *command]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build.py",
        description="Build dist/yt.pyz, dist/yt, dist/yt-stdlib.pyz and "
        "dist/SHA256SUMS from the pinned requirements in packaging/.",
    )
    parser.add_argument(
        "--wheelhouse", metavar="DIR", type=existing_directory,
        help="install only from the wheels in DIR (pip --no-index "
        "--find-links DIR), for offline builds; fill it with "
        "`build.py download-wheels DIR`",
    )
    parser.add_argument(
        "--platform", choices=sorted(PLATFORMS),
        help="build dist/yt-PLATFORM.pyz for another platform, without "
        "the executable or smoke tests (default: this host)",
    )
    parser.add_argument(
        "--dist", metavar="DIR", type=lambda text: Path(text).resolve(),
        default=DIST,
        help="write the artifacts to DIR (default: dist/ beside build.py)",
    )
    parser.add_argument(
        "--skip-exe", action="store_true",
        help="do not build the PyInstaller executable",
    )
    parser.add_argument(
        "--demo", action="store_true",
        help="after building, run dist/yt through a short session against "
        "the fake YouTrack server in tests/ (packaging/demo.py)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "build", help="build every artifact (the default)",
    ).set_defaults(handler=command_build)
    commands.add_parser(
        "env", help="only create .venv with the runtime, build and test "
        "requirements (run tests with .venv/bin/python -m pytest)",
    ).set_defaults(handler=command_env)
    download = commands.add_parser(
        "download-wheels", help="download every pinned wheel for every "
        "supported Python into DIR, for a later --wheelhouse DIR build",
    )
    download.add_argument("directory", metavar="DIR", type=Path)
    download.set_defaults(handler=command_download_wheels)
    clean = commands.add_parser("clean", help="remove build/ and dist/")
    clean.add_argument("--all", action="store_true",
                       help="also remove .venv/")
    clean.set_defaults(handler=command_clean)
    parser.set_defaults(handler=command_build)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with build_lock():
            status = args.handler(args)
        if status == 0 and args.demo:
            status = run_demo(args)
        return status
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build.py: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
