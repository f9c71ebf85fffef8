#!/usr/bin/env bash
# Installs the outside programs some tests use, from Debian, when they are missing: chromium
# (tests/test_dashboard_browser.py), nginx (tests/test_nginx.py) and prometheus
# (tests/test_observe_prometheus.py). Without them those tests skip.
# Needs root (or sudo) and apt-get; with no apt-get it says so and does nothing.
# Also the npm packages of tests/node (the MCP conformance suite and two task clients), when npm is there
# (tests/test_tasks_conformance.py; they skip without them). Node >= 22 comes from .ci/run.
set -euo pipefail
if command -v npm >/dev/null 2>&1; then
  npm install --prefix "$(dirname "$0")/../tests/node" --no-audit --no-fund -q >&2 \
    && echo "tools: npm packages of tests/node installed" \
    || echo "tools: npm packages of tests/node could not be installed; the tests that need them will skip" >&2
fi
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
wanted=()
if ! have chromium && ! have chromium-browser && ! have google-chrome && ! have google-chrome-stable; then
  wanted+=(chromium)
fi
have nginx || wanted+=(nginx-light)
have prometheus || wanted+=(prometheus)
if [ ${#wanted[@]} -eq 0 ]; then
  echo "tools: chromium, nginx and prometheus are installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "tools: no apt-get to install ${wanted[*]}; the tests that need them will skip" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${wanted[@]}"
echo "tools: installed ${wanted[*]}"
