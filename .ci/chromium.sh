#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the example app's browser test, from Debian's packages.
#
# Installs `chromium` and `chromium-driver` with apt-get when either is missing,
# then prints ONLY the line to eval:
#     eval "$(.ci/chromium.sh)"   # exports HAVN_TEST_CHROMIUM
# Idempotent: a second run installs nothing. Everything else it says goes to stderr.
set -euo pipefail

NAME="chromium.sh"
NEEDS_ROOT="installing Chromium"
# shellcheck source=.ci/debian.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    log "installing chromium and chromium-driver from Debian's packages"
    debian_install --no-install-recommends chromium chromium-driver fonts-dejavu-core
fi

if ! /usr/bin/chromium --version >&2; then
    log "/usr/bin/chromium is installed but does not run; see the error above"
    exit 1
fi

echo "export HAVN_TEST_CHROMIUM=/usr/bin/chromium"
