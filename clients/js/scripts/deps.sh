#!/bin/sh
# Installs what the SDK's tests need, idempotently: Debian's chromium (when
# /usr/bin/chromium is missing and we run as root) and the npm packages
# pinned in package-lock.json (npm ci). Playwright never downloads a browser.
set -eu
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "deps.sh: installing Debian's chromium" >&2
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	else
		echo "deps.sh: /usr/bin/chromium is missing and this is not root on Debian: install chromium, or the browser tests fail" >&2
	fi
fi

if ! command -v npm >/dev/null 2>&1; then
	echo "deps.sh: npm (Node 20 or later) is required" >&2
	exit 1
fi
# npm ci only when node_modules does not match the lock file.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json .deps-stamp 2>/dev/null; then
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
	cp package-lock.json .deps-stamp
fi
