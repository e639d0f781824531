#!/usr/bin/env bash
# A throw-away PostgreSQL for the test suite, from Debian's packages.
#
# Installs PostgreSQL with apt-get when it is missing, creates (once) a cluster
# "havn_test" listening on loopback only, starts it, creates the role and the
# database, and prints ONLY the line(s) to eval:
#     eval "$(.ci/postgres.sh)"   # exports HAVN_TEST_POSTGRES_URL
# Idempotent: running it again reuses the cluster, role and database.
# Everything else it says goes to stderr.
set -euo pipefail

PORT="${HAVN_TEST_POSTGRES_PORT:-54329}"
CLUSTER="havn_test"
ROLE="havn"
PASSWORD="havn"
DATABASE="${HAVN_TEST_POSTGRES_DATABASE:-havn_test}"   # another name keeps parallel runs apart

NAME="postgres.sh"
NEEDS_ROOT="installing and starting PostgreSQL"
# shellcheck source=.ci/debian.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

if ! [[ "$DATABASE" =~ ^[a-z_][a-z0-9_]*$ ]]; then
    log "HAVN_TEST_POSTGRES_DATABASE must be a plain lower-case name, not '$DATABASE'"
    exit 1
fi

if ! command -v pg_createcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing PostgreSQL from Debian's packages"
    # The Debian package creates and starts a default cluster; we use our own.
    debian_install postgresql
fi

VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"

cluster_status() {
    pg_lsclusters -h 2>/dev/null | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $4}'
}

if [ -z "$(cluster_status)" ]; then
    log "creating cluster $VERSION/$CLUSTER on 127.0.0.1:$PORT"
    $SUDO pg_createcluster "$VERSION" "$CLUSTER" -p "$PORT" \
        -o fsync=off -o max_connections=100 >&2
    $SUDO pg_conftool "$VERSION" "$CLUSTER" set listen_addresses localhost >&2
fi

if [ "$(cluster_status)" != "online" ]; then
    log "starting cluster $VERSION/$CLUSTER"
    $SUDO pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi

psql_admin() {
    $SUDO runuser -u postgres -- psql -p "$PORT" -h /var/run/postgresql -v ON_ERROR_STOP=1 -qtA "$@"
}

# Wait for the server to accept connections (a fresh start can take a moment).
for _ in $(seq 1 50); do
    if psql_admin -c "select 1" >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done

if [ "$(psql_admin -c "select 1 from pg_roles where rolname = '$ROLE'")" != "1" ]; then
    log "creating role $ROLE"
    psql_admin -c "create role $ROLE login password '$PASSWORD'" >&2
fi
if [ "$(psql_admin -c "select 1 from pg_database where datname = '$DATABASE'")" != "1" ]; then
    log "creating database $DATABASE"
    psql_admin -c "create database $DATABASE owner $ROLE" >&2
fi

echo "export HAVN_TEST_POSTGRES_URL=postgresql+psycopg2://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"
