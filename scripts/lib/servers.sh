# Shared by scripts/test and scripts/bench-faults (sourced, not run): installing packages,
# free loopback ports, and throwaway PostgreSQL and Redis servers whose readiness is their own
# word (a log line), not a timer.

log() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Reads a server's log from descriptor $1 until a line contains $2; fails if the server exits or
# 60 s pass without a line.
wait_for_line() {
  local line
  while IFS= read -r -t 60 line <&"$1"; do [[ $line == *"$2"* ]] && return 0; done
  return 1
}
# Starts redis-server in the background with its log on a pipe, waits until it accepts
# connections, writes its PID to $dir/redis.pid and leaves the pipe's descriptor in $redis_log.
start_redis() { # dir, redis-server arguments…
  local dir=$1; shift
  exec {redis_log}< <(exec redis-server "$@" --dir "$dir" --logfile '' 2>&1)
  echo $! >"$dir/redis.pid"
  wait_for_line "$redis_log" "Ready to accept connections" || { echo "redis-server in $dir did not start" >&2; exit 1; }
}
# Copies the rest of a server's log (descriptor $1) to file $2 in the background.
keep_log() { local fd=$1; cat <&"$fd" >>"$2" 2>/dev/null & eval "exec $fd<&-"; }

ensure_redis() { command -v redis-server >/dev/null || { log "installing redis-server"; apt_install redis-server; }; }
# Sets $pg_bin to the newest installed PostgreSQL's binaries, installing PostgreSQL when missing.
ensure_postgres() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    log "installing postgresql"; apt_install postgresql
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
}
# PostgreSQL refuses to run as root: run it as the postgres user on a directory it owns.
pg_user_run() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# initdb + start of a throwaway cluster in $1 on port $2 (not durable: fsync off, unless the
# server options in $3 say otherwise: they come last and win).
start_postgres() { # data dir, port, [more server options]
  local data=$1 port=$2 more=${3:-}
  if [ "$(id -u)" -eq 0 ]; then mkdir -p "$data" && chown postgres:postgres "$data"; fi
  pg_user_run "$pg_bin/initdb" -D "$data" -U postgres -A trust --no-sync >/dev/null
  pg_user_run "$pg_bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 $more" start >/dev/null
}
# A streaming replica of the cluster on port $1, in $2 on port $3, applying each commit $4 late
# (`recovery_min_apply_delay`, so tests meet real lag). Ready when pg_ctl says it started.
start_replica() { # primary port, data dir, port, apply delay
  local primary=$1 data=$2 port=$3 delay=$4
  if [ "$(id -u)" -eq 0 ]; then mkdir -p "$data" && chown postgres:postgres "$data" && chmod 700 "$data"; fi
  local out # (it warns about the primary's socket file in its data directory: not a problem)
  out=$(pg_user_run "$pg_bin/pg_basebackup" -D "$data" -R -X stream -h 127.0.0.1 -p "$primary" -U postgres --no-sync 2>&1) ||
    { echo "$out" >&2; return 1; }
  pg_user_run "$pg_bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c hot_standby=on -c recovery_min_apply_delay=$delay" \
    start >/dev/null
}
