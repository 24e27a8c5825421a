#!/usr/bin/env bash
# Makes a local PostgreSQL ready for CleanPlate's backend tests and benchmarks, idempotently:
# installs the distribution's `postgresql` package if missing, starts the cluster, creates a
# superuser role for the current user and a `cleanplate_test` database, and prints the URL to
# export as CLEANPLATE_TEST_POSTGRES_URL. Tests create their own scratch databases from it.
set -euo pipefail

DB="${CLEANPLATE_PG_DB:-cleanplate_test}"
SOCKET_DIR=/var/run/postgresql
ME="$(id -un)"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "postgres.sh: installing postgresql from the distribution" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >&2
fi

VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
CLUSTER=main
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$VERSION $CLUSTER"; then
    as_root pg_createcluster "$VERSION" "$CLUSTER" >&2
fi
if ! pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}' | grep -qx online; then
    as_root pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi

# Wait for the socket (a fresh start can take a moment).
for _ in $(seq 1 50); do
    if as_root runuser -u postgres -- pg_isready -q -h "$SOCKET_DIR"; then break; fi
    sleep 0.2
done

psql_pg() { as_root runuser -u postgres -- psql -h "$SOCKET_DIR" -v ON_ERROR_STOP=1 -qtAX "$@"; }

if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = '$ME'")" != 1 ]; then
    psql_pg -c "CREATE ROLE \"$ME\" SUPERUSER LOGIN" >&2
fi
if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    psql_pg -c "CREATE DATABASE \"$DB\" OWNER \"$ME\"" >&2
fi

# The user is spelled out: sqlx does not always guess the OS user (no $USER in CI shells).
echo "postgres:///$DB?host=$SOCKET_DIR&user=$ME"
