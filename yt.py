#!/usr/bin/env python3
"""yt: a command-line client for JetBrains YouTrack for locked-down hosts.

Every command is recorded in an HMAC-chained audit log.  Credentials are
kept in the system keyring or an AES-256-GCM encrypted file, and token
expiry is checked.  Disabled TLS verification is warned about and
recorded, and everything printed or logged passes through one masking
function.

The module needs only the standard library for most commands.  The two
optional dependencies, ``cryptography`` (encrypted credential file) and
``keyring`` (system keyring), are imported on the code paths that use them,
and so are ``ssl`` and ``http.client``: ``yt --help``, ``yt --version`` and
``yt security audit`` start without them.
"""

from __future__ import annotations

# Start-up time matters for a command-line tool, so argparse, base64,
# hashlib, hmac, json, logging, secrets and threading are imported in the
# functions that use them.  docs/benchmarks.md has the figures.  _thread
# is built into the interpreter and gives the same lock as threading.Lock.
import _thread
import contextlib
import datetime as dt
import os
import re
import stat
import sys
import time

__all__ = ["main", "mask", "__version__"]
__version__ = "0.1.0"

# ##### Constants and paths ###############################################

APP_NAME = "youtrack-cli"
KEYRING_SERVICE = "youtrack-cli"
MASK = "***MASKED***"
USER_AGENT = f"yt/{__version__}"
PAGE_SIZE = 100
MAX_REDIRECTS = 5
MAX_RETRIES = 3
RETRY_AFTER_CAP = 30.0
# Largest response body accepted, after decompression: a page of issues
# is far smaller, so a bigger one is a server or proxy fault.
MAX_RESPONSE_BYTES = 64 * 2**20
# A whole response body must arrive within this many YOUTRACK_TIMEOUTs.
RESPONSE_DEADLINE_FACTOR = 4
KEYRING_TIMEOUT = 5.0
SSL_DISABLED_WARNING = (
    "SSL verification is DISABLED. This is insecure and should only be "
    "used in development."
)
TLS_VARIABLES = (
    "YOUTRACK_VERIFY_SSL",
    "YOUTRACK_CA_BUNDLE",
    "YOUTRACK_CERT_SHA256",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
IS_WINDOWS = os.name == "nt"


class _Logger:
    """Stand-in for the "yt" logging.Logger that imports logging when used.

    Importing logging (with traceback, string and threading) took about a
    fifth of the time yt took to import, and most commands log nothing.
    main() passes its handler to configure().  The first other attribute
    looked up creates the real logger with that handler, and every
    attribute then comes from it.
    """

    def __init__(self):
        self._logger = None
        self._handler = None
        self._debug = False

    def configure(self, handler, debug: bool) -> None:
        """Make handler the only handler; show DEBUG records if debug."""
        self._handler, self._debug = handler, debug
        if self._logger is not None:
            self._install()

    def _install(self) -> None:
        import logging

        self._logger.handlers[:] = [self._handler]
        self._logger.setLevel(logging.DEBUG if self._debug else NOTICE)
        self._logger.propagate = False

    def __getattr__(self, name):
        # Python calls this only for names the class lacks: the Logger's.
        if self._logger is None:
            import logging

            logging.addLevelName(NOTICE, "NOTICE")
            self._logger = logging.getLogger("yt")
            if self._handler is not None:
                self._install()
        return getattr(self._logger, name)


log = _Logger()


class _LazyPattern:
    """A regular expression compiled when first used instead of at import.

    Compiling yt's patterns took most of the time that running this
    module's body takes, and yt --help uses none of them.  The first use
    of a method such as search
    stores the compiled pattern's bound method on this object, so later
    calls cost the same as on a compiled pattern.
    """

    def __init__(self, pattern: str):
        self.pattern = pattern

    def __getattr__(self, name):
        method = getattr(re.compile(self.pattern), name)
        setattr(self, name, method)
        return method


def utc_now() -> dt.datetime:
    """Return the current time as an aware UTC datetime.

    Tests replace this function to fix "now" for expiry and audit checks.
    """
    return dt.datetime.now(dt.timezone.utc)


def _home() -> str:
    return os.path.expanduser("~")


def config_dir(env=None) -> str:
    """Return the configuration directory (config file, key files)."""
    env = os.environ if env is None else env
    if env.get("YT_CONFIG_DIR"):
        return env["YT_CONFIG_DIR"]
    if IS_WINDOWS and env.get("APPDATA"):
        return os.path.join(env["APPDATA"], APP_NAME)
    base = env.get("XDG_CONFIG_HOME") or os.path.join(_home(), ".config")
    return os.path.join(base, APP_NAME)


def data_dir(env=None) -> str:
    """Return the data directory (audit log, encrypted credentials)."""
    env = os.environ if env is None else env
    if env.get("YT_DATA_DIR"):
        return env["YT_DATA_DIR"]
    if IS_WINDOWS and env.get("LOCALAPPDATA"):
        return os.path.join(env["LOCALAPPDATA"], APP_NAME)
    base = env.get("XDG_DATA_HOME") or os.path.join(
        _home(), ".local", "share"
    )
    return os.path.join(base, APP_NAME)


def config_file(env=None) -> str:
    return os.path.join(config_dir(env), ".env")


# ##### Errors ############################################################


class YtError(Exception):
    """Base of every error shown to the user; exit code 1."""

    exit_code = 1


class UsageError(YtError):
    """Raised for invalid arguments or settings; exit code 2."""

    exit_code = 2


class AuthError(YtError):
    """Raised for missing or rejected credentials; exit code 3."""

    exit_code = 3


class NotFoundError(YtError):
    """Raised when the server has no such issue, project or path; exit 4."""

    exit_code = 4


class NetworkError(YtError):
    """Raised for connection, DNS, timeout and TLS failures; exit code 5."""

    exit_code = 5


class CertificateError(NetworkError):
    """Raised when the server certificate fails verification or does not
    match the pin; exit code 5. It is never retried, because a retry
    would get the same certificate.
    """


class AuditIntegrityError(YtError):
    """Raised when the audit log fails verification; exit code 6."""

    exit_code = 6


class AuditStateError(YtError):
    """Raised when audit entries were written but the state file was not."""


class DamagedKeyError(YtError):
    """Raised when a key file exists but does not contain a 32-byte key."""


class MissingDependencyError(YtError):
    """Raised when an optional package this build lacks is needed."""


def _importable(name: str) -> bool:
    """Import module name if possible; return whether that worked."""
    import importlib

    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def require_module(name: str, purpose: str):
    """Import an optional dependency or raise MissingDependencyError."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        package = name.split(".")[0]
        missing = getattr(exc, "name", None)
        if missing is not None and missing.split(".")[0] == package:
            raise MissingDependencyError(
                f"{purpose} needs the Python package '{package}', which "
                f"this build does not include; use the full build (yt.pyz "
                f"or the yt executable) or run: pip install {package}"
            ) from None
        # The package is there, but it or a module it needs fails to load.
        detail = " ".join(str(exc).split())[:200]
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{package}', which is "
            f"installed but cannot be loaded ({type(exc).__name__}: "
            f"{detail}); reinstall it, or for yt.pyz run it once with "
            f"SHIV_FORCE_EXTRACT=1 to unpack it again"
        ) from None


# ##### Settings ##########################################################

_BOOLEANS = {
    "true": True, "1": True, "yes": True, "on": True,
    "false": False, "0": False, "no": False, "off": False,
}


def parse_bool(name: str, value: str) -> bool:
    try:
        return _BOOLEANS[value.strip().lower()]
    except KeyError:
        raise UsageError(
            f"invalid value {value!r} for {name}: expected one of "
            f"true/false/1/0/yes/no/on/off"
        ) from None


def _int_in_range(low: int, high: int):
    def parse(name: str, value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise UsageError(
                f"invalid value {value!r} for {name}: expected a whole "
                f"number from {low} to {high}"
            )
        return number

    return parse


def parse_timeout(name: str, value: str) -> float:
    try:
        seconds = float(value.strip())
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise UsageError(
            f"invalid value {value!r} for {name}: expected seconds, a "
            f"number greater than 0 and at most 3600"
        )
    return seconds


def parse_base_url(name: str, value: str) -> str:
    """Validate a YouTrack base URL and return it without a trailing /."""
    from urllib.parse import urlsplit

    url = value.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(
            f"invalid value {value!r} for {name}: {exc}; expected a URL "
            f"such as https://youtrack.example.com or "
            f"https://host/youtrack"
        ) from None
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = "the scheme must be http or https"
    elif not parts.hostname:
        problem = "the host name is missing"
    elif parts.username is not None or parts.password is not None:
        problem = "credentials in the URL are not allowed (use yt auth login)"
    elif parts.query or parts.fragment:
        problem = "a query or fragment is not allowed"
    elif any(ch.isspace() or ord(ch) < 32 for ch in url):
        problem = "white space or control characters are not allowed"
    if problem:
        shown = mask(value) if parts.username or parts.password else value
        raise UsageError(
            f"invalid value {shown!r} for {name}: {problem}; expected a "
            f"URL such as https://youtrack.example.com or "
            f"https://host/youtrack"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/api"):
        path = path[: -len("/api")]
    netloc = parts.hostname
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{path}"


def parse_fingerprints(name: str, value: str) -> tuple:
    """Parse SHA-256 pins: hex, colons optional, separated by , or space."""
    pins = []
    for item in re.split(r"[,\s]+", value.strip()):
        if not item:
            continue
        digits = item.lower()
        if digits.startswith("sha256:") or digits.startswith("sha256/"):
            digits = digits[7:]
        digits = digits.replace(":", "")
        if not re.fullmatch(r"[0-9a-f]{64}", digits):
            raise UsageError(
                f"invalid value {item!r} in {name}: expected a SHA-256 "
                f"fingerprint, 64 hex digits with optional colons "
                f"(openssl x509 -noout -fingerprint -sha256 -in cert.pem)"
            )
        pins.append(digits)
    if not pins:
        raise UsageError(f"invalid value {value!r} for {name}: it is empty")
    return tuple(pins)


def parse_path(name: str, value: str) -> str:
    path = os.path.expanduser(value.strip())
    if not os.path.exists(path):
        raise UsageError(
            f"invalid value {value!r} for {name}: no such file or "
            f"directory; point it at a PEM file or a directory of CA "
            f"certificates"
        )
    return path


def parse_text(name: str, value: str) -> str:
    return value


class Setting:
    """One known setting: its parser, default and whether it is secret."""

    def __init__(self, name, parse, default=None, secret=False, doc=""):
        self.name = name
        self.parse = parse
        self.default = default
        self.secret = secret
        self.doc = doc


SETTINGS = {
    s.name: s
    for s in (
        Setting("YOUTRACK_BASE_URL", parse_base_url, None, False,
                "server URL, may include a path prefix"),
        Setting("YOUTRACK_TOKEN", parse_text, None, True,
                "token; when set it wins over stored credentials"),
        Setting("YOUTRACK_VERIFY_SSL", parse_bool, "true", False,
                "false disables certificate verification"),
        Setting("YOUTRACK_CA_BUNDLE", parse_path, None, False,
                "PEM file or directory of extra trusted CAs"),
        Setting("YOUTRACK_CERT_SHA256", parse_fingerprints, None, False,
                "SHA-256 fingerprint(s) of the server certificate"),
        Setting("YOUTRACK_TIMEOUT", parse_timeout, "30", False,
                "seconds for connect and for each read"),
        Setting("YT_AUDIT_LOGGING", parse_bool, "true", False,
                "audit log on/off"),
        Setting("YT_AUDIT_MAX_ENTRIES", _int_in_range(10, 10_000_000),
                "1000", False, "audit entries kept"),
        Setting("YT_CREDENTIAL_ENCRYPTION", parse_bool, "true", False,
                "false allows the legacy plain-text store"),
        Setting("YT_TOKEN_WARNINGS", parse_bool, "true", False,
                "expiry warnings on credential load"),
        Setting("YT_TOKEN_WARNING_DAYS", _int_in_range(0, 3650), "7",
                False, "warning period in days"),
        Setting("YT_CREDENTIAL_PASSPHRASE", parse_text, None, True,
                "passphrase for the encrypted credential file"),
    )
}

_CONFIG_LINE = _LazyPattern(
    r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*"
)


def read_config_text(path: str) -> str:
    """Return the config file's text; raise YtError naming the problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise UsageError(
            f"{path} is not UTF-8 text; fix or remove the file"
        ) from None
    except OSError as exc:
        raise YtError(
            f"cannot read {path}: {exc.strerror}; check that it is a file "
            f"you can read"
        ) from None


def parse_config_text(text: str, path: str, strict=True) -> dict:
    """Parse KEY=VALUE lines with # comments and optional quotes.

    With strict false, lines that do not parse are skipped instead of
    raising UsageError.
    """
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _CONFIG_LINE.fullmatch(line)
        try:
            if not match:
                raise UsageError(
                    f"{path}, line {number}: expected KEY=VALUE; fix or "
                    f"remove the line in an editor"
                )
            key, raw = match.groups()
            values[key] = _unquote_config_value(raw, path, number)
        except UsageError:
            if strict:
                raise
    return values


def _unquote_config_value(raw: str, path: str, number: int) -> str:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        rest = raw[end + 1:].strip() if end > 0 else None
        if end < 0 or (rest and not rest.startswith("#")):
            raise UsageError(
                f"{path}, line {number}: unbalanced {quote} quote; close "
                f"the quote or remove it"
            )
        return raw[1:end]
    comment = re.search(r"\s#", raw)
    return raw[: comment.start()].rstrip() if comment else raw


def format_config_value(value: str) -> str:
    if value and re.fullmatch(r"[A-Za-z0-9_.,:/@+=~%-]+", value):
        return value
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise UsageError(
        "a config value cannot contain both ' and \" quotes"
    )


class Settings:
    """Effective settings: flag, then environment, then config file."""

    def __init__(self, env=None, flags=None):
        self.env = dict(os.environ if env is None else env)
        self.flags = dict(flags or {})
        self.path = config_file(self.env)
        self.file_values = self._read_file()
        self._cache = {}

    def _read_file(self) -> dict:
        """Read the config file; keep a problem in file_error, not raise.

        A broken file must not stop yt config and yt doctor, the commands
        that fix and diagnose it, so the problem is raised by validate()
        and by the legacy token store instead.
        """
        self.file_error = None
        try:
            text = read_config_text(self.path)
        except FileNotFoundError:
            return {}
        except YtError as exc:
            self.file_error = exc
            return {}
        try:
            values = parse_config_text(text, self.path)
        except UsageError as exc:
            self.file_error = exc
            values = parse_config_text(text, self.path, strict=False)
        if values.get("YOUTRACK_TOKEN") and not IS_WINDOWS:
            try:
                check_private_file(self.path, "config file with a token")
            except YtError as exc:
                self.file_error = self.file_error or exc
        return values

    def raw(self, name: str):
        """Return (value, source) before validation, or (None, None)."""
        if self.flags.get(name) is not None:
            return self.flags[name], "flag"
        if self.env.get(name) not in (None, ""):
            return self.env[name], "environment"
        if self.file_values.get(name) not in (None, ""):
            return self.file_values[name], "config file"
        default = SETTINGS[name].default if name in SETTINGS else None
        return default, ("default" if default is not None else None)

    def get(self, name: str):
        if name not in self._cache:
            value, source = self.raw(name)
            if value is not None:
                where = {
                    "flag": "command-line flag",
                    "environment": "environment variable",
                    "config file": f"config file {self.path}",
                    "default": "default",
                }[source]
                try:
                    value = SETTINGS[name].parse(name, value)
                except UsageError as exc:
                    raise UsageError(f"{exc} (from the {where})") from None
            self._cache[name] = value
        return self._cache[name]

    def source(self, name: str):
        return self.raw(name)[1]

    @property
    def verify_ssl(self) -> bool:
        return self.get("YOUTRACK_VERIFY_SSL")

    def validate(self) -> None:
        """Raise for a broken config file or the first invalid setting."""
        if self.file_error is not None:
            raise self.file_error
        for name in SETTINGS:
            self.get(name)

    def tls_snapshot(self) -> dict:
        """Return the TLS-related values, for audit change records.

        An invalid value is recorded as "(invalid)", because it may be
        anything, a pasted token included.
        """
        snapshot = {}
        for name in TLS_VARIABLES:
            if name.startswith("SSL_CERT"):
                snapshot[name] = self.env.get(name) or None
                continue
            try:
                self.get(name)
            except UsageError:
                snapshot[name] = "(invalid)"
                continue
            value = self.raw(name)[0]
            snapshot[name] = None if value is None else mask(value)
        return snapshot


# ##### Masking ###########################################################
#
# mask() is the one function that everything printed or logged passes
# through.  It finds candidate positions with _MASK_TRIGGER, tries
# _MASK_PATTERN there, and resumes after the match.  Every alternative of
# the pattern either fails within a bounded number of characters or
# consumes a whole run, so masking is linear in the input.  _mask_one
# decides whether a match is a secret.

_SECRET_KEY_SUFFIXES = (
    "token", "password", "passwd", "passphrase", "secret", "apikey",
    "authorization", "privatekey", "accesskey", "cookie", "credentials",
)
_ASCII_LOWER = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
)
# The pattern runs over an ASCII-lowercased copy of the text, because a
# case-insensitive pattern is about ten times slower in CPython's re.  The
# copy has the same length, so match positions index the original text.
_KEY_SEP = r"""["']?[ \t]*[:=][ \t]*"""
_SCHEME = r"(?:bearer|basic|token|digest|negotiate)[ \t]+"
_VALUE = r"""(?:"(?:[^"\\\n]|\\.)*"?|'[^'\n]*'?|[^\s"'\\,;&{}\[\]<>]+)"""
_SENSITIVE_NAMES = (
    r"token|passw(?:or)?d|passphrase|secret|api[-_.]?key|authorization"
    r"|private[-_.]?key|access[-_.]?key|cookie|credentials"
)
# Only a flag whose name ends in a secret name takes its value with it,
# because a match of any other flag would hide what follows from the
# other alternatives (--base-url https://user:pw@host).  A value never
# starts with "--", so "--password --debug" keeps the next flag.
_FLAG_VALUE = r"""(?!--)(?:"(?:[^"\\\n]|\\.)*"?|'[^'\n]*'?|[^\s"']+)"""
_MASK_PATTERN = _LazyPattern(
    r"(?P<url>://)(?P<userinfo>[^/\s@]{1,256})@"
    rf"|--(?P<flag>(?:[a-z0-9][a-z0-9_-]{{0,62}}?)?(?:{_SENSITIVE_NAMES}))"
    rf"(?P<flagsep>=|[ \t]+)(?P<flagval>{_FLAG_VALUE})"
    rf"|(?P<key>{_SENSITIVE_NAMES})"
    rf"(?P<sep>{_KEY_SEP})(?P<scheme>{_SCHEME})?(?P<value>{_VALUE})"
    r"|(?P<bearer>bearer[ \t]+)(?P<btoken>[\w.~+/=:-]+)"
    r"|(?P<perm>perm[:-][\w.~+/=:-]*)"
    r"|(?P<jwt>eyj[\w.-]*)"
)
# Every alternative of _MASK_PATTERN starts with one of these literals.  An
# alternation of literals lets re skip ahead by first character, so text
# without any of them is scanned at tens of MB/s.  The literals are grouped
# by first letter, so that each position tries one branch: that made the
# scan about a third faster.  No literal is a prefix of another, so the
# grouping matches exactly what the plain list of literals would.
_MASK_TRIGGER = _LazyPattern(
    r"://|--|token|p(?:ass(?:w|phrase)|rivate|erm)|secret"
    r"|a(?:pi|uthorization|ccess)|c(?:ookie|redentials)|bearer|eyj"
)
_JSON_LITERAL = _LazyPattern(r'null|true|false|""|-?\d+(?:\.\d+)?')


def _is_secret_key(key: str) -> bool:
    name = re.sub(r"[-_.\s]", "", key).lower()
    return name.endswith(_SECRET_KEY_SUFFIXES)


def _starts_word(text: str, index: int) -> bool:
    if index == 0:
        return True
    before = text[index - 1]
    return not (before.isalnum() or before in "_-")


def _masked_value(value: str) -> str:
    if value[:1] in ('"', "'"):
        quote = value[0]
        closed = len(value) > 1 and value.endswith(quote)
        return quote + MASK + (quote if closed else "")
    return MASK


def _mask_one(text: str, match):
    """Return (start, replacement) for one match, or None to keep it."""
    start = match.start()
    span = match.span
    if match.group("url") is not None:
        return span("userinfo")[0], MASK + "@"
    if match.group("flag") is not None:
        flag = text[slice(*span("flag"))]
        if not _is_secret_key(flag) or not _starts_word(text, start):
            return None
        value = text[slice(*span("flagval"))]
        return span("flagval")[0], _masked_value(value)
    if match.group("key") is not None:
        value = text[slice(*span("value"))]
        if value == MASK:
            return None
        json_key = match.group("scheme") is None and '"' in match.group("sep")
        if json_key and _JSON_LITERAL.fullmatch(value):
            return None
        return span("value")[0], _masked_value(value)
    if not _starts_word(text, start):
        return None
    if match.group("bearer") is not None:
        token = match.group("btoken")
        if len(token) < 8 or token == MASK.lower():
            return None
        return span("btoken")[0], MASK
    if match.group("perm") is not None:
        rest = match.group("perm")[5:]
        if "." not in rest and len(rest) < 12:
            return None
        return start, MASK
    value = text[slice(*span("jwt"))]
    # A JWT at the end of a sentence is followed by a full stop, which
    # stays.
    stops = len(value) - len(value.rstrip("."))
    parts = value[:len(value) - stops].split(".")
    if not value.startswith("eyJ") or len(parts) != 3 or not all(parts):
        return None
    return start, MASK + "." * stops


