#!/usr/bin/env bash
# Benchmarks the release build of the agent against genesys-video-sim on
# loopback and prints one line of figures per scenario, each with its target
# and PASS or FAIL. BENCHMARKS.md explains the method and records results.
#
#   bash scripts/bench.sh                    every scenario (about 4 minutes)
#   bash scripts/bench.sh flood idle         only the named scenarios
#
# Scenarios: size, sim, flood, flood-default, paced, idle, compare, rate20, lag50.
# Environment: BENCH_IDLE_SECONDS (default 60); BENCH_PACED_WORKERS, the
# --workers values of the paced runs (default "4 64": the agent's default
# and its maximum); BENCH_BIN=DIR to measure prebuilt binaries in DIR
# instead of building; BENCH_KEEP=1 keeps the work directory.
#
# Units: MB means 10^6 bytes. RSS comes from /usr/bin/time -v or /proc in KiB
# and is converted. CPU time is user + system time of every thread.
# Everything binds to 127.0.0.1 with port 0; nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

idle_seconds=${BENCH_IDLE_SECONDS:-60}
paced_workers=${BENCH_PACED_WORKERS:-4 64}
# Upper bound on any single wait below, so a hung process cannot hang the run.
max_wait_seconds=120

# Targets on a 2-core machine.
flood_min_rate=10000
flood_max_cpu_us=50
flood_max_rss_mb=16
paced_max_p99_ms=30
idle_max_rss_mb=8
idle_max_cpu_percent=0.1
idle_max_wakeups=2
binary_max_bytes=3000000
lag50_max_rss_mb=20

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  scenarios=(size sim flood flood-default paced idle compare rate20 lag50)
fi

for tool in /usr/bin/time curl awk strip ldd; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "bench: $tool is missing; install it (Debian: apt-get install -y time curl binutils)" >&2
    exit 1
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/genesys-bench.XXXXXX")
pids=()

cleanup() {
  local pid deadline
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  # The agents are grandchildren (under /usr/bin/time), so `wait` cannot
  # reap them: poll until they are gone, for at most 15 s.
  deadline=$((SECONDS + 15))
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
      sleep 0.1
    done
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    echo "bench: work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin=${BENCH_BIN:-target/release}
clk_tck=$(getconf CLK_TCK)

# --- helpers ---------------------------------------------------------------

# verdict VALUE OP LIMIT: prints PASS or FAIL (OP is <= or <).
verdict() {
  awk -v value="$1" -v op="$2" -v limit="$3" 'BEGIN {
    ok = (op == "<") ? (value < limit) : (value <= limit)
    print ok ? "PASS" : "FAIL"
  }'
}

# verdict_min VALUE LIMIT: PASS when VALUE >= LIMIT.
verdict_min() {
  awk -v value="$1" -v limit="$2" 'BEGIN { print (value >= limit) ? "PASS" : "FAIL" }'
}

kib_to_mb() {
  awk -v kib="$1" 'BEGIN { printf "%.1f", kib * 1024 / 1e6 }'
}

# cpu_ticks PID: user + system clock ticks of every thread of PID.
cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# cpu_nanoseconds PID: time on CPU of the threads alive now, from schedstat.
cpu_nanoseconds() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ sum += $1 } END { printf "%.0f\n", sum }'
}

# context_switches PID: voluntary + nonvoluntary switches summed over the
# threads alive now.
context_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { sum += $2 } END { print sum + 0 }'
}

# time_field FILE LABEL: one field of a /usr/bin/time -v report.
time_field() {
  sed -n "s/^[[:space:]]*$2: //p" "$1"
}

# elapsed_seconds FILE: the wall clock of a /usr/bin/time -v report.
elapsed_seconds() {
  time_field "$1" 'Elapsed (wall clock) time (h:mm:ss or m:ss)' |
    awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }'
}

