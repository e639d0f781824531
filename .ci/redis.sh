#!/usr/bin/env bash
# A throw-away Redis for the task-queue tests (Celery and RQ), from Debian's packages.
#
# Installs redis-server with apt-get when it is missing, starts (once) a private
# instance on 127.0.0.1 only, with its own directory and no persistence, waits
# until it answers PING, and prints ONLY the line to eval:
#     eval "$(.ci/redis.sh)"   # exports HAVN_TEST_REDIS_URL
# Idempotent: running it again reuses the running instance. The Debian package's
# own service is left alone (it listens on another port). Everything else it says
# goes to stderr.
set -euo pipefail

PORT="${HAVN_TEST_REDIS_PORT:-63790}"
DIR="/var/lib/havn-test-redis-$PORT"

log() { echo "redis.sh: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        log "run as root or install sudo: installing and starting Redis needs root"
        exit 1
    fi
fi

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    log "installing redis-server from Debian's packages"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >&2
fi

ping() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null || true; }

if [ "$(ping)" != "PONG" ]; then
    log "starting redis-server on 127.0.0.1:$PORT (dir $DIR)"
    $SUDO mkdir -p "$DIR"
    # No RDB snapshots and no AOF: the tests' data is disposable, and a crash must not leave a dump behind.
    $SUDO redis-server --bind 127.0.0.1 --port "$PORT" --dir "$DIR" --daemonize yes \
        --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --save "" --appendonly no \
        --protected-mode yes --databases 16 >&2
fi

for _ in $(seq 1 50); do
    if [ "$(ping)" = "PONG" ]; then
        break
    fi
    sleep 0.1
done
if [ "$(ping)" != "PONG" ]; then
    log "redis-server on 127.0.0.1:$PORT did not answer PING; see $DIR/redis.log"
    exit 1
fi

echo "export HAVN_TEST_REDIS_URL=redis://127.0.0.1:$PORT/0"
