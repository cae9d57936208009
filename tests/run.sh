#!/usr/bin/env bash
# Install everything the tests need, then run them: the README's test command.
# Idempotent: a second run reuses .venv and the installed chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q -r requirements-dev.txt
if [ ! -x /usr/bin/chromium ]; then
  # Debian's chromium drives the browser tests; Playwright's own browser download is not used.
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
