#!/usr/bin/env bash
# What `make test` needs beyond Python: headless Chromium (viewer and UI screenshots), the
# PostgreSQL server binaries (the service tests start their own server) and docker-compose
# (docker-compose.yml is validated by Compose itself, no daemon needed). Installed with apt
# when this runs as root on Debian/Ubuntu; otherwise one line says what to install, and the
# tests that need a missing tool skip (CI sets GAMEVIEW_REQUIRE_WEB_TOOLS=1 to fail instead).
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v docker-compose >/dev/null || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (apt) for the tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "make test: install ${missing[*]} (e.g. sudo apt-get install ${missing[*]}); tests needing them skip" >&2
fi
