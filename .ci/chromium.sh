#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests when it is missing (Playwright drives it through
# executable_path; no browser download from elsewhere).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then echo "no apt-get: browser tests need /usr/bin/chromium" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
