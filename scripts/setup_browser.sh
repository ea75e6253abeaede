#!/usr/bin/env bash
# Install what the end-to-end dashboard test (tests/test_app_browser.py) needs: Debian's chromium at
# /usr/bin/chromium and the playwright Python package in .venv/. Playwright drives the system chromium through
# executable_path; its own browser download is never used (it needs the network and is not pinned).
# Idempotent; never fails the caller: when something cannot be installed it says why, and the browser test
# then skips with that reason.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -x /usr/bin/chromium ]; then
  echo "setup_browser: /usr/bin/chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup_browser: installing Debian's chromium with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }; then
    echo "setup_browser: apt-get install chromium failed; the browser test will be skipped" >&2
  fi
elif ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_browser: /usr/bin/chromium is missing and apt-get is not available (not Debian/Ubuntu);" \
    "install chromium by hand at /usr/bin/chromium, or the browser test will be skipped" >&2
else
  echo "setup_browser: /usr/bin/chromium is missing and we are not root;" \
    "run 'sudo apt-get install -y chromium', or the browser test will be skipped" >&2
fi

# playwright is pinned in requirements.txt; install it here too so this script works on its own.
if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import playwright" >/dev/null 2>&1; then
  want=$(grep -E '^playwright==' requirements.txt 2>/dev/null || echo playwright)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$want" ||
    echo "setup_browser: pip install $want failed; the browser test will be skipped" >&2
fi
exit 0
