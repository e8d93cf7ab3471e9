#!/usr/bin/env sh
# The main job: makes .venv (if missing), installs syslogkit[cli] into it, runs `syslogkit demo`.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[cli]'
exec .venv/bin/syslogkit demo "$@"
