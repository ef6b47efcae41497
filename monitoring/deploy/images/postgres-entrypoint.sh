#!/bin/sh
# What the official postgres image does with POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB, for
# the Debian-packaged PostgreSQL of services.Containerfile: a cluster made on first start, reached
# over the network with a password, then the server in the foreground (it gets the stop signal).
set -eu
data=/var/lib/postgresql/data
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$data"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$data/PG_VERSION" ]; then
  password_file="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" >"$password_file"
  initdb -D "$data" -U "${POSTGRES_USER:-postgres}" --pwfile="$password_file" --auth-local=trust \
    --auth-host=scram-sha-256 >/dev/null
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >>"$data/pg_hba.conf"
  pg_ctl -D "$data" -o "-c listen_addresses=''" -w start >/dev/null
  database="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"  # as the official image: named after the user by default
  if [ "$database" != postgres ]; then
    createdb -U "${POSTGRES_USER:-postgres}" "$database"
  fi
  pg_ctl -D "$data" -m fast -w stop >/dev/null
fi
exec postgres -D "$data" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql
