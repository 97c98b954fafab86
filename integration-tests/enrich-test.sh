#!/usr/bin/env bash
# Enrichment on real inputs: the stack's collector restarted with a real MaxMind-format
# database (ip-location-db's GeoLite2 country database, from npm) in LOGSTREAM_GEOIP_DATABASES;
# Apache combined lines (real browsers', curl's and crawlers' user agents, public addresses) and
# ECS JSON (`client.ip`, `user_agent.original`) posted to the ingest service; every stored event
# must carry the expected `ua` (browser, OS, bot) and `geo.country`, and an event without either
# field none. The collector is restarted without the database at the end.
#
#   integration-tests/enrich-test.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GEO_PACKAGE="@ip-location-db/geolite2-country-mmdb@2.3.2026061719"
db="$ROOT/.stack/geoip/geolite2-country.mmdb"
if [ ! -s "$db" ]; then
  command -v npm >/dev/null || { apt-get install -y -qq npm >/dev/null; }
  mkdir -p "$ROOT/.stack/geoip"
  (cd "$ROOT/.stack/geoip" && npm pack -q "$GEO_PACKAGE" >/dev/null && tar xzf ip-location-db-geolite2-country-mmdb-*.tgz \
    && mv package/geolite2-country.mmdb . && rm -rf package ./*.tgz)
fi
restore() {
  scripts/stack.sh stop collector
  env -u LOGSTREAM_GEOIP_DATABASES scripts/stack.sh start collector
}
trap restore EXIT
scripts/stack.sh stop collector
LOGSTREAM_GEOIP_DATABASES="$db" scripts/stack.sh start collector
PYTHONPATH="$ROOT/integration-tests" exec python3 - <<'PY'
import json, time, urllib.request
import stack_client as stack
def say(msg): print(f"[enrich-test] {msg}", flush=True)
tag = f"enrich{int(time.time())}"
ingest = stack.INGEST
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
# (client address, user agent, expected country, browser, os, bot)
cases = [("8.8.8.8", FIREFOX, "US", "Firefox", "Linux", False),
         ("81.2.69.142", GOOGLEBOT, "GB", "Googlebot", "Other", True),
         ("2a00:1450:4001::1", IPHONE, "DE", "Mobile Safari", "iOS", False),
         ("10.1.2.3", "curl/8.5.0", None, "curl", "Other", False)]
lines = [f'{ip} - - [04/Dec/2026:10:00:00 +0000] "GET /{tag}/{i} HTTP/1.1" 200 12 "-" "{ua}"'
         for i, (ip, ua, *_rest) in enumerate(cases)]
def post(body, query):
    req = urllib.request.Request(f"{ingest}/api/v1/logs?{query}", data=body.encode(), method="POST")
    return json.load(urllib.request.urlopen(req, timeout=30))
answer = post("\n".join(lines) + "\n", f"format=apache&service={tag}")
say(f"Apache lines: {answer['accepted']} accepted")
ecs = [{"@timestamp": "2026-12-04T10:00:00Z", "message": f"ecs {tag}", "service.name": tag,
        "client": {"ip": "8.8.8.8"}, "user_agent": {"original": FIREFOX}},
       {"message": f"plain {tag}", "service.name": tag}]
answer = post("\n".join(json.dumps(e) for e in ecs) + "\n", "format=json")
say(f"ECS JSON: {answer['accepted']} accepted")
deadline = time.time() + 60
while True:
    rows = stack.sql(f"SELECT message, coalesce(attributes::text, '{{}}') FROM log_events WHERE service = '{tag}'")
    if len(rows) >= len(cases) + len(ecs) or time.time() > deadline:
        break
    time.sleep(1)
problems = []
if len(rows) != len(cases) + len(ecs):
    problems.append(f"{len(rows)} events stored, {len(cases) + len(ecs)} sent")
by_message = {m: json.loads(a) if a else {} for m, a in rows}
for i, (ip, _ua, country, browser, os_, bot) in enumerate(cases):
    attrs = next((a for m, a in by_message.items() if f"/{tag}/{i} " in m), None)
    if attrs is None:
        problems.append(f"request {i} not stored")
        continue
    ua, geo = attrs.get("ua", {}), attrs.get("geo", {})
    got = (geo.get("country"), ua.get("browser"), ua.get("os"), ua.get("bot"))
    say(f"{ip:18} -> geo {geo}, ua {ua}")
    if got != (country, browser, os_, bot):
        problems.append(f"{ip}: got {got}, expected {(country, browser, os_, bot)}")
ecs_attrs = by_message.get(f"ecs {tag}", {})
if ecs_attrs.get("geo", {}).get("country") != "US" or ecs_attrs.get("ua", {}).get("browser") != "Firefox":
    problems.append(f"ECS event not enriched: {ecs_attrs}")
if "ua" in by_message.get(f"plain {tag}", {}) or "geo" in by_message.get(f"plain {tag}", {}):
    problems.append("an event without user agent or address was enriched")
for p in problems:
    say(p)
if problems:
    stack.fail("enrich-test", "enrichment differs from what was expected")
say("every event enriched as expected (user agent and country), the plain one left alone")
print("1 passed, 0 failed")
PY
