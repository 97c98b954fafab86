#!/usr/bin/env bash
# Native dev stack: runs the whole of logstream on one Debian machine without Docker.
#
#   scripts/stack.sh up      install what is missing, start Kafka (tansu), PostgreSQL, Redis,
#                            Prometheus and the three services, wait until every /readyz is green
#   scripts/stack.sh down    stop exactly the processes `up` started (by pid)
#   scripts/stack.sh status  what runs, and each service's readiness
#
# Uses the same LOGSTREAM_* settings as docker-compose.yml. State (pids, logs) lives in .stack/.
# Environment: STACK_PROFILE=release|debug (default release), STACK_PROMETHEUS=1|0 (default 1),
# LOGSTREAM_TOPIC_PARTITIONS (default 6),
# STACK_KAFKA=tansu|mock (default tansu): mock runs librdkafka's in-memory mock cluster
# (integration-tests/src/bin/mock-kafka.rs) on a port of its own instead of tansu on 9092, for the
# crash and rebalance tests, whose group coordination tansu 0.6 gets wrong. Switching between the
# two needs a `down` first: running services stay connected to the broker they started with.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.stack"
LOGS="$STATE/logs"
PROFILE="${STACK_PROFILE:-release}"
PARTITIONS="${LOGSTREAM_TOPIC_PARTITIONS:-6}"
KAFKA=127.0.0.1:9092
KAFKA_KIND="${STACK_KAFKA:-tansu}"
case "$KAFKA_KIND" in tansu|mock) ;; *) echo "[stack] error: STACK_KAFKA must be tansu or mock, not '$KAFKA_KIND'" >&2; exit 2;; esac
DB_URL="postgres://postgres@127.0.0.1:5432/logstream"
TOPICS="logs.raw logs.dlq logs.alerts"
mkdir -p "$LOGS"

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
apt_install() {
  say "installing $* (apt)"
  if [ ! -f "$STATE/.apt-updated" ]; then apt-get update -qq && touch "$STATE/.apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
# A process is alive when it exists and is not a zombie (a killed child nobody reaped yet).
alive() {
  local pid
  [ -f "$STATE/$1.pid" ] || return 1
  pid=$(cat "$STATE/$1.pid")
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

# Starts a background process and records its pid (so `down` stops exactly it).
# LAUNCH_PORT, when set, is the port it will listen on: refuse when something else holds it.
launch() {
  local name=$1; shift
  if alive "$name"; then say "$name already running (pid $(cat "$STATE/$name.pid"))"; return; fi
  if [ -n "${LAUNCH_PORT:-}" ] && listening "$LAUNCH_PORT"; then
    die "port $LAUNCH_PORT (for $name) is used by a process this script did not start"
  fi
  nohup "$@" >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
  say "started $name (pid $!, log .stack/logs/$name.log)"
}

wait_port() {
  local name=$1 port=$2 i
  for i in $(seq 1 120); do listening "$port" && return 0; sleep 0.5; done
  die "$name did not listen on port $port (see .stack/logs/$name.log)"
}

ensure_postgres() {
  if ! listening 5432; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    wait_port postgresql 5432
  fi
  if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1" postgres >/dev/null 2>&1; then
    die "PostgreSQL on 127.0.0.1:5432 does not accept user postgres without a password (trust auth expected)"
  fi
  if [ "$(psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='logstream'" postgres)" != 1 ]; then
    say "creating database logstream"
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE logstream" postgres
  fi
}

ensure_redis() {
  listening 6379 && return
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port redis 6379
}

# A fresh broker has none of the offsets PostgreSQL remembers: forget them.
forget_offsets() {
  psql -h 127.0.0.1 -U postgres -qc "DELETE FROM kafka_offsets" logstream >/dev/null 2>&1 || true
}

ensure_kafka() {
  [ "$KAFKA_KIND" = mock ] && { ensure_mock_kafka; return; }
  alive mock-kafka && die "mock-kafka (STACK_KAFKA=mock) is running: scripts/stack.sh down first"
  if listening 9092; then
    alive tansu || say "a Kafka broker already listens on 9092 (not started by this script)"
  else
    if ! command -v tansu >/dev/null; then
      say "installing tansu (cargo install, takes several minutes once)"
      cargo install tansu --locked --features dynostore
    fi
    launch tansu tansu broker --listener-url tcp://127.0.0.1:9092 \
      --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/
    wait_port tansu 9092
    forget_offsets
  fi
  for topic in $TOPICS; do
    tansu topic create "$topic" --partitions "$PARTITIONS" --broker "tcp://$KAFKA" >/dev/null 2>&1 || true
  done
}

ensure_mock_kafka() {
  local i
  if ! alive mock-kafka; then
    alive tansu && die "tansu (started by this script) is running: scripts/stack.sh down first"
    rm -f "$STATE/kafka.bootstrap"
    launch mock-kafka "$ROOT/target/$PROFILE/mock-kafka" "$STATE/kafka.bootstrap" "$PARTITIONS" $TOPICS
    for i in $(seq 1 60); do
      [ -s "$STATE/kafka.bootstrap" ] && break
      alive mock-kafka || die "mock-kafka exited (see .stack/logs/mock-kafka.log)"
      sleep 0.5
    done
    [ -s "$STATE/kafka.bootstrap" ] || die "mock-kafka wrote no bootstrap address in 30 s"
    forget_offsets
  fi
  KAFKA=$(cat "$STATE/kafka.bootstrap")
}

ensure_prometheus() {
  [ "${STACK_PROMETHEUS:-1}" = 1 ] || return 0
  command -v prometheus >/dev/null || apt_install prometheus
  # The compose config names containers; natively everything is on 127.0.0.1.
  sed -e 's/generator:8080/127.0.0.1:8080/; s/collector:8081/127.0.0.1:8081/; s/gateway:8090/127.0.0.1:8090/' \
    -e "s|/etc/prometheus/rules|$ROOT/monitoring/prometheus/rules|" \
    "$ROOT/monitoring/prometheus.yml" >"$STATE/prometheus.yml"
  if listening 9090 && ! alive prometheus; then say "something else listens on 9090; not starting Prometheus"; return; fi
  launch prometheus prometheus --config.file="$STATE/prometheus.yml" --storage.tsdb.path="$STATE/prometheus-data" \
    --web.listen-address=127.0.0.1:9090
}

build() {
  say "building services ($PROFILE)"
  local flag=""; [ "$PROFILE" = release ] && flag="--release"
  (cd "$ROOT" && cargo build $flag --bins -q)
}

start_services() {
  local bin="$ROOT/target/$PROFILE"
  echo "$KAFKA" >"$STATE/kafka.brokers"  # for tests that start more collectors of their own
  export LOGSTREAM_KAFKA_BROKERS="$KAFKA" LOGSTREAM_DATABASE_URL="$DB_URL" \
    LOGSTREAM_REDIS_URL="redis://127.0.0.1:6379" LOGSTREAM_TOPIC_PARTITIONS="$PARTITIONS"
  LAUNCH_PORT=8081 launch collector env LOGSTREAM_COLLECTOR_LISTEN=127.0.0.1:8081 \
    LOGSTREAM_GROUP_INSTANCE_ID="${LOGSTREAM_GROUP_INSTANCE_ID-collector-1}" "$bin/logstream-collector"
  LAUNCH_PORT=8080 launch generator env LOGSTREAM_GENERATOR_LISTEN=127.0.0.1:8080 \
    LOGSTREAM_GENERATOR_ADVERTISE_URL=http://127.0.0.1:8080 "$bin/logstream-generator"
  LAUNCH_PORT=8090 launch gateway env LOGSTREAM_GATEWAY_LISTEN=127.0.0.1:8090 "$bin/logstream-gateway"
}

wait_ready() {
  local name port i
  for pair in collector:8081 generator:8080 gateway:8090; do
    name=${pair%%:*}; port=${pair##*:}
    for i in $(seq 1 240); do
      curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
      alive "$name" || die "$name exited (see .stack/logs/$name.log)"
      [ "$i" = 240 ] && die "$name not ready after 120 s: $(curl -s "http://127.0.0.1:$port/readyz")"
      sleep 0.5
    done
    say "$name ready on :$port"
  done
}

stop_one() {
  local name=$1 pid i
  [ -f "$STATE/$name.pid" ] || return 0
  pid=$(cat "$STATE/$name.pid")
  if alive "$name"; then
    kill -TERM "$pid"
    for i in $(seq 1 60); do alive "$name" || break; sleep 0.5; done
    alive "$name" && { say "$name did not stop in 30 s; killing"; kill -KILL "$pid"; }
    say "stopped $name (pid $pid)"
  fi
  rm -f "$STATE/$name.pid"
}

case "${1:-}" in
  up)
    command -v curl >/dev/null || apt_install curl
    command -v psql >/dev/null || apt_install postgresql-client
    ensure_postgres
    ensure_redis
    build
    ensure_kafka
    start_services
    ensure_prometheus
    wait_ready
    say "up: gateway http://127.0.0.1:8090  generator :8080  collector :8081  kafka $KAFKA"
    ;;
  down)
    for name in gateway generator collector prometheus tansu mock-kafka; do stop_one "$name"; done
    ;;
  status)
    for pair in tansu:9092 mock-kafka:- prometheus:9090 collector:8081 generator:8080 gateway:8090; do
      name=${pair%%:*}; port=${pair##*:}
      if alive "$name"; then state="running (pid $(cat "$STATE/$name.pid"))"; else state="not started here"; fi
      ready=""
      case $name in collector|generator|gateway) ready=" readyz: $(curl -s "http://127.0.0.1:$port/readyz" || echo unreachable)";; esac
      printf '%-10s %s%s\n' "$name" "$state" "$ready"
    done
    ;;
  *)
    echo "usage: $0 up|down|status" >&2; exit 2;;
esac
