#!/usr/bin/env bash
# A throwaway PostgreSQL on loopback, from Debian's packages, for the results-store tests.
#
#   eval "$(scripts/dev-postgres.sh up [DIR] [PORT])"   install if missing, initdb DIR, start it,
#                                                       print `export DISAGG_TEST_POSTGRES=...`
#   scripts/dev-postgres.sh down [DIR]                  stop the server started in DIR (by its pid)
#
# DIR defaults to /tmp/disagg-postgres, PORT to 25432: below Linux's ephemeral range (32768-60999),
# so no outgoing connection of a test or benchmark running meanwhile can be holding it (55432 once
# was, and the server could not bind). The server listens on 127.0.0.1 only and
# runs as the `postgres` user (PostgreSQL refuses root). It never touches the package's own
# cluster. `up` twice is `up` once.
set -euo pipefail

DIR=${2:-/tmp/disagg-postgres}
PORT=${3:-25432}
DB=disagg
ROLE=disagg
PASSWORD=disagg

say() { printf 'dev-postgres: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/initdb ]] && { echo "$d"; return; }
  done
  return 1
}

as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

up() {
  if ! bindir >/dev/null; then
    [[ $(id -u) == 0 ]] || die "PostgreSQL is not installed; run as root to install it"
    say "installing postgresql from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # The package's own cluster is not needed; don't let it start one.
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
    apt-get install -y -qq postgresql >&2
  fi
  local bin; bin=$(bindir)
  if [[ $(id -u) == 0 ]]; then
    mkdir -p "$DIR"; chown postgres: "$DIR"; chmod 700 "$DIR"
  fi
  if [[ ! -s $DIR/PG_VERSION ]]; then
    say "initdb $DIR"
    local pw; pw=$(mktemp); chmod 644 "$pw"; echo "$PASSWORD" > "$pw"
    as_pg "$bin/initdb" -D "$DIR" -U postgres --auth=scram-sha-256 --pwfile="$pw" >&2
    rm -f "$pw"
  fi
  if ! as_pg "$bin/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    say "starting on 127.0.0.1:$PORT"
    as_pg "$bin/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=100" start >&2 ||
      { tail -n 8 "$DIR/server.log" >&2; die "PostgreSQL did not start in $DIR on 127.0.0.1:$PORT (its log's end is above; another port: $0 up DIR PORT)"; }
  fi
  # A server already running in DIR (an earlier `up`) keeps its port: take it from its pid file
  # (line 4), so the URL printed is the one it listens on.
  local running; running=$(sed -n 4p "$DIR/postmaster.pid" 2>/dev/null || true)
  [[ $running =~ ^[0-9]+$ ]] && PORT=$running
  export PGPASSWORD=$PASSWORD
  local psql=("$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
  if [[ -z $("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'") ]]; then
    "${psql[@]}" -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >&2
  fi
  if [[ -z $("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'") ]]; then
    "${psql[@]}" -c "CREATE DATABASE $DB OWNER $ROLE" >&2
  fi
  echo "export DISAGG_TEST_POSTGRES=postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
}

down() {
  local bin; bin=$(bindir) || return 0
  [[ -s $DIR/postmaster.pid ]] || { say "nothing runs in $DIR"; return 0; }
  as_pg "$bin/pg_ctl" -D "$DIR" -m fast -w stop >&2
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down [DIR] [PORT]" ;;
esac
