# Sourced by the .ci scripts that install Debian packages (redis.sh, postgres.sh, chromium.sh).
# The caller sets NAME (its own name, for the log lines) and NEEDS_ROOT (what needs root, for the
# error); this defines log, SUDO (empty when already root) and debian_install (apt-get, quietly,
# everything on stderr), and stops with a clear error when neither root nor sudo is there.

log() { echo "$NAME: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        log "run as root or install sudo: $NEEDS_ROOT needs root"
        exit 1
    fi
fi

debian_install() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
