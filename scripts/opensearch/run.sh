#!/usr/bin/env bash
# A single-node OpenSearch 2.19 for the `_bulk` sink's integration tests, without Docker and
# without the opensearch.org tarball: the jars come from Maven Central through
# scripts/opensearch/pom.xml, and this script lays out the OPENSEARCH_HOME that the tarball would
# have given, then runs org.opensearch.bootstrap.OpenSearch in the foreground (exec), as the
# tarball's bin/opensearch does, minus its launcher (JvmOptionsParser): the JVM options are
# config/jvm.options, taken literally (no "17-:" version prefixes).
#
#   scripts/opensearch/run.sh                 assemble what is missing, then exec java (foreground)
#   scripts/opensearch/run.sh --print-only    assemble what is missing, print the java command, exit
#   scripts/opensearch/run.sh --install-only  assemble what is missing, exit
#
# OPENSEARCH_HOME/
#   lib/                         org.opensearch:opensearch + runtime deps (profile core)
#   modules/transport-netty4/    HTTP + transport   class org.opensearch.transport.Netty4Plugin
#   modules/lang-painless/       scripting          class org.opensearch.painless.PainlessPlugin
#   modules/analysis-common/     analyzers          class org.opensearch.analysis.common.CommonAnalysisPlugin
#                                                   (extended.plugins=lang-painless)
#     (class names read from the 2.19.6 jars with unzip -l / javap: each extends
#      org.opensearch.plugins.Plugin. Not Netty4ModulePlugin / CommonAnalysisModulePlugin /
#      PainlessModulePlugin: those are 3.x names.)
#     each with a generated plugin-descriptor.properties (the Maven jars have none; PluginInfo
#     refuses unknown keys, and opensearch.version must equal the server's version exactly)
#     and, for netty4 and painless, the plugin-security.policy of the distribution.
#   plugins/                     empty
#   config/opensearch.yml, jvm.options, log4j2.properties   (rewritten on every run)
#   tmp/                         java.io.tmpdir (must exist: Security checks it)
#
# Environment: OPENSEARCH_HOME (default .stack/opensearch-VERSION), OPENSEARCH_DATA (default
# .stack/opensearch-data), OPENSEARCH_LOGS (default .stack/logs/opensearch),
# OPENSEARCH_HTTP_PORT (9200), OPENSEARCH_TRANSPORT_PORT (9300), OPENSEARCH_HEAP_MB (512),
# OPENSEARCH_JAVA_HOME (default: JAVA_HOME if it is a JDK 17..23, else the Debian JDK 17).
# Started as root, the node runs as the system user `opensearch` (created when missing): OpenSearch
# refuses root. Checked here: 2.19.6 from these jars starts on Debian's JDK 17 in about 20 s and
# answers `_bulk` on 127.0.0.1:9200.
# OpenSearch 2.19 installs a SecurityManager: it cannot run on Java 24+ (e.g. the Temurin 25 in
# /usr/lib/jvm), where System.setSecurityManager throws UnsupportedOperationException.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
POM="$HERE/pom.xml"
VERSION="$(sed -n 's:.*<opensearch.version>\(.*\)</opensearch.version>.*:\1:p' "$POM")"
OS_HOME="${OPENSEARCH_HOME:-$ROOT/.stack/opensearch-$VERSION}"
OS_DATA="${OPENSEARCH_DATA:-$ROOT/.stack/opensearch-data}"
OS_LOGS="${OPENSEARCH_LOGS:-$ROOT/.stack/logs/opensearch}"
HTTP_PORT="${OPENSEARCH_HTTP_PORT:-9200}"
TRANSPORT_PORT="${OPENSEARCH_TRANSPORT_PORT:-9300}"
HEAP_MB="${OPENSEARCH_HEAP_MB:-512}"
INSTALL_LOG="$ROOT/.stack/logs/opensearch-install.log"

# module directory name (= plugin name) | Maven profile | classname | extended.plugins | description
MODULES=(
  "lang-painless|lang-painless|org.opensearch.painless.PainlessPlugin||An easy, safe and fast scripting language for OpenSearch"
  "analysis-common|analysis-common|org.opensearch.analysis.common.CommonAnalysisPlugin|lang-painless|Adds \"built in\" analyzers to OpenSearch."
  "transport-netty4|transport-netty4|org.opensearch.transport.Netty4Plugin||Netty 4 based transport implementation"
)

