#!/usr/bin/env bash
# Print the path of a Python interpreter of one minor version (e.g. 3.9), for the extra-version test runs.
#
#     bash .ci/python.sh 3.9     # -> /root/.pyenv/versions/3.9.18/bin/python
#
# Looks, in order, at pyenv's versions folder ($PYENV_ROOT, else ~/.pyenv, else /root/.pyenv; the
# newest patch release installed wins) and at pythonX.Y on the PATH. Neither Debian 12 nor PyPI
# ships old or new CPython builds, so when none is found it asks pyenv (only if pyenv is there)
# to build one (`pyenv install`, which downloads the source from python.org). Otherwise it
# fails loudly, saying what to install. Everything but the path goes to stderr.
set -euo pipefail

want="${1:?usage: bash .ci/python.sh 3.9}"
log() { echo "python.sh: $*" >&2; }

# Is "$1" a working interpreter of the wanted minor version (with venv, which the runs need)?
works() {
    [ -x "$1" ] && [ "$("$1" -c 'import sys, venv; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]
}

find_one() {
    local root candidate
    for root in "${PYENV_ROOT:-}" "${HOME:-/root}/.pyenv" /root/.pyenv; do
        [ -n "$root" ] && [ -d "$root/versions" ] || continue
        # Newest patch release first: 3.9.18 before 3.9.2.
        for candidate in $(ls -d "$root/versions/$want".* 2>/dev/null | sort -V -r); do
            if works "$candidate/bin/python"; then echo "$candidate/bin/python"; return 0; fi
        done
    done
    candidate="$(command -v "python$want" 2>/dev/null || true)"
    if [ -n "$candidate" ] && works "$candidate"; then echo "$candidate"; return 0; fi
    return 1
}

if found="$(find_one)"; then
    echo "$found"
    exit 0
fi

pyenv_bin="$(command -v pyenv 2>/dev/null || true)"
for root in "${PYENV_ROOT:-}" "${HOME:-/root}/.pyenv" /root/.pyenv; do
    if [ -z "$pyenv_bin" ] && [ -n "$root" ] && [ -x "$root/bin/pyenv" ]; then pyenv_bin="$root/bin/pyenv"; fi
done
if [ -n "$pyenv_bin" ]; then
    log "no Python $want found; building the latest $want with pyenv (needs python.org and build tools)"
    latest="$("$pyenv_bin" install --list | tr -d ' ' | grep -E "^${want//./\\.}\.[0-9]+$" | sort -V | tail -n 1)"
    if [ -n "$latest" ] && "$pyenv_bin" install -s "$latest" >&2 && found="$(find_one)"; then
        echo "$found"
        exit 0
    fi
    log "pyenv could not install Python $want (see above)"
fi

log "Python $want is not installed: the oldest and newest supported Pythons are expected under"
log "pyenv's versions folder (e.g. /root/.pyenv/versions/$want.x) or as python$want on the PATH."
log "Install it (pyenv install $want) and run again."
exit 1
