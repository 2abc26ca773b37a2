#!/bin/sh
# The server install, from the lock: a virtualenv at VENV holding requirements/server.txt
# (hash-checked, no embedded Redis engine) and then the project itself, built offline with the
# setuptools the lock pins. The image's build runs it (Dockerfile), and tests/test_deployment.py
# replays the Dockerfile's build stage with it into a fresh virtualenv, so CI exercises the
# image's install step for step.
#
# Usage: deploy/install.sh VENV [deps|project|all]
#   deps     the locked dependencies only (the image installs them in a layer of their own)
#   project  the project from this checkout, without dependencies
#   all      both (the default)
# Run from the folder holding pyproject.toml, bot/ and requirements/. PYTHON picks the
# interpreter that makes the virtualenv (default: python3).
set -eu

venv="${1:?usage: deploy/install.sh VENV [deps|project|all]}"
step="${2:-all}"
case "$step" in
  deps|project|all) ;;
  *) echo "deploy/install.sh: unknown step $step (deps, project or all)" >&2; exit 2 ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
pip() { "$venv/bin/python" -m pip --disable-pip-version-check "$@"; }

if [ "$step" != project ]; then
  pip install --quiet --require-hashes -r requirements/server.txt
fi
if [ "$step" != deps ]; then
  # No build isolation and no index: the build uses the lock's setuptools, fetching nothing.
  pip install --quiet --no-deps --no-build-isolation --no-index .
fi
