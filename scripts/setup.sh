#!/usr/bin/env bash
# Set up .venv/ in the project root. Idempotent; prints a few lines of progress, not pip's or apt's output.
#
#   bash scripts/setup.sh          what the analyzer, the demo and the dashboard need (requirements.txt)
#   bash scripts/setup.sh --test   also the tests' tools (requirements-test.txt: pytest, ruff, mypy, playwright)
#                                  and Debian's chromium for the dashboard's browser test
#
# Every installer's output goes to .venv/setup.log; on a failure its last lines are printed and the exit is 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
case "${1:-}" in
  "") want_test=0 ;;
  --test) want_test=1 ;;
  *) echo "usage: bash scripts/setup.sh [--test]" >&2; exit 2 ;;
esac

say() { echo "setup: $*"; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv/ with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
log=.venv/setup.log
echo "== $(date -u '+%Y-%m-%dT%H:%M:%SZ') scripts/setup.sh ${1:-}" >>"$log"

logged() { # run a command with its output in the log; on failure show the log's tail and stop
  if ! "$@" >>"$log" 2>&1; then
    echo "setup: FAILED: $*" >&2
    echo "setup: last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}

install() { # install a requirements file unless the same file was installed already (stamp = its hash)
  local file=$1 stamp=.venv/.$1.sha256 want
  want=$(cat "$file" requirements.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    say "$file already installed"
    return
  fi
  say "installing $file (pip; a few minutes on a fresh .venv/, log in $log)"
  logged .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-input -r "$file"
  echo "$want" >"$stamp"
}

install requirements.txt
if [ "$want_test" = 1 ]; then
  install requirements-test.txt
  # The dashboard's browser test needs Debian's chromium (skipped with a reason when it cannot be installed).
  bash scripts/setup_browser.sh 2>&1 | sed 's/^/setup: /'
fi
say "ready ($(du -sh .venv 2>/dev/null | cut -f1) in .venv/)"
