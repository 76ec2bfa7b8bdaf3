#!/usr/bin/env bash
# Idempotent set-up on Debian 12 (root, or sudo): system packages, the Python
# virtualenv, npm packages and the browser collector build.
#   scripts/setup.sh core   what `make demo` needs
#   scripts/setup.sh test   core plus what the test suite and benchmarks need
set -euo pipefail
cd "$(dirname "$0")/.."
level="${1:-core}"
PY="${PYTHON:-python3}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ ! -f .setup-stamp-apt-update ] || [ -n "$(find .setup-stamp-apt-update -mmin +720 2>/dev/null)" ]; then
    as_root apt-get update -qq
    touch .setup-stamp-apt-update
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

core_packages=(ca-certificates)
command -v node >/dev/null || core_packages+=(nodejs)
command -v npm >/dev/null || core_packages+=(npm)
"$PY" -c "import venv, ensurepip" 2>/dev/null || core_packages+=(python3-venv)
apt_install "${core_packages[@]}"

if [ "$level" = "test" ]; then
  # Real parts for the tests: Chromium for the browser tests, wrk for load,
  # Prometheus to check every exported Grafana expression against.
  apt_install chromium wrk prometheus
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".setup-stamp-py-$level"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "$level" = "test" ]; then
    .venv/bin/python -m pip install -q -e ".[dev]"
  else
    .venv/bin/python -m pip install -q -e .
  fi
  # The open country database; its metadata pins an old maxminddb, which the
  # file itself does not need, so it goes in without dependencies.
  .venv/bin/python -m pip install -q --no-deps "python-geoacumen==2024.6.23"
  touch "$stamp"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
out=src/sitepulse/collect/static/sp.js
if [ ! -f "$out" ] || [ -n "$(find src/sitepulse/collect/browser package-lock.json -newer "$out" -print -quit)" ]; then
  npm run --silent build
fi
echo "setup: $level ready"
