#!/usr/bin/env bash
# Installs what the tests need beyond npm: a Redis server, Prometheus (with promtool), openssl
# and Chromium (the status page's tests drive it headless through playwright-core), from
# Debian's packages. The tests start their own instances on free ports and stop them;
# nothing here starts a service. Safe to run again: it installs only what is missing.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# The TLS tests of serve make a self-signed certificate with openssl.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# playwright-core launches /usr/bin/chromium (CHROMIUM_PATH overrides); it downloads no browser.
[ -x /usr/bin/chromium ] || [ -n "${CHROMIUM_PATH:-}" ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # --no-install-recommends and policy-rc.d keep the packages from starting services.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d
fi
redis-server --version
prometheus --version 2>&1 | head -1
"${CHROMIUM_PATH:-/usr/bin/chromium}" --version
