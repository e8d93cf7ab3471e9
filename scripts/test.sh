#!/usr/bin/env sh
# Run the test suite: makes .venv (if missing), installs syslogkit with its test tools, runs pytest.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
exec .venv/bin/python -m pytest "$@"
