#!/usr/bin/env python3
"""Measure yt's start-up, audit log, masking, paging and built artifacts.

    python3 benchmarks/run.py            # everything, about 5 minutes
    python3 benchmarks/run.py --quick    # fewer repetitions, about 2 minutes
    python3 benchmarks/run.py --only startup,masking --json out.json

The script prints one table with each figure, its target and PASS or FAIL.
docs/benchmarks.md records the figures of one run, the machine it ran on
and what each measurement does.

yt is measured the way pip installs it: yt.py and its bytecode in the
site-packages of a virtual environment under the cache directory
(default /tmp/yt-bench-cache), with the pinned runtime requirements of
packaging/requirements.txt, started through a console script.  Every
start-up figure is compared with ``python -I -c pass`` of the same
interpreter, and commands are timed round-robin, so a load change on the
machine affects all of them alike.  Times are medians of repeated runs,
shown with +- half the interquartile range.

Some measurements use private helpers of yt (the audit log's HMAC code)
and tests/fake_youtrack.py, so this script changes with them.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "yt.py"
DIST = ROOT / "dist"
REQUIREMENTS = ROOT / "packaging" / "requirements.txt"
PROJECT_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "yt-bench-cache"

SECTIONS = ("startup", "token", "keyring", "audit", "masking", "paging",
            "artifacts")
# Other command-line clients for YouTrack on PyPI, compared at start-up.
# The console script name comes from each package's entry_points.txt.
EXTERNAL_CLIS = {"youtrack-cli": 10.0, "jetbrains-youtrack-cli": 4.0}

BASE_URL = "https://youtrack.example.com"
# A token in YouTrack's permanent-token form, for commands that never
# contact a server.
BENCH_TOKEN = "perm:YmVuY2g=.YmVuY2htYXJr.Qx7vN2kLp9sRt4wYz8mB"  # noqa: S105
# Modules that yt --version, --help and security audit must not import.
FORBIDDEN_AT_START = ("ssl", "http.client", "urllib.request",
                      "cryptography", "keyring")

# Console script as pip writes it for the entry point yt = "yt:main".
CONSOLE_SCRIPT = """\
#!{python}
import re
import sys
from yt import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit(main())
"""


class BenchError(Exception):
    """Raised when a measurement cannot be taken; main() prints it."""


# ------------------------------------------------------------ reporting


@dataclasses.dataclass
class Row:
    section: str
    name: str
    result: str
    target: str = ""
    status: str = ""  # PASS, FAIL, or empty for a figure without target
    value: float | None = None


class Report:
    """Rows of results, printed as they come and as one table at the end."""

    def __init__(self):
        self.rows: list[Row] = []
        self.raw: dict = {}

    def add(self, section, name, result, target="", ok=None, value=None):
        """Add a row; ok None means a figure without a target."""
        status = ""
        if ok is not None:
            status = "PASS" if ok else "FAIL"
        row = Row(section, name, result, target, status, value)
        self.rows.append(row)
        line = f"  {name}: {result}"
        if status:
            line += f"  [{status}]"
        print(line, flush=True)
        return row

    def skip(self, section, name, reason):
        self.rows.append(Row(section, name, f"skipped: {reason}"))
        print(f"  {name}: skipped: {reason}", flush=True)

    def table(self) -> str:
        headers = ("section", "measurement", "result", "target", "status")
        cells = [headers] + [
            (r.section, r.name, r.result, r.target, r.status)
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(4)]
        lines = []
        for index, row in enumerate(cells):
            text = "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths)
            ) + "  " + row[4]
            lines.append(text.rstrip())
            if index == 0:
                lines.append("-" * len(lines[0]))
        return "\n".join(lines)

    def failures(self) -> list:
        return [row for row in self.rows if row.status == "FAIL"]


@dataclasses.dataclass
class Timing:
    """Wall-clock samples in seconds, and the CPU time of each run."""

    samples: list
    cpu: list = dataclasses.field(default_factory=list)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def iqr(self) -> float:
        if len(self.samples) < 4:
            return max(self.samples) - min(self.samples)
        quartiles = statistics.quantiles(self.samples, n=4)
        return quartiles[2] - quartiles[0]

    def ms(self) -> str:
        return f"{self.median * 1e3:.1f} ms ±{self.iqr * 1e3 / 2:.1f}"


# ------------------------------------------------------ process helpers


@dataclasses.dataclass
class Command:
    argv: list
    env: dict
    expect: int = 0
    cwd: str | None = None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_once(command: Command) -> tuple:
    """Run command; return (wall seconds, CPU seconds of the child)."""
    cpu = _children_cpu()
    started = time.perf_counter()
    result = subprocess.run(
        command.argv, env=command.env, cwd=command.cwd,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != command.expect:
        _explain_failure(command, result.returncode)
    return elapsed, _children_cpu() - cpu


def _explain_failure(command: Command, code: int) -> None:
    rerun = subprocess.run(
        command.argv, env=command.env, cwd=command.cwd,
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        check=False,
    )
    tail = (rerun.stderr or rerun.stdout).strip().splitlines()[-5:]
    raise BenchError(
        f"{' '.join(map(str, command.argv))} exited with {code}, expected "
        f"{command.expect}: " + " | ".join(tail)
    )


def time_commands(commands: dict, runs: int, warmup: int = 2) -> dict:
    """Time each Command ``runs`` times, round-robin; return Timings."""
    for _ in range(warmup):
        for command in commands.values():
            _run_once(command)
    samples = {name: [] for name in commands}
    cpu = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            elapsed, used = _run_once(command)
            samples[name].append(elapsed)
            cpu[name].append(used)
    return {name: Timing(samples[name], cpu[name]) for name in commands}


def imported_modules(command: Command) -> set:
    """Return the modules a command imports, from python -X importtime."""
    argv = list(command.argv)
    python, rest = argv[0], argv[1:]
    if not Path(python).name.startswith("python"):
        # A console script: run its interpreter on it.
        script = python
        python = Path(script).read_text().splitlines()[0][2:].strip()
        rest = [script] + rest
    result = subprocess.run(
        [python, "-X", "importtime", *rest], env=command.env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        check=False,
    )
    modules = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                modules.add(name)
    return modules


def forbidden(modules: set) -> list:
    return sorted(
        name for name in modules
        if any(name == bad or name.startswith(bad + ".")
               for bad in FORBIDDEN_AT_START)
    )


def max_rss_kib(command: Command) -> tuple:
    """Run command once; return (seconds, max RSS in KiB) of the child."""
    wrapper = textwrap.dedent("""\
        import resource, subprocess, sys, time
        started = time.perf_counter()
        code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(code, elapsed, usage.ru_maxrss)
    """)
    result = subprocess.run(
        [sys.executable, "-I", "-c", wrapper, *map(str, command.argv)],
        env=command.env, capture_output=True, text=True, check=False,
    )
    try:
        code, elapsed, rss = result.stdout.split()
    except ValueError:
        raise BenchError(f"RSS wrapper failed: {result.stderr}") from None
    if int(code) != command.expect:
        _explain_failure(command, int(code))
    return float(elapsed), int(rss)


# ------------------------------------------------------------- machine


def machine_info() -> dict:
    info = {"nproc": os.cpu_count(), "python": platform.python_version(),
            "os": platform.platform()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                info["memory"] = f"{kib / 1024 / 1024:.1f} GiB"
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["distribution"] = line.split("=", 1)[1].strip('"')
    with contextlib.suppress(OSError):
        info["load_average"] = " ".join(
            Path("/proc/loadavg").read_text().split()[:3])
    return info


# --------------------------------------------------------- environment


class Bench:
    """Paths, environments and installed copies shared by the sections."""

    def __init__(self, args, work: Path):
        self.args = args
        self.quick = args.quick
        self.work = work
        self.cache = Path(args.cache_dir)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.source = Path(args.yt).resolve()
        self.venv = self.cache / f"venv-yt-{platform.python_version()}"
        self.python = self.venv / "bin" / "python"
        self.yt = self.venv / "bin" / "yt"
        self.site = None
        self.has_dependencies = False

    def runs(self, default: int, quick: int) -> int:
        return quick if self.quick else default

    # -- environments --

    def home_env(self, name: str, **extra) -> dict:
        """Return an environment with a new empty home called ``name``."""
        home = self.work / "homes" / name
        for sub in (".config", ".local/share", ".cache"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "TMPDIR": str(self.work),
        }
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def token_env(self, name: str, **extra) -> dict:
        return self.home_env(name, YOUTRACK_BASE_URL=BASE_URL,
                             YOUTRACK_TOKEN=BENCH_TOKEN, **extra)

    # -- yt installed like pip installs it --

    def install(self) -> None:
        """Create the cached venv, then put this yt.py and bytecode in."""
        stamp = self.venv / "requirements.sha256"
        wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
        if not (stamp.exists() and stamp.read_text() == wanted):
            print(f"setting up {self.venv} (once)", flush=True)
            shutil.rmtree(self.venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                            str(self.venv)], check=True)
            pip = subprocess.run(
                [sys.executable, "-m", "pip", "--python", str(self.python),
                 "install", "--quiet", "--disable-pip-version-check",
                 "--require-hashes", "--no-deps", "--only-binary=:all:",
                 "-r", str(REQUIREMENTS)],
                capture_output=True, text=True, check=False,
            )
            if pip.returncode == 0:
                stamp.write_text(wanted)
            else:
                print("  could not install packaging/requirements.txt; the "
                      "keyring section will skip:\n    "
                      + pip.stderr.strip()[-300:], flush=True)
        self.has_dependencies = stamp.exists()
        self.site = Path(subprocess.run(
            [str(self.python), "-I", "-c",
             "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True).stdout.strip())
        target = self.site / "yt.py"
        shutil.copyfile(self.source, target)
        subprocess.run([str(self.python), "-I", "-m", "py_compile",
                        str(target)], check=True)
        self.yt.parent.mkdir(parents=True, exist_ok=True)
        self.yt.write_text(CONSOLE_SCRIPT.format(python=self.python))
        self.yt.chmod(0o755)

    def bare(self, env) -> Command:
        return Command([str(self.python), "-I", "-c", "pass"], env)

    def command(self, env, *args, expect=0) -> Command:
        return Command([str(self.yt), *args], env, expect)

    def import_yt(self):
        """Import the installed yt.py into this process."""
        spec = importlib.util.spec_from_file_location(
            "yt", self.site / "yt.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["yt"] = module
        spec.loader.exec_module(module)
        return module


def paired_ratio(samples: list, base: list) -> float:
    """Median of the ratios of samples taken in the same round.

    time_commands runs the commands of a group in turns, so the i-th
    samples of two commands were taken moments apart, under the same
    load.  The median of their ratios follows the ratio of medians on a
    quiet machine and moves less when the load changes during a run.
    """
    return statistics.median(a / b for a, b in zip(samples, base))


def ratio_row(report, section, name, timing, base, limit, base_name):
    """Add a row for timing / base against limit, with the CPU ratio."""
    ratio = paired_ratio(timing.samples, base.samples)
    result = f"{timing.ms()} = {ratio:.2f}x {base_name}"
    if timing.cpu and base.cpu:
        result += f" (CPU {paired_ratio(timing.cpu, base.cpu):.2f}x)"
    return report.add(section, name, result, f"<= {limit:g}x",
                      ratio <= limit, ratio)


# ------------------------------------------------------------- startup


def external_cli(bench: Bench, package: str):
    """Install ``package`` in its own venv; return its console script."""
    venv = bench.cache / f"venv-{package}"
    python = venv / "bin" / "python"
    done = venv / "installed"
    if not done.exists():
        print(f"installing {package} into {venv} (once)", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", package],
            capture_output=True, text=True, check=False, timeout=600,
        )
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["no output"]
            return None, f"pip install {package} failed: {lines[-1]}"
        done.write_text("")
    name = re.sub(r"[-_.]+", "_", package)
    found = list(venv.glob(f"lib/python*/site-packages/{name}-*.dist-info"))
    if not found:
        return None, f"{package} has no .dist-info in {venv}"
    entry_points = found[0] / "entry_points.txt"
    scripts = []
    if entry_points.exists():
        section = None
        for line in entry_points.read_text().splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "console_scripts" and "=" in line:
                scripts.append(line.split("=", 1)[0].strip())
    if not scripts:
        return None, f"{package} declares no console script"
    version = found[0].name[len(name) + 1:-len(".dist-info")]
    label = f"{package} {version} ({scripts[0]})"
    return (venv / "bin" / scripts[0], label), None


def bench_startup(bench: Bench, report: Report) -> None:
    section = "startup"
    env = bench.home_env("startup")
    commands = {
        "bare": bench.bare(env),
        "version": bench.command(env, "--version"),
        "help": bench.command(env, "--help"),
        "script": Command([str(bench.python), "-I",
                           str(bench.site / "yt.py"), "--version"], env),
    }
    externals = {}
    if not bench.args.no_external:
        for package in EXTERNAL_CLIS:
            found, problem = external_cli(bench, package)
            if found is None:
                report.skip(section, f"{package} --version", problem)
                continue
            script, label = found
            externals[package] = label
            for flag in ("version", "help"):
                commands[f"{package} {flag}"] = Command(
                    [str(script), f"--{flag}"], env)
    timings = time_commands(commands, bench.runs(30, 10))
    bench_report = report.raw.setdefault("startup", {})
    for name, timing in timings.items():
        bench_report[name] = timing.samples
    base = timings["bare"]
    report.add(section, "python -I -c pass", base.ms())
    for flag in ("version", "help"):
        ratio_row(report, section, f"yt --{flag}", timings[flag], base, 3,
                  "bare")
    script = timings["script"]
    report.add(section, "python yt.py --version (no bytecode cache)",
               f"{script.ms()} = {script.median / base.median:.2f}x bare")
    for package, label in externals.items():
        limit = EXTERNAL_CLIS[package]
        for flag in ("version", "help"):
            theirs = timings[f"{package} {flag}"]
            speedup = theirs.median / timings[flag].median
            report.add(
                section, f"{label} --{flag}",
                f"{theirs.ms()}; yt is {speedup:.1f}x faster",
                f"yt >= {limit:g}x faster", speedup >= limit, speedup)
    for args in (["--version"], ["--help"], ["security", "audit"]):
        modules = imported_modules(bench.command(env, *args))
        bad = forbidden(modules)
        report.add(section, f"yt {' '.join(args)} imports",
                   f"{len(modules)} modules" + (
                       f", including {', '.join(bad)}" if bad else ""),
                   "no ssl/http/crypto/keyring", not bad, len(modules))


# --------------------------------------------------------- token-status


def bench_token_status(bench: Bench, report: Report) -> None:
    section = "token"
    env = bench.token_env("token")
    status = bench.command(env, "security", "token-status")
    timings = time_commands({"bare": bench.bare(env), "status": status},
                            bench.runs(30, 10))
    report.raw["token_status"] = {k: v.samples for k, v in timings.items()}
    ratio_row(report, section, "token-status, YOUTRACK_TOKEN set",
              timings["status"], timings["bare"], 4, "bare")
    modules = imported_modules(status)
    loaded = sorted(m for m in modules if m.split(".")[0] in (
        "keyring", "cryptography", "ssl", "http"))
    report.add(section, "token-status imports",
               f"{len(modules)} modules" + (
                   f", including {', '.join(loaded)}" if loaded else ""),
               "no keyring", not any(m.startswith("keyring")
                                     for m in modules), len(modules))


# --------------------------------------------------------------- keyring

BUS_CONFIG = """\
<!DOCTYPE busconfig
 PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:dir={runtime}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def bench_keyring(bench: Bench, report: Report) -> None:
    """Time token-status with the token in a private gnome-keyring.

    This script runs itself again inside dbus-run-session, on a bus with
    no service directories as in tests/run.sh, and the child starts its
    own gnome-keyring-daemon there.  No keyring of the user is touched.
    """
    section = "keyring"
    missing = [tool for tool in ("dbus-run-session", "gnome-keyring-daemon")
               if shutil.which(tool) is None]
    if missing:
        report.skip(section, "token-status, token in keyring",
                    f"{', '.join(missing)} not installed")
        return
    if not bench.has_dependencies:
        report.skip(section, "token-status, token in keyring",
                    "keyring is not installed in the benchmark venv")
        return
    directory = bench.work / "keyring"
    runtime = directory / "runtime"
    runtime.mkdir(parents=True, mode=0o700)
    (directory / "home").mkdir(mode=0o700)
    config = directory / "bus.conf"
    config.write_text(BUS_CONFIG.format(runtime=runtime))
    job = directory / "job.json"
    job.write_text(json.dumps({
        "python": str(bench.python), "yt": str(bench.yt),
        "directory": str(directory), "runs": bench.runs(20, 8),
        "env": bench.home_env("keyring", YOUTRACK_BASE_URL=BASE_URL),
    }))
    with open(directory / "daemons.log", "wb") as daemons_log:
        result = subprocess.run(
            ["dbus-run-session", f"--config-file={config}", "--",
             sys.executable, __file__, "--keyring-child", str(job)],
            stdout=subprocess.PIPE, stderr=daemons_log, text=True,
            timeout=600, check=False,
        )
    if result.returncode != 0:
        log_text = (directory / "daemons.log").read_text(errors="replace")
        raise BenchError(f"keyring child failed ({result.returncode}): "
                         + log_text.strip()[-500:])
    data = json.loads(result.stdout.strip().splitlines()[-1])
    timings = {name: Timing(*pair) for name, pair in data["timings"].items()}
    report.raw["keyring"] = data
    base = timings["bare"]
    report.add(section, "python -I -c pass", base.ms())
    keyring_cost = timings["keyring"]
    report.add(section, "import keyring; keyring.get_keyring()",
               f"{keyring_cost.ms()} = "
               f"{paired_ratio(keyring_cost.samples, base.samples):.2f}"
               f"x bare")
    status = timings["status"]
    share = paired_ratio(status.samples, keyring_cost.samples)
    report.add(section, "token-status, token in keyring",
               f"{status.ms()} = {share:.2f}x the keyring import "
               f"(source: {data['source']})",
               "<= 0.75x keyring import", share <= 0.75
               and data["source"] == "keyring", share)