# start_sim NAME ARGS...: starts the simulator and sets sim_pid, api, events.
start_sim() {
  local name=$1
  shift
  : >"$work/$name.sim.out"
  "$bin/genesys-video-sim" "$@" >"$work/$name.sim.out" 2>"$work/$name.sim.log" &
  sim_pid=$!
  pids+=("$sim_pid")
  local deadline=$((SECONDS + 10))
  until [ "$(wc -l <"$work/$name.sim.out")" -ge 2 ]; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$sim_pid" 2>/dev/null; then
      echo "bench: the simulator did not start; see $work/$name.sim.log" >&2
      exit 1
    fi
    sleep 0.05
  done
  api=$(sed -n 's/^api //p' "$work/$name.sim.out")
  events=$(sed -n 's/^events //p' "$work/$name.sim.out")
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# agent_args NAME: the flags every scenario passes to the agent.
agent_args() {
  echo --login-base "$api" --api-base "$api" --events-url "$events" \
    --audit-log "$work/$1.audit.jsonl" --state-dir "$work/$1.state"
}

# start_agent NAME ARGS...: starts the agent in the background under
# /usr/bin/time -v (report in NAME.time) and sets time_pid and agent_pid.
start_agent() {
  local name=$1
  shift
  # shellcheck disable=SC2046 # agent_args prints words without spaces
  GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret RUST_LOG=info \
    /usr/bin/time -v -o "$work/$name.time" \
    "$bin/genesys-video-agent" $(agent_args "$name") "$@" 2>"$work/$name.agent.log" &
  time_pid=$!
  pids+=("$time_pid")
  agent_pid=
  local deadline=$((SECONDS + 10))
  while [ -z "$agent_pid" ]; do
    agent_pid=$(cat /proc/"$time_pid"/task/"$time_pid"/children 2>/dev/null || true)
    agent_pid=${agent_pid%% *}
    if [ -z "$agent_pid" ] && ! kill -0 "$time_pid" 2>/dev/null; then
      echo "bench: the agent exited at once in $name; see $work/$name.agent.log" >&2
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "bench: the agent did not start in $name" >&2
      exit 1
    fi
    [ -n "$agent_pid" ] || sleep 0.01
  done
  pids+=("$agent_pid")
}

# run_agent NAME ARGS...: runs the agent until it exits by itself, or stops
# it after max_wait_seconds.
run_agent() {
  local name=$1
  start_agent "$@"
  local deadline=$((SECONDS + max_wait_seconds))
  while kill -0 "$time_pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "bench: the agent ran longer than ${max_wait_seconds}s in $name; stopping it" >&2
      kill -TERM "$agent_pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  if ! wait "$time_pid"; then
    echo "bench: the agent failed in $name; see $work/$name.agent.log" >&2
    exit 1
  fi
}

# wait_for_log NAME PATTERN: waits until the agent's log matches PATTERN.
wait_for_log() {
  local deadline=$((SECONDS + 10))
  until grep -q "$2" "$work/$1.agent.log" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "bench: '$2' never appeared in $work/$1.agent.log" >&2
      exit 1
    fi
    sleep 0.05
  done
}

# stop_agent: SIGTERM to the agent, then waits for /usr/bin/time to report.
stop_agent() {
  kill -TERM "$agent_pid" 2>/dev/null || true
  wait "$time_pid" || true
}

audit_count() {
  grep -c "\"event\":\"$2\"" "$work/$1.audit.jsonl" || true
}

# audit_seconds NAME EVENT first|last: the time of an audit entry, in
# seconds since the epoch.
audit_seconds() {
  local line
  if [ "$3" = first ]; then
    line=$(grep -m1 "\"event\":\"$2\"" "$work/$1.audit.jsonl")
  else
    line=$(grep "\"event\":\"$2\"" "$work/$1.audit.jsonl" | tail -n 1)
  fi
  date -d "$(echo "$line" | sed 's/.*"timestamp":"\([^"]*\)".*/\1/')" +%s.%N
}

# check_newest NAME: compares each session's version on the simulator
# (GET /_sim/conferences) with the newest sequence the agent received for
# it (every audit entry that names a session and a sequence). Prints
# "SESSIONS MISMATCHED".
check_newest() {
  curl -fsS "$api/_sim/conferences" | grep -o '"[^"]*":{[^}]*}' |
    sed 's/^"\([^"]*\)":.*"sequenceNumber":\([0-9]*\).*/\1 \2/' >"$work/$1.held"
  grep -v '"event":"VALIDATION_FAILED"' "$work/$1.audit.jsonl" | awk '
    match($0, /"sessionId":"[^"]*"/) {
      session = substr($0, RSTART + 13, RLENGTH - 14)
      if (match($0, /"sequenceNumber":[0-9]+/)) {
        sequence = substr($0, RSTART + 17, RLENGTH - 17) + 0
        if (sequence > newest[session]) newest[session] = sequence
      }
    }
    END { for (s in newest) print s, newest[s] }' >"$work/$1.newest"
  awk 'NR == FNR { held[$1] = $2; next }
       { sessions++; if (held[$1] != $2) mismatched++ }
       END { print sessions + 0, mismatched + 0 }' "$work/$1.held" "$work/$1.newest"
}

# --- scenarios -------------------------------------------------------------

# flood_run NAME EVENTS SESSIONS AGENT-ARGS...: a flood at rate 0 with
# --exit-on-stream-end; sets applied, coalesced, rate, cpu_us, rss_kib,
# sim_cpu_us, stream_rate.
flood_run() {
  local name=$1 events_total=$2 sessions=$3
  shift 3
  start_sim "$name" --events "$events_total" --sessions "$sessions"
  local sim_ticks_before
  sim_ticks_before=$(cpu_ticks "$sim_pid")
  run_agent "$name" --exit-on-stream-end "$@"
  local sim_ticks_after
  sim_ticks_after=$(cpu_ticks "$sim_pid")
  read -r sessions_seen mismatched < <(check_newest "$name")
  stop_pid "$sim_pid"

  applied=$(audit_count "$name" STATE_APPLIED)
  coalesced=$(audit_count "$name" EVENT_COALESCED)
  local user system wall connected disconnected
  user=$(time_field "$work/$name.time" 'User time (seconds)')
  system=$(time_field "$work/$name.time" 'System time (seconds)')
  wall=$(elapsed_seconds "$work/$name.time")
  rss_kib=$(time_field "$work/$name.time" 'Maximum resident set size (kbytes)')
  connected=$(audit_seconds "$name" STREAM_CONNECTED first)
  disconnected=$(audit_seconds "$name" STREAM_DISCONNECTED first)
  read -r rate cpu_us sim_cpu_us stream_rate < <(awk \
    -v applied="$applied" -v user="$user" -v sys_seconds="$system" -v wall="$wall" \
    -v ticks=$((sim_ticks_after - sim_ticks_before)) -v hz="$clk_tck" \
    -v frames="$events_total" -v streamed="$(awk -v a="$connected" -v b="$disconnected" 'BEGIN { print b - a }')" \
    'BEGIN {
      printf "%.0f %.1f %.1f %.0f\n", applied / wall, (user + sys_seconds) * 1e6 / applied,
        ticks / hz * 1e6 / applied, frames / (streamed > 0 ? streamed : 0.001)
    }')
}

scenario_flood() {
  # Every event must become a PUT, so the capacity is far above the
  # largest possible backlog (100,000) and the agent never coalesces.
  flood_run flood 100000 1000 --queue-capacity 1000000
  printf 'flood:     %s applied/s [target >= %s] %s | %s us CPU per applied state [<= %s] %s | peak RSS %s MB [<= %s] %s | %s of 100000 applied, %s coalesced (--queue-capacity 1000000, so none should be); sessions at newest %s/%s\n' \
    "$rate" "$flood_min_rate" "$(verdict_min "$rate" "$flood_min_rate")" \
    "$cpu_us" "$flood_max_cpu_us" "$(verdict "$cpu_us" '<=' "$flood_max_cpu_us")" \
    "$(kib_to_mb "$rss_kib")" "$flood_max_rss_mb" "$(verdict "$(kib_to_mb "$rss_kib")" '<=' "$flood_max_rss_mb")" \
    "$applied" "$coalesced" "$((sessions_seen - mismatched))" "$sessions_seen"
  printf 'flood-sim: simulator CPU %s us per applied state during the flood; it streamed 100000 frames at %s frames/s\n' \
    "$sim_cpu_us" "$stream_rate"
}

scenario_flood_default() {
  flood_run flood-default 100000 1000
  printf 'flood-default (--queue-capacity 200): %s of 100000 applied, %s coalesced | %s applied/s | %s us CPU per applied state | peak RSS %s MB | sessions at newest %s/%s\n' \
    "$applied" "$coalesced" "$rate" "$cpu_us" "$(kib_to_mb "$rss_kib")" \
    "$((sessions_seen - mismatched))" "$sessions_seen"
}

# histogram_quantile FILE Q: the bucket of agent_update_seconds that holds
# the quantile Q, as "LOWER UPPER" in milliseconds (UPPER is inf for the
# +Inf bucket). The buckets are all the resolution the agent exports.
histogram_quantile() {
  awk -v q="$2" '
    /^agent_update_seconds_bucket/ {
      match($0, /le="[^"]*"/)
      le = substr($0, RSTART + 4, RLENGTH - 5)
      n++; bound[n] = le; count[n] = $NF
    }
    END {
      total = count[n]; lower = 0
      for (i = 1; i <= n; i++) {
        if (total > 0 && count[i] >= q * total) {
          upper = (bound[i] == "+Inf") ? "inf" : bound[i] * 1000
          print lower, upper
          exit
        }
        lower = bound[i] * 1000
      }
      print "nan", "nan"
    }' "$1"
}

# paced_run WORKERS: 20,000 events at 1,000 per second over 1,000 sessions,
# each PUT answered after 20 ms, then a scrape of /metrics and SIGTERM.
paced_run() {
  local workers=$1 name=paced-$1 total=20000
  start_sim "$name" --events "$total" --sessions 1000 --rate 1000 --put-latency 20 --on-end hold
  start_agent "$name" --metrics-listen 127.0.0.1:0 --workers "$workers"
  wait_for_log "$name" 'serving /metrics'
  local metrics_url
  metrics_url=$(sed -n 's|.*serving /metrics and /healthz on \(http://[0-9.:]*\).*|\1/metrics|p' "$work/$name.agent.log" | head -n 1)

  # The stream lasts 20 s; wait until every event is received and finished.
  local deadline=$((SECONDS + 20 + max_wait_seconds)) received=0 backlog=1
  while [ "$received" -lt "$total" ] || [ "$backlog" != 0 ]; do
    if [ $SECONDS -ge $deadline ]; then
      echo "bench: $name did not finish; $received events received, backlog $backlog" >&2
      break
    fi
    sleep 0.5
    curl -fsS "$metrics_url" >"$work/$name.metrics" || continue
    received=$(awk '$1 == "agent_events_received_total" { print $2 }' "$work/$name.metrics")
    backlog=$(awk '$1 == "agent_backlog" { print $2 }' "$work/$name.metrics")
  done
  stop_agent
  stop_pid "$sim_pid"

  local p50 p99 within count coalesced_total rss_kib
  p50=$(histogram_quantile "$work/$name.metrics" 0.5)
  p99=$(histogram_quantile "$work/$name.metrics" 0.99)
  count=$(awk '$1 == "agent_update_seconds_count" { print $2 }' "$work/$name.metrics")
  within=$(awk '/^agent_update_seconds_bucket\{le="0.03"\}/ { print $2 }' "$work/$name.metrics")
  coalesced_total=$(awk '$1 == "agent_events_coalesced_total" { print $2 }' "$work/$name.metrics")
  rss_kib=$(time_field "$work/$name.time" 'Maximum resident set size (kbytes)')
  printf 'paced:     --workers %s: p50 in (%s, %s] ms, p99 in (%s, %s] ms [target p99 < %s] %s | %s of %s updates within 30 ms | %s events coalesced | peak RSS %s MB\n' \
    "$workers" $p50 $p99 "$paced_max_p99_ms" "$(verdict "${p99#* }" '<=' "$paced_max_p99_ms")" \
    "$within" "$count" "$coalesced_total" "$(kib_to_mb "$rss_kib")"
}

scenario_paced() {
  local workers
  for workers in $paced_workers; do
    paced_run "$workers"
  done
}

scenario_idle() {
  local name=idle
  start_sim "$name" --on-end hold
  start_agent "$name"
  wait_for_log "$name" 'event stream connected'
  # Let start-up work (token, first audit fsync) settle before measuring.
  sleep 3
  local threads
  threads=$(ls /proc/"$agent_pid"/task | wc -l)
  local cpu_before switches_before cpu_after switches_after rss_kib peak_kib
  cpu_before=$(cpu_nanoseconds "$agent_pid")
  switches_before=$(context_switches "$agent_pid")
  sleep "$idle_seconds"
  cpu_after=$(cpu_nanoseconds "$agent_pid")
  switches_after=$(context_switches "$agent_pid")
  rss_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$agent_pid/status")
  peak_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$agent_pid/status")
  stop_agent
  stop_pid "$sim_pid"

  local cpu_seconds cpu_percent wakeups
  read -r cpu_seconds cpu_percent wakeups < <(awk \
    -v nanoseconds=$((cpu_after - cpu_before)) -v seconds="$idle_seconds" \
    -v switches=$((switches_after - switches_before)) \
    'BEGIN { cpu = nanoseconds / 1e9; printf "%.4f %.4f %.2f\n", cpu, cpu / seconds * 100, switches / seconds }')
  printf 'idle:      RSS %s MB (peak %s MB) [<= %s] %s | CPU %s s in %s s = %s %% [< %s] %s | %s context switches/s [<= %s] %s | %s threads\n' \
    "$(kib_to_mb "$rss_kib")" "$(kib_to_mb "$peak_kib")" "$idle_max_rss_mb" \
    "$(verdict "$(kib_to_mb "$rss_kib")" '<=' "$idle_max_rss_mb")" \
    "$cpu_seconds" "$idle_seconds" "$cpu_percent" "$idle_max_cpu_percent" \
    "$(verdict "$cpu_percent" '<' "$idle_max_cpu_percent")" \
    "$wakeups" "$idle_max_wakeups" "$(verdict "$wakeups" '<=' "$idle_max_wakeups")" "$threads"
}

scenario_size() {
  strip -o "$work/genesys-video-agent.stripped" "$bin/genesys-video-agent"
  local bytes libraries
  bytes=$(stat -c %s "$work/genesys-video-agent.stripped")
  libraries=$(ldd "$bin/genesys-video-agent" | awk '{ printf "%s%s", sep, $1; sep = " " }')
  printf 'size:      stripped binary %s bytes [<= %s] %s | shared libraries: %s\n' \
    "$bytes" "$binary_max_bytes" "$(verdict "$bytes" '<=' "$binary_max_bytes")" "$libraries"
}

# The simulator's own PUT capacity, with curl as a trivial client: 20,000
# PUTs to distinct sessions over 4 keep-alive connections (the agent's
# default worker count), each with a valid token, If-Match and body.
scenario_sim() {
  local name=sim puts=20000
  start_sim "$name"
  local token
  token=$(curl -fsS -u sim-client:sim-secret -d grant_type=client_credentials "$api/oauth/token" |
    sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  printf '%s' '{"mediaConfig":{"maxBitrate":4000,"codec":"vp9","recording":{"action":"start","enabled":true}},"participants":[{"id":"u1","role":"presenter","bandwidth":1500},{"id":"u2","role":"participant","bandwidth":1000}]}' >"$work/put-body.json"
  local ticks_before start end ticks_after
  ticks_before=$(cpu_ticks "$sim_pid")
  start=$(date +%s.%N)
  curl -fsS --no-progress-meter --parallel --parallel-max 4 -o /dev/null -X PUT \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -H 'If-Match: seq=1' \
    --data-binary @"$work/put-body.json" "$api/api/v2/videoconferences/bench-[1-$puts]"
  end=$(date +%s.%N)
  ticks_after=$(cpu_ticks "$sim_pid")
  local applied
  applied=$(curl -fsS "$api/_sim/stats" | sed 's/.*"applied":\([0-9]*\).*/\1/')
  stop_pid "$sim_pid"
  awk -v puts="$puts" -v applied="$applied" -v start="$start" -v end="$end" \
    -v ticks=$((ticks_after - ticks_before)) -v hz="$clk_tck" 'BEGIN {
      printf "sim:       %.0f PUTs/s from curl over 4 keep-alive connections (%d of %d applied), simulator CPU %.1f us per PUT\n",
        puts / (end - start), applied, puts, ticks / hz * 1e6 / puts
    }'
}

# Like for like with the Node.js re-creation: 20,000 events over 200 sessions.
scenario_compare() {
  flood_run compare 20000 200
  printf 'compare:   20000 events over 200 sessions, default settings: %s applied, %s coalesced | %s us CPU per applied state | peak RSS %s MB | sessions at newest %s/%s\n' \
    "$applied" "$coalesced" "$cpu_us" "$(kib_to_mb "$rss_kib")" \
    "$((sessions_seen - mismatched))" "$sessions_seen"
}

# A slow stream like the Node.js comparison run: 400 events at 20 per second
# over 200 sessions, default settings.
scenario_rate20() {
  local name=rate20
  start_sim "$name" --events 400 --sessions 200 --rate 20
  run_agent "$name" --exit-on-stream-end
  stop_pid "$sim_pid"
  local applied user system rss_kib
  applied=$(audit_count "$name" STATE_APPLIED)
  user=$(time_field "$work/$name.time" 'User time (seconds)')
  system=$(time_field "$work/$name.time" 'System time (seconds)')
  rss_kib=$(time_field "$work/$name.time" 'Maximum resident set size (kbytes)')
  awk -v applied="$applied" -v user="$user" -v sys_seconds="$system" -v mb="$(kib_to_mb "$rss_kib")" 'BEGIN {
    printf "rate20:    400 events at 20/s over 200 sessions: %d applied | %.0f us CPU per applied state (start-up included) | peak RSS %s MB\n",
      applied, (user + sys_seconds) * 1e6 / applied, mb
  }'
}

# 20,000 events over 20 sessions against a 50 ms PUT latency, default settings.
scenario_lag50() {
  local name=lag50
  start_sim "$name" --events 20000 --sessions 20 --put-latency 50
  run_agent "$name" --exit-on-stream-end
  read -r sessions_seen mismatched < <(check_newest "$name")
  stop_pid "$sim_pid"
  local rss_kib mb
  rss_kib=$(time_field "$work/$name.time" 'Maximum resident set size (kbytes)')
  mb=$(kib_to_mb "$rss_kib")
  printf 'lag50:     20000 events over 20 sessions, --put-latency 50: peak RSS %s MB [< %s] %s | %s applied, %s coalesced | sessions at newest %s/%s %s\n' \
    "$mb" "$lag50_max_rss_mb" "$(verdict "$mb" '<' "$lag50_max_rss_mb")" \
    "$(audit_count "$name" STATE_APPLIED)" "$(audit_count "$name" EVENT_COALESCED)" \
    "$((sessions_seen - mismatched))" "$sessions_seen" \
    "$([ "$mismatched" -eq 0 ] && [ "$sessions_seen" -eq 20 ] && echo PASS || echo FAIL)"
}

# --- main ------------------------------------------------------------------

if [ -z "${BENCH_BIN:-}" ]; then
  echo "building release binaries ..." >&2
  cargo build --release --quiet --bins
fi

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), kernel $(uname -r)"
read -r load1 _ </proc/loadavg
echo "load average at start: $load1 (other work on the machine skews every figure)"

for scenario in "${scenarios[@]}"; do
  case $scenario in
    flood) scenario_flood ;;
    flood-default) scenario_flood_default ;;
    paced) scenario_paced ;;
    idle) scenario_idle ;;
    size) scenario_size ;;
    sim) scenario_sim ;;
    compare) scenario_compare ;;
    lag50) scenario_lag50 ;;
    rate20) scenario_rate20 ;;
    *)
      echo "bench: unknown scenario '$scenario'; expected flood, flood-default, paced, idle, size, sim, compare, rate20 or lag50" >&2
      exit 64
      ;;
  esac
done
