#!/usr/bin/env bash
# Checks docker-compose.yml: it validates (`docker-compose config`), and every environment
# variable it sets for one of our services is a setting that service's binary actually reads
# (as listed by its --help, which clap generates from the real settings); the same for the
# `--scale` override, docker-compose.scale.yml (Debian's docker-compose 1.x cannot read its
# `!reset`, so only its services and variables are checked).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v docker-compose >/dev/null; then
  echo "[compose-env-test] installing docker-compose (Debian package; validates without an engine)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
docker-compose -f docker-compose.yml config -q
echo "[compose-env-test] docker-compose config: valid"
BIN="${BIN_DIR:-$ROOT/target/${STACK_PROFILE:-release}}"
python3 -c 'import yaml' 2>/dev/null || pip install -q pyyaml
exec python3 - "$BIN" <<'PY'
import subprocess, sys, yaml
bin_dir = sys.argv[1]
# docker-compose.scale.yml (the --scale override) uses Compose's `!reset` tag.
yaml.SafeLoader.add_constructor("!reset", lambda loader, node: None)
compose = yaml.safe_load(open("docker-compose.yml"))
scale = yaml.safe_load(open("docker-compose.scale.yml"))
failures, checked = [], 0
for file, services in [("docker-compose.yml", compose["services"]), ("docker-compose.scale.yml", scale["services"])]:
    for name, svc in services.items():
        if name not in compose["services"]:
            failures.append(f"{file}: {name} is not a service of docker-compose.yml")
            continue
        command = compose["services"][name].get("command")
        if not command or not str(command[0]).startswith("logstream-"):
            continue
        help_text = subprocess.run([f"{bin_dir}/{command[0]}", "--help"], capture_output=True, text=True, check=True).stdout
        env = svc.get("environment", {})
        keys = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        for key in keys:
            checked += 1
            # `[env: KEY=value]`, or `[env: KEY]` for a secret whose value --help hides.
            if f"[env: {key}=" not in help_text and f"[env: {key}]" not in help_text:
                failures.append(f"{name}: {key} is set in {file} but {command[0]} does not read it")
# The image builds the workspace, so it must copy every member's directory.
import re, tomllib
members = tomllib.load(open("Cargo.toml", "rb"))["workspace"]["members"]
copied = re.findall(r"^COPY (\S+) ", open("Dockerfile").read(), re.M)
for member in members:
    checked += 1
    if not any(member == c or member.startswith(c.rstrip("/") + "/") for c in copied):
        failures.append(f"Dockerfile does not copy workspace member {member}")
for f in failures:
    print(f"[compose-env-test] {f}")
print(f"[compose-env-test] {checked} variables checked")
print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
sys.exit(1 if failures else 0)
PY
