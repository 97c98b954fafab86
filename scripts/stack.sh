#!/usr/bin/env bash
# Native stack: runs the whole of logstream on one Debian machine without Docker.
#
#   scripts/stack.sh up           install what is missing, start Apache Kafka (single KRaft node),
#                                 PostgreSQL, Redis, Prometheus, Alertmanager (127.0.0.1:9095)
#                                 and the four services (collector, generator, gateway, ingest:
#                                 HTTP :8082, syslog :5514 TCP and UDP), and wait
#                                 until every /readyz is green
#   scripts/stack.sh down         stop exactly what `up` started (processes by pid; PostgreSQL
#                                 only when `up` started it)
#   scripts/stack.sh status       what runs, and each service's readiness
#   scripts/stack.sh start NAME   start one piece again (kafka, redis, postgres, collector,
#                                 generator, gateway, ingest, prometheus, alertmanager, s3): for
#                                 fault tests
#   scripts/stack.sh stop NAME    stop one piece (SIGTERM; PostgreSQL with pg_ctlcluster -m fast)
#
# Uses the same LOGSTREAM_* settings as docker-compose.yml. State (pids, logs, Kafka's log
# directory) lives in .stack/; the Kafka jars in .stack/kafka-VERSION/ (reused when present;
# from Maven Central through scripts/kafka/pom.xml, nothing fetched from anywhere else).
# Environment: STACK_PROFILE=release|debug (default release), STACK_PROMETHEUS=1|0 (default 1),
# STACK_ALERTMANAGER=1|0 (default 1), STACK_S3=1|0 (default 0: s3s-fs for archive routes),
# STACK_OPENSEARCH=1|0 (default 0: OpenSearch for search-cluster routes),
# LOGSTREAM_TOPIC_PARTITIONS (default 6), STACK_KAFKA_HEAP_MB (default 1024, the broker's -Xmx).
# PostgreSQL: a role and database `logstream` (password `logstream`), as in docker-compose.yml;
# created through the local socket as the postgres OS user, so Debian's default pg_hba.conf
# (scram-sha-256 over TCP) works unchanged.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.stack"
LOGS="$STATE/logs"
PROFILE="${STACK_PROFILE:-release}"
PARTITIONS="${LOGSTREAM_TOPIC_PARTITIONS:-6}"
KAFKA=127.0.0.1:9092
KAFKA_POM="$ROOT/scripts/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")"
KAFKA_HOME="$STATE/kafka-$KAFKA_VERSION"
KAFKA_DATA="$STATE/kafka-data"
KAFKA_HEAP_MB="${STACK_KAFKA_HEAP_MB:-1024}"
DB_USER=logstream DB_PASSWORD=logstream DB_NAME=logstream
DB_URL="postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:5432/$DB_NAME"
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

pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -1; }
as_postgres() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }

ensure_postgres() {
  if ! listening 5432; then
    command -v pg_ctlcluster >/dev/null && [ -n "$(pg_version)" ] || apt_install postgresql
    say "starting PostgreSQL $(pg_version)"
    pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start
    touch "$STATE/postgres.started"
    wait_port postgresql 5432
  fi
  if ! PGPASSWORD=$DB_PASSWORD psql -X -h 127.0.0.1 -U "$DB_USER" -tAc "SELECT 1" "$DB_NAME" >/dev/null 2>&1; then
    [ -n "$(pg_version)" ] || die "PostgreSQL on 127.0.0.1:5432 refuses $DB_URL and is not this machine's cluster"
    say "creating PostgreSQL role and database $DB_NAME"
    as_postgres -d postgres <<SQL
SELECT 'CREATE ROLE $DB_USER LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER')\gexec
ALTER ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD';
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB_NAME')\gexec
ALTER DATABASE $DB_NAME OWNER TO $DB_USER;
SQL
    # A database created by an earlier version of this script belongs to postgres: hand it over.
    as_postgres -d "$DB_NAME" -c "ALTER SCHEMA public OWNER TO $DB_USER" \
      -c "DO \$\$ DECLARE r record; BEGIN FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r','p','S','v') AND pg_get_userbyid(c.relowner) <> '$DB_USER' LOOP EXECUTE format('ALTER TABLE public.%I OWNER TO $DB_USER', r.relname); END LOOP; END \$\$"
    PGPASSWORD=$DB_PASSWORD psql -X -h 127.0.0.1 -U "$DB_USER" -tAc "SELECT 1" "$DB_NAME" >/dev/null \
      || die "cannot log in as $DB_USER over TCP (see pg_hba.conf)"
  fi
  # e2e-bench starts each timed phase after a CHECKPOINT (pg_checkpoint: PostgreSQL 15+).
  if [ -n "$(pg_version)" ]; then
    as_postgres -d postgres -c "DO \$\$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_checkpoint') AND NOT pg_has_role('$DB_USER', 'pg_checkpoint', 'MEMBER') THEN EXECUTE 'GRANT pg_checkpoint TO $DB_USER'; END IF; END \$\$"
  fi
  # The read-only role of Grafana's PostgreSQL datasource (and of the dashboard test's SQL).
  if ! PGPASSWORD=logstream_reader psql -X -h 127.0.0.1 -U logstream_reader -tAc "SELECT 1" "$DB_NAME" >/dev/null 2>&1; then
    [ -n "$(pg_version)" ] || { say "no read-only role logstream_reader (not this machine's cluster)"; return 0; }
    say "creating the read-only PostgreSQL role logstream_reader"
    as_postgres -d "$DB_NAME" -f "$ROOT/monitoring/postgres/reader.sql"
  fi
}

