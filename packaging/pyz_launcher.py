"""Pick a private extraction directory for dist/yt.pyz, then run shiv.

build.py adds this module to the root of the archive. shiv's bootstrap
unpacks the bundled site-packages into ``$SHIV_ROOT/<name>_<build id>``
(default ``~/.shiv``), creates missing directories with the process umask
and trusts whatever it finds there on later runs. This module makes that
safe before handing over:

* ``SHIV_ROOT``, when set, must be a directory owned by the current user,
  not writable by group or others, on a filesystem that allows executables.
  If it is not, yt stops with one line that names ``SHIV_ROOT``.
* Otherwise the first usable of ``~/.shiv`` and ``$XDG_RUNTIME_DIR/yt-pyz``
  is used, created with mode 0700 and checked the same way. With neither (a
  read-only or missing home), a fresh ``tempfile.mkdtemp`` directory is
  used for this run only and removed at exit.
* Each run takes a shared ``flock`` on ``.<name>_<build id>_inuse`` while
  it runs. Extractions of other builds of the same archive name whose lock
  is free are removed, so upgrades do not pile up old copies.
* When this build is already extracted and neither ``environment.json``
  nor a ``SHIV_*`` variable asks for more than running ``yt:main``, the
  launcher adds the extracted site-packages to ``sys.path`` and calls
  ``yt.main()`` itself, as shiv's bootstrap would. That skips importing
  the bootstrap, which costs more than the rest of a warm start. The
  checks above run either way.

build.py copies the settings of ``environment.json`` into ``BUILD`` below,
so that a warm start parses no JSON; it also adds bytecode of this module
for the Python that built the archive. Modules that only a first run or an
error needs (json, shiv's bootstrap, zipfile, shutil, tempfile) are
imported where they are used.
"""

import contextlib
import os
import re
import stat
import sys

try:
    import fcntl
except ImportError:  # Windows: no flock, so no cleanup of old builds.
    fcntl = None

SHIV_ROOT = "SHIV_ROOT"
FIX = (
    "set SHIV_ROOT to a directory that only you can write, on a "
    "filesystem that allows executables"
)


# Settings environment.json must contain for the launcher to run yt:main
# itself. Any other value goes through shiv's bootstrap.
PLAIN_BUILD = {
    "always_write_cache": False,
    "entry_point": "yt:main",
    "extend_pythonpath": False,
    "no_modify": False,
    "preamble": None,
    "prepend_pythonpath": None,
    "script": None,
}


# build.py replaces the next line with the settings of environment.json.
BUILD = None


class LauncherError(Exception):
    """Raised when no safe extraction directory can be used."""


def main():
    archive = sys.argv[0]
    root = temporary = None
    try:
        try:
            root, temporary = choose_root()
            os.environ[SHIV_ROOT] = root
            site_packages = prepare_extraction(archive, root)
        except OSError as exc:
            raise LauncherError(
                "cannot unpack " + archive + " into " + str(root) + " ("
                + str(exc) + "); " + FIX
            ) from exc
        if site_packages is not None:
            run_extracted(site_packages)
        import _bootstrap

        _bootstrap.bootstrap()
    except LauncherError as exc:
        sys.stderr.write("yt.pyz: error: " + str(exc) + "\n")
        sys.exit(1)
    finally:
        if temporary is not None:
            import shutil

            shutil.rmtree(temporary, ignore_errors=True)


# ---------------------------------------------------------------- root


def choose_root():
    """Return (root, temporary dir to delete at exit or None)."""
    explicit = os.environ.get(SHIV_ROOT)
    if explicit:
        path = os.path.expanduser(explicit)
        if path.startswith("~"):
            raise LauncherError(
                "SHIV_ROOT=" + explicit + " names an unknown home "
                "directory; " + FIX)
        problem = private_dir_problem(path, create_parents=True)
        if problem:
            raise LauncherError(
                "SHIV_ROOT=" + explicit + " " + problem + "; " + FIX)
        return path, None
    for path in default_roots():
        if private_dir_problem(path) is None:
            return path, None
    import shutil
    import tempfile

    try:
        path = tempfile.mkdtemp(prefix="yt-pyz-")
    except OSError as exc:
        raise LauncherError(
            "no private directory to unpack into (home: unusable, "
            "temporary directory: " + exc.strerror + "); " + FIX
        ) from exc
    if is_noexec(path):
        shutil.rmtree(path, ignore_errors=True)
        raise LauncherError(
            "the home directory is unusable and the temporary directory "
            + os.path.dirname(path) + " is mounted noexec; " + FIX
        )
    return path, path


def default_roots():
    home = os.path.expanduser("~")
    if home != "~":
        yield os.path.join(home, ".shiv")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isabs(runtime_dir):
        yield os.path.join(runtime_dir, "yt-pyz")


