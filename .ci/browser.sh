#!/usr/bin/env bash
# Installs Debian's chromium when no chromium binary is on PATH, so tests/test_dashboard_browser.py
# runs instead of skipping. Needs root (or sudo) and apt; does nothing when chromium is already there.
set -euo pipefail
for name in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$name" >/dev/null 2>&1; then
    echo "browser: $(command -v "$name")"
    exit 0
  fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser: no chromium and no apt-get; the browser tests will skip" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
echo "browser: $(command -v chromium)"
