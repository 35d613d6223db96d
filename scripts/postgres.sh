# Sourced by scripts/test and bench/run.sh. start_postgres DIR VAR [OPTIONS]: starts a
# throwaway PostgreSQL server from the installed binaries (installing Debian's postgresql
# package if there are none) with its data under DIR, on a random loopback port, with extra
# server OPTIONS (e.g. "-c fsync=off"), and exports VAR=postgres://linker@127.0.0.1:PORT/postgres.
# The caller stops it with stop_postgres (at exit). Fails loudly if no server can be had.

pg_bin() { find /usr/lib/postgresql -maxdepth 3 -name "$1" -path '*/bin/*' 2>/dev/null | sort -V | tail -1; }

start_postgres() {
  local dir=$1 var=$2 options=${3:-} sudo="" port
  if [ -z "$(pg_bin initdb)" ]; then
    echo "installing PostgreSQL (Debian package postgresql)" >&2
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq postgresql >/dev/null ||
      { $sudo apt-get update -qq && $sudo apt-get install -y -qq postgresql >/dev/null; }
  fi
  pg_initdb=$(pg_bin initdb)
  pg_ctl=$(pg_bin pg_ctl)
  [ -n "$pg_initdb" ] && [ -n "$pg_ctl" ] ||
    { echo "no PostgreSQL server binaries, and none could be installed" >&2; exit 1; }
  pgdata="$PWD/$dir"
  rm -rf "$pgdata"
  mkdir -p "$pgdata"
  # PostgreSQL refuses to run as root: as root, it runs as the package's postgres user.
  pg_as=()
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$pgdata"
    pg_as=(runuser -u postgres --)
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${pg_as[@]}" "$pg_initdb" -D "$pgdata/data" -U linker -A trust --no-sync >"$pgdata/initdb.log" 2>&1 ||
    { cat "$pgdata/initdb.log" >&2; exit 1; }
  "${pg_as[@]}" "$pg_ctl" -D "$pgdata/data" -l "$pgdata/server.log" -w -t 60 \
    -o "-p $port -k $pgdata -c listen_addresses=127.0.0.1 -c max_connections=300 $options" start >/dev/null ||
    { cat "$pgdata/server.log" >&2; exit 1; }
  export "$var=postgres://linker@127.0.0.1:$port/postgres"
  echo "PostgreSQL at 127.0.0.1:$port (data in $dir)" >&2
}

stop_postgres() {
  "${pg_as[@]}" "$pg_ctl" -D "$pgdata/data" -m immediate stop >/dev/null 2>&1 || true
}