ensure_redis() {
  listening 6379 && { alive redis || say "a Redis server already listens on 6379 (not started by this script)"; return; }
  command -v redis-server >/dev/null || apt_install redis-server
  LAUNCH_PORT=6379 launch redis redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$STATE"
  wait_port redis 6379
}

# A fresh broker has none of the offsets PostgreSQL remembers: forget them.
forget_offsets() {
  PGPASSWORD=$DB_PASSWORD psql -X -h 127.0.0.1 -U "$DB_USER" -qc "DELETE FROM kafka_offsets" "$DB_NAME" >/dev/null 2>&1 || true
}

kafka_java() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$KAFKA_HOME/libs/*" \
    -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.yaml" "$@"
}

install_kafka() {
  [ -f "$KAFKA_HOME/.complete" ] && return
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  say "installing Apache Kafka $KAFKA_VERSION (Maven Central, scripts/kafka/pom.xml)"
  rm -rf "$KAFKA_HOME"
  mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies -DoutputDirectory="$KAFKA_HOME/libs" >>"$LOGS/kafka-install.log" 2>&1 \
    || die "mvn could not resolve Kafka $KAFKA_VERSION"
  touch "$KAFKA_HOME/.complete"
}

start_kafka() {
  alive kafka && return
  if listening 9092; then say "a Kafka broker already listens on 9092 (not started by this script)"; return; fi
  install_kafka
  { cat "$ROOT/scripts/kafka/server.properties"; echo "log.dirs=$KAFKA_DATA"; } >"$STATE/kafka.properties"
  if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
    say "formatting a KRaft log directory in .stack/kafka-data"
    rm -rf "$KAFKA_DATA"
    kafka_java kafka.tools.StorageTool format --standalone -c "$STATE/kafka.properties" \
      -t "$(kafka_java kafka.tools.StorageTool random-uuid)" >>"$LOGS/kafka.log" 2>&1 \
      || die "cannot format $KAFKA_DATA (see .stack/logs/kafka.log)"
    forget_offsets
  fi
  LAUNCH_PORT=9092 launch kafka java "-Xmx${KAFKA_HEAP_MB}m" "-Xms$((KAFKA_HEAP_MB / 4))m" -XX:+UseG1GC \
    -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.yaml" -cp "$KAFKA_HOME/libs/*" \
    kafka.Kafka "$STATE/kafka.properties"
  local i
  for i in $(seq 1 240); do
    listening 9092 && break
    alive kafka || die "Kafka exited (see .stack/logs/kafka.log)"
    sleep 0.5
  done
  listening 9092 || die "Kafka did not listen on 9092 in 120 s (see .stack/logs/kafka.log)"
}

ensure_kafka() {
  start_kafka
  [ -f "$KAFKA_HOME/.complete" ] || install_kafka
  # One tool run per topic, in parallel (each is a JVM start); --if-not-exists keeps reruns quiet.
  local topic pids=()
  for topic in $TOPICS; do
    kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA" --create --if-not-exists \
      --topic "$topic" --partitions "$PARTITIONS" --replication-factor 1 >>"$LOGS/kafka-topics.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || die "cannot create the topics (see .stack/logs/kafka-topics.log)"; done
  say "Kafka $KAFKA_VERSION on $KAFKA: topics $TOPICS ($PARTITIONS partitions)"
}

ensure_prometheus() {
  [ "${STACK_PROMETHEUS:-1}" = 1 ] || return 0
  command -v prometheus >/dev/null || apt_install prometheus
  # The compose config names containers; natively everything is on 127.0.0.1.
  sed -e 's/dns_sd_configs: \[{names: \["[a-z]*"\], type: A, port: \([0-9]*\)}\]/static_configs: [{targets: ["127.0.0.1:\1"]}]/' \
    -e "s|/etc/prometheus/rules|$ROOT/monitoring/prometheus/rules|" \
    "$ROOT/monitoring/prometheus.yml" >"$STATE/prometheus.yml"
  if listening 9090 && ! alive prometheus; then say "something else listens on 9090; not starting Prometheus"; return; fi
  launch prometheus prometheus --config.file="$STATE/prometheus.yml" --storage.tsdb.path="$STATE/prometheus-data" \
    --web.listen-address=127.0.0.1:9090
}

# An S3 server for the archive (s3://) routes: s3s-fs from crates.io on 127.0.0.1:8014, its
# objects plain files under .stack/s3/BUCKET/KEY, the bucket `logstream-archive` created.
# Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default logstream / logstream-secret),
# as the collector reads them. Started by `up` when STACK_S3=1, or by `start s3`.
S3_PORT=8014 S3S_VERSION=0.14.1
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-logstream}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-logstream-secret}"
ensure_s3() {
  local bin="$STATE/tools/bin/s3s-fs"
  if [ ! -x "$bin" ]; then
    say "installing s3s-fs $S3S_VERSION (cargo install, about 2 minutes)"
    cargo install s3s-fs --version "$S3S_VERSION" --locked --features binary --root "$STATE/tools" -q
  fi
  if listening $S3_PORT && ! alive s3; then say "something else listens on $S3_PORT; not starting s3s-fs"; return; fi
  mkdir -p "$STATE/s3/logstream-archive"
  launch s3 "$bin" --host 127.0.0.1 --port $S3_PORT --access-key "$AWS_ACCESS_KEY_ID" \
    --secret-key "$AWS_SECRET_ACCESS_KEY" "$STATE/s3"
  wait_port s3 $S3_PORT
}

# OpenSearch 2.19 for the search-cluster (opensearch+http://) routes, from Maven Central jars
# (scripts/opensearch/run.sh) on 127.0.0.1:9200. Started by `up` when STACK_OPENSEARCH=1, or by
# `start opensearch`.
ensure_opensearch() {
  if listening 9200 && ! alive opensearch; then say "something else listens on 9200; not starting OpenSearch"; return; fi
  "$ROOT/scripts/opensearch/run.sh" --install-only >>"$LOGS/opensearch-install.log" 2>&1 \
    || die "cannot assemble OpenSearch (see .stack/logs/opensearch-install.log)"
  LAUNCH_PORT=9200 launch opensearch "$ROOT/scripts/opensearch/run.sh"
  local i
  for i in $(seq 1 240); do
    curl -fsS "http://127.0.0.1:9200/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1 && { say "opensearch ready on :9200"; return; }
    alive opensearch || die "opensearch exited (see .stack/logs/opensearch.log)"
    sleep 0.5
  done
  die "opensearch not ready after 120 s (see .stack/logs/opensearch.log)"
}

# Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1:9095 (9093 is Kafka's controller
# here), gossip off; the collector pushes alerts to it.
ensure_alertmanager() {
  [ "${STACK_ALERTMANAGER:-1}" = 1 ] || return 0
  command -v prometheus-alertmanager >/dev/null || apt_install prometheus-alertmanager
  if listening 9095 && ! alive alertmanager; then say "something else listens on 9095; not starting Alertmanager"; return; fi
  launch alertmanager prometheus-alertmanager --config.file="$ROOT/monitoring/alertmanager.yml" \
    --storage.path="$STATE/alertmanager-data" --web.listen-address=127.0.0.1:9095 --cluster.listen-address=
  wait_port alertmanager 9095
}

build() {
  say "building services ($PROFILE)"
  local flag=""; [ "$PROFILE" = release ] && flag="--release"
  (cd "$ROOT" && cargo build $flag --bins -q)
}

service_env() {
  echo "$KAFKA" >"$STATE/kafka.brokers"  # for tests that start more collectors of their own
  export LOGSTREAM_KAFKA_BROKERS="$KAFKA" LOGSTREAM_DATABASE_URL="$DB_URL" \
    LOGSTREAM_REDIS_URL="redis://127.0.0.1:6379" LOGSTREAM_TOPIC_PARTITIONS="$PARTITIONS" \
    LOGSTREAM_RULES="${LOGSTREAM_RULES-$ROOT/monitoring/rules/detection.toml}"
  if alive alertmanager; then export LOGSTREAM_ALERTMANAGER_URL="${LOGSTREAM_ALERTMANAGER_URL-http://127.0.0.1:9095}"; fi
}

start_service() {
  local bin="$ROOT/target/$PROFILE"
  service_env
  case $1 in
    collector) LAUNCH_PORT=8081 launch collector env LOGSTREAM_COLLECTOR_LISTEN=127.0.0.1:8081 \
      LOGSTREAM_GROUP_INSTANCE_ID="${LOGSTREAM_GROUP_INSTANCE_ID-collector-1}" "$bin/logstream-collector";;
    generator) LAUNCH_PORT=8080 launch generator env LOGSTREAM_GENERATOR_LISTEN=127.0.0.1:8080 \
      LOGSTREAM_GENERATOR_ADVERTISE_URL=http://127.0.0.1:8080 "$bin/logstream-generator";;
    gateway) LAUNCH_PORT=8090 launch gateway env LOGSTREAM_GATEWAY_LISTEN=127.0.0.1:8090 "$bin/logstream-gateway";;
    ingest) LAUNCH_PORT=8082 launch ingest env LOGSTREAM_INGEST_LISTEN=127.0.0.1:8082 \
      LOGSTREAM_SYSLOG_TCP_LISTEN="${LOGSTREAM_SYSLOG_TCP_LISTEN-127.0.0.1:5514}" \
      LOGSTREAM_SYSLOG_UDP_LISTEN="${LOGSTREAM_SYSLOG_UDP_LISTEN-127.0.0.1:5514}" \
      LOGSTREAM_SYSLOG_TLS_LISTEN="${LOGSTREAM_SYSLOG_TLS_LISTEN-127.0.0.1:6514}" "$bin/logstream-ingest";;
  esac
}

wait_ready() {
  local name port i pair
  for pair in "$@"; do
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
    kill -CONT "$pid" 2>/dev/null || true  # a fault test may have left it stopped (SIGSTOP)
    kill -TERM "$pid"
    for i in $(seq 1 60); do alive "$name" || break; sleep 0.5; done
    alive "$name" && { say "$name did not stop in 30 s; killing"; kill -KILL "$pid"; }
    say "stopped $name (pid $pid)"
  fi
  rm -f "$STATE/$name.pid"
}

stop_postgres() {
  [ -n "$(pg_version)" ] || return 0
  pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main stop -m fast
  say "stopped PostgreSQL"
}

case "${1:-}" in
  up)
    command -v curl >/dev/null || apt_install curl
    command -v psql >/dev/null || apt_install postgresql-client
    ensure_postgres
    ensure_redis
    build
    ensure_kafka
    ensure_alertmanager
    [ "${STACK_S3:-0}" = 1 ] && ensure_s3
    [ "${STACK_OPENSEARCH:-0}" = 1 ] && ensure_opensearch
    for name in collector generator gateway ingest; do start_service "$name"; done
    ensure_prometheus
    wait_ready collector:8081 generator:8080 gateway:8090 ingest:8082
    say "up: gateway http://127.0.0.1:8090  generator :8080  collector :8081  ingest :8082 (syslog :5514)  kafka $KAFKA  postgres $DB_URL"
    ;;
  down)
    for name in ingest gateway generator collector prometheus alertmanager s3 opensearch kafka redis; do stop_one "$name"; done
    if [ -f "$STATE/postgres.started" ]; then
      listening 5432 && stop_postgres
      rm -f "$STATE/postgres.started"
    fi
    ;;
  start)
    case "${2:-}" in
      kafka) start_kafka; say "kafka listening on $KAFKA";;
      redis) ensure_redis;;
      postgres) pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start; wait_port postgresql 5432;;
      prometheus) ensure_prometheus;;
      alertmanager) ensure_alertmanager;;
      s3) ensure_s3;;
      opensearch) ensure_opensearch;;
      collector) start_service collector; wait_ready collector:8081;;
      generator) start_service generator; wait_ready generator:8080;;
      gateway) start_service gateway; wait_ready gateway:8090;;
      ingest) start_service ingest; wait_ready ingest:8082;;
      *) die "start what? kafka, redis, postgres, prometheus, alertmanager, s3, opensearch, collector, generator, gateway or ingest";;
    esac
    ;;
  stop)
    case "${2:-}" in
      kafka|redis|prometheus|alertmanager|s3|opensearch|collector|generator|gateway|ingest) stop_one "$2";;
      postgres) stop_postgres;;
      *) die "stop what? kafka, redis, postgres, prometheus, alertmanager, s3, opensearch, collector, generator, gateway or ingest";;
    esac
    ;;
  status)
    for pair in kafka:9092 redis:6379 prometheus:9090 alertmanager:9095 s3:8014 opensearch:9200 collector:8081 generator:8080 gateway:8090 ingest:8082; do
      name=${pair%%:*}; port=${pair##*:}
      if alive "$name"; then state="running (pid $(cat "$STATE/$name.pid"))"
      elif listening "$port"; then state="listening on $port, not started here"
      else state="not running"; fi
      ready=""
      case $name in collector|generator|gateway|ingest) ready=" readyz: $(curl -s "http://127.0.0.1:$port/readyz" || echo unreachable)";; esac
      printf '%-10s %s%s\n' "$name" "$state" "$ready"
    done
    if listening 5432; then echo "postgres   listening on 5432 ($DB_URL)"; else echo "postgres   not running"; fi
    ;;
  *)
    echo "usage: $0 up|down|status|start NAME|stop NAME" >&2; exit 2;;
esac