class SecretRegistry:
    """Secret values loaded at run time, masked wherever they appear."""

    def __init__(self):
        self._values = set()
        # Every value with its URL-encoded and JSON-escaped forms, longest
        # first.  replace() builds it after a change, so main() registers
        # secrets without importing urllib.parse and json.  replace() runs
        # on every line yt prints, and this way it neither locks nor sorts.
        self._forms = ()
        self._lock = _thread.allocate_lock()

    def add(self, value) -> None:
        if not value or len(value) < 4:
            return
        with self._lock:
            self._values.add(value)
            self._forms = None

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._forms = ()

    def _build_forms(self) -> tuple:
        import json
        from urllib.parse import quote

        with self._lock:
            forms = set()
            for value in self._values:
                forms.update((value, quote(value, safe=""),
                              json.dumps(value)[1:-1]))
            self._forms = tuple(sorted(forms, key=len, reverse=True))
            return self._forms

    def replace(self, text: str) -> str:
        forms = self._forms
        if forms is None:
            forms = self._build_forms()
        for value in forms:
            if value in text:
                text = text.replace(value, MASK)
        return text


SECRETS = SecretRegistry()


def mask(text) -> str:
    """Return text with every secret form replaced by ***MASKED***.

    Masks Authorization values (keeping the scheme), perm: and perm-
    tokens, JWTs, key=value, key: value, "key": "value", --key value and
    --key=value for secret-like names, URL user-info, and every value
    registered in SECRETS.  JSON stays valid.
    """
    if not isinstance(text, str):
        text = str(text)
    text = SECRETS.replace(text)
    masked = _mask_patterns(text)
    if masked != text and _breaks_json(text, masked):
        return _mask_json(text)
    return masked


