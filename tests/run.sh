#!/usr/bin/env bash
# Build yt, then run the test suite. Arguments go to pytest.
#
#   bash tests/run.sh                 # full build, then every test
#   YT_SKIP_BUILD=1 bash tests/run.sh -k harness
#
# Environment:
#   YT_SKIP_BUILD=1         only create or update .venv, and test the dist/
#                           of an earlier build
#   YT_REQUIRE_KEYRING=1    fail keyring tests that cannot find a Secret
#                           Service instead of skipping them
#   YT_REQUIRE_ARTIFACTS=1  fail tests of dist/ whose files are missing
#   PYTHON                  interpreter that runs build.py (python3)
#
# When gnome-keyring-daemon and dbus-run-session are installed, pytest runs
# inside a private D-Bus session whose gnome-keyring has a new, unlocked
# "login" collection in a temporary directory. The developer's own keyring
# and D-Bus session are never used.
set -euo pipefail

cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

# build.py creates or updates .venv first, and does nothing to it when the
# pinned requirements have not changed since it was made.
if [ "${YT_SKIP_BUILD:-}" = 1 ]; then
    "$python" build.py env
else
    "$python" build.py
fi

# Only this script sets these, for the keyring it starts below.
unset YT_TEST_KEYRING_PASSWORD YT_TEST_KEYRING_BUS YT_TEST_KEYRING_DIR

status=0
if command -v gnome-keyring-daemon >/dev/null &&
    command -v dbus-run-session >/dev/null; then
    keyring_dir=$(mktemp -d "${TMPDIR:-/tmp}/yt-keyring.XXXXXX")
    trap 'rm -rf "$keyring_dir"' EXIT
    mkdir -m 700 "$keyring_dir/home" "$keyring_dir/runtime"
    # A session bus like the standard one, but with no service directories:
    # nothing is started on demand, so neither a second gnome-keyring with
    # the real HOME nor a password window can appear.
    cat >"$keyring_dir/bus.conf" <<EOF
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:dir=$keyring_dir/runtime</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
    YT_TEST_KEYRING_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    YT_TEST_KEYRING_DIR=$keyring_dir
    export YT_TEST_KEYRING_PASSWORD YT_TEST_KEYRING_DIR

    # The daemon gets its own HOME, data and runtime directories, so its
    # keyring files and control socket stay in $keyring_dir. Messages of
    # dbus-daemon and gnome-keyring go to daemons.log, and pytest keeps the
    # real stderr through descriptor 3.
    # shellcheck disable=SC2016  # expanded by the inner shell
    dbus-run-session --config-file="$keyring_dir/bus.conf" -- sh -c '
        dir=$YT_TEST_KEYRING_DIR
        unset YT_TEST_KEYRING_DIR
        if ! control=$(printf "%s" "$YT_TEST_KEYRING_PASSWORD" |
            HOME="$dir/home" XDG_DATA_HOME="$dir/home/data" \
            XDG_RUNTIME_DIR="$dir/runtime" \
            gnome-keyring-daemon --unlock --components=secrets); then
            echo "tests/run.sh: gnome-keyring-daemon failed:" >&3
            cat "$dir/daemons.log" >&3
        fi
        GNOME_KEYRING_CONTROL=$(printf "%s\n" "$control" |
            sed -n "s/^GNOME_KEYRING_CONTROL=//p")
        YT_TEST_KEYRING_BUS=$DBUS_SESSION_BUS_ADDRESS
        export GNOME_KEYRING_CONTROL YT_TEST_KEYRING_BUS
        exec .venv/bin/python -m pytest "$@" 2>&3
    ' sh "$@" 3>&2 2>"$keyring_dir/daemons.log" || status=$?
    # pytest exits with 0 to 5, so a higher code comes from dbus-run-session.
    if [ "$status" -gt 5 ] && [ -s "$keyring_dir/daemons.log" ]; then
        echo "tests/run.sh: messages of dbus-daemon and gnome-keyring:" >&2
        cat "$keyring_dir/daemons.log" >&2
    fi
else
    echo "tests/run.sh: gnome-keyring-daemon or dbus-run-session not found," \
        "so keyring tests will skip (install gnome-keyring and dbus)" >&2
    .venv/bin/python -m pytest "$@" || status=$?
fi

if [ "$status" -eq 5 ]; then
    echo "tests/run.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
