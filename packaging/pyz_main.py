# -*- coding: utf-8 -*-
# ruff: noqa: UP009, UP031 -- this file must also parse on Python 2.7
"""Entry point of dist/yt.pyz, installed as its __main__.py by build.py.

It checks that this interpreter can load the bundled binary wheels before
anything else is imported, so an unsupported Python prints one line and
exits 1 instead of showing an ImportError traceback. The syntax stays valid
for Python 2.7 and early Python 3 for the same reason: the check must run
on the interpreters it rejects. The module ``platform`` is imported only
where ``sys`` and ``os`` do not tell enough (macOS versions, messages), as
importing it costs more than the rest of the check.
"""

import os
import sys

# build.py replaces the next line with the target of this build: the
# supported (major, minor) versions, the lowest full version, sys.platform,
# the accepted platform.machine() values and the C library floor.
TARGET = None


def _version_tuple(text):
    parts = []
    for part in text.split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _libc_matches(libc):
    if libc is None:
        return True
    kind, floor = libc
    if kind == "glibc":
        try:
            name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        except (AttributeError, ValueError, OSError):
            return False
        return name == "glibc" and _version_tuple(version) >= floor
    if kind == "macos":
        import platform

        return _version_tuple(platform.mac_ver()[0]) >= floor
    return False


def _describe_target(target):
    pythons = target["pythons"]
    text = "CPython %s to %s on %s %s" % (
        ".".join(str(part) for part in target["floor"]),
        ".".join(str(part) for part in pythons[-1]),
        target["sys_platform"],
        "/".join(target["machines"]),
    )
    if target["libc"] is not None:
        kind, floor = target["libc"]
        text += " with %s %s or newer" % (
            kind, ".".join(str(part) for part in floor))
    return text


def _implementation():
    implementation = getattr(sys, "implementation", None)
    if implementation is None:  # before Python 3.3
        import platform

        return platform.python_implementation()
    return {"cpython": "CPython", "pypy": "PyPy"}.get(
        implementation.name, implementation.name)


def _machine():
    try:
        return os.uname()[4]
    except AttributeError:  # Windows
        import platform

        return platform.machine()


def _describe_interpreter():
    import platform

    text = "%s %s on %s %s" % (
        platform.python_implementation(),
        platform.python_version(),
        sys.platform,
        platform.machine(),
    )
    glibc = getattr(os, "confstr", lambda name: None)
    try:
        libc = glibc("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        libc = None
    if libc:
        text += " with " + libc
    return text


def _check_interpreter(target):
    supported = (
        _implementation() == "CPython"
        and tuple(sys.version_info[:2]) in target["pythons"]
        and tuple(sys.version_info[:3]) >= target["floor"]
        and sys.platform == target["sys_platform"]
        and _machine() in target["machines"]
        and _libc_matches(target["libc"])
    )
    if not supported:
        sys.stderr.write(
            "yt.pyz: error: this build needs %s, but this is %s; run it "
            "with a supported python3, or use yt-stdlib.pyz or the yt "
            "executable\n" % (_describe_target(target),
                              _describe_interpreter())
        )
        sys.exit(1)


_check_interpreter(TARGET)

import _yt_launcher  # noqa: E402

_yt_launcher.main()
