#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the example app's browser test, from Debian's packages.
#
# Installs `chromium` and `chromium-driver` with apt-get when either is missing,
# then prints ONLY the line to eval:
#     eval "$(.ci/chromium.sh)"   # exports HAVN_TEST_CHROMIUM
# Idempotent: a second run installs nothing. Everything else it says goes to stderr.
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        log "run as root or install sudo: installing Chromium needs root"
        exit 1
    fi
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    log "installing chromium and chromium-driver from Debian's packages"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-dejavu-core >&2
fi

if ! /usr/bin/chromium --version >&2; then
    log "/usr/bin/chromium is installed but does not run; see the error above"
    exit 1
fi

echo "export HAVN_TEST_CHROMIUM=/usr/bin/chromium"
