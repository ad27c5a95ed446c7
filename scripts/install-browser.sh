#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright's own browser download fails offline).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Chromium is not installed; browser tests will be skipped. Install it with: sudo apt-get install chromium" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
echo "installed $(/usr/bin/chromium --version)"