_JSON_STRING = _LazyPattern(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_COLON = _LazyPattern(r"\s*:\s*")


def _breaks_json(original: str, masked: str) -> bool:
    """Tell whether masking turned valid JSON text into invalid JSON."""
    import json

    if original.lstrip()[:1] not in ("{", "[", '"'):
        return False
    # RecursionError: json gives up on nesting deeper than the C stack.
    try:
        json.loads(masked)
        return False
    except (ValueError, RecursionError):
        pass
    try:
        json.loads(original)
    except (ValueError, RecursionError):
        return False
    return True


def _mask_json(text: str) -> str:
    """Mask each string of valid JSON text on its own, so it stays valid.

    The patterns can match across a closing quote (``"token:", "x"``),
    which breaks JSON.  Here a string value under a secret-like key
    becomes "***MASKED***", and every other string is masked as plain
    text and encoded again.  Numbers, literals and layout are kept.
    """
    import json

    pieces = []
    done = 0
    secret_value_at = -1
    for match in _JSON_STRING.finditer(text):
        token = match.group()
        if match.start() == secret_value_at:
            replacement = token if token == '""' else f'"{MASK}"'  # noqa: S105
        else:
            decoded = json.loads(token)
            # A secret spelt with \u escapes appears once decoded.
            masked = _mask_patterns(SECRETS.replace(decoded))
            replacement = token if masked == decoded else json.dumps(
                masked, ensure_ascii=token.isascii()
            )
            colon = _JSON_COLON.match(text, match.end())
            if colon and _is_secret_key(decoded):
                secret_value_at = colon.end()
        pieces.append(text[done:match.start()])
        pieces.append(replacement)
        done = match.end()
    pieces.append(text[done:])
    return "".join(pieces)


def _mask_patterns(text: str) -> str:
    """Replace the secret patterns of _MASK_PATTERN in text."""
    # On ASCII text, lower() gives the same result ten times faster.
    lowered = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    pieces = []
    done = position = 0
    while True:
        trigger = _MASK_TRIGGER.search(lowered, position)
        if trigger is None:
            break
        match = _MASK_PATTERN.match(lowered, trigger.start())
        if match is None:
            position = trigger.end()
            continue
        # Resume after the whole match even when it is kept, so a long
        # run is never scanned again from a later start: linear time.
        position = max(match.end(), trigger.start() + 1)
        found = _mask_one(text, match)
        if found is None:
            continue
        start, replacement = found
        pieces.append(text[done:start])
        pieces.append(replacement)
        done = match.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def mask_argv(argv) -> list:
    """Mask a list of command-line arguments element by element.

    An element that names a secret (``--password``, ``YOUTRACK_TOKEN``)
    also masks the element after it.
    """
    masked = []
    hide_next = False
    for arg in argv:
        arg = str(arg)
        if hide_next:
            masked.append(MASK)
            hide_next = False
            continue
        masked.append(mask(arg))
        bare = arg.lstrip("-")
        if "=" not in arg and bare and _is_secret_key(bare):
            hide_next = True
    return masked


# C0 and C1 controls (except tab and newline), and the Unicode bidi
# controls, which can make text on a terminal read differently from what
# it is.
_CONTROL = _LazyPattern(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def escape_control(text: str) -> str:
    """Escape control characters so server text cannot drive a terminal."""
    return _CONTROL.sub(_escaped_character, text)


def _escaped_character(match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def json_text(data, indent=2) -> str:
    """Serialise data as JSON with C1 controls and DEL escaped too."""
    import json

    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return re.sub(
        r"[\x7f-\x9f\u2028\u2029]", lambda m: f"\\u{ord(m.group()):04x}",
        text,
    )


# ##### Storage helpers ###################################################


def ensure_private_dir(path: str) -> str:
    """Create path (and parents) with mode 0700 if missing; return it."""
    if not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            ensure_private_dir(parent)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        else:
            # mkdir applies the umask, which may remove owner bits.
            os.chmod(path, 0o700)
    return path


def check_private_file(path: str, what: str) -> None:
    """Reject a secret-bearing file that group or others can read."""
    if IS_WINDOWS:
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if mode & 0o077:
        raise YtError(
            f"{what} {path} is accessible by group or others (mode "
            f"{stat.S_IMODE(mode):04o}); fix it with: chmod 600 {path}"
        )
    # In a directory that others can write to, they could replace the
    # file (a sticky bit, as on /tmp, prevents that).
    directory = os.path.dirname(os.path.abspath(path))
    dir_mode = os.stat(directory).st_mode
    if dir_mode & 0o022 and not dir_mode & stat.S_ISVTX:
        raise YtError(
            f"directory {directory} of the {what} is writable by group or "
            f"others (mode {stat.S_IMODE(dir_mode):04o}), so they could "
            f"replace the file; fix it with: chmod 700 {directory}"
        )


def _open_private(path: str, flags: int) -> int:
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
    if not IS_WINDOWS:
        # Set the mode before any byte is written, whatever the umask.
        os.fchmod(fd, 0o600)
    return fd


def atomic_write(path: str, data: bytes) -> None:
    """Write data to path atomically with mode 0600.

    The bytes go to a temporary file in the same directory, which is
    fsynced and renamed over path, so a reader sees the old or the new
    file, never a torn one.
    """
    directory = os.path.dirname(path) or "."
    ensure_private_dir(directory)
    temp = os.path.join(
        directory, f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp"
    )
    fd = _open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    if IS_WINDOWS:
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def file_lock(path: str, timeout: float = 30.0):
    """Hold an exclusive lock on path (created 0600) for the block."""
    ensure_private_dir(os.path.dirname(path))
    fd = _open_private(path, os.O_RDWR | os.O_CREAT)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                _lock_fd(fd)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise YtError(
                        f"timed out after {timeout:.0f} s waiting for the "
                        f"lock {path}; another yt process holds it"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        with contextlib.suppress(OSError):
            _unlock_fd(fd)
        os.close(fd)


if IS_WINDOWS:  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock_fd(fd):
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock_fd(fd):
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_fd(fd):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_fd(fd):
        fcntl.flock(fd, fcntl.LOCK_UN)


def _decode_key(raw: bytes):
    """Return the 32-byte key of a key file's content, or None if damaged."""
    import base64

    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except ValueError:
        return None
    return key if len(key) == 32 else None


def read_key_file(path: str, what: str, create: bool) -> bytes:
    """Read a 32-byte base64 key file, creating it when allowed.

    A key file that exists but is damaged is an error: it is never
    replaced, because data encrypted or signed with it would be lost.
    """
    import base64

    try:
        check_private_file(path, what)
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        if not create:
            raise
        # os.urandom is what secrets.token_bytes returns, without the
        # import of random that secrets brings.
        key = os.urandom(32)
        ensure_private_dir(os.path.dirname(path))
        fd = _open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64encode(key) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        return key
    key = _decode_key(raw)
    if key is None:
        raise DamagedKeyError(
            f"{what} {path} is damaged (expected 32 bytes in base64); "
            f"restore it from a backup, or remove it and what it protects"
        )
    return key


def _now_iso(moment=None) -> str:
    moment = moment or utc_now()
    return moment.astimezone(dt.timezone.utc).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")


# ##### Audit log #########################################################
#
# audit.jsonl contains one JSON object per line.  Each line is the canonical
# JSON of the entry (sorted keys, no spaces) with ,"mac":"..." spliced in
# before the closing brace; mac = HMAC-SHA256(key, prev + "\n" + body),
# where body is the canonical JSON without mac and prev is the mac of the
# entry before.  audit.state records the first and last seq, the last mac
# and the entry count under its own HMAC, so removing lines from either
# end is detected too.  The key lives in the config directory, apart from
# the log in the data directory.

_MAC_MARKER = ',"mac":"'


def _canonical(entry: dict) -> str:
    import json

    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


class _EntryMac:
    """HMAC-SHA256 of audit entries under one key.

    The key is set up once: copying the keyed state costs less than
    hmac.digest, which sets the key up on every call, and --verify
    computes one MAC per entry.
    """

    def __init__(self, key: bytes):
        import hmac

        self._keyed = hmac.new(key, digestmod="sha256")

    def __call__(self, prev: str, body: str) -> str:
        return self.of_bytes(prev.encode("ascii"), body.encode("utf-8"))

    def of_bytes(self, prev: bytes, body: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(prev + b"\n" + body)
        return mac.hexdigest()


def _entry_mac(key: bytes, prev: str, body: str) -> str:
    return _EntryMac(key)(prev, body)


def _split_mac(line: bytes):
    """Split a log line without its newline into (body, mac), or None.

    body is the entry without its mac, as the MAC was computed over it.
    """
    marker = _MAC_MARKER.encode("ascii")
    index = line.rfind(marker)
    if index < 0 or not line.endswith(b'"}'):
        return None
    return line[:index] + b"}", line[index + len(marker):-2]


def _chain_entry(raw: bytes, entry_mac=None):
    """Return the entry on one raw log line, or None if it is not one.

    With entry_mac (an _EntryMac.of_bytes), the line must also carry the
    MAC of its own body and prev, so that no line yt did not write
    becomes the entry that the next one follows.
    """
    import hmac
    import json

    line = raw.rstrip(b"\r\n")
    try:
        entry = json.loads(line.decode("utf-8"))
    # UnicodeDecodeError is a ValueError too; json raises RecursionError
    # for arrays nested deeper than the C stack allows.
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict):
        return None
    seq, prev, mac = entry.get("seq"), entry.get("prev"), entry.get("mac")
    # type() rules out True; the bound keeps seq + 1 printable.
    if type(seq) is not int or not 0 < seq < 2**63:
        return None
    # The mac is the next entry's prev, which is hashed as ASCII.
    if not all(isinstance(text, str) and text.isascii()
               for text in (prev, mac)):
        return None
    if entry_mac is not None:
        parts = _split_mac(line)
        if parts is None or not hmac.compare_digest(
            parts[1], entry_mac(prev.encode("ascii"), parts[0]).encode()
        ):
            return None
    return entry


def _follows_state(last: dict, state: dict) -> bool:
    """Tell whether the log's last entry is the one the state records.

    A crash between appending a line and writing the state leaves the
    state one entry behind, and that entry's prev is the state's last
    mac.
    """
    if last["seq"] == state.get("last_seq"):
        return last["mac"] == state.get("last_mac")
    return (last["seq"] == (state.get("last_seq") or 0) + 1
            and last.get("prev") == state.get("last_mac"))


# Notes an append records in an entry when it found the log or its state
# file damaged; _recovery_problem turns each into a --verify failure.
_DAMAGE_NOTES = ("state_mismatch", "state_recovered", "state_damaged",
                 "skipped_bad_lines")


def _recovery_problem(entry: dict):
    """Describe the recovery that append recorded in entry, or None.

    Such an entry stays a verification failure, because the entries
    removed before it cannot be shown by the chain any more.
    """
    if entry.get("state_mismatch"):
        return (
            f"seq {entry['seq']} was appended when the log did not match "
            f"the state file ({entry['state_mismatch']}): entries were "
            f"removed"
        )
    if entry.get("state_recovered"):
        return (
            f"seq {entry['seq']} was appended when the state file was "
            f"missing, so removal of entries before it cannot be ruled out"
        )
    if entry.get("state_damaged"):
        return (
            f"seq {entry['seq']} was appended when the state file was "
            f"damaged or edited, so removal of entries before it cannot be "
            f"ruled out"
        )
    if entry.get("skipped_bad_lines"):
        return (
            f"seq {entry['seq']} was appended after "
            f"{entry['skipped_bad_lines']} line(s) that were not audit "
            f"entries, which were removed since"
        )
    return None


# json.loads of one array of this many lines takes about a third of the
# time of one call per line, which was the largest cost of --verify.
_VERIFY_BATCH = 256


def _ascii(value):
    return None if value is None else value.decode("ascii")


def _line_problem(raw: bytes) -> str:
    """Describe a log line that does not end in a mac and a newline."""
    if not raw.endswith(b"\n"):
        return "torn last line (an interrupted write)"
    return "line is not an audit entry"


def _chain_start(body: bytes):
    """Return (prev, problem): the mac that the first entry follows."""
    import json

    try:
        start = json.loads(body)["prev"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None, "line is not valid JSON"
    if not isinstance(start, str) or not start.isascii():
        return None, "line is not an audit entry"
    return start.encode("ascii"), None


def _mac_problem(body: bytes) -> str:
    """Describe a line whose MAC does not match."""
    import json

    try:
        json.loads(body)["seq"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return "line is not valid JSON"
    return ("MAC mismatch: the entry was edited, or an entry before it "
            "was removed or inserted")


def _parse_bodies(bodies: list) -> list:
    """Parse UTF-8 JSON texts; an item is None where one does not parse."""
    import json

    if not bodies:
        return []
    try:
        entries = json.loads(b"[" + b",".join(bodies) + b"]")
    except (ValueError, RecursionError):
        entries = None
    if entries is not None and len(entries) == len(bodies):
        return entries
    parsed = []
    for body in bodies:
        try:
            parsed.append(json.loads(body))
        except (ValueError, RecursionError):
            parsed.append(None)
    return parsed


def _check_batch(batch: list, report: dict):
    """Check seq order and recovery notes of lines whose MAC matched.

    batch contains (line number, body) pairs in log order, and report
    counts each good entry.  Returns the failed report for the first bad
    line, or None.
    """
    entries = _parse_bodies([body for _, body in batch])
    for (number, _), entry in zip(batch, entries):
        last = report["last_seq"]
        try:
            seq = entry["seq"]
        except (KeyError, TypeError):
            problem = "line is not valid JSON"
        else:
            if last is not None and seq != last + 1:
                problem = f"expected seq {last + 1}, found {seq}"
            else:
                problem = _recovery_problem(entry)
        if problem:
            return dict(report, ok=False, line=number,
                        problem=f"line {number}: {problem}")
        if report["first_seq"] is None:
            report["first_seq"] = seq
        report["entries"] += 1
        report["last_seq"] = seq
    return None


class AuditLog:
    """The HMAC-chained audit log in the data directory."""

    def __init__(self, data_path: str, config_path: str, max_entries=1000):
        self.path = os.path.join(data_path, "audit.jsonl")
        self.state_path = os.path.join(data_path, "audit.state")
        self.lock_path = os.path.join(data_path, "audit.lock")
        self.torn_path = os.path.join(data_path, "audit.jsonl.torn")
        self.key_path = os.path.join(config_path, "audit.key")
        self.max_entries = max_entries

    # -- key and state --

    def _key(self, create: bool) -> bytes:
        try:
            return read_key_file(self.key_path, "audit key", create=create)
        except FileNotFoundError:
            problem = "is missing"
        except DamagedKeyError:
            problem = "is damaged (expected 32 bytes in base64)"
        raise AuditIntegrityError(
            f"audit key {self.key_path} {problem}, so the log {self.path} "
            f"cannot be verified; restore the key or start a new log with: "
            f"yt security clear-audit --force"
        )

    def _read_state(self, key: bytes):
        import hmac
        import json

        try:
            with open(self.state_path, encoding="utf-8") as handle:
                state = json.load(handle)
            body = _canonical({k: v for k, v in state.items() if k != "mac"})
            valid = hmac.compare_digest(
                str(state.get("mac", "")), _entry_mac(key, "state", body)
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError, TypeError,
                RecursionError):
            valid = False
        if not valid:
            raise AuditIntegrityError(
                f"audit state {self.state_path} is damaged or was edited; "
                f"keep a copy of the log for inspection, then start a new "
                f"one with: yt security clear-audit --force"
            )
        return state

    def _write_state(self, key: bytes, state: dict) -> None:
        state = {k: v for k, v in state.items() if k != "mac"}
        state["mac"] = _entry_mac(key, "state", _canonical(state))
        atomic_write(self.state_path, _canonical(state).encode() + b"\n")

    # -- appending --

    def append(self, entry: dict, tls=None) -> dict:
        """Append one entry and return it with seq, prev and mac."""
        return self.append_many([entry], tls=tls)[-1]

    def append_many(self, entries, tls=None, tls_entry=None) -> list:
        """Append entries under one lock; return them with seq and mac.

        tls is the current TLS settings, kept in the state file.  When it
        differs from the recorded settings and tls_entry is given, the
        entry tls_entry(old_settings) goes first.  Comparing under the
        lock means two processes never both record the same change.
        """
        ensure_private_dir(os.path.dirname(self.path))
        with file_lock(self.lock_path):
            has_state = os.path.exists(self.state_path)
            key = self._key(create=not has_state)
            try:
                state = self._read_state(key) if has_state else None
                state_damaged = False
            except AuditIntegrityError:
                # Like a bad last line, a damaged state file must not stop
                # the audit log: the new entry records it instead.
                state, state_damaged = None, True
            last, notes = self._chain_head(key, state, state_damaged)
            if state is None:
                state = {"first_seq": last and self._first_seq(), "tls": None,
                         "count": self._count_lines() if last else 0}
            pending = list(entries)
            if tls is not None and tls_entry is not None and (
                state.get("tls") != tls
            ):
                pending.insert(0, tls_entry(state.get("tls")))
            written = []
            for entry in pending:
                seq = last["seq"] + 1 if last else 1
                entry = _masked_entry(entry)
                entry = dict(entry, seq=seq, prev=last["mac"] if last else "")
                entry.update(notes)
                if any(name in notes for name in _DAMAGE_NOTES):
                    state.setdefault("damaged_at", seq)
                notes = {}
                body = _canonical(entry)
                entry["mac"] = _entry_mac(key, entry["prev"], body)
                self._append_line(
                    body[:-1] + _MAC_MARKER + entry["mac"] + '"}\n'
                )
                if last is None:
                    state.update(first_seq=seq, count=0)
                state.update(last_seq=seq, last_mac=entry["mac"],
                             count=state.get("count", 0) + 1)
                last = entry
                written.append(entry)
            if tls is not None:
                state["tls"] = tls
            # Trimming would in time remove the entries that recorded
            # damage, and with them the reason --verify fails; it waits
            # until clear-audit starts a new log.
            if state["count"] > self.max_entries + max(
                10, self.max_entries // 10
            ) and not state.get("damaged_at"):
                state = self._trim(state)
            try:
                self._write_state(key, state)
            except OSError as exc:
                raise AuditStateError(
                    f"the audit entries were written, but the state file "
                    f"{self.state_path} could not be updated "
                    f"({exc.strerror or exc}); check that it is a regular "
                    f"file you can write, then run: yt security audit "
                    f"--verify"
                ) from None
        return written

    def _append_line(self, line: str) -> None:
        fd = _open_private(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            data = line.encode("utf-8")
            written = os.write(fd, data)
            if written != len(data):
                raise OSError("short write to the audit log")
            os.fsync(fd)
        finally:
            os.close(fd)

    def _chain_head(self, key, state, state_damaged=False):
        """Return (last good entry, notes) and repair a torn last line.

        state is None when the state file is missing or, if state_damaged
        is true, damaged.
        """
        notes = {}
        tail = self._tail_bytes(65536)
        if tail and not tail.endswith(b"\n"):
            torn = self._cut_torn_line()
            notes["repaired_torn_line_bytes"] = torn
            log.warning(
                "audit log %s ended in a torn line (%d bytes, likely a "
                "crash); moved it to %s", self.path, torn, self.torn_path,
            )
            tail = self._tail_bytes(65536)
        lines = tail.splitlines()
        if state_damaged:
            notes["state_damaged"] = True
            log.warning(
                "audit state %s is damaged or was edited; the new entry "
                "records it; run: yt security audit --verify",
                self.state_path,
            )
        if not lines:
            if state and state.get("last_seq"):
                notes["state_mismatch"] = "log empty but state has entries"
            return None, notes
        last, skipped = self._last_valid_entry(_EntryMac(key).of_bytes,
                                               lines)
        if skipped:
            # Refusing to append would let one bad line stop the audit
            # log for good.  The new entry follows the last valid one
            # instead, and --verify keeps failing on the bad lines.
            notes["skipped_bad_lines"] = skipped
            if last is None:
                log.warning(
                    "audit log %s contains no valid audit entry; a new "
                    "chain starts after its %d line(s); run: yt security "
                    "audit --verify", self.path, skipped,
                )
                return None, notes
            log.warning(
                "audit log %s ends in %d line(s) that are not valid audit "
                "entries; the new entry follows the last valid one; run: "
                "yt security audit --verify", self.path, skipped,
            )
        if state is None and not state_damaged:
            notes["state_recovered"] = True
            log.warning(
                "audit state %s was missing; continuing the chain from the "
                "last entry; run: yt security audit --verify",
                self.state_path,
            )
        elif state is not None and not _follows_state(last, state):
            notes["state_mismatch"] = (
                f"the log ended at seq {last['seq']}, the state recorded "
                f"seq {state.get('last_seq')}"
            )
            log.warning(
                "audit log %s does not end where its state file records; "
                "run: yt security audit --verify", self.path,
            )
        return last, notes

    def _last_valid_entry(self, entry_mac, lines):
        """Return (last valid entry in the log, number of lines after it).

        lines are the last lines of the log, from _tail_bytes(65536).  When
        none of them is a valid entry, ever longer tails are read.  The
        entry is None when no line of the log is a valid entry.
        """
        total = os.path.getsize(self.path)
        size = 65536
        while True:
            for skipped, line in enumerate(reversed(lines)):
                entry = _chain_entry(line, entry_mac)
                if entry is not None:
                    return entry, skipped
            if size >= total:
                return None, len(lines)
            size *= 4
            lines = self._tail_bytes(size).splitlines()

    def _tail_bytes(self, size: int) -> bytes:
        """Return the whole lines among the last size bytes of the log.

        The window grows until it contains a whole line, so a
        last line longer than size comes back whole instead of not at
        all.  A torn last line, without its newline, is kept.
        """
        try:
            with open(self.path, "rb") as handle:
                end = handle.seek(0, os.SEEK_END)
                while True:
                    start = max(0, end - size)
                    handle.seek(start)
                    data = handle.read(end - start)
                    if start == 0:
                        return data
                    newline = data.find(b"\n")
                    if 0 <= newline < len(data) - 1:
                        return data[newline + 1:]
                    size *= 4
        except FileNotFoundError:
            return b""

    def _cut_torn_line(self) -> int:
        with open(self.path, "r+b") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            position = end
            chunk = b""
            while position > 0:
                step = min(65536, position)
                position -= step
                handle.seek(position)
                chunk = handle.read(step) + chunk
                if b"\n" in chunk[: len(chunk) - (end - position - step)]:
                    break
            cut = position + chunk.rfind(b"\n") + 1 if b"\n" in chunk else 0
            handle.seek(cut)
            torn = handle.read()
            fd = _open_private(
                self.torn_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND
            )
            with os.fdopen(fd, "ab") as saved:
                saved.write(torn + b"\n")
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
        return end - cut

    def _count_lines(self) -> int:
        with open(self.path, "rb") as handle:
            return sum(1 for _ in handle)

    def _first_seq(self):
        import json

        with open(self.path, "rb") as handle:
            first = handle.readline()
        try:
            return json.loads(first)["seq"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return None

    def _trim(self, state: dict) -> dict:
        """Keep the newest max_entries lines; rewrite the log atomically."""
        with open(self.path, "rb") as handle:
            lines = handle.readlines()
        kept = lines[-self.max_entries:]
        atomic_write(self.path, b"".join(kept))
        state = dict(state, count=len(kept))
        first = _chain_entry(kept[0])
        state["first_seq"] = first["seq"] if first else None
        return state

    # -- reading --

    def tail(self, limit: int) -> list:
        """Return the last limit entries (0: all), reading only the end."""
        if limit == 0:
            with open(self.path, "rb") as handle:
                return [_parse_entry(line) for line in handle if line.strip()]
        size = 4096 * max(1, limit)
        while True:
            data = self._tail_bytes(size)
            lines = [line for line in data.splitlines() if line.strip()]
            total = os.path.getsize(self.path) if data else 0
            if len(lines) > limit or size >= total:
                break
            size *= 4
        return [_parse_entry(line) for line in lines[-limit:]]

    def verify(self) -> dict:
        """Check the whole chain; return a report with ok and problem.

        Each line's MAC is checked as the line is read, on its bytes.
        Lines whose MAC matched are entries that yt wrote, so they are
        valid JSON; they are parsed _VERIFY_BATCH at a time to check seq
        and recovery notes, and the first bad line is still the one
        reported.
        """
        import hmac

        report = {"path": self.path, "entries": 0, "ok": True,
                  "problem": None, "first_seq": None, "last_seq": None}
        if not os.path.exists(self.path):
            report["problem"] = None
            return report
        try:
            key = self._key(create=False)
            state = self._read_state(key)
        except AuditIntegrityError as exc:
            return dict(report, ok=False, problem=str(exc))
        entry_mac = _EntryMac(key).of_bytes
        prev = last_prev = None
        batch = []
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                parts = _split_mac(raw[:-1]) if raw.endswith(b"\n") else None
                if parts is None:
                    problem = _line_problem(raw)
                else:
                    body, mac = parts
                    start, problem = prev, None
                    if start is None:
                        start, problem = _chain_start(body)
                if problem is None and not hmac.compare_digest(
                    mac, entry_mac(start, body).encode("ascii")
                ):
                    problem = _mac_problem(body)
                if problem is None:
                    batch.append((number, body))
                    last_prev, prev = start, mac
                if problem is not None or len(batch) == _VERIFY_BATCH:
                    failure = _check_batch(batch, report)
                    batch = []
                    if failure is None and problem is not None:
                        failure = dict(report, ok=False, line=number,
                                       problem=f"line {number}: {problem}")
                    if failure is not None:
                        return failure
        failure = _check_batch(batch, report)
        if failure is not None:
            return failure
        # Both are ASCII: prev matched a hex MAC, and _chain_start checks.
        return self._check_state(report, state, _ascii(prev),
                                 _ascii(last_prev))

    def _check_state(self, report, state, last_mac, last_prev=None):
        if state is None:
            if report["entries"]:
                return dict(report, ok=False, problem=(
                    f"state file {self.state_path} is missing, so removal "
                    f"of entries from the end cannot be ruled out"
                ))
            return report
        if report["entries"] == 0 and state.get("last_seq"):
            return dict(report, ok=False, problem=(
                f"log is empty but the state records entries up to seq "
                f"{state['last_seq']}: the log was truncated"
            ))
        last = {"seq": report["last_seq"], "mac": last_mac,
                "prev": last_prev}
        # _follows_state accepts a log one verified entry ahead of the
        # state: an append whose state write failed (full disk, crash).
        if report["entries"] and not _follows_state(last, state):
            if report["last_seq"] > (state.get("last_seq") or 0):
                return dict(report, ok=False, problem=(
                    f"log ends at seq {report['last_seq']} but the state "
                    f"records seq {state.get('last_seq')}: the state file "
                    f"was replaced by an older copy"
                ))
            if state.get("last_seq") != report["last_seq"]:
                return dict(report, ok=False, problem=(
                    f"log ends at seq {report['last_seq']} but the state "
                    f"records seq {state.get('last_seq')}: entries were "
                    f"removed from the end"
                ))
            return dict(report, ok=False, problem=(
                "the last entry does not match the state file"
            ))
        if state.get("first_seq") not in (None, report["first_seq"]):
            return dict(report, ok=False, problem=(
                f"log starts at seq {report['first_seq']} but the state "
                f"records seq {state['first_seq']}: entries were removed "
                f"from the start"
            ))
        return report

    def clear(self, user: str, force: bool) -> int:
        """Replace the log with one audit_cleared entry; return removed."""
        import json

        with file_lock(self.lock_path):
            removed = 0
            last_seq = None
            if os.path.exists(self.path):
                try:
                    removed = self._count_lines()
                    tail = self._tail_bytes(65536).splitlines()
                    last_seq = json.loads(tail[-1])["seq"] if tail else None
                except (ValueError, KeyError, TypeError, OSError,
                        RecursionError):
                    if not force:
                        raise YtError(
                            f"audit log {self.path} is too damaged to read;"
                            f" clear it anyway with: yt security "
                            f"clear-audit --force"
                        ) from None
            try:
                key = self._key(create=True)
            except (AuditIntegrityError, YtError):
                if not force:
                    raise
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.key_path)
                key = self._key(create=True)
            entry = {
                "event": "audit_cleared", "seq": 1, "prev": "",
                "ts": _now_iso(), "user": current_user(),
                "host": current_host(), "version": __version__,
                "removed_entries": removed, "previous_last_seq": last_seq,
            }
            body = _canonical(entry)
            entry["mac"] = _entry_mac(key, "", body)
            line = body[:-1] + _MAC_MARKER + entry["mac"] + '"}\n'
            atomic_write(self.path, line.encode("utf-8"))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.torn_path)
            self._write_state(key, {
                "first_seq": 1, "last_seq": 1, "last_mac": entry["mac"],
                "count": 1, "tls": None,
            })
        return removed


def _masked_entry(value):
    """Return value with mask() applied to every string inside it."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {key: _masked_entry(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked_entry(item) for item in value]
    return value


def _parse_entry(line: bytes) -> dict:
    import json

    try:
        entry = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        entry = None
    if not isinstance(entry, dict):
        return {"event": "unreadable", "raw": escape_control(repr(line))}
    return entry


def current_user() -> str:
    """Return the user name the way getpass.getuser() finds it.

    Every audited command calls this, and importing getpass also loads
    the termios extension module, which these commands do not need.
    """
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):  # no pwd, no entry
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def current_host() -> str:
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


# ##### Credentials and encryption ########################################

CREDENTIAL_FORMAT = "yt-credentials"
CREDENTIAL_VERSION = 1
# scrypt cost for passphrase-derived keys: N=2**17, r=8, p=1 (128 MiB,
# about 0.3 s here), the parameters OWASP's password storage cheat sheet
# recommends for scrypt.  They are stored with the file, so they can rise
# later without breaking old files.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1


class Credential:
    """A token for one base URL and where it was found."""

    def __init__(self, base_url, token, source, detail=""):
        self.base_url = base_url
        self.token = token
        self.source = source
        self.detail = detail


def validate_token(token: str) -> str:
    """Strip surrounding white space and reject any other character that
    is not printable ASCII.

    An HTTP header carries only ASCII reliably, and a space, control or
    non-ASCII character inside a token is a copy-and-paste accident.
    """
    token = token.strip()
    if not token:
        raise UsageError("the token is empty; paste the whole token")
    bad = [ch for ch in token if not "!" <= ch <= "~"]
    if bad:
        raise UsageError(
            f"the token contains {len(bad)} space, control or non-ASCII "
            f"character(s); paste it again without line breaks or spaces"
        )
    return token


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def _unb64(text) -> bytes:
    import base64

    return base64.b64decode(str(text), validate=True)


class EncryptedFileStore:
    """AES-256-GCM credential file in the data directory.

    The file contains one encrypted entry per base URL.  Its key comes from
    a random key file in the config directory, or from scrypt over a
    passphrase (YT_CREDENTIAL_PASSPHRASE or a prompt).  Either way the key
    is never stored beside the ciphertext.  The associated data binds each
    entry to the file format, its version, the key derivation and the base
    URL, so an entry moved to another URL or format fails authentication.
    """

    name = "encrypted file"

    def __init__(self, data_path, config_path, passphrase=None,
                 prompt=None):
        self.path = os.path.join(data_path, "credentials.enc")
        self.lock_path = os.path.join(data_path, "credentials.lock")
        self.key_path = os.path.join(config_path, "credentials.key")
        self.passphrase = passphrase
        self.prompt = prompt
        self._derived = {}

    def describe_protection(self):
        document = self._load()
        if document is None:
            return None
        if document["kdf"]["name"] == "scrypt":
            return "passphrase (scrypt)"
        return f"key file {self.key_path}"

    def _damaged(self, reason: str) -> YtError:
        return AuthError(
            f"credential file {self.path} cannot be used: {reason}; it was "
            f"left unchanged. Restore it from a backup, or remove it "
            f"(rm {self.path}) and run: yt auth login"
        )

    def _load(self):
        import json

        try:
            check_private_file(self.path, "credential file")
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        try:
            document = json.loads(raw.decode("utf-8"))
            if document.get("format") != CREDENTIAL_FORMAT:
                raise ValueError("not a yt credential file")
            if document.get("version") != CREDENTIAL_VERSION:
                raise ValueError(
                    f"format version {document.get('version')!r} is not "
                    f"supported by yt {__version__}"
                )
            kdf = document["kdf"]
            if kdf["name"] not in ("keyfile", "scrypt"):
                raise ValueError(f"unknown key derivation {kdf['name']!r}")
            if not isinstance(document["entries"], dict):
                raise ValueError("entries is not an object")
        except ValueError as exc:
            raise self._damaged(f"it is not valid ({exc})") from None
        except RecursionError:
            raise self._damaged("it is nested too deeply") from None
        except (KeyError, TypeError, AttributeError):
            raise self._damaged(
                "its structure is not what yt writes"
            ) from None
        return document

    def _aad(self, kdf: dict, base_url: str) -> bytes:
        return (
            f"{CREDENTIAL_FORMAT}/v{CREDENTIAL_VERSION}|{_canonical(kdf)}|"
            f"{base_url}"
        ).encode()

    def _key(self, kdf: dict, create: bool) -> bytes:
        if kdf["name"] == "keyfile":
            try:
                return read_key_file(
                    self.key_path, "credential key file", create=create
                )
            except FileNotFoundError:
                raise self._damaged(
                    f"its key file {self.key_path} is missing"
                ) from None
        cache_key = _canonical(kdf)
        if cache_key not in self._derived:
            passphrase = self.passphrase
            if passphrase is None and self.prompt:
                passphrase = self.prompt()
            if not passphrase:
                raise AuthError(
                    f"credential file {self.path} is protected by a "
                    f"passphrase; set YT_CREDENTIAL_PASSPHRASE or run yt on"
                    f" a terminal to be asked for it"
                )
            SECRETS.add(passphrase)
            scrypt = require_module(
                "cryptography.hazmat.primitives.kdf.scrypt",
                "the encrypted credential file",
            )
            n, r, p, salt = _scrypt_parameters(kdf, self._damaged)
            self._derived[cache_key] = scrypt.Scrypt(
                salt=salt, length=32, n=n, r=r, p=p,
            ).derive(passphrase.encode("utf-8"))
        return self._derived[cache_key]

    def _new_kdf(self) -> dict:
        import secrets

        if self.passphrase is None:
            return {"name": "keyfile"}
        return {"name": "scrypt", "salt": _b64(secrets.token_bytes(16)),
                "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}

    def _aesgcm(self, key: bytes):
        aead = require_module(
            "cryptography.hazmat.primitives.ciphers.aead",
            "the encrypted credential file",
        )
        return aead.AESGCM(key)

    def read_all(self, document=None) -> dict:
        """Decrypt every entry; raise naming the file if any fails."""
        import json

        document = document or self._load()
        if document is None or not document["entries"]:
            return {}
        kdf = document["kdf"]
        key = self._key(kdf, create=False)
        cipher = self._aesgcm(key)
        invalid_tag = require_module(
            "cryptography.exceptions", "the encrypted credential file"
        ).InvalidTag
        entries = {}
        for base_url, blob in document["entries"].items():
            try:
                plain = cipher.decrypt(
                    _unb64(blob["nonce"]), _unb64(blob["ciphertext"]),
                    self._aad(kdf, base_url),
                )
                value = json.loads(plain.decode("utf-8"))
                validate_token(value["token"])
            except invalid_tag:
                reason = "it fails authentication"
                if kdf["name"] == "scrypt":
                    reason += " (wrong passphrase, or the file was altered)"
                else:
                    reason += " (wrong key file, or the file was altered)"
                raise self._damaged(reason) from None
            except (ValueError, KeyError, TypeError, UsageError,
                    RecursionError) as exc:
                raise self._damaged(f"an entry is not valid ({exc})") from None
            SECRETS.add(value["token"])
            entries[base_url] = value
        return entries

    def get(self, base_url: str):
        value = self.read_all().get(base_url)
        return value["token"] if value else None

    def _write(self, document, entries) -> None:
        import json
        import secrets

        kdf = document["kdf"]
        key = self._key(kdf, create=True)
        cipher = self._aesgcm(key)
        document["entries"] = {}
        for base_url, value in sorted(entries.items()):
            nonce = secrets.token_bytes(12)
            ciphertext = cipher.encrypt(
                nonce, _canonical(value).encode("utf-8"),
                self._aad(kdf, base_url),
            )
            document["entries"][base_url] = {
                "nonce": _b64(nonce), "ciphertext": _b64(ciphertext),
            }
        atomic_write(self.path, json.dumps(document, indent=1).encode())

    def set(self, base_url: str, token: str) -> None:
        # Check for cryptography first, so no key file is left behind.
        require_module("cryptography.hazmat.primitives.ciphers.aead",
                       "the encrypted credential file")
        with file_lock(self.lock_path):
            document = self._load()
            if document is None:
                document = {"format": CREDENTIAL_FORMAT,
                            "version": CREDENTIAL_VERSION,
                            "kdf": self._new_kdf(), "entries": {}}
            entries = self.read_all(document)
            entries[base_url] = {"token": token}
            self._write(document, entries)

    def delete(self, base_url: str) -> bool:
        with file_lock(self.lock_path):
            document = self._load()
            if document is None or base_url not in document["entries"]:
                return False
            entries = self.read_all(document)
            del entries[base_url]
            if entries:
                self._write(document, entries)
            else:
                os.unlink(self.path)
            return True

    def has(self, base_url: str) -> bool:
        document = self._load()
        return bool(document) and base_url in document["entries"]


def _scrypt_parameters(kdf: dict, damaged):
    """Return (n, r, p, salt) from the file, within sane bounds.

    The bounds keep a tampered file from making yt spend hours or
    gigabytes on one derivation: n up to 2**20 and r*p up to 64 is at
    most 1 GiB and a few seconds.
    """
    try:
        n, r, p = (kdf[name] for name in ("n", "r", "p"))
        salt = _unb64(kdf["salt"])
    except (KeyError, TypeError, ValueError):
        raise damaged("its scrypt parameters are missing or invalid") \
            from None
    numbers = all(type(v) is int for v in (n, r, p))
    if not (numbers and 2**14 <= n <= 2**20 and n & (n - 1) == 0
            and 1 <= r <= 32 and 1 <= p <= 16 and r * p <= 64
            and 16 <= len(salt) <= 64):
        raise damaged(
            "its scrypt parameters are out of range (n must be a power of "
            "2 from 2**14 to 2**20, r 1 to 32, p 1 to 16, salt 16 to 64 "
            "bytes)"
        )
    return n, r, p, salt


class KeyringStore:
    """The system keyring through the keyring package, with a time limit.

    A keyring that is missing, locked or hanging on D-Bus is reported as
    unavailable within KEYRING_TIMEOUT seconds instead of blocking yt.
    """

    name = "keyring"

    def __init__(self, env, timeout=KEYRING_TIMEOUT):
        self.env = env
        self.timeout = timeout
        self._backend = None
        self.problem = None
        self.absent = False
        self.backend_name = None

    def _select_backend(self):
        """Pick the backend without keyring's full plugin scan if safe.

        On Linux with no keyring configuration, keyring would pick its
        Secret Service backend.  yt then uses SecretServiceBackend, which
        stores items the same way without importing keyring at all, as
        long as secretstorage can be imported.  Configuration means
        PYTHON_KEYRING_BACKEND, a keyringrc.cfg, or a KEYRING_PROPERTY_*
        variable, which sets an attribute such as scheme or
        preferred_collection on keyring's backend.
        """
        name = self.env.get("PYTHON_KEYRING_BACKEND")
        if name:
            _import_keyring()
            import keyring.core

            try:
                return keyring.core.load_keyring(name)
            except Exception as exc:
                raise RuntimeError(
                    f"PYTHON_KEYRING_BACKEND={name} cannot be loaded "
                    f"({type(exc).__name__}: {exc}); set it to a class "
                    f"such as keyring.backends.SecretService.Keyring, or "
                    f"unset it"
                ) from None
        configured = self._has_rc_file() or any(
            variable.startswith("KEYRING_PROPERTY_") for variable in self.env)
        if (sys.platform.startswith("linux") and not configured
                and _importable("secretstorage")):
            if not self.env.get("DBUS_SESSION_BUS_ADDRESS"):
                raise _NoKeyring(
                    "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset)"
                )
            backend = SecretServiceBackend()
            # Named even when the check fails, for doctor's report.
            self.backend_name = backend.label
            backend.check()
            return backend
        return _import_keyring().get_keyring()

    def _has_rc_file(self) -> bool:
        base = self.env.get("XDG_CONFIG_HOME") or os.path.join(
            _home(), ".config"
        )
        return os.path.exists(
            os.path.join(base, "python_keyring", "keyringrc.cfg")
        )

    def _call(self, function, *args):
        """Run a keyring call in a thread and give up after the timeout."""
        import threading

        result = {}

        def target():
            try:
                result["value"] = function(*args)
            except BaseException as exc:  # reported to the caller below
                result["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            raise RuntimeError(
                f"the keyring did not respond within {self.timeout:.0f} s"
            )
        if "error" in result:
            raise result["error"]
        return result.get("value")

    def backend(self):
        """Return the usable backend, or None with problem and absent set.

        absent is true when there is simply no keyring on this host (no
        package, no D-Bus session, no backend), as opposed to a keyring
        that exists but failed, is locked or hangs.
        """
        if self._backend is None and self.problem is None:
            try:
                backend = self._call(self._select_backend)
                self.backend_name = _backend_label(backend)
                if _is_null_backend(backend):
                    self.absent = True
                    self.problem = "no keyring backend is available"
                else:
                    self._backend = backend
            except MissingDependencyError as exc:
                self.absent = True
                self.problem = str(exc)
            except _NoKeyring as exc:
                self.absent = True
                self.problem = str(exc)
            except Exception as exc:
                self.problem = _describe_keyring_error(exc)
        return self._backend

    def available(self) -> bool:
        return self.backend() is not None

    def get(self, base_url: str):
        backend = self.backend()
        if backend is None:
            return None
        try:
            token = self._call(
                backend.get_password, KEYRING_SERVICE, base_url
            )
        except Exception as exc:
            self.problem = _describe_keyring_error(exc)
            return None
        if not token:
            return None
        # Registered before the check, so no message can show it.
        SECRETS.add(token)
        SECRETS.add(token.strip())
        try:
            # Tools such as secret-tool store a trailing newline too.
            return validate_token(token)
        except UsageError as exc:
            raise AuthError(
                f"the token stored in the keyring for {base_url} is not "
                f"valid: {exc}; store it again with: yt auth login"
            ) from None

    def set(self, base_url: str, token: str) -> bool:
        backend = self.backend()
        if backend is None:
            return False
        try:
            self._call(
                backend.set_password, KEYRING_SERVICE, base_url, token
            )
            return self._call(
                backend.get_password, KEYRING_SERVICE, base_url
            ) == token
        except Exception as exc:
            self.problem = _describe_keyring_error(exc)
            return False

    def delete(self, base_url: str) -> bool:
        backend = self.backend()
        if backend is None:
            return False
        try:
            if self._call(
                backend.get_password, KEYRING_SERVICE, base_url
            ) is None:
                return False
            self._call(backend.delete_password, KEYRING_SERVICE, base_url)
            return True
        except Exception as exc:
            self.problem = _describe_keyring_error(exc)
            return False


def _import_keyring():
    """Import keyring with its log messages silenced; yt reports its own."""
    import logging

    keyring = require_module("keyring", "the system keyring")
    logging.getLogger("keyring").setLevel(logging.CRITICAL)
    return keyring


class _NoKeyring(RuntimeError):
    """Raised when this host has no keyring service to talk to.

    Examples are a Linux host without a D-Bus session bus, or a session
    bus on which nothing provides the Secret Service.
    """


def _is_null_backend(backend) -> bool:
    label = _backend_label(backend)
    # keyring's null backend stores nothing. Users select it to turn the
    # keyring off, so it counts as no keyring.
    if label.startswith(("keyring.backends.fail", "keyring.backends.null")):
        return True
    return "chainer" in label.lower() and not getattr(
        backend, "backends", None
    )


class SecretServiceBackend:
    """keyring's Secret Service backend, written on secretstorage alone.

    Importing keyring costs more than a whole token lookup: it loads its
    plugin machinery and, through jaraco.context, urllib.request and
    http.client.  Items get the attributes and label that keyring's
    SecretService.Keyring gives them in the default collection, so
    either program reads what the other stored.  Each call opens its
    own connection, as keyring does.  Unlike keyring, yt never prompts:
    a locked collection is an error, and a missing default collection
    contains no token and takes none.
    """

    label = "SecretService default collection"
    application = "Python keyring library"

    @contextlib.contextmanager
    def _collection(self, create: bool):
        """Yield the unlocked default collection, or None if it is missing.

        With create, a missing collection is an error instead, because
        creating one means a password prompt on a desktop.
        """
        import secretstorage
        from secretstorage.exceptions import (
            ItemNotFoundException,
            SecretServiceNotAvailableException,
        )

        try:
            connection = secretstorage.dbus_init()
        except (OSError, ValueError,
                SecretServiceNotAvailableException) as exc:
            address = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise RuntimeError(
                f"cannot connect to the D-Bus session bus at {address} "
                f"({detail}); check DBUS_SESSION_BUS_ADDRESS, or unset it "
                f"where no desktop session runs"
            ) from None
        try:
            try:
                # Without a path, Collection opens the "default" alias.
                collection = secretstorage.Collection(connection)
            except ItemNotFoundException:
                if create:
                    raise RuntimeError(
                        "the Secret Service has no default collection; "
                        "create one with the desktop's password manager "
                        "(Passwords and Keys on GNOME), then log in again"
                    ) from None
                collection = None
            if collection is not None and collection.is_locked():
                raise RuntimeError(
                    "the Secret Service collection is locked; unlock it in "
                    "the desktop's password manager, or log in to the "
                    "desktop session again"
                )
            yield collection
        except SecretServiceNotAvailableException as exc:
            if _secret_service_missing(exc):
                raise _NoKeyring(
                    "no Secret Service on the D-Bus session bus (nothing "
                    "provides org.freedesktop.secrets)"
                ) from None
            raise
        finally:
            connection.close()

    @staticmethod
    def _query(service: str, username: str) -> dict:
        return {"username": username, "service": service}

    def _items(self, collection, service: str, username: str):
        """Return the items of service and username in collection, if any."""
        if collection is None:
            return []
        return collection.search_items(self._query(service, username))

    def check(self) -> None:
        """Raise unless the Secret Service replies and is unlocked."""
        with self._collection(create=False):
            pass

    def get_password(self, service: str, username: str):
        with self._collection(create=False) as collection:
            for item in self._items(collection, service, username):
                return item.get_secret().decode("utf-8")
        return None

    def set_password(self, service: str, username: str, password: str):
        attributes = dict(self._query(service, username),
                          application=self.application)
        with self._collection(create=True) as collection:
            collection.create_item(
                f"Password for '{username}' on '{service}'", attributes,
                password.encode("utf-8"), replace=True,
            )

    def delete_password(self, service: str, username: str) -> None:
        with self._collection(create=False) as collection:
            for item in self._items(collection, service, username):
                item.delete()


def _secret_service_missing(exc) -> bool:
    """Tell whether secretstorage failed because no service is running."""
    name = getattr(exc.__cause__, "name", None)
    return name in ("org.freedesktop.DBus.Error.ServiceUnknown",
                    "org.freedesktop.DBus.Error.Spawn.ExecFailed")


def _backend_label(backend) -> str:
    if isinstance(backend, SecretServiceBackend):
        return backend.label
    cls = type(backend)
    return f"{cls.__module__}.{cls.__name__}"


def _describe_keyring_error(exc) -> str:
    """Return the first line of a keyring error, masked and escaped.

    yt's own messages are RuntimeErrors and complete sentences.  Other
    errors come from keyring, secretstorage or jeepney, and their class
    name often says more than their text, so it is kept.
    """
    text = str(exc).strip().splitlines()
    detail = text[0] if text else type(exc).__name__
    if type(exc) is not RuntimeError:
        detail = f"{type(exc).__name__}: {detail}"
    if type(exc).__name__ == "KeyringLocked":
        detail += ("; unlock the keyring in the desktop's password manager, "
                   "or log in to the desktop session again")
    detail = escape_control(mask(detail))
    if len(detail) > 500:
        detail = detail[:500].rsplit(" ", 1)[0] + " ..."
    return detail


class LegacyFileStore:
    """The plain-text YOUTRACK_TOKEN line of the config file."""

    name = "plain file"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.path = settings.path

    def get(self, base_url: str):
        token = self._token_for(base_url)
        if token and self.settings.file_error is not None:
            raise self.settings.file_error
        return token

    def _token_for(self, base_url: str):
        token = self.settings.file_values.get("YOUTRACK_TOKEN")
        configured = self.settings.file_values.get("YOUTRACK_BASE_URL")
        if not token:
            return None
        if configured:
            try:
                configured = parse_base_url("YOUTRACK_BASE_URL", configured)
            except UsageError:
                return None
            if configured != base_url:
                return None
        SECRETS.add(token)
        return token

    def set(self, base_url: str, token: str) -> None:
        update_config_file(self.path, {
            "YOUTRACK_BASE_URL": base_url, "YOUTRACK_TOKEN": token,
        })

    def delete(self, base_url: str) -> bool:
        # Removing a token works even from a file yt would not read it
        # from (loose permissions, a bad line elsewhere).
        if not self._token_for(base_url):
            return False
        update_config_file(self.path, {"YOUTRACK_TOKEN": None})
        return True


def update_config_file(path: str, changes: dict) -> None:
    """Set (or, with None, remove) keys in the config file in place.

    Comments, blank lines and other keys are kept.  The new file is
    written atomically with mode 0600.
    """
    with file_lock(path + ".lock"):
        try:
            lines = read_config_text(path).splitlines()
        except FileNotFoundError:
            lines = []
        # Lines that do not parse are kept as they are.
        pending = dict(changes)
        output = []
        for line in lines:
            match = _CONFIG_LINE.fullmatch(line)
            key = match.group(1) if match else None
            if key in changes:
                value = pending.pop(key, None)
                if value is not None:
                    output.append(f"{key}={format_config_value(value)}")
                continue
            output.append(line)
        for key, value in pending.items():
            if value is not None:
                output.append(f"{key}={format_config_value(value)}")
        text = "\n".join(output) + ("\n" if output else "")
        atomic_write(path, text.encode("utf-8"))


# ##### Token status ######################################################

STATUS_MARKERS = {
    "valid": ("🟢", "[valid]"),
    "expiring": ("🟡", "[expiring]"),
    "expired": ("🔴", "[EXPIRED]"),
    "permanent": ("✅", "[permanent]"),
    "unknown": ("⚪", "[unknown]"),
}


def parse_expiry(value: str) -> dt.datetime:
    """Parse an ISO 8601 date or a datetime with an offset, as UTC.

    A bare date means midnight UTC at the start of that day, so warnings
    come early rather than late.
    """
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day,
                               tzinfo=dt.timezone.utc)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise UsageError(
            f"invalid expiry date {value!r}: expected an ISO 8601 date "
            f"(2027-01-31) or a date and time with an offset "
            f"(2027-01-31T18:00:00+01:00 or ...Z)"
        )
    return moment.astimezone(dt.timezone.utc)


def _b64url_json(part: str):
    import base64
    import json

    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def jwt_expiry(token: str):
    """Return the exp of a JWT as a UTC datetime, or None.

    Anything malformed (not three parts, bad base64, no JSON header, a
    non-numeric exp) gives None, never an exception.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return None
    try:
        header = _b64url_json(parts[0])
        payload = _b64url_json(parts[1])
        if not isinstance(header, dict) or not isinstance(payload, dict):
            return None
        exp = payload.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None
        return dt.datetime.fromtimestamp(exp, dt.timezone.utc)
    except (ValueError, OverflowError, OSError, UnicodeError,
            RecursionError):
        # RecursionError: json raises it for deeply nested arrays.
        return None


def token_kind(token: str) -> str:
    if token.startswith(("perm:", "perm-")):
        return "permanent token"
    if jwt_expiry(token) is not None:
        return "JWT"
    return "token"


def token_status(token, recorded=None, now=None, warning_days=7,
                 source=None) -> dict:
    """Classify a token as valid, expiring, expired, permanent or unknown.

    A recorded expiry date wins; otherwise a JWT's exp is used; perm:
    tokens without a recorded date are permanent; anything else is
    unknown.  All comparisons are in UTC.
    """
    now = (now or utc_now()).astimezone(dt.timezone.utc)
    expires = recorded
    if expires is None and token:
        expires = jwt_expiry(token)
    result = {"status": "unknown", "expires_at": None, "days_left": None,
              "source": source, "kind": token_kind(token) if token else None}
    if expires is None:
        if token and token.startswith(("perm:", "perm-")):
            result["status"] = "permanent"
        return result
    remaining = expires - now
    result["expires_at"] = _now_iso(expires)
    result["days_left"] = int(remaining.total_seconds() // 86400)
    if remaining.total_seconds() <= 0:
        result["status"] = "expired"
    elif remaining <= dt.timedelta(days=warning_days):
        result["status"] = "expiring"
    else:
        result["status"] = "valid"
    return result


class ExpiryRecords:
    """Expiry dates the user recorded, keyed by a SHA-256 of the token."""

    def __init__(self, data_path: str):
        self.path = os.path.join(data_path, "token-expiry.json")

    @staticmethod
    def _fingerprint(token: str) -> str:
        import hashlib

        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    def _load(self) -> dict:
        import json

        try:
            with open(self.path, encoding="utf-8") as handle:
                records = json.load(handle)
        except (FileNotFoundError, NotADirectoryError):
            # NotADirectoryError: the data directory path is a file, so
            # nothing was ever recorded there.
            return {}
        except (OSError, ValueError, RecursionError) as exc:
            raise YtError(
                f"{self.path} is not valid ({exc}); remove it and record "
                f"the expiry again with: yt auth token --update --expires "
                f"DATE"
            ) from None
        return records if isinstance(records, dict) else {}

    def get(self, token: str):
        value = self._load().get(self._fingerprint(token))
        if not value:
            return None
        try:
            return parse_expiry(value)
        except UsageError:
            return None

    def set(self, token: str, expires) -> None:
        import json

        with file_lock(self.path + ".lock"):
            records = self._load()
            key = self._fingerprint(token)
            if expires is None:
                records.pop(key, None)
            else:
                records[key] = _now_iso(expires)
            atomic_write(self.path, json.dumps(records, indent=1).encode())


# ##### HTTP and TLS transport ############################################

_VERIFY_REASONS = {
    10: "the certificate has expired",
    9: "the certificate is not yet valid",
    18: "the certificate is self-signed",
    19: "the chain ends in a self-signed certificate that is not trusted",
    20: "the issuer is unknown (no trusted CA signed it)",
    21: "the issuer is unknown (no trusted CA signed it)",
    62: "the certificate does not match the host name",
    64: "the certificate does not match the IP address",
}


class TLSSettings:
    """Certificate checks: verification on or off, extra CAs, and pins."""

    def __init__(self, settings: Settings):
        self.verify = settings.verify_ssl
        self.ca_bundle = settings.get("YOUTRACK_CA_BUNDLE")
        self.pins = settings.get("YOUTRACK_CERT_SHA256") or ()
        self.cert_file = settings.env.get("SSL_CERT_FILE") or None
        self.cert_dir = settings.env.get("SSL_CERT_DIR") or None

    def ca_sources(self) -> list:
        sources = ["system store"]
        for path in (self.cert_file, self.cert_dir, self.ca_bundle):
            if path:
                sources.append(path)
        return sources

    def context(self):
        import ssl

        context = ssl.create_default_context()
        for path in (self.cert_file, self.cert_dir, self.ca_bundle):
            if not path:
                continue
            try:
                if os.path.isdir(path):
                    context.load_verify_locations(capath=path)
                else:
                    context.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(
                    f"cannot load CA certificates from {path}: {exc}; it "
                    f"must be a PEM file or a directory prepared with "
                    f"c_rehash/openssl rehash"
                ) from None
        if self.pins or not self.verify:
            # A pin replaces CA validation: the leaf itself is compared
            # with the pinned fingerprints after the handshake.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _fingerprint_text(digest_hex: str) -> str:
    return ":".join(
        digest_hex[i:i + 2] for i in range(0, len(digest_hex), 2)
    ).upper()


class Response:
    """A parsed HTTP response: status, headers and body bytes."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str, default=None):
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return default


class Transport:
    """One kept-alive HTTP(S) connection to the YouTrack server.

    GET requests are retried on connection errors and on 429/502/503/504
    with backoff and Retry-After (capped); other methods are never retried.
    Redirects are followed only for GET, and only to the same scheme,
    host and port, so the token never reaches another host.
    """

    def __init__(self, base_url, token, settings: Settings, debug=False,
                 sleep=time.sleep):
        from urllib.parse import urlsplit

        self.base_url = base_url
        parts = urlsplit(base_url)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.timeout = settings.get("YOUTRACK_TIMEOUT")
        self.tls = TLSSettings(settings) if self.scheme == "https" else None
        self.proxy = _proxy_for(settings.env, self.scheme, self.host)
        self.debug = debug
        self.sleep = sleep
        self._connection = None
        self.connections_opened = 0
        if token:
            SECRETS.add(token)

    # -- connection --

    def _connect(self):
        import http.client

        if self._connection is not None:
            return self._connection
        target_host, target_port = self.host, self.port
        if self.proxy:
            target_host, target_port = self.proxy["host"], self.proxy["port"]
        if self.scheme == "https":
            context = self.tls.context()
            connection = http.client.HTTPSConnection(
                target_host, target_port, timeout=self.timeout,
                context=context,
            )
        else:
            connection = http.client.HTTPConnection(
                target_host, target_port, timeout=self.timeout
            )
        if self.proxy and self.scheme == "https":
            connection.set_tunnel(
                self.host, self.port, headers=self.proxy["headers"]
            )
        connection.connect()
        self.connections_opened += 1
        if self.scheme == "https" and self.tls.pins:
            self._check_pin(connection)
        self._connection = connection
        return connection

    def _check_pin(self, connection) -> None:
        import hashlib

        der = connection.sock.getpeercert(binary_form=True)
        actual = hashlib.sha256(der).hexdigest()
        if actual not in self.tls.pins:
            connection.close()
            raise CertificateError(
                f"certificate of {self.host}:{self.port} does not match "
                f"YOUTRACK_CERT_SHA256: the server presented "
                f"{_fingerprint_text(actual)}, expected "
                + " or ".join(_fingerprint_text(p) for p in self.tls.pins)
                + "; if the server's certificate was renewed, check the new"
                " fingerprint out of band and update the pin"
            )
        not_after = _certificate_not_after(der)
        if not_after is not None and not_after < utc_now():
            connection.close()
            raise CertificateError(
                f"the pinned certificate of {self.host}:{self.port} expired"
                f" on {_now_iso(not_after)}; renew it on the server and pin"
                f" the new fingerprint"
            )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- requests --

    def url_path(self, path: str, query=None) -> str:
        from urllib.parse import urlencode

        full = self.prefix + path
        if query:
            full += ("&" if "?" in full else "?") + urlencode(
                query, doseq=True
            )
        return full

    def request(self, method, path, query=None, body=None,
                content_type="application/json") -> Response:
        """Send one request and return the response; raise on failure."""
        target = self.url_path(path, query)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send_with_retries(
                method, target, body, content_type
            )
            if response.status not in (301, 302, 303, 307, 308):
                return response
            target = self._redirect_target(method, response)
        raise YtError(
            f"too many redirects from {self.base_url}; check "
            f"YOUTRACK_BASE_URL"
        )

    def _redirect_target(self, method, response) -> str:
        from urllib.parse import urljoin, urlsplit

        location = response.header("Location") or ""
        current = f"{self.scheme}://{self.host}:{self.port}"
        absolute = urljoin(current + "/", location)
        parts = urlsplit(absolute)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if (parts.scheme, parts.hostname, port) != (
            self.scheme, self.host, self.port
        ):
            raise YtError(
                f"the server redirected to {escape_control(mask(absolute))},"
                f" another scheme or host; yt does not follow it because "
                f"the token would be sent there. If that is the real "
                f"server, set YOUTRACK_BASE_URL to it"
            )
        if method != "GET":
            raise YtError(
                f"the server redirected a {method} request to "
                f"{escape_control(mask(absolute))}; set YOUTRACK_BASE_URL "
                f"to the URL the server redirects to"
            )
        target = parts.path or "/"
        return target + (f"?{parts.query}" if parts.query else "")

    def _send_with_retries(self, method, target, body, content_type):
        attempts = MAX_RETRIES + 1 if method == "GET" else 1
        for attempt in range(attempts):
            last_try = attempt == attempts - 1
            try:
                response = self._send(method, target, body, content_type)
            except CertificateError:
                self.close()
                raise
            except NetworkError:
                self.close()
                if last_try:
                    raise
                delay = _backoff(attempt)
                log.info("connection failed; retrying in %.1f s", delay)
                self.sleep(delay)
                continue
            if response.status in (429, 502, 503, 504) and not last_try:
                delay = _retry_after(response, attempt)
                log.info(
                    "server responded with %d; retrying in %.1f s",
                    response.status, delay,
                )
                self.sleep(delay)
                continue
            return response
        raise AssertionError("unreachable")

    def _send(self, method, target, body, content_type) -> Response:
        import http.client
        import ssl

        headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "Host": self._host_header(),
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = content_type
        url = target
        if self.proxy and self.scheme == "http":
            url = f"http://{self._host_header()}{target}"
            headers.update(self.proxy["headers"])
        self._trace_request(method, target, headers, body)
        reused = self._connection is not None
        try:
            connection = self._connect()
            connection.request(method, url, body=body, headers=headers)
            raw = connection.getresponse()
            data = self._read_body(raw)
            response = Response(
                raw.status, raw.reason, raw.getheaders(), data
            )
            if raw.will_close:
                self.close()
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise self._certificate_error(exc) from None
        except ssl.SSLError as exc:
            self.close()
            raise NetworkError(
                f"TLS handshake with {self.host}:{self.port} failed: "
                f"{exc.reason or exc}; check that {self.base_url} serves "
                f"HTTPS on that port"
            ) from None
        except http.client.IncompleteRead as exc:
            self.close()
            raise NetworkError(
                f"the response from {self.host}:{self.port} was cut off "
                f"after {len(exc.partial)} bytes; retry, and check proxies "
                f"between yt and the server"
            ) from None
        except (http.client.RemoteDisconnected, ConnectionResetError,
                BrokenPipeError) as exc:
            self.close()
            if reused and method == "GET":
                return self._send(method, target, body, content_type)
            raise NetworkError(
                f"the connection to {self.host}:{self.port} was closed "
                f"before a response arrived ({type(exc).__name__}); retry, "
                f"and check the server and proxies"
            ) from None
        except (http.client.HTTPException, OSError) as exc:
            self.close()
            raise self._network_error(exc) from None
        self._trace_response(response)
        return response

    def _read_body(self, raw) -> bytes:
        """Read a response body within MAX_RESPONSE_BYTES and a deadline.

        The timeout applies to each read, so a server that trickles bytes
        could hold yt forever; the whole body must arrive within
        RESPONSE_DEADLINE_FACTOR timeouts.
        """
        deadline = time.monotonic() + self.timeout * RESPONSE_DEADLINE_FACTOR
        length = raw.getheader("Content-Length") or ""
        if length.isdigit() and int(length) > MAX_RESPONSE_BYTES:
            self.close()
            raise YtError(self._too_large(int(length)))
        chunks = []
        size = 0
        while True:
            chunk = raw.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                self.close()
                raise YtError(self._too_large(size))
            if time.monotonic() > deadline:
                self.close()
                raise NetworkError(
                    f"the response from {self.host}:{self.port} took longer "
                    f"than {self.timeout * RESPONSE_DEADLINE_FACTOR:g} s; "
                    f"check the network, or raise YOUTRACK_TIMEOUT"
                )
            chunks.append(chunk)
        data = b"".join(chunks)
        if raw.length:
            # read1 returns b"" when the server closes early, where read
            # would raise; the remaining Content-Length distinguishes the two.
            import http.client

            raise http.client.IncompleteRead(data, raw.length)
        # read() at the end marks the response done, so the kept-alive
        # connection can send the next request; read1 never does.
        data += raw.read()
        encoding = (raw.getheader("Content-Encoding") or "").lower()
        if encoding in ("gzip", "x-gzip"):
            data = self._gunzip(data)
        return data

    def _too_large(self, size: int) -> str:
        return (
            f"the response from {self.host}:{self.port} is larger than "
            f"{MAX_RESPONSE_BYTES // 2**20} MiB ({size} bytes); ask for "
            f"fewer items or fields (--limit, -f fields=...)"
        )

    def _gunzip(self, data: bytes) -> bytes:
        import zlib

        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            plain = decoder.decompress(data, MAX_RESPONSE_BYTES + 1)
            # A stream cut short decodes without an error, but its CRC
            # was never checked.
            if len(plain) <= MAX_RESPONSE_BYTES and not decoder.eof:
                raise zlib.error("the compressed data ends early")
        except zlib.error as exc:
            raise YtError(
                f"the gzip-compressed response from {self.host}:{self.port}"
                f" is damaged ({exc}); retry, and check proxies between yt "
                f"and the server"
            ) from None
        if len(plain) > MAX_RESPONSE_BYTES:
            raise YtError(self._too_large(len(plain)))
        return plain

    def _host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def _network_error(self, exc) -> NetworkError:
        import socket

        where = f"{self.host}:{self.port}"
        if self.proxy:
            where += f" through the proxy {self.proxy['host']}"
        if isinstance(exc, socket.gaierror):
            return NetworkError(
                f"cannot resolve the host name {self.host!r}: "
                f"{exc.strerror or exc}; check YOUTRACK_BASE_URL and DNS"
            )
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return NetworkError(
                f"timed out after {self.timeout:g} s waiting for {where}; "
                f"check the network, or raise YOUTRACK_TIMEOUT"
            )
        if isinstance(exc, ConnectionRefusedError):
            return NetworkError(
                f"cannot connect to {where}: connection refused; check "
                f"YOUTRACK_BASE_URL and that the server is running"
            )
        reason = getattr(exc, "strerror", None) or str(exc) or type(
            exc
        ).__name__
        return NetworkError(
            f"cannot connect to {where}: {reason}; check YOUTRACK_BASE_URL"
            f" and the network"
        )

    def _certificate_error(self, exc) -> CertificateError:
        code = getattr(exc, "verify_code", None)
        reason = _VERIFY_REASONS.get(
            code, getattr(exc, "verify_message", None) or str(exc)
        )
        fingerprint = self._peek_fingerprint()
        hint = (
            "add the CA that issued it with YOUTRACK_CA_BUNDLE=/path/to/"
            "ca.pem, or pin this certificate with YOUTRACK_CERT_SHA256"
        )
        if code in (62, 64):
            hint = (
                "use the host name the certificate was issued for in "
                "YOUTRACK_BASE_URL, or pin this certificate with "
                "YOUTRACK_CERT_SHA256"
            )
        elif code in (9, 10):
            hint = (
                "renew the certificate on the server, and check this "
                "machine's clock"
            )
        message = (
            f"TLS certificate verification failed for {self.host}:"
            f"{self.port}: {reason} (CA sources: "
            f"{', '.join(self.tls.ca_sources())}). Fix: {hint}"
        )
        if fingerprint and code not in (9, 10):
            message += (
                f". The server's certificate has SHA-256 fingerprint "
                f"{fingerprint}; compare it out of band before pinning it"
            )
        return CertificateError(message)

    def _peek_fingerprint(self):
        """Fetch the server certificate without trust, for error advice."""
        import hashlib
        import socket
        import ssl

        if self.proxy:
            return None
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection(
                (self.host, self.port), timeout=min(self.timeout, 5)
            ) as sock, context.wrap_socket(
                sock, server_hostname=self.host
            ) as tls:
                der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError):
            return None
        return _fingerprint_text(hashlib.sha256(der).hexdigest())

    # -- debug trace --

    def _trace_request(self, method, target, headers, body) -> None:
        if not self.debug:
            return
        lines = [f"> {method} {target}"]
        lines += [f"> {key}: {value}" for key, value in headers.items()]
        if body:
            lines.append("> " + _trace_body(body))
        log.debug("\n".join(lines))

    def _trace_response(self, response) -> None:
        if not self.debug:
            return
        lines = [f"< {response.status} {response.reason}"]
        lines += [f"< {key}: {value}" for key, value in response.headers]
        if response.body:
            lines.append("< " + _trace_body(response.body))
        log.debug("\n".join(lines))


def _trace_body(body) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (
        str(body)
    )
    if len(text) > 4000:
        text = text[:4000] + f"... ({len(text)} characters)"
    return text


def _backoff(attempt: int) -> float:
    return min(RETRY_AFTER_CAP, 0.5 * (2 ** attempt))


def _retry_after(response, attempt: int) -> float:
    value = (response.header("Retry-After") or "").strip()
    if value.isdigit():
        return min(RETRY_AFTER_CAP, float(value))
    if value:
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(value)
            seconds = (moment - utc_now()).total_seconds()
            return min(RETRY_AFTER_CAP, max(0.0, seconds))
        except (TypeError, ValueError):
            pass
    return _backoff(attempt)


def _certificate_not_after(der: bytes):
    """Return a DER certificate's notAfter, or None without cryptography."""
    try:
        from cryptography import x509
    except ImportError:
        return None
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    moment = getattr(certificate, "not_valid_after_utc", None)
    if moment is None:
        moment = certificate.not_valid_after.replace(tzinfo=dt.timezone.utc)
    return moment


def _proxy_for(env, scheme, host):
    """Return the proxy for scheme/host from *_PROXY, honouring NO_PROXY."""
    from urllib.parse import unquote, urlsplit

    def lookup(name):
        return env.get(name.lower()) or env.get(name.upper())

    no_proxy = lookup("no_proxy") or ""
    for item in no_proxy.replace(" ", "").split(","):
        item = item.lower().lstrip(".")
        if item == "*":
            return None
        if item and (host.lower() == item or host.lower().endswith(
            "." + item
        )):
            return None
    value = lookup(f"{scheme}_proxy") or lookup("all_proxy")
    if not value:
        return None
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        port = parts.port or 8080
    except ValueError:
        port = None
    if port is None or not parts.hostname or parts.scheme != "http":
        raise UsageError(
            f"invalid proxy {mask(value)!r} in {scheme.upper()}_PROXY: "
            f"expected http://host:port (https:// and socks proxies are "
            f"not supported)"
        )
    headers = {}
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        SECRETS.add(parts.password or "")
        headers["Proxy-Authorization"] = "Basic " + _b64(userinfo.encode())
    return {"host": parts.hostname, "port": port, "headers": headers}


# ##### YouTrack API ######################################################

ISSUE_ROW_FIELDS = (
    "id,idReadable,summary,updated,resolved,project(shortName),"
    "customFields(name,value(name,login,fullName,presentation))"
)
ISSUE_FIELDS = (
    "id,idReadable,summary,description,created,updated,resolved,"
    "project(id,shortName,name),reporter(login,fullName),"
    "customFields(name,value(name,login,fullName,presentation,minutes,text)),"
    "comments(id,text,created,author(login,fullName))"
)
PROJECT_FIELDS = "id,shortName,name,description,archived"
USER_FIELDS = "id,login,fullName,email"
COMMENT_FIELDS = "id,text,created,author(login,fullName)"
PROJECT_FIELD_FIELDS = "id,$type,field(name,fieldType(id))"

# ProjectCustomField $type -> (single-value, multi-value) IssueCustomField
# $type and the key that names a value in a request body.
_FIELD_TYPES = {
    "EnumProjectCustomField": (
        "SingleEnumIssueCustomField", "MultiEnumIssueCustomField", "name"),
    "StateProjectCustomField": (
        "StateIssueCustomField", "StateIssueCustomField", "name"),
    "UserProjectCustomField": (
        "SingleUserIssueCustomField", "MultiUserIssueCustomField", "login"),
    "OwnedProjectCustomField": (
        "SingleOwnedIssueCustomField", "MultiOwnedIssueCustomField", "name"),
    "VersionProjectCustomField": (
        "SingleVersionIssueCustomField", "MultiVersionIssueCustomField",
        "name"),
    "BuildProjectCustomField": (
        "SingleBuildIssueCustomField", "MultiBuildIssueCustomField", "name"),
    "GroupProjectCustomField": (
        "SingleGroupIssueCustomField", "MultiGroupIssueCustomField", "name"),
    "PeriodProjectCustomField": (
        "PeriodIssueCustomField", "PeriodIssueCustomField", "presentation"),
    "TextProjectCustomField": (
        "TextIssueCustomField", "TextIssueCustomField", "text"),
    "SimpleProjectCustomField": (
        "SimpleIssueCustomField", "SimpleIssueCustomField", None),
}


def _is_html(response) -> bool:
    kind = (response.header("Content-Type") or "").lower()
    return "html" in kind or response.body.lstrip()[:1] == b"<"


def _error_detail(response) -> str:
    """Return YouTrack's error_description (or error), masked and escaped."""
    import json

    try:
        data = json.loads(response.body.decode("utf-8"))
    except (ValueError, RecursionError):
        return ""
    if not isinstance(data, dict):
        return ""
    detail = data.get("error_description") or data.get("error") or ""
    return escape_control(mask(str(detail)))[:500]


def check_response(response, what: str) -> None:
    """Raise the YtError that fits an error status, naming what failed."""
    status = response.status
    if status < 400:
        return
    label = f"{status} {response.reason}".strip()
    if _is_html(response):
        raise (AuthError if status in (401, 403) else YtError)(
            f"{what} failed: the server returned an HTML page ({label}) "
            f"instead of JSON; a proxy error or a wrong path in "
            f"YOUTRACK_BASE_URL is likely"
        )
    detail = _error_detail(response)
    suffix = f": {detail}" if detail else ""
    if status == 401:
        raise AuthError(
            f"{what} failed: the server rejected the token ({label}"
            f"{suffix}); run yt auth login, or check YOUTRACK_TOKEN"
        )
    if status == 403:
        raise AuthError(
            f"{what} failed: permission denied ({label}{suffix}); the "
            f"token's user lacks the permission for this"
        )
    if status == 404:
        raise NotFoundError(f"{what} failed: not found ({label}{suffix})")
    if status == 400:
        raise YtError(f"{what} failed: invalid request ({label}{suffix})")
    raise YtError(f"{what} failed: server error ({label}{suffix})")


def parse_json_body(response, what: str):
    import json

    if not response.body.strip():
        return None
    kind = (response.header("Content-Type") or "").lower()
    if _is_html(response) or ("json" not in kind and kind):
        raise YtError(
            f"{what}: expected JSON from the server but got "
            f"{kind or 'no content type'}; check that YOUTRACK_BASE_URL "
            f"points at YouTrack, with its path prefix if it has one"
        )
    try:
        return json.loads(response.body.decode("utf-8"))
    except RecursionError:
        raise YtError(
            f"{what}: the server sent JSON nested too deeply to read; "
            f"check that YOUTRACK_BASE_URL points at YouTrack"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise YtError(
            f"{what}: the server sent invalid JSON ({exc}); retry, and "
            f"check proxies between yt and the server"
        ) from None


class YouTrack:
    """The YouTrack REST calls yt makes, each with a fields= projection."""

    def __init__(self, transport: Transport):
        self.transport = transport

    def call(self, method, path, query=None, payload=None, what=None):
        import json

        body = None
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
        what = what or f"{method} {path}"
        response = self.transport.request(method, path, query, body)
        check_response(response, what)
        return parse_json_body(response, what)

    def me(self) -> dict:
        what = "checking the token with /api/users/me"
        return require_object(
            self.call("GET", "/api/users/me", {"fields": USER_FIELDS},
                      what=what), what)

    def _paged(self, path, query, limit, what):
        skip = 0
        while limit is None or skip < limit:
            top = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - skip)
            page = self.call(
                "GET", path, dict(query, **{"$top": top, "$skip": skip}),
                what=what,
            )
            if not isinstance(page, list):
                raise YtError(
                    f"{what}: expected a JSON array from the server, got "
                    f"{_json_type(page)}; check that YOUTRACK_BASE_URL "
                    f"points at YouTrack"
                )
            for item in page:
                yield require_object(item, what)
            skip += len(page)
            if len(page) < top:
                return

    def issues(self, query=None, limit=None):
        params = {"fields": ISSUE_ROW_FIELDS}
        if query:
            params["query"] = query
        return self._paged("/api/issues", params, limit, "listing issues")

    def issue(self, issue_id: str) -> dict:
        what = f"reading issue {issue_id}"
        return require_object(self.call(
            "GET", f"/api/issues/{_path_id(issue_id)}",
            {"fields": ISSUE_FIELDS}, what=what,
        ), what)

    def projects(self, limit=None):
        return self._paged(
            "/api/admin/projects", {"fields": PROJECT_FIELDS}, limit,
            "listing projects",
        )

    def find_project(self, name: str) -> dict:
        wanted = name.lower()
        for project in self.projects():
            if wanted in (str(project.get("shortName", "")).lower(),
                          str(project.get("name", "")).lower()):
                return project
        raise NotFoundError(
            f"project {name!r} not found; yt projects list shows the "
            f"short names you can use"
        )

    def custom_fields_payload(self, project: dict, fields: dict) -> list:
        """Build customFields for a request from NAME=VALUE pairs."""
        if not fields:
            return []
        known = objects(self.call(
            "GET", f"/api/admin/projects/{project.get('id')}/customFields",
            {"fields": PROJECT_FIELD_FIELDS, "$top": 500},
            what=f"reading the fields of project {project.get('shortName')}",
        ))
        for item in known:
            item["field"] = _object_or_empty(item.get("field"))
        by_name = {
            str(item["field"].get("name", "")).lower(): item
            for item in known
        }
        payload = []
        for name, value in fields.items():
            item = by_name.get(name.lower())
            if item is None:
                names = ", ".join(
                    sorted(i.get("field", {}).get("name", "") for i in known)
                )
                raise UsageError(
                    f"project {project.get('shortName')} has no field "
                    f"{name!r}; its fields are: {names}"
                )
            payload.append(_custom_field_value(item, value))
        return payload

    def create_issue(self, project_name, summary, description, fields):
        project = self.find_project(project_name)
        payload = {"project": {"id": project["id"]}, "summary": summary}
        if description is not None:
            payload["description"] = description
        custom = self.custom_fields_payload(project, fields)
        if custom:
            payload["customFields"] = custom
        what = f"creating an issue in {project_name}"
        return require_object(self.call(
            "POST", "/api/issues", {"fields": ISSUE_FIELDS}, payload,
            what=what,
        ), what)

    def update_issue(self, issue_id, summary, description, fields):
        payload = {}
        if summary is not None:
            payload["summary"] = summary
        if description is not None:
            payload["description"] = description
        if fields:
            what = f"reading issue {issue_id}"
            current = require_object(self.call(
                "GET", f"/api/issues/{_path_id(issue_id)}",
                {"fields": "id,project(id,shortName)"}, what=what,
            ), what)
            project = require_object(current.get("project"), what)
            payload["customFields"] = self.custom_fields_payload(
                project, fields
            )
        what = f"updating issue {issue_id}"
        return require_object(self.call(
            "POST", f"/api/issues/{_path_id(issue_id)}",
            {"fields": ISSUE_FIELDS}, payload, what=what,
        ), what)

    def add_comment(self, issue_id, text):
        what = f"commenting on issue {issue_id}"
        return require_object(self.call(
            "POST", f"/api/issues/{_path_id(issue_id)}/comments",
            {"fields": COMMENT_FIELDS}, {"text": text}, what=what,
        ), what)


def _path_id(issue_id: str) -> str:
    from urllib.parse import quote

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", issue_id):
        raise UsageError(
            f"invalid issue id {issue_id!r}: expected an id such as "
            f"DEMO-12 or 2-45"
        )
    return quote(issue_id)


def _custom_field_value(item: dict, value: str) -> dict:
    field = item.get("field", {})
    kind = _FIELD_TYPES.get(item.get("$type"))
    # FieldType.id ends in "[*]" for multi-value fields ("enum[*]") and in
    # "[1]" for single-value ones; the OpenAPI description of YouTrack
    # 2026.3 has no isMultiValue attribute.
    type_id = str(field.get("fieldType", {}).get("id", ""))
    multi = type_id.endswith("[*]")
    if kind is None:
        return {"name": field.get("name"), "$type": "SimpleIssueCustomField",
                "value": value}
    single_type, multi_type, key = kind
    issue_type = multi_type if multi else single_type
    if value == "":
        return {"name": field.get("name"), "$type": issue_type,
                "value": [] if multi else None}
    if key is None:
        converted = _simple_value(field, value)
    elif multi:
        converted = [{key: part.strip()} for part in value.split(",")]
    else:
        converted = {key: value}
    return {"name": field.get("name"), "$type": issue_type,
            "value": converted}


def _simple_value(field: dict, value: str):
    type_id = str(field.get("fieldType", {}).get("id", ""))
    try:
        if type_id == "integer":
            return int(value)
        if type_id == "float":
            return float(value)
        if type_id.startswith("date"):
            moment = parse_expiry(value)
            return int(moment.timestamp() * 1000)
    except (ValueError, UsageError):
        raise UsageError(
            f"invalid value {value!r} for field {field.get('name')!r}: "
            f"expected a value of type {type_id}"
        ) from None
    return value


def field_value_text(value) -> str:
    """Render a custom field value as short text."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(field_value_text(item) for item in value)
    if isinstance(value, dict):
        for key in ("presentation", "name", "fullName", "login", "text"):
            if value.get(key) not in (None, ""):
                return str(value[key])
        return ""
    return str(value)


def require_object(data, what: str) -> dict:
    """Return data if it is a JSON object, else raise naming the request."""
    if not isinstance(data, dict):
        raise YtError(
            f"{what}: expected a JSON object from the server, got "
            f"{_json_type(data)}; check that YOUTRACK_BASE_URL points at "
            f"YouTrack"
        )
    return data


def _json_type(data) -> str:
    names = {dict: "an object", list: "an array", str: "a string",
             bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(data), "null")


def _object_or_empty(data) -> dict:
    return data if isinstance(data, dict) else {}


def objects(items) -> list:
    """Return the JSON objects of a server list, skipping anything else."""
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]


def custom_field(issue: dict, name: str) -> str:
    for field in objects(issue.get("customFields")):
        if str(field.get("name", "")).lower() == name.lower():
            return field_value_text(field.get("value"))
    return ""


def format_timestamp(milliseconds) -> str:
    if not isinstance(milliseconds, (int, float)):
        return ""
    moment = dt.datetime.fromtimestamp(milliseconds / 1000, dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# ##### Output ############################################################

# WARNING and ERROR have the values of the logging module, which is
# imported only when something is logged.  NOTICE, between INFO and
# WARNING, is the level of result messages such as "Logged in".
NOTICE, WARNING, ERROR = 25, 30, 40
_MARKERS = {
    "ok": ("✅", "[OK]"),
    "warning": ("⚠️", "WARNING:"),
    "error": ("❌", "ERROR:"),
}
_COLORS = {"red": "31", "green": "32", "yellow": "33", "dim": "2"}


def _can_encode(stream, text: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _escape_unencodable(error):
    """Replace characters a stream cannot encode with \\uXXXX escapes.

    The escapes are valid inside JSON strings, so JSON output stays valid
    on an ASCII terminal, and table text stays readable.
    """
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start:error.end]
    units = text.encode("utf-16-be", "surrogatepass")
    escaped = "".join(
        f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}"
        for i in range(0, len(units), 2)
    )
    return escaped, error.end


def _escape_unencodable_output(stream) -> None:
    """Make stream escape what its encoding cannot hold, not raise."""
    import codecs

    try:
        codecs.lookup_error("yt-escape")
    except LookupError:
        codecs.register_error("yt-escape", _escape_unencodable)
    # Python opens stdout with surrogateescape under the C locale, which
    # still raises on any other character the encoding lacks.
    reconfigure = getattr(stream, "reconfigure", None)
    errors = getattr(stream, "errors", "")
    if reconfigure is not None and errors in ("strict", "surrogateescape"):
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors="yt-escape")


def _c_locale(env) -> bool:
    """Tell whether the user chose the C (POSIX) locale, as LANG=C does.

    Python makes stdout UTF-8 in that locale (PEP 538 coerces LC_CTYPE to
    C.UTF-8, PEP 540 turns on UTF-8 mode), so the stream's encoding alone
    cannot show that the terminal may lack emoji.
    """
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = env.get(name)
        if not value:
            continue
        if value in ("C", "POSIX"):
            return True
        coerced = name == "LC_CTYPE" and value.lower() in ("c.utf-8",
                                                         "c.utf8")
        return coerced and env.get("LANG") in ("C", "POSIX")
    return False


def _wants_color(stream, env, no_color: bool) -> bool:
    if no_color or "NO_COLOR" in env or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Output:
    """Masked writers for stdout (data) and stderr (messages)."""

    def __init__(self, stdout, stderr, env, no_color=False):
        self.stdout = stdout
        self.stderr = stderr
        self.color = _wants_color(stdout, env, no_color)
        self.err_color = _wants_color(stderr, env, no_color)
        plain = _c_locale(env)
        self.emoji = not plain and _can_encode(stdout, "✅🟢🟡🔴⚪⚠️…")
        self.err_emoji = not plain and _can_encode(stderr, "✅⚠️❌")
        self.ellipsis = "…" if _can_encode(stdout, "…") else "..."

    @property
    def is_terminal(self) -> bool:
        isatty = getattr(self.stdout, "isatty", None)
        return bool(isatty and isatty())

    def paint(self, text: str, color: str, stderr=False) -> str:
        if not (self.err_color if stderr else self.color):
            return text
        return f"\x1b[{_COLORS[color]}m{text}\x1b[0m"

    def marker(self, name: str, stderr=False) -> str:
        emoji, ascii_text = _MARKERS.get(name) or STATUS_MARKERS[name]
        return emoji if (self.err_emoji if stderr else self.emoji) else (
            ascii_text
        )

    def write(self, text: str = "") -> None:
        """Write one masked line of data to stdout."""
        self.stdout.write(mask(text) + "\n")

    def write_raw(self, text: str) -> None:
        """Write text unmasked: only for output the user asked for."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def json(self, data) -> None:
        self.write(json_text(data))

    def flush(self) -> None:
        self.stdout.flush()


class StderrHandler:
    """Log handler for stderr: masked, with markers and optional colour.

    Every message is masked and has its control characters escaped.
    logging.Logger calls only the level attribute and handle() of a
    handler, so this class need not inherit logging.Handler, and creating
    it does not import logging.
    """

    level = 0

    def __init__(self, output: Output):
        self.output = output

    def handle(self, record) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit msg
            message = str(record.msg)
        text = escape_control(mask(message)).replace("\\x0a", "\n")
        out = self.output
        if record.levelno >= ERROR:
            text = out.paint(f"yt: error: {text}", "red", stderr=True)
        elif record.levelno >= WARNING:
            text = out.paint(
                f"{out.marker('warning', stderr=True)} {text}", "yellow",
                stderr=True,
            )
        elif record.levelno < NOTICE:
            text = out.paint(text, "dim", stderr=True)
        # A closed or broken stderr must not end the command.
        with contextlib.suppress(OSError, ValueError):
            out.stderr.write(text + "\n")
            out.stderr.flush()


def terminal_width(env) -> int:
    import shutil

    try:
        columns = int(env.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    return columns or shutil.get_terminal_size((100, 24)).columns


# Widest column that Table pads to when it writes to a pipe or file.
_UNCUT_COLUMN_WIDTH = 80


class Table:
    """Columns fitted to the terminal; long cells end in an ellipsis.

    Widths are fixed by the first rows given, so that later rows of a
    streamed listing line up without buffering the whole result.
    """

    def __init__(self, output: Output, headers, flexible, width=None):
        self.output = output
        self.headers = list(headers)
        self.flexible = flexible
        self.width = width
        self.widths = None

    def _fit(self, rows) -> None:
        widths = [len(h) for h in self.headers]
        for row in rows:
            for index, cell in enumerate(row):
                widths[index] = max(widths[index], len(cell))
        if self.width:
            gap = 2 * (len(widths) - 1)
            for index in range(len(widths)):
                if index != self.flexible:
                    widths[index] = min(widths[index], 30)
            others = sum(w for i, w in enumerate(widths) if i != self.flexible)
            widths[self.flexible] = max(
                10, min(widths[self.flexible], self.width - others - gap)
            )
        else:
            # Without a terminal, cells are never cut.  One long cell then
            # pushes its row out instead of padding every row to its size.
            widths = [min(width, _UNCUT_COLUMN_WIDTH) for width in widths]
        self.widths = widths

    def _cell(self, text: str, width: int) -> str:
        if self.width and len(text) > width:
            text = text[: max(0, width - len(self.output.ellipsis))] + (
                self.output.ellipsis
            )
        return text.ljust(width)

    def rows(self, rows) -> None:
        rows = [[escape_control(str(c)) for c in row] for row in rows]
        if self.widths is None:
            self._fit(rows)
            header = "  ".join(
                self._cell(h, w) for h, w in zip(self.headers, self.widths)
            ).rstrip()
            self.output.write(self.output.paint(header, "dim"))
        for row in rows:
            line = "  ".join(
                self._cell(c, w) for c, w in zip(row, self.widths)
            )
            self.output.write(line.rstrip())


# ##### Command context ###################################################


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain") or host.endswith(
        ".localhost"
    ):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Context:
    """Settings, output and lazily opened credentials for one command."""

    def __init__(self, args, env, stdin, output: Output):
        self.args = args
        self.env = env
        self.stdin = stdin
        self.out = output
        flags = {"YOUTRACK_BASE_URL": getattr(args, "base_url", None)}
        self.settings = Settings(env, flags)
        self.data_path = data_dir(env)
        self.config_path = config_dir(env)
        self.debug = bool(getattr(args, "debug", False))
        self.audit_events = []
        self.audit_extra = {}
        self._credential = None
        self._client = None
        self._keyring = None
        self.contacted_server = False

    # -- stores --

    def keyring(self) -> KeyringStore:
        if self._keyring is None:
            self._keyring = KeyringStore(self.env)
        return self._keyring

    def encrypted_store(self, passphrase=None) -> EncryptedFileStore:
        passphrase = passphrase or self.settings.get(
            "YT_CREDENTIAL_PASSPHRASE"
        )
        if passphrase:
            SECRETS.add(passphrase)
        return EncryptedFileStore(
            self.data_path, self.config_path, passphrase,
            prompt=self._passphrase_prompt,
        )

    def _passphrase_prompt(self):
        if not _is_tty(self.stdin):
            return None
        import getpass

        return getpass.getpass("Passphrase for the credential file: ")

    def legacy_store(self) -> LegacyFileStore:
        return LegacyFileStore(self.settings)

    def expiry_records(self) -> ExpiryRecords:
        return ExpiryRecords(self.data_path)

    # -- credentials --

    def base_url(self) -> str:
        url = self.settings.get("YOUTRACK_BASE_URL")
        if not url:
            raise AuthError(
                "no YouTrack URL is configured; run yt auth login, or set "
                "YOUTRACK_BASE_URL (or pass --base-url)"
            )
        return url

    def credential(self, warn=True) -> Credential:
        """Find the token: environment, keyring, encrypted, plain file."""
        if self._credential is None:
            self._credential = self._lookup_credential()
            if warn:
                self._warn_expiry(self._credential)
        return self._credential

    def _lookup_credential(self) -> Credential:
        base_url = self.base_url()
        token = self.env.get("YOUTRACK_TOKEN")
        if token:
            token = validate_token(token)
            SECRETS.add(token)
            return Credential(base_url, token, "environment",
                              "YOUTRACK_TOKEN")
        keyring = self.keyring()
        token = keyring.get(base_url) if self._keyring_usable() else None
        store = self.encrypted_store()
        if token and not store.has(base_url):
            return Credential(base_url, token, "keyring",
                              keyring.backend_name or "")
        if token:
            # A login that stores in the keyring removes the file's entry,
            # so both exist only when the last login could not reach the
            # keyring, and then the file has the newer token.
            log.warning(
                "the keyring contains an older token for %s than the "
                "encrypted file; using the file's. Run yt auth login while "
                "the keyring is unlocked to replace the keyring's", base_url,
            )
        if store.has(base_url):
            self._keyring_notice(keyring)
        # get() decrypts every entry, so a tampered file is reported even
        # when the altered part is the base URL an entry is filed under.
        token = store.get(base_url)
        if token:
            return Credential(base_url, token, "encrypted file", store.path)
        token = self.legacy_store().get(base_url)
        if token:
            log.warning(
                "the token is read from the plain-text file %s; move it "
                "into the keyring or encrypted file with: yt auth login",
                self.settings.path,
            )
            return Credential(base_url, token, "plain file",
                              self.settings.path)
        if keyring.problem and not keyring.absent:
            raise AuthError(
                f"no token found for {base_url}, and the keyring could not "
                f"be read ({keyring.problem}); fix the keyring, run yt auth "
                f"login, or set YOUTRACK_TOKEN"
            )
        raise AuthError(
            f"no token stored for {base_url}; run yt auth login, or set "
            f"YOUTRACK_TOKEN"
        )

    def _keyring_usable(self) -> bool:
        """Tell whether a package that can reach a keyring is installed.

        secretstorage alone is enough on Linux: KeyringStore then talks to
        the Secret Service without the keyring package.
        """
        import importlib.util

        for name in ("keyring", "secretstorage"):
            try:
                if importlib.util.find_spec(name) is not None:
                    return True
            except (ImportError, ValueError):
                continue
        return False

    def _keyring_notice(self, keyring: KeyringStore) -> None:
        problem = keyring.problem
        if problem and not keyring.absent:
            log.warning("keyring unavailable (%s); using the encrypted "
                        "credential file", problem)

    def _warn_expiry(self, credential: Credential) -> None:
        try:
            if not self.settings.get("YT_TOKEN_WARNINGS"):
                return
            days = self.settings.get("YT_TOKEN_WARNING_DAYS")
            recorded = self.expiry_records().get(credential.token)
        except YtError as exc:
            log.warning("%s", exc)
            return
        status = token_status(credential.token, recorded, warning_days=days)
        if status["status"] == "expired":
            log.warning(
                "the token expired on %s; create a new token in YouTrack "
                "and run: yt auth token --update", status["expires_at"],
            )
        elif status["status"] == "expiring":
            log.warning(
                "the token expires on %s (%s left); create a new one "
                "soon and run: yt auth token --update",
                status["expires_at"], _days_phrase(status["days_left"]),
            )

    # -- server --

    def client(self, credential=None) -> YouTrack:
        if self._client is None or credential is not None:
            credential = credential or self.credential()
            self.warn_transport(credential.base_url)
            transport = Transport(
                credential.base_url, credential.token, self.settings,
                debug=self.debug,
            )
            self._client = YouTrack(transport)
            self.contacted_server = True
        return self._client

    def warn_transport(self, base_url: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        if parts.scheme == "https" and not self.settings.verify_ssl:
            log.warning("%s", SSL_DISABLED_WARNING)
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            log.warning(
                "%s uses plain http, so the token travels in clear text; "
                "use https", base_url,
            )

    def close(self) -> None:
        if self._client is not None:
            self._client.transport.close()


def _is_tty(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def read_secret(ctx: Context, prompt: str, from_stdin: bool) -> str:
    """Read a secret from stdin (--token-stdin) or a hidden prompt."""
    if from_stdin:
        text = ctx.stdin.read()
        if not text.strip():
            raise UsageError(
                "--token-stdin read nothing; pipe the token in, e.g. "
                "yt auth login --token-stdin < token.txt"
            )
        return validate_token(text)
    if not _is_tty(ctx.stdin):
        raise UsageError(
            "stdin is not a terminal, so yt cannot prompt for the token; "
            "pipe it with --token-stdin"
        )
    import getpass

    return validate_token(getpass.getpass(prompt))


def _parse_pairs(pairs, what: str) -> dict:
    result = {}
    for pair in pairs or []:
        if "=" not in pair or pair.startswith("="):
            raise UsageError(
                f"invalid {what} {mask(pair)!r}: expected NAME=VALUE"
            )
        name, value = pair.split("=", 1)
        result[name.strip()] = value
    return result


# ##### Commands: auth ####################################################


def _store_token(ctx: Context, base_url: str, token: str,
                 passphrase=None) -> str:
    """Store a token in the best store; remove it from the others.

    Returns the store used.  Removing the old entries from every other
    store means a rotated token is never shadowed by a stale one.
    """
    if not ctx.settings.get("YT_CREDENTIAL_ENCRYPTION"):
        ctx.legacy_store().set(base_url, token)
        used = "plain file"
    else:
        keyring = ctx.keyring()
        if not passphrase and keyring.set(base_url, token):
            used = "keyring"
        else:
            if keyring.problem and not passphrase:
                log.log(NOTICE, "Keyring unavailable: %s", keyring.problem)
            ctx.encrypted_store(passphrase).set(base_url, token)
            used = "encrypted file"
    if used != "keyring":
        keyring = ctx.keyring()
        with contextlib.suppress(MissingDependencyError):
            keyring.delete(base_url)
        if keyring.problem and not keyring.absent:
            # The keyring comes first in the lookup order, so an old
            # token left there would be used instead of this one.
            log.warning(
                "the keyring could not be checked for an older token for "
                "%s (%s); once the keyring works again, run yt auth login "
                "again so that an old token there cannot shadow this one",
                base_url, keyring.problem,
            )
    if used != "encrypted file":
        store = ctx.encrypted_store()
        if store.has(base_url):
            store.delete(base_url)
    if used != "plain file":
        ctx.legacy_store().delete(base_url)
    return used


def _report_store(ctx: Context, used: str) -> None:
    out = ctx.out
    if used == "keyring":
        log.log(NOTICE, "%s Token stored in the system keyring (%s)",
                out.marker("ok", stderr=True), ctx.keyring().backend_name)
    elif used == "encrypted file":
        store = ctx.encrypted_store()
        log.warning(
            "Token stored in the encrypted file %s (keyring unavailable), "
            "protected by %s", store.path, store.describe_protection(),
        )
    else:
        log.warning(
            "Token stored in PLAIN TEXT in %s because "
            "YT_CREDENTIAL_ENCRYPTION=false; anyone who can read that file "
            "can use it", ctx.settings.path,
        )


def login(ctx: Context, args) -> int:
    base_url = ctx.settings.get("YOUTRACK_BASE_URL")
    if not base_url:
        if not _is_tty(ctx.stdin) or args.token_stdin:
            raise UsageError(
                "no YouTrack URL given; pass --base-url URL or set "
                "YOUTRACK_BASE_URL"
            )
        base_url = parse_base_url(
            "the YouTrack URL", input("YouTrack URL: ")
        )
    expires = parse_expiry(args.expires) if args.expires else None
    if ctx.env.get("YOUTRACK_TOKEN"):
        log.warning(
            "YOUTRACK_TOKEN is set in the environment and overrides the "
            "token stored now; unset it to use the stored token"
        )
    token = read_secret(ctx, "YouTrack token (input hidden): ",
                        args.token_stdin)
    SECRETS.add(token)
    passphrase = None
    if args.passphrase:
        passphrase = ctx.settings.get("YT_CREDENTIAL_PASSPHRASE")
        if not passphrase:
            passphrase = _new_passphrase(ctx)
    credential = Credential(base_url, token, "login")
    user = ctx.client(credential).me()
    used = _store_token(ctx, base_url, token, passphrase)
    if expires is not None:
        ctx.expiry_records().set(token, expires)
    configured = ctx.settings.file_values.get("YOUTRACK_BASE_URL")
    if configured != base_url and used != "plain file":
        update_config_file(ctx.settings.path, {"YOUTRACK_BASE_URL": base_url})
    ctx.audit_events.append({"event": "auth", "action": "login",
                             "store": used, "base_url": base_url})
    _report_store(ctx, used)
    log.log(NOTICE, "Logged in to %s as %s", base_url,
            escape_control(str(user.get("login", "?"))))
    return 0


def _new_passphrase(ctx: Context) -> str:
    if not _is_tty(ctx.stdin):
        raise UsageError(
            "yt needs a terminal to ask for a new passphrase "
            "(--passphrase); run it on a terminal, or set "
            "YT_CREDENTIAL_PASSPHRASE in the environment"
        )
    import getpass

    first = getpass.getpass("New passphrase for the credential file: ")
    if len(first) < 8:
        raise UsageError("the passphrase is shorter than 8 characters")
    if getpass.getpass("Repeat the passphrase: ") != first:
        raise UsageError("the passphrases do not match; nothing was stored")
    SECRETS.add(first)
    return first


def logout(ctx: Context, args) -> int:
    base_url = ctx.base_url()
    removed = []
    keyring = ctx.keyring()
    try:
        with contextlib.suppress(MissingDependencyError):
            if keyring.delete(base_url):
                removed.append("keyring")
        store = ctx.encrypted_store()
        if store.has(base_url):
            store.delete(base_url)
            removed.append(f"encrypted file {store.path}")
        if ctx.legacy_store().delete(base_url):
            removed.append(f"plain file {ctx.settings.path}")
    finally:
        # Also when a later store fails (say, no passphrase for the
        # encrypted file): what was removed by then is reported.
        ctx.audit_events.append({"event": "auth", "action": "logout",
                                 "base_url": base_url, "removed": removed})
        if removed:
            log.log(NOTICE, "Removed the token for %s from: %s", base_url,
                    ", ".join(removed))
    keyring_unread = keyring.problem and not keyring.absent
    if not removed and not keyring_unread:
        log.log(NOTICE, "No stored token for %s", base_url)
    if ctx.env.get("YOUTRACK_TOKEN"):
        log.warning("YOUTRACK_TOKEN is still set in the environment")
    if keyring_unread:
        raise YtError(
            f"the keyring could not be read ({keyring.problem}), so a "
            f"token it may hold for {base_url} was not removed; fix the "
            f"keyring and run yt auth logout again"
        )
    return 0


def _token_summary(ctx: Context, credential: Credential) -> dict:
    days = ctx.settings.get("YT_TOKEN_WARNING_DAYS")
    recorded = ctx.expiry_records().get(credential.token)
    status = token_status(credential.token, recorded, warning_days=days,
                          source=credential.source)
    status["recorded_expiry"] = recorded is not None
    return status


def _source_text(ctx: Context, credential: Credential) -> str:
    if credential.source == "environment":
        return "environment variable YOUTRACK_TOKEN"
    if credential.source == "keyring":
        return f"system keyring ({credential.detail})"
    if credential.source == "encrypted file":
        protection = ctx.encrypted_store().describe_protection()
        return f"encrypted file {credential.detail} ({protection})"
    return f"plain-text file {credential.detail}"


def show_auth_status(ctx: Context, args) -> int:
    credential = ctx.credential()
    status = _token_summary(ctx, credential)
    user, problem, code = None, None, 0
    try:
        user = ctx.client().me()
    except YtError as exc:
        problem, code = str(exc), exc.exit_code
    data = {
        "base_url": credential.base_url,
        "user": user.get("login") if user else None,
        "user_name": user.get("fullName") if user else None,
        "source": credential.source,
        "source_detail": _source_text(ctx, credential),
        "token": MASK,
        "token_kind": token_kind(credential.token),
        "token_length": len(credential.token),
        "token_status": status,
        "server_check": "ok" if problem is None else problem,
    }
    if args.format == "json":
        ctx.out.json(data)
        return code
    out = ctx.out
    marker = out.marker(status["status"])
    rows = [
        ("URL", data["base_url"]),
        ("User", f"{data['user']} ({data['user_name']})" if user else
         f"unknown: {problem}"),
        ("Source", data["source_detail"]),
        ("Token", f"{MASK} ({data['token_kind']}, "
                  f"{data['token_length']} characters)"),
        ("Expiry", f"{marker} {_status_text(status)}"),
    ]
    for label, value in rows:
        out.write(f"{label + ':':<8} {escape_control(str(value))}")
    return code


def _status_text(status: dict) -> str:
    name = status["status"]
    if name == "permanent":
        return "permanent (no expiry date)"
    if name == "unknown":
        return ("unknown (record it with: yt auth token --update "
                "--expires DATE)")
    when = status["expires_at"]
    days = status["days_left"]
    if name == "expired":
        # days_left is rounded down, so count whole days ago afresh.
        ago = utc_now() - parse_expiry(when)
        return f"expired on {when} ({_days_phrase(ago.days)} ago)"
    return f"{name}, expires {when} ({_days_phrase(days)} left)"


def _days_phrase(days: int) -> str:
    if days < 1:
        return "less than a day"
    return "1 day" if days == 1 else f"{days} days"


def manage_token(ctx: Context, args) -> int:
    if args.show:
        credential = ctx.credential(warn=False)
        ctx.out.write_raw(credential.token)
        return 0
    current = None
    with contextlib.suppress(AuthError):
        current = ctx.credential(warn=False)
    expires = parse_expiry(args.expires) if args.expires else None
    if args.expires and not args.token_stdin and current is not None:
        ctx.expiry_records().set(current.token, expires)
        ctx.audit_events.append({"event": "auth", "action": "record_expiry"})
        log.log(NOTICE, "Recorded expiry %s for the current token",
                _now_iso(expires))
        return 0
    base_url = ctx.base_url()
    token = read_secret(ctx, "New YouTrack token (input hidden): ",
                        args.token_stdin)
    SECRETS.add(token)
    ctx.client(Credential(base_url, token, "update")).me()
    if current is not None and current.source == "environment":
        log.warning(
            "the current token comes from YOUTRACK_TOKEN; the new token is"
            " stored, but the variable still overrides it"
        )
    used = _store_token(ctx, base_url, token)
    if expires is not None:
        ctx.expiry_records().set(token, expires)
    ctx.audit_events.append({"event": "auth", "action": "token_update",
                             "store": used, "base_url": base_url})
    _report_store(ctx, used)
    return 0


def show_token_status(ctx: Context, args) -> int:
    credential = ctx.credential(warn=False)
    status = _token_summary(ctx, credential)
    if args.format == "json":
        ctx.out.json({k: status[k] for k in (
            "status", "expires_at", "days_left", "source", "kind",
            "recorded_expiry")})
    else:
        out = ctx.out
        out.write(f"{out.marker(status['status'])} {_status_text(status)}")
        out.write(f"Kind:   {status['kind']}")
        out.write(f"Source: {_source_text(ctx, credential)}")
    return 3 if status["status"] == "expired" else 0


# ##### Commands: issues, projects, api ###################################


def _issue_row(issue: dict) -> list:
    return [
        issue.get("idReadable") or issue.get("id", ""),
        custom_field(issue, "State"),
        custom_field(issue, "Priority"),
        custom_field(issue, "Assignee"),
        issue.get("summary") or "",
    ]


class _Progress:
    """A 'fetched N' line on stderr while a long listing pages."""

    def __init__(self, ctx: Context):
        self.stream = ctx.out.stderr
        self.enabled = _is_tty(self.stream)
        self.shown = False

    def update(self, count: int) -> None:
        if self.enabled and count and count % PAGE_SIZE == 0:
            self.stream.write(f"\rfetched {count} issues...")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def list_issues(ctx: Context, args) -> int:
    if args.limit is not None and args.limit < 0:
        raise UsageError(
            f"invalid --limit {args.limit}: expected 0 (all) or more"
        )
    query = args.query or ""
    if args.project:
        name = args.project
        scope = name if re.fullmatch(r"[\w.-]+", name) else "{" + name + "}"
        query = f"project: {scope} {query}".strip()
    issues = ctx.client().issues(query or None, args.limit or None)
    progress = _Progress(ctx)
    count = 0
    if args.format == "json":
        ctx.out.stdout.write("[")
        for issue in issues:
            prefix = "\n" if count == 0 else ",\n"
            item = json_text(issue).replace("\n", "\n  ")
            ctx.out.stdout.write(prefix + "  " + mask(item))
            count += 1
            progress.update(count)
        ctx.out.stdout.write("\n]\n" if count else "]\n")
        progress.done()
        return 0
    width = terminal_width(ctx.env) if ctx.out.is_terminal else None
    table = Table(ctx.out, ["ID", "STATE", "PRIORITY", "ASSIGNEE", "SUMMARY"],
                  flexible=4, width=width)
    batch = []
    for issue in issues:
        batch.append(_issue_row(issue))
        count += 1
        if len(batch) >= PAGE_SIZE:
            table.rows(batch)
            ctx.out.flush()
            batch = []
        progress.update(count)
    progress.done()
    if batch:
        table.rows(batch)
    if count == 0:
        log.log(NOTICE, "No issues match.")
    return 0


def show_issue(ctx: Context, args) -> int:
    issue = ctx.client().issue(args.id)
    if args.format == "json":
        ctx.out.json(issue)
        return 0
    out = ctx.out
    project = _object_or_empty(issue.get("project"))
    reporter = _object_or_empty(issue.get("reporter"))
    out.write(escape_control(
        f"{issue.get('idReadable') or args.id}: {issue.get('summary') or ''}"
    ))
    lines = [
        ("Project", project.get("shortName") or project.get("name")),
        ("Reporter", reporter.get("fullName") or reporter.get("login")),
        ("Created", format_timestamp(issue.get("created"))),
        ("Updated", format_timestamp(issue.get("updated"))),
        ("Resolved", format_timestamp(issue.get("resolved")) or "no"),
    ]
    for field in objects(issue.get("customFields")):
        lines.append((field.get("name"), field_value_text(field.get("value"))
                      or "-"))
    for label, value in lines:
        out.write(escape_control(f"  {label + ':':<14} {value or ''}"))
    if issue.get("description"):
        out.write()
        for line in str(issue["description"]).splitlines():
            out.write("  " + escape_control(line))
    comments = objects(issue.get("comments"))
    if comments:
        out.write()
        out.write(f"Comments ({len(comments)}):")
        for comment in comments:
            author = _object_or_empty(comment.get("author"))
            out.write(escape_control(
                f"  {author.get('login', '?')}, "
                f"{format_timestamp(comment.get('created'))}:"
            ))
            for line in str(comment.get("text") or "").splitlines():
                out.write("    " + escape_control(line))
    return 0


def _check_summary(summary) -> None:
    if summary is not None and not summary.strip():
        raise UsageError("the summary is empty; give the issue a summary")


def create_issue(ctx: Context, args) -> int:
    _check_summary(args.summary)
    fields = _parse_pairs(args.field, "--field")
    description = _text_argument(ctx, args.description)
    issue = ctx.client().create_issue(
        args.project, args.summary, description, fields
    )
    ctx.audit_extra["issue"] = issue.get("idReadable")
    if args.format == "json":
        ctx.out.json(issue)
    else:
        ctx.out.write(escape_control(str(issue.get("idReadable"))))
        log.log(NOTICE, "Created %s: %s", issue.get("idReadable"),
                escape_control(str(issue.get("summary"))))
    return 0


def update_issue(ctx: Context, args) -> int:
    _check_summary(args.summary)
    fields = _parse_pairs(args.field, "--field")
    description = _text_argument(ctx, args.description)
    if args.summary is None and description is None and not fields:
        raise UsageError(
            "nothing to update; pass --summary, --description or "
            "--field NAME=VALUE"
        )
    issue = ctx.client().update_issue(
        args.id, args.summary, description, fields
    )
    if args.format == "json":
        ctx.out.json(issue)
    else:
        log.log(NOTICE, "Updated %s", issue.get("idReadable") or args.id)
    return 0


def comment_issue(ctx: Context, args) -> int:
    text = _text_argument(ctx, args.text)
    if not text or not text.strip():
        raise UsageError("the comment text is empty")
    comment = ctx.client().add_comment(args.id, text)
    if args.format == "json":
        ctx.out.json(comment)
    else:
        log.log(NOTICE, "Commented on %s", args.id)
    return 0


def _text_argument(ctx: Context, value):
    """Return value, or stdin's text without its final newline for '-'."""
    if value == "-":
        text = ctx.stdin.read()
        return text[:-1] if text.endswith("\n") else text
    return value


def list_projects(ctx: Context, args) -> int:
    projects = ctx.client().projects()
    if args.format == "json":
        ctx.out.json(list(projects))
        return 0
    width = terminal_width(ctx.env) if ctx.out.is_terminal else None
    table = Table(ctx.out, ["SHORT NAME", "NAME", "ID"], flexible=1,
                  width=width)
    rows = [[p.get("shortName", ""), p.get("name", ""), p.get("id", "")]
            for p in projects]
    table.rows(rows)
    return 0


def call_api(ctx: Context, args) -> int:
    import json
    from urllib.parse import parse_qsl, urlsplit

    method = args.method.upper()
    if not re.fullmatch(r"[A-Z]+", method):
        raise UsageError(f"invalid method {args.method!r}: expected GET, "
                         f"POST, DELETE ...")
    raw_path = args.path.strip()
    if re.match(r"[a-z][a-z0-9+.-]*://", raw_path, re.I) or (
        raw_path.startswith("//")
    ):
        raise UsageError(
            "pass a path such as /api/users/me, not a full URL; the "
            "server comes from YOUTRACK_BASE_URL"
        )
    split = urlsplit(raw_path)
    path = "/" + split.path.lstrip("/")
    if not path.startswith("/api/") and path != "/api":
        path = "/api" + path
    query = parse_qsl(split.query, keep_blank_values=True)
    fields = _parse_pairs(args.field, "-f")
    body = None
    if args.input:
        if args.input == "-":
            body = ctx.stdin.buffer.read() if hasattr(
                ctx.stdin, "buffer") else ctx.stdin.read().encode()
        else:
            try:
                with open(args.input, "rb") as handle:
                    body = handle.read()
            except OSError as exc:
                raise UsageError(
                    f"cannot read --input {args.input}: {exc.strerror}"
                ) from None
    if fields:
        if method == "GET":
            query += list(fields.items())
        elif body is not None:
            raise UsageError("use either -f fields or --input, not both")
        else:
            body = json.dumps(fields).encode("utf-8")
    client = ctx.client()
    response = client.transport.request(method, path, query or None, body)
    what = f"{method} {path}"
    check_response(response, what)
    data = parse_json_body(response, what)
    if data is not None:
        ctx.out.json(data)
    return 0


# ##### Commands: security, config, doctor ################################


def audit_log(ctx: Context) -> AuditLog:
    try:
        limit = ctx.settings.get("YT_AUDIT_MAX_ENTRIES")
    except UsageError as exc:
        log.warning("%s; keeping 1000 entries", exc)
        limit = 1000
    return AuditLog(ctx.data_path, ctx.config_path, limit)


def show_audit(ctx: Context, args) -> int:
    audit = audit_log(ctx)
    if args.verify:
        return verify_audit(ctx, audit, args)
    if args.limit < 0:
        raise UsageError(f"invalid --limit {args.limit}: expected 0 or more")
    entries = audit.tail(args.limit) if os.path.exists(audit.path) else []
    if args.format == "json":
        ctx.out.json(entries)
        return 0
    if args.format == "jsonl":
        for entry in entries:
            ctx.out.write(json_text(entry, indent=None))
        return 0
    if not entries:
        log.log(NOTICE, "The audit log %s is empty.", audit.path)
        return 0
    table = Table(ctx.out, ["SEQ", "TIME (UTC)", "EVENT", "COMMAND",
                            "STATUS", "EXIT", "MS", "SSL"], flexible=3,
                  width=terminal_width(ctx.env) if ctx.out.is_terminal
                  else None)
    rows = []
    for entry in entries:
        command = entry.get("command") or ""
        if entry.get("args"):
            command = " ".join(str(a) for a in entry["args"])
        if entry.get("event") == "tls_config":
            command = ", ".join(entry.get("changed") or [])
        rows.append([
            entry.get("seq", ""), str(entry.get("ts", ""))[:19],
            entry.get("event", ""), command, entry.get("status", ""),
            entry.get("exit_code", ""), entry.get("duration_ms", ""),
            {True: "on", False: "OFF", None: ""}.get(entry.get("ssl_verify"),
                                                     ""),
        ])
    table.rows(rows)
    return 0


def verify_audit(ctx: Context, audit: AuditLog, args) -> int:
    report = audit.verify()
    if args.format in ("json", "jsonl"):
        ctx.out.json(report)
    elif report["ok"]:
        ctx.out.write(
            f"{ctx.out.marker('ok')} audit log verified: {report['entries']}"
            f" entries" + (
                f", seq {report['first_seq']} to {report['last_seq']}"
                if report["entries"] else ""
            )
        )
    if not report["ok"]:
        raise AuditIntegrityError(
            f"audit log {audit.path} failed verification: "
            f"{report['problem']}"
        )
    return 0


def clear_audit(ctx: Context, args) -> int:
    audit = audit_log(ctx)
    if not args.force:
        if not _is_tty(ctx.stdin):
            raise UsageError(
                "clear-audit asks for confirmation on a terminal; pass "
                "--force to clear without asking"
            )
        answer = input(f"Clear the audit log {audit.path}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            log.log(NOTICE, "Nothing cleared.")
            return 1
    removed = audit.clear(current_user(), args.force)
    log.log(NOTICE, "Cleared %d entries from %s", removed, audit.path)
    return 0


def _config_rows(ctx: Context) -> list:
    rows = []
    for name, setting in SETTINGS.items():
        value, source = ctx.settings.raw(name)
        if value is not None and setting.secret:
            value = MASK
        rows.append({"key": name, "value": value, "source": source,
                     "description": setting.doc})
    for name, value in ctx.settings.file_values.items():
        if name not in SETTINGS:
            rows.append({"key": name, "value": mask(value),
                         "source": "config file (not a yt setting)",
                         "description": ""})
    return rows


def list_config(ctx: Context, args) -> int:
    rows = _config_rows(ctx)
    for row in rows:
        if row["key"] in SETTINGS and row["value"] not in (None, MASK):
            try:
                ctx.settings.get(row["key"])
            except UsageError as exc:
                row["problem"] = str(exc)
    if args.format == "json":
        ctx.out.json(rows)
    else:
        table = Table(ctx.out, ["KEY", "VALUE", "SOURCE"], flexible=1,
                      width=terminal_width(ctx.env) if ctx.out.is_terminal
                      else None)
        table.rows([[r["key"], "" if r["value"] is None else r["value"],
                     (r["source"] or "unset")
                     + (" (INVALID)" if r.get("problem") else "")]
                    for r in rows])
        log.log(NOTICE, "Config file: %s", ctx.settings.path)
    # The values that could be read are listed first; then the problem.
    if ctx.settings.file_error is not None:
        raise ctx.settings.file_error
    return 0


def _known_setting(name: str) -> Setting:
    if name not in SETTINGS:
        raise UsageError(
            f"unknown setting {name!r}; known settings: "
            + ", ".join(SETTINGS)
        )
    return SETTINGS[name]


def get_config(ctx: Context, args) -> int:
    setting = _known_setting(args.key)
    value, source = ctx.settings.raw(args.key)
    if value is None:
        log.log(NOTICE, "%s is not set", args.key)
        return 1
    if setting.secret:
        ctx.out.write(MASK)
        log.log(NOTICE, "%s is secret and never shown; for the token use "
                "yt auth token --show", args.key)
        return 0
    ctx.settings.get(args.key)
    ctx.out.write(str(value))
    return 0


def set_config(ctx: Context, args) -> int:
    setting = _known_setting(args.key)
    if setting.secret:
        raise UsageError(
            f"{args.key} is a secret and is not set from the command line, "
            f"where other users can see it; "
            + ("use yt auth login --token-stdin for the token, or "
               "the environment" if args.key == "YOUTRACK_TOKEN" else
               "set it in the environment, or let yt auth login "
               "--passphrase ask for it")
        )
    setting.parse(args.key, args.value)
    update_config_file(ctx.settings.path, {args.key: args.value})
    log.log(NOTICE, "Set %s in %s", args.key, ctx.settings.path)
    return 0


def unset_config(ctx: Context, args) -> int:
    if args.key not in ctx.settings.file_values:
        log.log(NOTICE, "%s is not in %s", args.key, ctx.settings.path)
        return 0
    update_config_file(ctx.settings.path, {args.key: None})
    log.log(NOTICE, "Removed %s from %s", args.key, ctx.settings.path)
    return 0


def _path_state(path: str, private: bool) -> dict:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return {"path": path, "exists": False, "status": "ok",
                "detail": "not created yet"}
    except OSError as exc:
        return {"path": path, "exists": None, "status": "fail",
                "detail": exc.strerror}
    mode = stat.S_IMODE(info.st_mode)
    item = {"path": path, "exists": True, "mode": f"{mode:04o}",
            "status": "ok", "detail": f"mode {mode:04o}"}
    if private and mode & 0o077 and not IS_WINDOWS:
        fix = "700" if stat.S_ISDIR(info.st_mode) else "600"
        item.update(status="fail", detail=(
            f"mode {mode:04o} lets group or others in; run: chmod {fix} "
            f"{path}"
        ))
    elif not os.access(path, os.W_OK):
        item.update(status="warn", detail=f"mode {mode:04o}, not writable")
    return item


def _key_file_state(path: str) -> dict:
    """Return _path_state of a key file, failed if its content is bad."""
    item = _path_state(path, True)
    if item["exists"] and item["status"] != "fail":
        try:
            with open(path, "rb") as handle:
                valid = _decode_key(handle.read(1024)) is not None
        except OSError:
            valid = False
        if not valid:
            item.update(status="fail", detail=(
                "damaged (expected 32 bytes in base64); restore it from a "
                "backup"
            ))
    return item


def _doctor_checks(ctx: Context) -> dict:
    import platform

    report = {"version": __version__}
    frozen = getattr(sys, "frozen", False)
    report["runtime"] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "build": "frozen executable" if frozen else (
            "zipapp" if ".pyz" in (__file__ or "") else "source"),
        "platform": platform.platform(),
        "cryptography": _module_version("cryptography"),
        "keyring": _module_version("keyring"),
        "secretstorage": _module_version("secretstorage"),
    }
    settings = ctx.settings
    paths = {
        "config_dir": _path_state(ctx.config_path, True),
        "config_file": _path_state(settings.path, True),
        "data_dir": _path_state(ctx.data_path, True),
    }
    for name in ("credentials.key", "audit.key"):
        paths[name] = _key_file_state(os.path.join(ctx.config_path, name))
    if not paths["audit.key"]["exists"] and os.path.exists(
        os.path.join(ctx.data_path, "audit.jsonl")
    ):
        paths["audit.key"].update(status="fail", detail=(
            "missing while the audit log exists, so the log cannot be "
            "verified; restore the key, or start a new log with: yt "
            "security clear-audit --force"
        ))
    paths["credentials.enc"] = _path_state(
        os.path.join(ctx.data_path, "credentials.enc"), True)
    if settings.file_error is not None:
        paths["config_file"].update(status="fail",
                                    detail=str(settings.file_error))
    report["paths"] = paths
    report["settings"] = {}
    for name in SETTINGS:
        try:
            settings.get(name)
            problem = None
        except UsageError as exc:
            problem = str(exc)
        report["settings"][name] = {
            "source": settings.source(name),
            "status": "fail" if problem else "ok",
            "detail": problem,
        }
    report["keyring"] = _doctor_keyring(ctx)
    report["credentials"] = _doctor_credentials(ctx)
    report["tls"] = _doctor_tls(ctx)
    report["proxy"] = {
        name: mask(ctx.env[name]) for name in sorted(ctx.env)
        if name.lower() in ("https_proxy", "http_proxy", "all_proxy",
                            "no_proxy")
    }
    report["audit"] = _doctor_audit(ctx)
    return report


def _module_version(name: str):
    try:
        from importlib import metadata

        return metadata.version(name)
    except Exception:  # not installed, or metadata missing when frozen
        return None


def _doctor_keyring(ctx: Context) -> dict:
    keyring = ctx.keyring()
    started = time.monotonic()
    available = keyring.available()
    item = {
        "backend": keyring.backend_name,
        "available": available,
        "probe_ms": round((time.monotonic() - started) * 1000),
        "status": "ok" if available else "warn",
        "detail": None if available else keyring.problem,
    }
    return item


def _doctor_credentials(ctx: Context) -> dict:
    try:
        credential = ctx.credential(warn=False)
    except AuthError as exc:
        # No login yet is normal on a new host; a damaged store is not.
        missing = str(exc).startswith(("no token", "no YouTrack URL"))
        return {"status": "warn" if missing else "fail", "detail": str(exc)}
    except YtError as exc:
        return {"status": "fail", "detail": str(exc)}
    status = _token_summary(ctx, credential)
    level = {"expired": "fail", "expiring": "warn"}.get(status["status"],
                                                       "ok")
    return {
        "base_url": credential.base_url,
        "source": _source_text(ctx, credential),
        "token": MASK,
        "token_kind": token_kind(credential.token),
        "token_status": status["status"],
        "expires_at": status["expires_at"],
        "status": level,
    }


def _doctor_tls(ctx: Context) -> dict:
    import ssl

    paths = ssl.get_default_verify_paths()
    item = {
        "openssl": ssl.OPENSSL_VERSION,
        "default_cafile": paths.cafile,
        "default_capath": paths.capath,
        "status": "ok", "detail": None,
    }
    try:
        tls = TLSSettings(ctx.settings)
        item.update(verify=tls.verify, ca_sources=tls.ca_sources(),
                    pins=[_fingerprint_text(p) for p in tls.pins])
        if not tls.verify:
            item.update(status="warn", detail=SSL_DISABLED_WARNING)
        tls.context()
    except YtError as exc:
        item.update(status="fail", detail=str(exc))
    return item


def _doctor_audit(ctx: Context) -> dict:
    audit = audit_log(ctx)
    try:
        enabled = ctx.settings.get("YT_AUDIT_LOGGING")
    except UsageError:
        enabled = True
    item = {"enabled": enabled, "path": audit.path}
    try:
        report = audit.verify()
    except YtError as exc:
        return dict(item, status="fail", detail=str(exc))
    item.update(entries=report["entries"], verified=report["ok"],
                status="ok" if report["ok"] else "fail",
                detail=report["problem"])
    if not enabled:
        item.update(status="warn", detail="audit logging is off")
    return item


def run_doctor(ctx: Context, args) -> int:
    report = _doctor_checks(ctx)
    failed = _doctor_failures(report)
    if args.format == "json":
        ctx.out.json(report)
        return 1 if failed else 0
    out = ctx.out
    out.write(f"yt {report['version']}")
    runtime = report["runtime"]
    out.write(f"  runtime      {runtime['build']}, {runtime['implementation']}"
              f" {runtime['python']} ({runtime['executable']})")
    out.write(f"  platform     {runtime['platform']}")
    out.write(f"  packages     cryptography {runtime['cryptography'] or '-'}"
              f", keyring {runtime['keyring'] or '-'}, secretstorage "
              f"{runtime['secretstorage'] or '-'}")
    out.write("Paths")
    for name, item in report["paths"].items():
        out.write(f"  {_doctor_mark(out, item)} {name:<16} {item['path']} "
                  f"({item['detail']})")
    bad = {k: v for k, v in report["settings"].items()
           if v["status"] != "ok"}
    out.write("Settings")
    if not bad:
        out.write(f"  {out.marker('ok')} all valid")
    for item in bad.values():
        out.write(f"  {_doctor_mark(out, item)} {item['detail']}")
    kr = report["keyring"]
    out.write("Keyring")
    out.write(f"  {_doctor_mark(out, kr)} backend {kr['backend'] or '-'}, "
              + ("works" if kr["available"] else f"unavailable: "
                 f"{kr['detail']}") + f" ({kr['probe_ms']} ms)")
    creds = report["credentials"]
    out.write("Credentials")
    if "source" in creds:
        out.write(f"  {_doctor_mark(out, creds)} {creds['base_url']} from "
                  f"{creds['source']}")
        out.write(f"     token {MASK} ({creds['token_kind']}): "
                  f"{creds['token_status']}"
                  + (f", expires {creds['expires_at']}"
                     if creds["expires_at"] else ""))
    else:
        out.write(f"  {_doctor_mark(out, creds)} {creds['detail']}")
    tls = report["tls"]
    out.write("TLS")
    out.write(f"  {_doctor_mark(out, tls)} verification "
              f"{'on' if tls.get('verify', True) else 'OFF'}; CA sources: "
              f"{', '.join(tls.get('ca_sources', []))}; "
              f"{tls['openssl']}")
    if tls.get("pins"):
        out.write(f"     pinned: {', '.join(tls['pins'])}")
    if tls["detail"]:
        out.write(f"     {tls['detail']}")
    out.write("Proxy")
    for name, value in report["proxy"].items():
        out.write(f"  {name}={value}")
    if not report["proxy"]:
        out.write("  none set")
    audit = report["audit"]
    out.write("Audit log")
    out.write(f"  {_doctor_mark(out, audit)} {audit['path']}: "
              f"{'on' if audit['enabled'] else 'OFF'}, "
              f"{audit.get('entries', '?')} entries, "
              + ("verified" if audit.get("verified") else
                 f"NOT verified: {audit.get('detail')}"))
    return 1 if failed else 0


def _doctor_mark(out: Output, item: dict) -> str:
    return {"ok": out.marker("ok"), "warn": out.marker("warning"),
            "fail": out.marker("error")}.get(item.get("status"), " ")


def _doctor_failures(report: dict) -> list:
    failed = []
    for section in ("paths", "settings"):
        failed += [k for k, v in report[section].items()
                   if v["status"] == "fail"]
    for section in ("tls", "audit", "credentials"):
        if report[section]["status"] == "fail":
            failed.append(section)
    return failed


# ##### Argument parser ###################################################


def _global_options(parser, suppress: bool) -> None:
    import argparse

    default = argparse.SUPPRESS if suppress else None
    flag_default = argparse.SUPPRESS if suppress else False
    group = parser.add_argument_group("global options")
    group.add_argument("--secure", action="store_true", default=flag_default,
                       help="do not write this command to the audit log")
    group.add_argument("--base-url", metavar="URL", default=default,
                       help="YouTrack URL (overrides YOUTRACK_BASE_URL)")
    group.add_argument("--no-color", action="store_true",
                       default=flag_default, help="no colour in output")
    group.add_argument("--debug", action="store_true", default=flag_default,
                       help="trace HTTP requests on stderr (masked)")


def _format_option(parser, choices=("table", "json")) -> None:
    parser.add_argument("--format", choices=choices, default=choices[0],
                        help="output format (default: %(default)s)")


def _add_command(subparsers, name, handler, parent, help_text, **kwargs):
    parser = subparsers.add_parser(name, parents=[parent], help=help_text,
                                   description=help_text, **kwargs)
    parser.set_defaults(handler=handler)
    return parser


def _register_auth(auth, parent) -> None:
    sub = auth.add_subparsers(dest="action", metavar="ACTION", required=True)
    login_parser = _add_command(
        sub, "login", login, parent,
        "check a token against the server and store it securely")
    login_parser.add_argument(
        "--token-stdin", action="store_true",
        help="read the token from standard input instead of a prompt")
    login_parser.add_argument(
        "--expires", metavar="DATE",
        help="record the token's expiry (2027-01-31 or ISO 8601 with "
             "offset)")
    login_parser.add_argument(
        "--passphrase", action="store_true",
        help="encrypt the credential file with a passphrase (asked for, "
             "or YT_CREDENTIAL_PASSPHRASE) instead of the keyring")
    _add_command(sub, "logout", logout, parent,
                 "remove the stored token from every store")
    status = _add_command(sub, "status", show_auth_status, parent,
                          "show URL, user, token source and expiry")
    _format_option(status)
    token = _add_command(sub, "token", manage_token, parent,
                         "replace the token, record its expiry, or print it")
    mode = token.add_mutually_exclusive_group(required=True)
    mode.add_argument("--update", action="store_true",
                      help="replace the token (prompt or --token-stdin), or "
                           "with --expires only, record its expiry")
    mode.add_argument("--show", action="store_true",
                      help="print the token itself on stdout")
    token.add_argument("--token-stdin", action="store_true",
                       help="read the new token from standard input")
    token.add_argument("--expires", metavar="DATE",
                       help="expiry date of the token")


def _register_issues(issues, parent) -> None:
    sub = issues.add_subparsers(dest="action", metavar="ACTION",
                                required=True)
    listing = _add_command(sub, "list", list_issues, parent,
                           "list issues, paging through the results")
    listing.add_argument("-q", "--query", help="YouTrack search query")
    listing.add_argument("-p", "--project", help="project short name")
    listing.add_argument("--limit", type=int, default=50,
                         help="maximum issues to list, 0 for all "
                              "(default: 50)")
    _format_option(listing)
    show = _add_command(sub, "show", show_issue, parent, "show one issue")
    show.add_argument("id", help="issue id, such as DEMO-12")
    _format_option(show)
    create = _add_command(sub, "create", create_issue, parent,
                          "create an issue")
    create.add_argument("project", help="project short name")
    create.add_argument("summary", help="issue summary")
    create.add_argument("-d", "--description",
                        help="description text ('-' reads stdin)")
    create.add_argument("--field", action="append", metavar="NAME=VALUE",
                        help="custom field value; repeat for more")
    _format_option(create)
    update = _add_command(sub, "update", update_issue, parent,
                          "change an issue's summary, description or fields")
    update.add_argument("id", help="issue id, such as DEMO-12")
    update.add_argument("-s", "--summary", help="new summary")
    update.add_argument("-d", "--description",
                        help="new description ('-' reads stdin)")
    update.add_argument("--field", action="append", metavar="NAME=VALUE",
                        help="custom field value; empty VALUE clears it")
    _format_option(update)
    comment = _add_command(sub, "comment", comment_issue, parent,
                           "add a comment to an issue")
    comment.add_argument("id", help="issue id, such as DEMO-12")
    comment.add_argument("text", help="comment text ('-' reads stdin)")
    _format_option(comment)


def _register_security(security, parent) -> None:
    sub = security.add_subparsers(dest="action", metavar="ACTION",
                                  required=True)
    audit = _add_command(sub, "audit", show_audit, parent,
                         "show or verify the audit log")
    audit.add_argument("--limit", type=int, default=50,
                       help="newest entries to show, 0 for all "
                            "(default: 50)")
    audit.add_argument("--verify", action="store_true",
                       help="check the HMAC chain; exit 6 if it fails")
    _format_option(audit, ("table", "json", "jsonl"))
    clear = _add_command(sub, "clear-audit", clear_audit, parent,
                         "empty the audit log (records who cleared it)")
    clear.add_argument("--force", action="store_true",
                       help="do not ask; also clears a damaged log")
    status = _add_command(sub, "token-status", show_token_status, parent,
                          "token expiry: exit 0 valid/expiring/permanent/"
                          "unknown, 3 expired or missing")
    _format_option(status)


def _register_projects(projects, parent) -> None:
    sub = projects.add_subparsers(dest="action", metavar="ACTION",
                                  required=True)
    _format_option(_add_command(sub, "list", list_projects, parent,
                                "list projects"))


def _register_config(config, parent) -> None:
    sub = config.add_subparsers(dest="action", metavar="ACTION",
                                required=True)
    listing = _add_command(sub, "list", list_config, parent,
                           "show every setting, its value and source")
    _format_option(listing)
    get = _add_command(sub, "get", get_config, parent, "print one setting")
    get.add_argument("key")
    put = _add_command(sub, "set", set_config, parent,
                       "set a setting in the config file")
    put.add_argument("key")
    put.add_argument("value")
    unset = _add_command(sub, "unset", unset_config, parent,
                         "remove a setting from the config file")
    unset.add_argument("key")


def _help_width() -> int:
    """Return the help text width argparse would pick: terminal width - 2.

    This is shutil.get_terminal_size() without importing shutil, which
    argparse's HelpFormatter imports, with bz2 and lzma, when it is
    given no width.
    """
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


def _add_group(commands, parent, words, name, help_text, register,
               handler=None) -> None:
    """Add command ``name``, with its options only if words contain it.

    register(parser, parent) adds the subcommands or options; handler,
    for a command without subcommands, is the function that runs it.
    """
    if words is not None and name not in words:
        commands.add_parser(name, help=help_text, add_help=False)
    elif handler is None:
        register(commands.add_parser(name, help=help_text), parent)
    else:
        register(_add_command(commands, name, handler, parent, help_text),
                 parent)


def _register_api(api, parent) -> None:
    api.add_argument("path", help="API path, e.g. /api/users/me or "
                                  "users/me")
    api.add_argument("-X", "--method", default="GET",
                     help="HTTP method (default: GET)")
    api.add_argument("-f", "--field", action="append", metavar="KEY=VALUE",
                     help="query parameter for GET, JSON body field "
                          "otherwise; repeat for more")
    api.add_argument("--input", metavar="FILE",
                     help="request body from FILE ('-' for stdin)")


def _register_doctor(doctor, parent) -> None:
    _format_option(doctor)


def build_parser(words=None):
    """Build the argument parser for the command line ``words``.

    Only the commands that appear in words (all when it is None) get
    their subcommands and options.  The others keep their name and help
    text, which is all that yt --help shows and all that parsing words
    needs; building every subcommand made yt --help about 15% slower.
    """
    import argparse

    width = _help_width()

    def formatter(prog):
        return argparse.HelpFormatter(prog, width=width)

    class MaskingParser(argparse.ArgumentParser):
        # Usage errors quote the words they reject, which may be a token
        # pasted by mistake; subparsers are built with this class too.
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("formatter_class", formatter)
            super().__init__(*args, **kwargs)

        def error(self, message):
            super().error(mask(message))

    parser = MaskingParser(
        prog="yt",
        description="Command-line client for JetBrains YouTrack with an "
                    "audit log, encrypted credentials and masking.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 authentication, "
               "4 not found, 5 network or TLS, 6 audit log verification, "
               "129 hung up, 130 interrupted, 143 terminated.",
    )
    parser.add_argument("--version", action="version",
                        version=f"yt {__version__}")
    _global_options(parser, suppress=False)
    parent = argparse.ArgumentParser(add_help=False, formatter_class=formatter)
    _global_options(parent, suppress=True)
    commands = parser.add_subparsers(dest="group", metavar="COMMAND",
                                     required=True)
    _add_group(commands, parent, words, "auth",
               "log in, log out, token status", _register_auth)
    _add_group(commands, parent, words, "issues",
               "list, show, create, update", _register_issues)
    _add_group(commands, parent, words, "projects", "list projects",
               _register_projects)
    _add_group(commands, parent, words, "api",
               "send a raw request with the stored credentials",
               _register_api, call_api)
    _add_group(commands, parent, words, "security",
               "audit log and token status", _register_security)
    _add_group(commands, parent, words, "config",
               "read and edit the config file", _register_config)
    _add_group(commands, parent, words, "doctor",
               "check this host: paths, keyring, credentials, TLS, proxies, "
               "audit log", _register_doctor, run_doctor)
    return parser


# ##### main ##############################################################


def _command_path(args) -> str:
    parts = [getattr(args, "group", None), getattr(args, "action", None)]
    return " ".join(p for p in parts if p)


_COMMAND_GROUPS = ("auth", "issues", "projects", "api", "security",
                   "config", "doctor")


def _guess_command(argv) -> str:
    """Name the command of argv that argparse rejected, for the audit log."""
    for index, word in enumerate(argv):
        if word in _COMMAND_GROUPS:
            action = argv[index + 1] if index + 1 < len(argv) else ""
            if word in ("api", "doctor") or not re.fullmatch(
                r"[a-z][a-z-]*", action
            ):
                return word
            return f"{word} {action}"
    return ""


def _setup_logging(output: Output, debug: bool) -> None:
    log.configure(StderrHandler(output), debug)


def _write_audit(ctx, argv, command, status, code, started, elapsed):
    """Append the command's audit entries; warn once if that fails."""
    settings = ctx.settings if ctx else Settings(flags={})
    try:
        if not settings.get("YT_AUDIT_LOGGING"):
            return
    except UsageError as exc:
        log.warning("%s; audit logging stays on", exc)
    try:
        verify = settings.verify_ssl
    except UsageError:
        verify = None
    audit = audit_log(ctx) if ctx else AuditLog(
        data_dir(settings.env), config_dir(settings.env))
    common = {"ts": _now_iso(started), "user": current_user(),
              "host": current_host(), "version": __version__,
              "ssl_verify": verify}
    snapshot = settings.tls_snapshot()

    def tls_entry(previous):
        # The first record is a baseline: it lists the variables set.
        changed = sorted(
            k for k in snapshot if (previous or {}).get(k) != snapshot[k]
        )
        return dict(common, event="tls_config", changed=changed,
                    old=previous, new=snapshot)

    entries = [dict(common, command=command, **event)
               for event in (ctx.audit_events if ctx else [])]
    if ctx is None or not getattr(ctx.args, "secure", False):
        entry = dict(common, event="command", command=command,
                     args=mask_argv(argv), status=status, exit_code=code,
                     duration_ms=elapsed)
        if ctx is not None:
            entry.update(ctx.audit_extra)
        entries.append(entry)
    try:
        audit.append_many(entries, tls=snapshot, tls_entry=tls_entry)
    except OSError as exc:
        log.warning(
            "the audit log %s was not written (%s); the command itself "
            "ran. Check the permissions and free space of %s",
            audit.path, exc.strerror or exc, os.path.dirname(audit.path),
        )
    except AuditStateError as exc:
        log.warning("%s", exc)
    except YtError as exc:
        log.warning("the audit log was not written, but the command itself "
                    "ran: %s", exc)


def main(argv=None) -> int:
    """Run yt with argv (default sys.argv[1:]) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:
        # Printed before argparse is imported; the parser's --version
        # action prints the same line in every other spelling.
        sys.stdout.write(f"yt {__version__}\n")
        return 0
    env = dict(os.environ)
    SECRETS.clear()
    # Registered before parsing, so that even a usage error that quotes
    # them, and its audit entry, show them masked.
    for name in ("YOUTRACK_TOKEN", "YT_CREDENTIAL_PASSPHRASE"):
        SECRETS.add(env.get(name, "").strip())
    _escape_unencodable_output(sys.stdout)
    output = Output(sys.stdout, sys.stderr, env,
                    no_color="--no-color" in argv)
    _setup_logging(output, "--debug" in argv)
    started = utc_now()
    clock = time.monotonic()
    handlers = _catch_termination()
    parser = build_parser(frozenset(argv))
    ctx = None
    command = _guess_command(argv)
    status, code = "error", 1
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
            if code == 0 or not argv:
                return code
            raise UsageError("invalid arguments (see the message above)") \
                from None
        command = _command_path(args)
        _setup_logging(output, args.debug)
        output.color = output.color and not args.no_color
        output.err_color = output.err_color and not args.no_color
        ctx = Context(args, env, sys.stdin, output)
        if args.group not in ("config", "doctor") and command != (
            "auth logout"
        ):
            # These stay usable with bad settings, so that they can be
            # fixed, diagnosed, or the token removed.
            ctx.settings.validate()
        code = args.handler(ctx, args)
        status = "success" if code == 0 else "error"
    except (KeyboardInterrupt, _Terminated) as exc:
        _ignore_interrupts()
        status = "interrupted"
        code = 128 + exc.signum if isinstance(exc, _Terminated) else 130
        output.stderr.write("\nyt: interrupted\n")
    except BrokenPipeError:
        # A reader such as head closed the pipe; that is not an error.
        _silence_stdout()
        status, code = "success", 0
    except YtError as exc:
        if not (isinstance(exc, UsageError) and str(exc).startswith(
                "invalid arguments")):
            # Server text may contain line breaks; keep it to one line.
            log.error("%s", " ".join(str(exc).split()))
        code = exc.exit_code
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        log.error("%s%s; check the path and its permissions",
                  exc.strerror or exc, where)
        code = 1
    except Exception as exc:  # last resort: never show a raw traceback
        hint = "" if ctx is not None and ctx.debug else (
            "; rerun with --debug for details")
        log.error("internal error (%s: %s)%s", type(exc).__name__, exc, hint)
        if ctx is not None and ctx.debug:
            import traceback

            log.debug("%s", traceback.format_exc())
        code = 1
    finally:
        if ctx is not None:
            ctx.close()
    elapsed = round((time.monotonic() - clock) * 1000)
    _ignore_interrupts()
    try:
        _write_audit(ctx, argv, command, status, code, started, elapsed)
    except YtError as exc:
        log.warning("audit log not written: %s", exc)
    finally:
        _restore_signals(handlers)
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        sys.stdout.flush()
    return code


class _Terminated(Exception):
    """Raised by the SIGTERM and SIGHUP handler, so the command is audited.

    yt then exits with 128 plus the signal number: 143 or 129.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    """Raise KeyboardInterrupt or _Terminated, once.

    A terminal sends Ctrl-C to the whole process group, and the
    PyInstaller bootloader forwards it too, so a second SIGINT often
    follows the first.  Ignoring the signals before raising means the
    second cannot cut short the handling of the first.
    """
    _ignore_interrupts()
    import signal

    if signum == signal.SIGINT:
        raise KeyboardInterrupt()
    raise _Terminated(signum)


def _termination_signals() -> list:
    """Return SIGINT, SIGTERM and, where it exists, SIGHUP."""
    import signal

    numbers = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        numbers.append(signal.SIGHUP)
    return numbers


def _catch_termination() -> dict:
    """Install _on_signal for the termination signals; return old handlers.

    A SIGHUP that is already ignored, as under nohup, stays ignored.
    """
    import signal

    handlers = {}
    with contextlib.suppress(ValueError, AttributeError):
        # ValueError: signals can be handled in the main thread only.
        for number in _termination_signals():
            if (number not in (signal.SIGINT, signal.SIGTERM)
                    and signal.getsignal(number) == signal.SIG_IGN):
                continue
            handlers[number] = signal.signal(number, _on_signal)
    return handlers


def _ignore_interrupts() -> None:
    """Ignore the termination signals while the audit entry is written."""
    import signal

    with contextlib.suppress(ValueError, AttributeError):
        for number in _termination_signals():
            signal.signal(number, signal.SIG_IGN)


def _restore_signals(handlers: dict) -> None:
    import signal

    with contextlib.suppress(ValueError, TypeError):
        for number, handler in handlers.items():
            signal.signal(number, handler)


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