def start_keyring_daemon(directory: Path, env: dict) -> None:
    """Start an unlocked gnome-keyring on this process's session bus."""
    daemon_env = dict(env, HOME=str(directory / "home"),
                      XDG_DATA_HOME=str(directory / "home" / "data"),
                      XDG_RUNTIME_DIR=str(directory / "runtime"))
    # stdout is read to its end, which works because the daemon closes it
    # when it forks.
    started = subprocess.run(
        ["gnome-keyring-daemon", "--unlock", "--components=secrets"],
        input=os.urandom(16).hex(), env=daemon_env,
        stdout=subprocess.PIPE, stderr=sys.stderr, text=True, timeout=60,
        check=True,
    )
    for line in started.stdout.splitlines():
        if line.startswith("GNOME_KEYRING_CONTROL="):
            env["GNOME_KEYRING_CONTROL"] = line.split("=", 1)[1]


def keyring_child(job_path: str) -> int:
    """Run inside dbus-run-session: store a token, then time the reads."""
    job = json.loads(Path(job_path).read_text())
    env = dict(job["env"])
    env["DBUS_SESSION_BUS_ADDRESS"] = os.environ["DBUS_SESSION_BUS_ADDRESS"]
    start_keyring_daemon(Path(job["directory"]), env)

    python = job["python"]
    subprocess.run(
        [python, "-I", "-c",
         "import sys, keyring; keyring.set_password("
         "'youtrack-cli', sys.argv[1], sys.argv[2])", BASE_URL,
         BENCH_TOKEN], env=env, check=True, timeout=60,
    )
    status_output = subprocess.run(
        [job["yt"], "security", "token-status", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    try:
        source = json.loads(status_output.stdout)["source"]
    except (ValueError, KeyError, TypeError):
        problem = status_output.stderr.strip()[-200:]
        source = f"unreadable output: {problem}"

    timings = time_commands({
        "bare": Command([python, "-I", "-c", "pass"], env),
        "keyring": Command(
            [python, "-I", "-c", "import keyring; keyring.get_keyring()"],
            env),
        "status": Command([job["yt"], "security", "token-status"], env),
    }, job["runs"])
    print(json.dumps({
        "source": source,
        "timings": {k: [v.samples, v.cpu] for k, v in timings.items()},
    }))
    return 0


# ----------------------------------------------------------------- audit


def write_audit_log(yt, data_dir: Path, config_dir: Path, count: int,
                    tls) -> None:
    """Write ``count`` chained entries with yt's own HMAC helpers."""
    audit = yt.AuditLog(str(data_dir), str(config_dir), 10_000_000)
    yt.ensure_private_dir(str(data_dir))
    key = audit._key(create=True)
    prev = ""
    lines = []
    moment = time.time() - count
    for seq in range(1, count + 1):
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                time.gmtime(moment + seq)),
            "event": "command", "command": "issues list",
            "args": ["issues", "list", "-q", f"#Unresolved {seq}",
                     "--limit", "20"],
            "status": "success", "exit_code": 0, "duration_ms": 140,
            "user": "bench", "host": "bench-host",
            "version": yt.__version__, "ssl_verify": True,
            "seq": seq, "prev": prev,
        }
        body = yt._canonical(entry)
        mac = yt._entry_mac(key, prev, body)
        lines.append(body[:-1] + yt._MAC_MARKER + mac + '"}\n')
        prev = mac
    with open(audit.path, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.writelines(lines)
    audit._write_state(key, {"first_seq": 1, "last_seq": count,
                             "last_mac": prev, "count": count, "tls": tls})


def bench_audit(bench: Bench, report: Report) -> None:
    section = "audit"
    yt = bench.import_yt()
    sizes = {"small": 100, "large": 100_000}
    envs = {}
    logs = {}
    for name, count in sizes.items():
        root = bench.work / "audit" / name
        data_dir, config_dir = root / "data", root / "config"
        env = bench.token_env(f"audit-{name}", YT_DATA_DIR=data_dir,
                              YT_CONFIG_DIR=config_dir,
                              YT_AUDIT_MAX_ENTRIES=10_000_000)
        tls = yt.Settings(env=env).tls_snapshot()
        started = time.perf_counter()
        write_audit_log(yt, data_dir, config_dir, count, tls)
        if name == "large":
            report.add(section, "write 100,000 chained entries",
                       f"{time.perf_counter() - started:.2f} s")
        envs[name] = env
        logs[name] = yt.AuditLog(str(data_dir), str(config_dir), 10_000_000)

    # AuditLog.append in this process, alternating between the logs.
    entry = {"ts": "2026-01-01T00:00:00.000Z", "event": "command",
             "command": "security token-status", "args": ["security",
             "token-status"], "status": "success", "exit_code": 0,
             "duration_ms": 20, "user": "bench", "host": "bench-host",
             "version": yt.__version__, "ssl_verify": True}
    samples = {"small": [], "large": []}
    for _ in range(bench.runs(300, 60)):
        for name, audit in logs.items():
            started = time.perf_counter()
            audit.append(dict(entry))
            samples[name].append(time.perf_counter() - started)
    small, large = Timing(samples["small"]), Timing(samples["large"])
    report.raw["audit_append"] = samples
    report.add(section, "AuditLog.append, 100 entries", small.ms())
    ratio_row(report, section, "AuditLog.append, 100,000 entries", large,
              small, 1.2, "100")
    one = small.median
    report.add(section, "100,000 appends one by one (estimate)",
               f"{one * 100_000:.0f} s, so logs are written directly")

    runs = bench.runs(15, 5)
    commands = {}
    for name in sizes:
        commands[f"status {name}"] = bench.command(
            envs[name], "security", "token-status")
        commands[f"tail {name}"] = bench.command(
            envs[name], "security", "audit", "--limit", "20")
    timings = time_commands(commands, runs, warmup=1)
    report.raw["audit_commands"] = {k: v.samples for k, v in timings.items()}
    report.add(section, "token-status (appends), 100 entries",
               timings["status small"].ms())
    ratio_row(report, section, "token-status (appends), 100,000 entries",
              timings["status large"], timings["status small"], 1.2, "100")
    report.add(section, "audit --limit 20, 100 entries",
               timings["tail small"].ms())
    ratio_row(report, section, "audit --limit 20, 100,000 entries",
              timings["tail large"], timings["tail small"], 1.5, "100")

    verify = time_commands({
        name: bench.command(envs[name], "security", "audit", "--verify")
        for name in sizes
    }, bench.runs(5, 2), warmup=1)
    report.raw["audit_verify"] = {k: v.samples for k, v in verify.items()}
    report.add(section, "audit --verify, 100 entries",
               verify["small"].ms())
    seconds = verify["large"].median
    report.add(section, "audit --verify, 100,000 entries",
               f"{verify['large'].ms()} (exit 0: chain verified)",
               "< 1 s", seconds < 1.0, seconds)


# --------------------------------------------------------------- masking

# Prose with words that start masking patterns (api, access, secret).
_PROSE = (
    "the issue was reopened after the deploy because the build server "
    "could not reach the api gateway so we rolled back and asked the "
    "access team to check the private network route before the release "
    "window closed and the secret rotation job ran again at midnight"
)


def mixed_lines(size: int, seed: int = 7) -> list:
    """Return log lines, JSON, HTTP headers and prose, about size bytes."""
    rng = random.Random(seed)
    words = _PROSE.split()
    lines, total = [], 0
    while total < size:
        kind = rng.randrange(10)
        number = rng.randrange(1, 99999)
        if kind < 3:
            line = (
                f"2026-03-{number % 28 + 1:02d}T10:{number % 60:02d}:07.123Z"
                f" INFO  [worker-{number % 8}] GET /api/issues?$top=100&"
                f"$skip={number} 200 {number % 900}ms user=jdoe"
            )
        elif kind < 5:
            line = json.dumps({
                "id": f"2-{number}", "idReadable": f"DEMO-{number}",
                "summary": " ".join(rng.choices(words, k=8)),
                "customFields": [{"name": "State", "value": "Open"},
                                 {"name": "Priority", "value": "Major"}],
                "updated": 1767225600000 + number,
            })
        elif kind < 7:
            line = rng.choice((
                "Content-Type: application/json;charset=UTF-8",
                f"Content-Length: {number}",
                "Accept: application/json",
                f"X-Request-Id: 4f2a{number:05d}",
                "Cache-Control: no-cache",
            ))
        elif kind < 9:
            line = " ".join(rng.choices(words, k=14)).capitalize() + "."
        else:
            line = rng.choice((
                f"Authorization: Bearer perm:YWRt.eXQ.{number}abcdefgh",
                f"curl -H 'X-Trace: {number}' --token abc{number}xyz",
                f'{{"login": "jdoe", "password": "hunter{number}"}}',
                f"retrying with token=s3cr3t{number} after 429",
            ))
        lines.append(line)
        total += len(line) + 1
    return lines


ADVERSARIAL = {
    "Bearer run": "Bearer ",
    "token= run": "token=",
    "perm: run": "perm:",
    "--token run": "--token ",
    "----- run": "-----",
    '"token": " run': '"token": "',
    "URL user-info run": "https://",
    "deep JSON [[[": "[",
    "deep JSON {\"token\":": '{"token":',
}


def bench_masking(bench: Bench, report: Report) -> None:
    section = "masking"
    yt = bench.import_yt()
    # A command that loaded a token masks it too, wherever it appears.
    yt.SECRETS.add(BENCH_TOKEN)
    lines = mixed_lines(2_000_000 if bench.quick else 8_000_000)
    text = "\n".join(lines)
    size_mb = len(text.encode()) / 1e6
    # Best of several rounds, as timeit reports: other processes only
    # ever make a round slower.
    rounds = bench.runs(5, 1)
    per_line = min(_time(lambda: [yt.mask(line) for line in lines])
                   for _ in range(rounds))
    rate = size_mb / per_line
    report.add(section, f"mixed text, line by line ({size_mb:.0f} MB)",
               f"{rate:.1f} MB/s", ">= 20 MB/s", rate >= 20, rate)
    chunk = 65536
    blocks = [text[i:i + chunk] for i in range(0, len(text), chunk)]
    per_block = min(_time(lambda: [yt.mask(block) for block in blocks])
                    for _ in range(rounds))
    rate = size_mb / per_block
    report.add(section, f"mixed text, 64 KiB blocks ({size_mb:.0f} MB)",
               f"{rate:.1f} MB/s", ">= 20 MB/s", rate >= 20, rate)
    masked = sum(yt.MASK in yt.mask(line) for line in lines)
    report.add(section, "lines with a secret masked",
               f"{masked} of {len(lines)}")

    sizes = (500_000, 1_000_000, 2_000_000)
    raw = report.raw.setdefault("masking_adversarial", {})
    for name, unit in ADVERSARIAL.items():
        seconds = []
        for size in sizes:
            sample = unit * (size // len(unit))
            seconds.append(min(_time(lambda s=sample: yt.mask(s))
                               for _ in range(bench.runs(3, 1))))
        raw[name] = seconds
        # Mean growth per doubling over the two doublings: 2 for linear
        # time, 4 for quadratic.  One slow middle sample cannot fail it.
        growth = (seconds[2] / seconds[0]) ** 0.5
        report.add(
            section, f"{name} 0.5/1/2 MB",
            " / ".join(f"{s * 1e3:.0f}" for s in seconds)
            + f" ms, x{growth:.2f} per doubling",
            "linear: <= 2.6x per doubling", growth <= 2.6, growth)


def _time(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


# ---------------------------------------------------------------- paging


def bench_paging(bench: Bench, report: Report) -> None:
    section = "paging"
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_youtrack import DEFAULT_TOKEN, FakeYouTrack

    results = {}
    for count in (1000, 5000):
        times, rss, connections, requests = [], [], [], []
        for _ in range(bench.runs(3, 1)):
            with FakeYouTrack(issues=0) as server:
                server.add_issues(count)
                env = bench.home_env(f"paging-{count}",
                                     YOUTRACK_BASE_URL=server.url,
                                     YOUTRACK_TOKEN=DEFAULT_TOKEN)
                command = bench.command(env, "issues", "list", "--limit",
                                        str(count), "--format", "json")
                elapsed, kib = max_rss_kib(command)
                times.append(elapsed)
                rss.append(kib)
                connections.append(server.connections)
                requests.append(len(server.requests))
        results[count] = (Timing(times), statistics.median(rss),
                          max(connections), max(requests))
    report.raw["paging"] = {
        count: {"seconds": t.samples, "rss_kib": r, "connections": c,
                "requests": q}
        for count, (t, r, c, q) in results.items()
    }
    for count, (timing, rss, connections, requests) in results.items():
        report.add(section, f"issues list, {count:,} issues",
                   f"{timing.median:.2f} s, {requests} requests, "
                   f"max RSS {rss / 1024:.1f} MiB")
        report.add(section, f"TCP connections, {count:,} issues",
                   str(connections), "1", connections == 1, connections)
    growth = results[5000][1] / results[1000][1]
    report.add(section, "max RSS 5,000 / 1,000 issues", f"{growth:.3f}x",
               "<= 1.10x (flat)", growth <= 1.10, growth)


# ------------------------------------------------------------- artifacts


def load_build_options() -> tuple:
    """Return PYINSTALLER_OPTIONS of build.py, read without running it."""
    tree = ast.parse((ROOT / "build.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(target, "id", None) == "PYINSTALLER_OPTIONS"
            for target in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise BenchError("build.py defines no PYINSTALLER_OPTIONS")


def build_variant(bench: Bench, name: str, onedir: bool,
                  strip: bool) -> Path:
    """Build a PyInstaller variant of yt.py into the cache directory."""
    options = [option for option in load_build_options()
               if option != "--strip"]
    if onedir:
        options[options.index("--onefile")] = "--onedir"
    if strip:
        options.append("--strip")
    work = bench.cache / "pyinstaller" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"building {name} with PyInstaller (a minute or two)",
          flush=True)
    result = subprocess.run(
        [str(PROJECT_VENV_PYTHON), "-m", "PyInstaller", *options,
         "--distpath", str(work / "dist"), "--workpath",
         str(work / "work"), "--specpath", str(work), str(bench.source)],
        cwd=work, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"PyInstaller {name} failed: "
                         + result.stdout[-500:] + result.stderr[-500:])
    shutil.rmtree(work / "work", ignore_errors=True)
    return work / "dist" / "yt"


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# PyInstaller builds made here with build.py's options, beside its
# stripped one-file build: label -> (one-dir, stripped).
VARIANTS = {
    "one-file, not stripped": (False, False),
    "one-dir": (True, False),
    "one-dir, stripped": (True, True),
}


def find_executables(bench: Bench, dist: Path) -> dict:
    """Return {label: executable} of build.py's and the cached variants.

    With --build-variants, the variants are built first.
    """
    executables = {}
    if (dist / "yt").exists():
        executables["one-file, stripped (build.py)"] = dist / "yt"
    for label, (onedir, strip) in VARIANTS.items():
        name = label.replace(", ", "-").replace(" ", "")
        built = bench.cache / "pyinstaller" / name / "dist" / "yt"
        if bench.args.build_variants and PROJECT_VENV_PYTHON.exists():
            built = build_variant(bench, name, onedir, strip)
        if onedir:
            built = built / "yt"
        if built.exists():
            executables[label] = built
    return executables


def empty_zipapp(bench: Bench) -> Path:
    """Write a zipapp whose __main__.py does nothing; return its path."""
    import zipapp

    directory = bench.work / "empty-zipapp"
    directory.mkdir(exist_ok=True)
    (directory / "__main__.py").write_text("pass\n")
    target = bench.work / "empty.pyz"
    zipapp.create_archive(directory, target)
    return target


def bench_artifacts(bench: Bench, report: Report) -> None:
    """Time the built artifacts against yt installed and run from source.

    The target compares yt.pyz with the installed console script, which
    loads yt.py from cached bytecode, the fastest way to run the source.
    ``python yt.py`` compiles the whole file on every start and is shown
    for reference.  An empty zipapp against ``python -c pass`` shows what
    running any zip archive costs by itself.
    """
    section = "artifacts"
    dist = Path(bench.args.dist)
    env = bench.token_env("artifacts")
    runners = {"source": [str(bench.python), "-I", str(bench.source)],
               "installed": [str(bench.yt)]}
    for name, file_name in (("pyz", "yt.pyz"),
                            ("stdlib pyz", "yt-stdlib.pyz")):
        if (dist / file_name).exists():
            runners[name] = [str(bench.python), "-I", str(dist / file_name)]
        else:
            report.skip(section, file_name, f"not in {dist}; run python3 "
                        "build.py")
    executables = find_executables(bench, dist)
    for label, path in executables.items():
        runners[label] = [str(path)]

    commands = {"bare": bench.bare(env),
                "empty zipapp": Command(
                    [str(bench.python), "-I", str(empty_zipapp(bench))],
                    env)}
    for name, prefix in runners.items():
        commands[f"{name} version"] = Command(prefix + ["--version"], env)
        commands[f"{name} status"] = Command(
            prefix + ["security", "token-status"], env)
    timings = time_commands(commands, bench.runs(20, 6), warmup=2)
    report.raw["artifacts"] = {k: v.samples for k, v in timings.items()}

    empty, bare = timings["empty zipapp"], timings["bare"]
    report.add(section, "empty zipapp (python -I empty.pyz)",
               f"{empty.ms()} = bare + "
               f"{(empty.median - bare.median) * 1e3:.1f} ms")
    for what, label in (("version", "--version"), ("status", "token-status")):
        source = timings[f"source {what}"]
        installed = timings[f"installed {what}"]
        report.add(section, f"installed (console script) {label}",
                   installed.ms())
        report.add(section, f"python yt.py {label}", source.ms())
        if "pyz" in runners:
            pyz = timings[f"pyz {what}"]
            ratio_row(report, section, f"yt.pyz {label}, warm", pyz,
                      installed, 1.1, "installed")
            report.add(section, f"yt.pyz {label}, warm, / python yt.py",
                       f"{paired_ratio(pyz.samples, source.samples):.2f}"
                       f"x python yt.py")
        if "stdlib pyz" in runners:
            stdlib = timings[f"stdlib pyz {what}"]
            report.add(section, f"yt-stdlib.pyz {label}",
                       f"{stdlib.ms()} = "
                       f"{paired_ratio(stdlib.samples, source.samples):.2f}"
                       f"x python yt.py")
        for exe_label, path in executables.items():
            timing = timings[f"{exe_label} {what}"]
            one_file = exe_label.startswith("one-file")
            size = tree_size(path if one_file else path.parent)
            report.add(section, f"{exe_label} {label}",
                       f"{timing.ms()}, {size / 1e6:.1f} MB")
    missing = [label for label in VARIANTS if label not in executables]
    if missing:
        report.skip(section, ", ".join(missing),
                    "not built; add --build-variants (about 5 min)")


# ------------------------------------------------------------------ main

RUNNERS = {
    "startup": bench_startup,
    "token": bench_token_status,
    "keyring": bench_keyring,
    "audit": bench_audit,
    "masking": bench_masking,
    "paging": bench_paging,
    "artifacts": bench_artifacts,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Benchmark yt against the targets in "
                    "docs/benchmarks.md and print a table.")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and smaller inputs")
    parser.add_argument("--only", metavar="SECTIONS",
                        help="comma-separated sections to run: "
                             + ",".join(SECTIONS))
    parser.add_argument("--yt", default=str(SOURCE), metavar="PATH",
                        help="yt.py to measure (default: this checkout's)")
    parser.add_argument("--json", metavar="FILE",
                        help="also write every sample and the machine "
                             "description to FILE")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE),
                        metavar="DIR",
                        help="virtual environments and PyInstaller builds "
                             "kept between runs (default: %(default)s)")
    parser.add_argument("--dist", default=str(DIST), metavar="DIR",
                        help="directory of the build.py artifacts to time "
                             "(default: %(default)s)")
    parser.add_argument("--no-external", action="store_true",
                        help="do not install or time the other YouTrack "
                             "clients from PyPI")
    parser.add_argument("--build-variants", action="store_true",
                        help="(re)build the unstripped one-file and the "
                             "one-dir PyInstaller variants first; about 5 "
                             "minutes")
    parser.add_argument("--keyring-child", metavar="JOB",
                        help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.keyring_child:
        return keyring_child(args.keyring_child)

    sections = SECTIONS
    if args.only:
        sections = tuple(s.strip() for s in args.only.split(",") if s)
        unknown = sorted(set(sections) - set(SECTIONS))
        if unknown:
            print(f"run.py: error: unknown section {', '.join(unknown)}; "
                  f"expected some of {','.join(SECTIONS)}", file=sys.stderr)
            return 2

    report = Report()
    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="yt-bench-") as work:
        bench = Bench(args, Path(work))
        try:
            bench.install()
            for section in sections:
                print(f"[{section}]", flush=True)
                RUNNERS[section](bench, report)
        except BenchError as exc:
            print(f"run.py: error: {exc}", file=sys.stderr)
            return 1

    elapsed = time.perf_counter() - started
    print()
    print(report.table())
    print(f"\n{len(report.failures())} of "
          f"{sum(1 for r in report.rows if r.status)} targets missed; "
          f"ran in {elapsed:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": info, "seconds": elapsed, "quick": args.quick,
            "rows": [dataclasses.asdict(row) for row in report.rows],
            "samples": report.raw,
        }, indent=1))
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
