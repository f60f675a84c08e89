#!/usr/bin/env bash
# Install (Debian packages) and start a local PostgreSQL server for the test suite, then print the
# URL of a role allowed to create databases. Idempotent; PostgreSQL refuses root, so it runs as
# the `postgres` user through the Debian cluster tools.
#
# Two roles (docs/security.md, "Database roles"):
#   rsa      owner: creates the test databases, runs the migrations (RSA_MIGRATE_DATABASE_URL);
#   rsa_app  the application: LOGIN only; its rights (rows only, INSERT-only audit log, no TRUNCATE,
#            no ALTER) are granted per database by config.roles.grant_app_role after each migration.
# The printed URL is the owner's; the test harness derives the application's (user rsa_app).
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing PostgreSQL (Debian packages)…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  pg_createcluster "$version" main >&2
fi
# The server as docs/scaling.md sizes it for a Département ("Sizing PostgreSQL"), so that the
# benchmarks measure the documented configuration, not Debian's defaults (128 MB of shared buffers:
# a million persons' tables would be read back from the OS cache): a quarter of the RAM for shared
# buffers up to 2 GB, half of it as effective cache up to 6 GB, SSD costs. Written once; a change
# restarts the server.
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
shared=$(( mem_mb / 4 < 2048 ? mem_mb / 4 : 2048 ))
cache=$(( mem_mb / 2 < 6144 ? mem_mb / 2 : 6144 ))
conf_dir="/etc/postgresql/$version/main/conf.d"
wanted="# written by .ci/postgres.sh (docs/scaling.md, Sizing PostgreSQL)
shared_buffers = ${shared}MB
effective_cache_size = ${cache}MB
work_mem = 32MB
random_page_cost = 1.1"
changed=0
if [ -d "$conf_dir" ] && [ "$(cat "$conf_dir/90-rsa.conf" 2>/dev/null)" != "$wanted" ]; then
  printf '%s\n' "$wanted" > "$conf_dir/90-rsa.conf"
  changed=1
fi
if ! pg_lsclusters -h | grep -q "^$version main .* online"; then
  pg_ctlcluster "$version" main start >&2
elif [ "$changed" = 1 ]; then
  pg_ctlcluster "$version" main restart >&2
fi
for _ in $(seq 1 30); do
  su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1 && break
  sleep 1
done
su postgres -c "psql -qAt" >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rsa') THEN
    CREATE ROLE rsa LOGIN CREATEDB PASSWORD 'rsa';
  END IF;
END $$;
-- DROP DATABASE … WITH (FORCE) must be able to end an autovacuum worker on the dropped database.
GRANT pg_signal_backend TO rsa;
-- The application's role: no CREATEDB, no CREATEROLE, owns nothing.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rsa_app') THEN
    CREATE ROLE rsa_app LOGIN NOCREATEDB NOCREATEROLE PASSWORD 'rsa_app';
  END IF;
END $$;
SQL
su postgres -c "psql -qAtc \"SELECT 1 FROM pg_database WHERE datname='rsa'\"" | grep -q 1 \
  || su postgres -c "createdb -O rsa rsa" >&2
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
echo "postgresql://rsa:rsa@127.0.0.1:${port}/rsa"