def private_dir_problem(path, create_parents=False):
    """Create ``path`` with mode 0700 if missing; return what is unsafe."""
    try:
        if create_parents:
            os.makedirs(path, mode=0o700, exist_ok=True)
        else:
            os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return "cannot be created (" + exc.strerror + ")"
    try:
        info = os.stat(path)
    except OSError as exc:
        return "cannot be read (" + exc.strerror + ")"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        return "is owned by uid " + str(info.st_uid) + ", not by you"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            "is writable by group or others (fix: chmod go-w "
            + path + ")"
        )
    if not os.access(path, os.W_OK | os.X_OK):
        return "is not writable"
    if is_noexec(path):
        return "is on a filesystem mounted noexec"
    return None


def is_noexec(path):
    flag = getattr(os, "ST_NOEXEC", 0)
    try:
        return bool(os.statvfs(path).f_flag & flag)
    except (AttributeError, OSError):
        return False


# ---------------------------------------------------------- extraction


def prepare_extraction(archive, root):
    """Extract this build if needed and remove unused older builds.

    The shared lock taken here stays held until the process exits, which
    keeps other yt.pyz runs from deleting this extraction while it is in
    use. Return the site-packages directory when the launcher may run
    yt:main from it itself, else None.
    """
    if fcntl is None:
        return None
    resolved = os.path.realpath(archive)
    name = os.path.basename(resolved)
    settings = BUILD
    if settings is None:
        import json

        settings = json.loads(read_environment(archive, resolved))
    build_id = settings["build_id"]
    extraction = name + "_" + build_id
    target = os.path.join(root, extraction)
    site_packages = os.path.join(target, "site-packages")
    hold_in_use_lock(root, extraction)
    plain = all(settings.get(key) == value
                for key, value in PLAIN_BUILD.items()) and not any(
        key.startswith("SHIV_") and key != SHIV_ROOT for key in os.environ)
    if not plain or not os.path.exists(site_packages):
        import zipfile
        from pathlib import Path

        import _bootstrap
        from _bootstrap.environment import Environment

        with zipfile.ZipFile(archive) as bundle:
            env = Environment.from_json(
                bundle.read("environment.json").decode())
            if env.force_extract or not os.path.exists(site_packages):
                _bootstrap.extract_site_packages(
                    bundle, Path(target), env.compile_pyc,
                    env.compile_workers, env.force_extract,
                )
        # Extracted once above; keep shiv's bootstrap from doing it again.
        os.environ.pop(Environment.FORCE_EXTRACT, None)
    remove_old_builds(root, name, build_id)
    return site_packages if plain else None


def read_environment(archive, resolved):
    """Return environment.json of ``archive``, from the zip import cache.

    Python reads the archive's table of contents to import this module,
    so asking its zipimporter is cheaper than opening the archive again.
    """
    loader = globals().get("__loader__")
    with contextlib.suppress(OSError, AttributeError, TypeError):
        if os.path.realpath(loader.archive) == resolved:
            return loader.get_data("environment.json").decode()
    import zipfile

    with zipfile.ZipFile(archive) as bundle:
        return bundle.read("environment.json").decode()


def run_extracted(site_packages):
    """Run yt:main from ``site_packages`` as shiv's bootstrap does."""
    import site

    length = len(sys.path)
    index = first_sitedir_index() or length
    # addsitedir also processes .pth files, as in shiv.
    site.addsitedir(site_packages)
    sys.path = sys.path[:index] + sys.path[length:] + sys.path[index:length]
    import yt

    sys.exit(yt.main())


def first_sitedir_index():
    for index, part in enumerate(sys.path):
        base = os.path.basename(os.path.normpath(part))
        if os.path.splitext(base)[0] in ("site-packages", "dist-packages"):
            return index
    return None


def in_use_path(root, extraction):
    return os.path.join(root, "." + extraction + "_inuse")


def hold_in_use_lock(root, extraction):
    """Take a shared lock on the in-use file of ``extraction``; keep it."""
    path = in_use_path(root, extraction)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        if same_file(fd, path):
            return fd  # deliberately left open until the process exits
        os.close(fd)  # a cleaner unlinked it meanwhile; use the new file


def same_file(fd, path):
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def remove_old_builds(root, name, build_id):
    pattern = re.compile(re.escape(name) + r"_([0-9a-f]{64})")
    old_ids = set()
    with contextlib.suppress(OSError):
        for entry in os.listdir(root):
            match = pattern.fullmatch(entry.removesuffix(".tmp"))
            if match and match.group(1) != build_id:
                old_ids.add(match.group(1))
    for old_id in sorted(old_ids):
        remove_unused_build(root, name + "_" + old_id)


def remove_unused_build(root, extraction):
    """Delete one extraction unless a running process holds its lock."""
    path = in_use_path(root, extraction)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # in use
        if not same_file(fd, path):
            return
        import shutil

        target = os.path.join(root, extraction)
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(target + ".tmp", ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(root, "." + extraction + "_lock"))
        with contextlib.suppress(OSError):
            os.unlink(path)
    finally:
        os.close(fd)
