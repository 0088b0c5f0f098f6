"""Run a short yt session against the bundled fake YouTrack server.

Usage: python3 packaging/demo.py [YT_COMMAND...]

YT_COMMAND defaults to dist/yt (the executable build.py makes); pass
``python3 yt.py`` to try the source instead.  The session runs in a
throwaway HOME, so it touches none of your settings or credentials, and
the fake server listens on 127.0.0.1 only.
"""

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fake_youtrack import DEFAULT_TOKEN, FakeYouTrack  # noqa: E402

STEPS = [
    ("auth", "login", "--token-stdin"),
    ("issues", "list"),
    ("issues", "show", "DEMO-1"),
    ("issues", "create", "DEMO", "Printer on floor 3 is jammed",
     "-d", "Paper tray 2.", "--field", "Priority=Major"),
    ("issues", "comment", "DEMO-1", "Reproduced on the staging host."),
    ("issues", "list", "--query", "#Unresolved", "--limit", "3",
     "--format", "json"),
    ("projects", "list"),
    ("api", "users/me", "-f", "fields=login,fullName"),
    ("auth", "status"),
    ("security", "token-status"),
    ("security", "audit", "--limit", "5"),
    ("security", "audit", "--verify"),
]


def main(argv) -> int:
    command = argv or [str(REPO / "dist" / "yt")]
    if not argv and not Path(command[0]).exists():
        print("dist/yt is missing; run python3 build.py first, or pass "
              "the command to run, e.g. python3 yt.py", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="yt-demo-") as home, \
            FakeYouTrack(issues=5) as server:
        env = dict(os.environ, HOME=home, YOUTRACK_BASE_URL=server.url,
                   XDG_CONFIG_HOME=os.path.join(home, ".config"),
                   XDG_DATA_HOME=os.path.join(home, ".local", "share"),
                   PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
        for name in ("YOUTRACK_TOKEN", "YT_CONFIG_DIR", "YT_DATA_DIR",
                     "DBUS_SESSION_BUS_ADDRESS"):
            env.pop(name, None)
        print(f"fake YouTrack at {server.url}; HOME={home}\n", flush=True)
        for step in STEPS:
            print(f"$ yt {shlex.join(step)}", flush=True)
            stdin = DEFAULT_TOKEN if "--token-stdin" in step else ""
            result = subprocess.run(
                [*command, *step], input=stdin, text=True, env=env,
                check=False,
            )
            print(flush=True)
            if result.returncode != 0:
                print(f"demo step failed with exit code "
                      f"{result.returncode}", file=sys.stderr)
                return result.returncode
    print("demo finished: every step exited 0")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