say() { printf '[opensearch] %s\n' "$*" >&2; }
die() { printf '[opensearch] error: %s\n' "$*" >&2; exit 1; }

MODE=run
case "${1:-}" in
  "") ;;
  --print-only) MODE=print ;;
  --install-only) MODE=install ;;
  *) die "usage: $0 [--print-only|--install-only]" ;;
esac

# ---- Java: a JDK with a security manager (17..23); read its release file, start no JVM ----
java_major() { # $1 = a JAVA_HOME; prints the feature version or nothing
  sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$1/release" 2>/dev/null
}
pick_java() {
  local h m
  for h in "${OPENSEARCH_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 \
           "$(dirname "$(dirname "$(readlink -f "$(command -v java 2>/dev/null || echo /nonexistent)")")")"; do
    [ -n "$h" ] && [ -x "$h/bin/java" ] || continue
    m="$(java_major "$h")"
    if [ -n "$m" ] && [ "$m" -ge 17 ] && [ "$m" -le 23 ]; then echo "$h"; return; fi
  done
  die "no JDK 17..23 found (OpenSearch $VERSION needs the security manager; apt-get install openjdk-17-jre-headless)"
}

# ---- jars from Maven Central ----
install_jars() {
  [ -f "$OS_HOME/.complete-$VERSION" ] && return
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  mkdir -p "$(dirname "$INSTALL_LOG")"
  say "installing OpenSearch $VERSION jars into $OS_HOME (Maven Central, scripts/opensearch/pom.xml)"
  rm -rf "$OS_HOME/lib" "$OS_HOME/modules"
  mvn -q -B -Dstyle.color=never -f "$POM" -P core dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$OS_HOME/lib" >>"$INSTALL_LOG" 2>&1 \
    || die "mvn could not resolve org.opensearch:opensearch:$VERSION (see $INSTALL_LOG)"
  local m dir profile
  for m in "${MODULES[@]}"; do
    IFS='|' read -r dir profile _ <<<"$m"
    mvn -q -B -Dstyle.color=never -f "$POM" -P "$profile" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$OS_HOME/modules/$dir" >>"$INSTALL_LOG" 2>&1 \
      || die "mvn could not resolve module $dir (see $INSTALL_LOG)"
  done
  # jar hell: a module must not carry a jar the server class path has
  local j
  for j in "$OS_HOME"/modules/*/*.jar; do
    if [ -e "$OS_HOME/lib/$(basename "$j")" ]; then die "$(basename "$j") is both in lib/ and in $(dirname "$j")"; fi
  done
  touch "$OS_HOME/.complete-$VERSION"
}

# ---- module metadata the distribution zip adds beside the jars ----
write_module_metadata() {
  local m dir profile classname extended description f
  for m in "${MODULES[@]}"; do
    IFS='|' read -r dir profile classname extended description <<<"$m"
    f="$OS_HOME/modules/$dir/plugin-descriptor.properties"
    {
      echo "# generated by scripts/opensearch/run.sh (the Maven jar has no descriptor)"
      echo "description=$description"
      echo "version=$VERSION"
      echo "name=$dir"
      echo "classname=$classname"
      echo "java.version=11"
      echo "opensearch.version=$VERSION"
      if [ -n "$extended" ]; then echo "extended.plugins=$extended"; fi
      echo "has.native.controller=false"
    } >"$f"
  done
  # modules/transport-netty4/src/main/plugin-metadata/plugin-security.policy (2.19)
  cat >"$OS_HOME/modules/transport-netty4/plugin-security.policy" <<'EOF'
grant {
  // for reading the system-wide configuration for the backlog of established sockets
  permission java.io.FilePermission "/proc/sys/net/core/somaxconn", "read";
  // netty makes and accepts socket connections
  permission java.net.SocketPermission "*", "accept,connect";
  // Netty sets custom classloader for some of its internal threads
  permission java.lang.RuntimePermission "*", "setContextClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
  // Netty NioEventLoop wants to change this (JDK-6427854)
  permission java.util.PropertyPermission "sun.nio.ch.bugLevel", "write";
};
EOF
  # modules/lang-painless/src/main/plugin-metadata/plugin-security.policy
  cat >"$OS_HOME/modules/lang-painless/plugin-security.policy" <<'EOF'
grant {
  // needed to generate runtime classes
  permission java.lang.RuntimePermission "createClassLoader";
  // needed to find the classloader to load whitelisted classes from
  permission java.lang.RuntimePermission "getClassLoader";
};
EOF
}

# ---- config/ ----
write_config() {
  local c="$OS_HOME/config"
  mkdir -p "$c" "$OS_HOME/plugins" "$OS_HOME/tmp"
  cat >"$c/opensearch.yml" <<EOF
# generated by scripts/opensearch/run.sh: a throwaway single node for tests
cluster.name: logstream-test
node.name: logstream-os-1
discovery.type: single-node
network.host: 127.0.0.1
http.port: $HTTP_PORT
transport.port: $TRANSPORT_PORT
path.data: $OS_DATA
path.logs: $OS_LOGS
# a nearly full CI disk must not turn the test indices read-only (flood stage 95%)
cluster.routing.allocation.disk.threshold_enabled: false
action.auto_create_index: true
EOF
  # What bin/opensearch would pass: jvm.options (2.19) + the launcher's SystemJvmOptions, for
  # a JDK 17 (no version prefixes here: this file is read literally by run.sh).
  cat >"$c/jvm.options" <<EOF
-Xms${HEAP_MB}m
-Xmx${HEAP_MB}m
-XX:+UseG1GC
-XX:G1ReservePercent=25
-XX:InitiatingHeapOccupancyPercent=30
-XX:+HeapDumpOnOutOfMemoryError
-XX:HeapDumpPath=$OS_LOGS
-XX:ErrorFile=$OS_LOGS/hs_err_pid%p.log
-Djava.io.tmpdir=$OS_HOME/tmp
## JDK 18..23 need it to allow System.setSecurityManager; accepted (a no-op) on 17
-Djava.security.manager=allow
-Dorg.apache.lucene.store.MMapDirectory.sharedArenaMaxPermits=1
## SystemJvmOptions (distribution/tools/launchers)
-Xss1m
-Djava.awt.headless=true
-Dfile.encoding=UTF-8
-Djna.nosys=true
-XX:-OmitStackTraceInFastThrow
-XX:+ShowCodeDetailsInExceptionMessages
-Dio.netty.noUnsafe=true
-Dio.netty.noKeySetOptimization=true
-Dio.netty.recycler.maxCapacityPerThread=0
-Dio.netty.allocator.numDirectArenas=0
-Dlog4j.shutdownHookEnabled=false
-Dlog4j2.disable.jmx=true
-Djava.locale.providers=SPI,COMPAT
-Dopensearch.networkaddress.cache.ttl=60
-Dopensearch.networkaddress.cache.negative.ttl=10
EOF
  # LogConfigurator needs at least one log4j2*.properties in config/; %node_name is OpenSearch's
  # converter; opensearch.logs.* are set by OpenSearch from path.logs and cluster.name.
  cat >"$c/log4j2.properties" <<'EOF'
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:opensearch.logs.base_path}${sys:file.separator}${sys:opensearch.logs.cluster_name}.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
rootLogger.appenderRef.file.ref = file
# deprecation warnings (a level between WARN and INFO) stay out of the test logs
logger.deprecation.name = org.opensearch.deprecation
logger.deprecation.level = warn
EOF
}

install_jars
write_module_metadata
write_config
[ "$MODE" = install ] && exit 0

JH="$(pick_java)"
mapfile -t JVM_OPTS < <(grep -v -e '^#' -e '^[[:space:]]*$' "$OS_HOME/config/jvm.options")
CMD=("$JH/bin/java" "${JVM_OPTS[@]}"
  "-Dopensearch.path.home=$OS_HOME"
  "-Dopensearch.path.conf=$OS_HOME/config"
  "-Dopensearch.distribution.type=tar"
  "-Dopensearch.bundled_jdk=false"
  -cp "$OS_HOME/lib/*"
  org.opensearch.bootstrap.OpenSearch)

if [ "$MODE" = print ]; then
  printf '%q ' "${CMD[@]}"; echo
  exit 0
fi

(exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null && die "port $HTTP_PORT is already in use"
mkdir -p "$OS_DATA" "$OS_LOGS"
cd "$OS_HOME"
if [ "$(id -u)" = 0 ]; then
  # OpenSearch refuses to run as root: as the system user `opensearch` (created when missing),
  # owning what the node writes.
  id opensearch >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin opensearch
  chown -R opensearch "$OS_HOME" "$OS_DATA" "$OS_LOGS"
  # setpriv execs (runuser would stay as a parent): the pid recorded is the node's.
  exec setpriv --reuid=opensearch --regid=opensearch --init-groups -- "${CMD[@]}"
fi
exec "${CMD[@]}"
