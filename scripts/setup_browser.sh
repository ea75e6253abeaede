#!/usr/bin/env bash
# Install what the end-to-end dashboard test (tests/test_app_browser.py) needs: Debian's chromium at
# /usr/bin/chromium and the playwright Python package in .venv/ (pinned in requirements-test.txt). Playwright
# drives the system chromium through executable_path; its own browser download is never used (it needs the
# network and is not pinned). Called by `bash scripts/setup.sh --test`. Idempotent; never fails the caller:
# when something cannot be installed it says why in one line, and the browser test then skips with that reason.
# apt's output goes to .venv/setup.log.
set -uo pipefail
cd "$(dirname "$0")/.."
log=.venv/setup.log
mkdir -p .venv

if [ -x /usr/bin/chromium ]; then
  echo "chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium with apt-get (log in $log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } >>"$log" 2>&1; then
    echo "apt-get install chromium failed (see $log); the browser test will be skipped"
  fi
elif ! command -v apt-get >/dev/null 2>&1; then
  echo "/usr/bin/chromium is missing and apt-get is not available (not Debian/Ubuntu);" \
    "install chromium at /usr/bin/chromium by hand, or the browser test will be skipped"
else
  echo "/usr/bin/chromium is missing and we are not root;" \
    "run 'sudo apt-get install -y chromium', or the browser test will be skipped"
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import playwright" >/dev/null 2>&1; then
  want=$(grep -E '^playwright==' requirements-test.txt 2>/dev/null || echo playwright)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$want" >>"$log" 2>&1 ||
    echo "pip install $want failed (see $log); the browser test will be skipped"
fi
exit 0
