#!/usr/bin/env bash
# Runs the agent against the built-in simulator on the shipped sample
# stream, with a few injected faults (409 races, a lagging replica, 429s
# and a 503), then prints what the agent did. No account, no network.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bins
bin=target/release
out=${DEMO_DIR:-demo}
rm -rf "$out" && mkdir -p "$out"

"$bin/genesys-video-sim" \
  --listen-api 127.0.0.1:0 --listen-events 127.0.0.1:0 \
  --script tests/data/sample-events.jsonl --rate 200 \
  --race-409 2 --lag-409 1 --fail-429 2 --retry-after 1 --fail-5xx 1 \
  >"$out/sim.out" 2>"$out/sim.log" &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT

for _ in $(seq 100); do
  [ "$(wc -l <"$out/sim.out")" -ge 2 ] && break
  sleep 0.05
done
api=$(sed -n 's/^api //p' "$out/sim.out")
events=$(sed -n 's/^events //p' "$out/sim.out")

echo "simulator: $api (REST, OAuth) and $events (event stream)"
echo "running the agent on tests/data/sample-events.jsonl ..."
GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret RUST_LOG=${RUST_LOG:-warn} \
  "$bin/genesys-video-agent" \
  --login-base "$api" --api-base "$api" --events-url "$events" \
  --audit-log "$out/audit.jsonl" --state-dir "$out/state" \
  --exit-on-stream-end --queue-capacity 1000

cat <<TEXT

What the counts mean:
  STATE_APPLIED      valid states the simulated API accepted
  STATE_SUPERSEDED   valid states skipped because the API already held that
                     version or a newer one (the injected 409 races)
  RATE_LIMITED       429 replies; every worker waited for Retry-After
  VALIDATION_FAILED  states the gateway would reject, with every violation
  MALFORMED_EVENT    damaged frames, skipped without stopping the stream
  CODEC_NEGOTIATION  applied states that switched a session's codec
dead letters (states given up): $(cat "$out/state/dead-letter.jsonl" 2>/dev/null | wc -l)
see the rejected states: grep VALIDATION_FAILED $out/audit.jsonl
TEXT
