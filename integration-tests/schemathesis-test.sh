#!/usr/bin/env bash
# Property-based tests of the HTTP APIs from their OpenAPI documents: schemathesis (PyPI) reads
# the gateway's and the ingest service's /api/v1/openapi.json from the running native stack,
# generates requests valid and invalid by the schema, and runs all its checks (no server error,
# answers as documented, schema-valid requests accepted, invalid ones refused, unsupported
# methods answered 405). The gateway's generator start/stop are left out (random start requests
# would run the generator at random rates; its own integration tests cover them), so is the
# live tail (an answer that streams until the client leaves; its own integration test covers
# it), and so are the
# ingest service's Elasticsearch bulk routes (an NDJSON body of action and document lines, which
# a schema cannot describe; the shippers test sends them from syslog-ng and Elastic's client).
#
#   integration-tests/schemathesis-test.sh     (GATEWAY_URL, INGEST_URL; SCHEMATHESIS_MAX_TIME 60)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.stack/schemathesis-venv"
VERSION=4.32.5
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "[schemathesis] installing schemathesis $VERSION (PyPI) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi
GATEWAY="${GATEWAY_URL:-http://127.0.0.1:8090}"
INGEST="${INGEST_URL:-http://127.0.0.1:8082}"
passed=0 failed=0
check() {
  local name=$1 url=$2; shift 2
  echo "[schemathesis] $name: $url"
  if "$VENV/bin/schemathesis" --no-color run "$url" --checks all --workers 1 \
      --max-time "${SCHEMATHESIS_MAX_TIME:-60}" --max-examples 50 --request-timeout 10 \
      --wait-for-schema 30 --seed 20261202 "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
}
check gateway "$GATEWAY/api/v1/openapi.json" --exclude-path-regex '^/api/v1/(generator/(start|stop)|tail)$'
check ingest "$INGEST/api/v1/openapi.json" --exclude-path-regex '_bulk$'
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
