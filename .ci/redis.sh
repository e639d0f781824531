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

NAME="redis.sh"
NEEDS_ROOT="installing and starting Redis"
# shellcheck source=.ci/debian.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    log "installing redis-server from Debian's packages"
    debian_install --no-install-recommends redis-server
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
