#!/usr/bin/env bash
# Regenerates crates/core/data/uap-regexes.json, the user-agent rules the collector's enrichment
# compiles (ua-parser, the Rust port of the ua-parser project), from uap-core's regexes.yaml as
# npm publishes it (Apache-2.0). JSON, so the crate reads it with serde_json and needs no YAML
# parser. Usage: scripts/enrichment/uap-regexes.sh [VERSION] (default 0.18.0).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version="${1:-0.18.0}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack -q "uap-core@$version" >/dev/null && tar xzf "uap-core-$version.tgz")
python3 -c 'import yaml' 2>/dev/null || pip install -q pyyaml
python3 - "$work/package/regexes.yaml" "$ROOT/crates/core/data/uap-regexes.json" "$version" <<'PY'
import json, sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
rules = {k: rules[k] for k in ("user_agent_parsers", "os_parsers", "device_parsers")}
with open(sys.argv[2], "w") as out:
    json.dump(rules, out, separators=(",", ":"))
    out.write("\n")
print(f"{sys.argv[2]}: uap-core {sys.argv[3]}, " + ", ".join(f"{len(v)} {k}" for k, v in rules.items()))
PY
