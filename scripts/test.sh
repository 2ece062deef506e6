#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs the whole suite.
# The README's test command; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium for the browser tests (never `playwright install`).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null) \
    || echo "warning: could not install chromium; browser tests will be skipped" >&2
fi

# torch first, pinned: the CPU build here, and no CUDA packages pulled in by a later range.
python -m pip install -q torch==2.13.0
python -m pip install -q -r requirements-dev.txt
python -m pip install -q --no-deps -e .

exec python -m pytest -q "$@"
