#!/usr/bin/env bash
# Debian's rsyslog (with omkafka) and syslog-ng (with http()), unpacked into DIR (default
# .stack/shippers), not installed: the two packages conflict, and an installed one would start
# as the machine's system logger. Prints DIR. Run them with
#   LD_LIBRARY_PATH=DIR/usr/lib/x86_64-linux-gnu:DIR/lib/x86_64-linux-gnu:DIR/usr/lib/syslog-ng
#   DIR/usr/sbin/rsyslogd -M DIR/usr/lib/x86_64-linux-gnu/rsyslog ...
#   DIR/usr/sbin/syslog-ng --module-path=DIR/usr/lib/syslog-ng/3.38 --no-caps ...
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHIP="${1:-$ROOT/.stack/shippers}"
if ! [ -x "$SHIP/usr/sbin/rsyslogd" ] || ! [ -x "$SHIP/usr/sbin/syslog-ng" ]; then
  echo "[shippers] fetching rsyslog and syslog-ng (Debian packages, unpacked into $SHIP)" >&2
  mkdir -p "$SHIP/debs"
  pkgs=(rsyslog rsyslog-kafka syslog-ng-core syslog-ng-mod-http syslog-ng-scl
    libestr0 libfastjson4 liblognorm5 libivykis0 librdkafka1 libpcre3 libnet1 libwrap0)
  (cd "$SHIP/debs" && apt-get download -qq "${pkgs[@]}" 2>/dev/null) ||
    (apt-get update -qq && cd "$SHIP/debs" && apt-get download -qq "${pkgs[@]}" 2>/dev/null)
  for deb in "$SHIP"/debs/*.deb; do dpkg-deb -x "$deb" "$SHIP"; done
fi
echo "$SHIP"
