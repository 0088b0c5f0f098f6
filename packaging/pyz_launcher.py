"""Pick a private extraction directory for dist/yt.pyz, then run shiv.

build.py adds this module to the root of the archive. shiv's bootstrap
unpacks the bundled site-packages into ``$SHIV_ROOT/<name>_<build id>``
(default ``~/.shiv``), creates missing directories with the process umask
and trusts whatever it finds there on later runs. This module makes that
safe before handing over:

* ``SHIV_ROOT``, when set, must be a directory owned by the current user,
  not writable by group or others, on a filesystem that allows executables.
  Missing directories are created with mode 0700. Each directory above it,
  after resolving symlinks, must be owned by root or the current user. It
  must also not be writable by group or others unless it has the sticky
  bit, so that no other user can rename the root away and put their own
  directory in its place. This check is modelled on OpenSSH's StrictModes.
  If any check fails, yt stops with one line that names ``SHIV_ROOT``.
* Otherwise the first usable of ``~/.shiv`` and ``$XDG_RUNTIME_DIR/yt-pyz``
  is used, created with mode 0700 and checked the same way. Nothing is
  created below an unsafe directory. With neither (for example a read-only,
  missing or world-writable home), a fresh ``tempfile.mkdtemp`` directory
  is used for this run only and removed at exit. Its parents are checked
  too. A default directory that exists but fails a safety check gets one
  ``yt.pyz: note:`` line on stderr per run, naming the problem and the
  directory used instead. A missing, read-only or noexec one does not.
* The root is used by its resolved path, the one that was checked.
* Each run takes a shared ``flock`` on ``.<name>_<build id>_inuse`` while
  it runs. Extractions of other builds of the same archive name whose lock
  is free are removed, so upgrades do not pile up old copies.
* When this build is already extracted and neither ``environment.json``
  nor a ``SHIV_*`` variable asks for more than running ``yt:main``, the
  launcher adds the extracted site-packages to ``sys.path`` and calls
  ``yt.main()`` itself, as shiv's bootstrap would. That skips importing
  the bootstrap, which costs more than the rest of a warm start. The
  checks above run either way.
* If that import of yt fails and a bundled file is missing from the
  extraction or differs from the archive, the extraction is removed and
  unpacked again once. Other import failures keep their traceback. A
  damaged archive stops yt with one error line that names the archive
  and SHA256SUMS. An extraction that fails on a damaged archive or an
  OSError removes its partial directory.

build.py copies the settings of ``environment.json`` into ``BUILD`` below,
so that a warm start parses no JSON; it also adds bytecode of this module
for the Python that built the archive. Modules that only a first run or an
error needs (json, shiv's bootstrap, zipfile, zlib, shutil, tempfile,
importlib) are imported where they are used.
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
    "set SHIV_ROOT to a directory that only you can write and no other "
    "user can replace, on a filesystem that allows executables"
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
# The inner archive of build.py that contains the bundled site-packages.
SITE_PACKAGES_ARCHIVE = "site-packages.zip"
# The module of the entry point yt:main, as build.py bundles it.
ENTRY_MODULE_FILE = "yt.py"
# Exceptions that importing yt:main from a damaged extraction raises.
# ImportError is for a missing file, SyntaxError or AttributeError for a
# truncated one, ValueError for null bytes (SyntaxError from Python 3.12)
# and ValueError or EOFError for damaged bytecode.
IMPORT_ERRORS = (ImportError, SyntaxError, AttributeError, ValueError,
                 EOFError)


class LauncherError(Exception):
    """Raised for a failure that yt.pyz reports as one line, with status 1."""


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
            run_extracted(archive, site_packages)
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
        root, problem, _ = private_dir(path, create_parents=True)
        if problem:
            raise LauncherError("SHIV_ROOT=" + explicit + " " + problem)
        return root, None
    rejected = []
    for path in default_roots():
        root, problem, unsafe = private_dir(path)
        if problem is None:
            report_rejected(rejected, root + " instead")
            return root, None
        if unsafe:
            rejected.append((root, problem))
    path = make_temporary_root()
    report_rejected(rejected, path + " for this run only")
    return path, path


def report_rejected(rejected, replacement):
    """Write one note per unsafe default root that ``replacement`` replaces.

    Without it, an unsafe ~/.shiv would silently cost an extraction into a
    temporary directory on every run.
    """
    for root, problem in rejected:
        sys.stderr.write(
            "yt.pyz: note: " + root + " " + problem + "; using "
            + replacement + "\n")


def make_temporary_root():
    """Create and check a private directory for this run only."""
    import shutil
    import tempfile

    try:
        path = os.path.realpath(tempfile.mkdtemp(prefix="yt-pyz-"))
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
    problem = ancestor_problem(path)
    if problem:
        shutil.rmtree(path, ignore_errors=True)
        raise LauncherError(
            "the home directory is unusable and the temporary directory "
            + path + " " + problem
        )
    return path


def default_roots():
    home = os.path.expanduser("~")
    if home != "~":
        yield os.path.join(home, ".shiv")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isabs(runtime_dir):
        yield os.path.join(runtime_dir, "yt-pyz")


def private_dir(path, create_parents=False):
    """Create ``path`` with mode 0700 if missing, then check that it is safe.

    Return (``path`` resolved by os.path.realpath, problem, unsafe). The
    problem is None when the directory is safe to unpack into, else what
    is wrong and how to fix it. ``unsafe`` is True when the directory
    existed before this call and failed a safety check (type, owner, mode
    or parents) rather than being missing, read-only or noexec. The caller
    must use the resolved path, which is the one checked. Nothing is
    created below an unsafe directory.
    """
    real = os.path.realpath(path)
    try:
        info = os.lstat(real)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        return real, "cannot be read (" + exc.strerror + "); " + FIX, False
    existed = info is not None
    if info is None:
        problem = ancestor_problem(real)
        if problem:
            return real, problem, False
        try:
            make_private_dir(real, create_parents)
        except OSError as exc:
            return (real, "cannot be created (" + exc.strerror + "); " + FIX,
                    False)
        # Resolve again, because in a sticky directory another user may
        # have created a symlink where a missing directory was.
        real = os.path.realpath(real)
        try:
            info = os.lstat(real)
        except OSError as exc:
            return real, "cannot be read (" + exc.strerror + "); " + FIX, False
    problem = root_problem(real, info) or ancestor_problem(real)
    if problem:
        return real, problem, existed
    return real, usability_problem(real), False


def make_private_dir(path, create_parents):
    """Create ``path``, and its missing parents if asked, with mode 0700.

    A directory that already exists is left as it is.
    """
    if not create_parents:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        return
    # os.makedirs gives missing parents the mode 0o777 minus the umask,
    # which may leave them group-writable and so fail ancestor_problem.
    umask = os.umask(0o077)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass  # A file is in the way, which root_problem reports.
    finally:
        os.umask(umask)


def root_problem(path, info):
    """Return why directory ``path`` with lstat ``info`` is unsafe, or None."""
    mode = info.st_mode
    if not stat.S_ISDIR(mode):
        return "is not a directory; " + FIX
    writable_by_others = mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable_by_others and mode & stat.S_ISVTX:
        # A shared directory such as /tmp, usually owned by root, where
        # "chmod go-w" would break every other user of it.
        return (
            "is a shared directory (writable by group or others, with the "
            "sticky bit); create a private directory inside it and set "
            "SHIV_ROOT to that directory: mkdir -m 700 "
            + os.path.join(path, "yt-$USER")
        )
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        return "is owned by uid " + str(info.st_uid) + ", not by you; " + FIX
    if writable_by_others:
        return (
            "is writable by group or others (fix: chmod go-w " + path
            + "); " + FIX
        )
    return None


def usability_problem(path):
    """Return why the safe directory ``path`` cannot be used, or None."""
    if not os.access(path, os.W_OK | os.X_OK):
        return "is not writable; " + FIX
    if is_noexec(path):
        return "is on a filesystem mounted noexec; " + FIX
    return None


def ancestor_problem(path):
    """Return why another user could replace directory ``path``, or None.

    The check is modelled on OpenSSH's StrictModes. Every directory above
    ``path`` up to / must be owned by root or the current user. It must
    also not be writable by group or others unless it has the sticky bit,
    which stops them from renaming entries they do not own. ``path`` must
    already be resolved by os.path.realpath. Missing directories are
    skipped, so the check can run before ``path`` is created.
    """
    if not hasattr(os, "geteuid"):
        return None  # Windows has no POSIX owners or mode bits to check.
    owners = (0, os.geteuid())
    parent = os.path.dirname(path)
    while True:
        try:
            info = os.lstat(parent)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            return (
                "cannot be checked because " + parent + " cannot be read ("
                + exc.strerror + "); " + FIX
            )
        if info is not None and info.st_uid not in owners:
            return (
                "is unsafe because " + parent + " is owned by uid "
                + str(info.st_uid) + ", not by root or you, so that user "
                "could replace " + path + "; " + FIX
            )
        if (info is not None
                and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
                and not info.st_mode & stat.S_ISVTX):
            return (
                "is unsafe because " + parent + " is writable by group or "
                "others without the sticky bit, so another user could "
                "replace " + path + " (fix: chmod go-w " + parent + "); "
                + FIX
            )
        grandparent = os.path.dirname(parent)
        if grandparent == parent:
            return None
        parent = grandparent


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
        unpack(archive, target)
    remove_old_builds(root, name, build_id)
    return site_packages if plain else None


def unpack(archive, target):
    """Extract the bundled site-packages into ``target`` unless present.

    shiv's bootstrap writes into ``<target>.tmp`` and renames it to
    ``target`` only after the last file, so a later run never finds a
    partial ``target``. An extraction that fails on a damaged archive or
    an OSError also removes the ``<target>.tmp`` it leaves, under shiv's
    lock.
    """
    from pathlib import Path

    import _bootstrap
    from _bootstrap.environment import Environment

    site_packages = os.path.join(target, "site-packages")
    try:
        with open_archive(archive) as bundle:
            env = Environment.from_json(
                bundle.read("environment.json").decode())
            if env.force_extract or not os.path.exists(site_packages):
                _bootstrap.extract_site_packages(
                    site_packages_archive(bundle), Path(target),
                    env.compile_pyc, env.compile_workers, env.force_extract,
                )
    except (LauncherError, OSError):
        remove_partial_extraction(target)
        raise
    # Extracted once above; keep shiv's bootstrap from doing it again.
    os.environ.pop(Environment.FORCE_EXTRACT, None)


@contextlib.contextmanager
def open_archive(archive):
    """Open ``archive`` as a ZipFile, reporting damage as LauncherError.

    This covers damage found while the caller reads from the archive,
    such as a CRC mismatch in the inner site-packages archive.
    """
    import zipfile
    import zlib

    damage = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)
    try:
        with zipfile.ZipFile(archive) as bundle:
            yield bundle
    except damage as exc:
        raise LauncherError(
            os.path.realpath(archive) + " is damaged (" + describe(exc)
            + "); download it again and check it against SHA256SUMS"
        ) from exc


def describe(exc):
    """Return the class name and first line of the message of ``exc``."""
    lines = str(exc).splitlines()
    if not lines:
        return type(exc).__name__
    return type(exc).__name__ + ": " + lines[0]


@contextlib.contextmanager
def extraction_lock(target):
    """Hold the exclusive lock that shiv's bootstrap takes to extract."""
    name = "." + os.path.basename(target) + "_lock"
    fd = os.open(os.path.join(os.path.dirname(target), name),
                 os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def remove_partial_extraction(target):
    with contextlib.suppress(OSError), extraction_lock(target):
        remove_path(target + ".tmp")


def site_packages_archive(bundle):
    """Return the zip archive that contains the site-packages entries.

    build.py packs them into one inner archive, so that Python reads a
    short table of contents on every start.  shiv's bootstrap extracts
    the entries under site-packages/ from whichever archive it gets.
    """
    if SITE_PACKAGES_ARCHIVE not in bundle.namelist():
        return bundle
    import io
    import zipfile

    return zipfile.ZipFile(io.BytesIO(bundle.read(SITE_PACKAGES_ARCHIVE)))


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


def run_extracted(archive, site_packages):
    """Run yt:main from ``site_packages`` as shiv's bootstrap does.

    If importing yt fails, the extraction is repaired and the import tried
    once more. Exceptions that yt.main() raises are not caught here.
    """
    import site

    length = len(sys.path)
    index = first_sitedir_index() or length
    # addsitedir also processes .pth files, as in shiv.
    site.addsitedir(site_packages)
    sys.path = sys.path[:index] + sys.path[length:] + sys.path[index:length]
    error = None
    try:
        entry_point = import_entry_point(site_packages)
    except IMPORT_ERRORS as exc:
        error = exc
    if error is not None:
        entry_point = import_after_repair(archive, site_packages, error)
    sys.exit(entry_point())


def import_entry_point(site_packages):
    """Import yt from ``site_packages`` and return yt.main."""
    path = os.path.join(site_packages, ENTRY_MODULE_FILE)
    if not os.path.isfile(path):
        # Without this check, the import could find another module named
        # yt further down sys.path.
        raise ModuleNotFoundError(path + " is missing", name="yt", path=path)
    import yt

    return yt.main


def import_after_repair(archive, site_packages, error):
    """Repair the extraction that failed with ``error``, then return yt.main.

    The extraction is replaced only if a bundled file is missing or
    differs. The import is retried in any case, because another run may
    have just replaced it. If the retry fails too, the extraction matches
    the archive, so the failure is not damage and its exception
    propagates with the traceback.
    """
    target = os.path.dirname(site_packages)
    try:
        replace_damaged_extraction(archive, target)
    except OSError as exc:
        raise LauncherError(
            "cannot import yt from the unpacked copy in " + target + " ("
            + describe(error) + "), and replacing it failed ("
            + describe(exc) + "); remove it with: rm -r " + target
        ) from exc
    import importlib

    # Drop the directory listings that the import system cached before
    # the extraction was replaced, and modules imported from it, such as
    # a truncated yt.py that imported without main.
    importlib.invalidate_caches()
    prefix = target + os.sep
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(prefix):
            del sys.modules[name]
    return import_entry_point(site_packages)


def replace_damaged_extraction(archive, target):
    """Remove ``target`` and extract it again if it differs from ``archive``.

    The check and removal run under shiv's extraction lock, so when several
    runs find the same damage, the first replaces the extraction and the
    others find it whole.
    """
    with extraction_lock(target):
        damaged = find_damaged_file(archive, target) is not None
        if damaged:
            remove_path(target)
    if damaged:
        unpack(archive, target)


def find_damaged_file(archive, target):
    """Return the first bundled file missing or different in ``target``.

    Files are compared with the CRC-32 in the archive. Return None when all
    match. Files that Python or yt add to the extraction are not checked.
    """
    import zlib

    with open_archive(archive) as bundle:
        entries = site_packages_archive(bundle).infolist()
    for info in entries:
        if info.is_dir() or not info.filename.startswith("site-packages"):
            continue
        path = os.path.join(target, *info.filename.split("/"))
        crc = 0
        try:
            with open(path, "rb") as file:
                for chunk in iter(lambda: file.read(1 << 16), b""):
                    crc = zlib.crc32(chunk, crc)
        except OSError:
            return info.filename
        if crc != info.CRC:
            return info.filename
    return None


def remove_path(path):
    """Delete ``path``, a directory tree or any other file, if it exists."""
    import shutil

    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


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
