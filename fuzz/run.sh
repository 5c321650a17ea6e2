#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS, JOBS at a time; fails if any target found
# a crash, a hang (an input over 5 s), or used more than 2 GiB. Prints one line per target:
# executions, executions per second, coverage, corpus size.
#
#   fuzz/run.sh SECONDS [TARGET...]        (default: every target)
#
# Environment: CARGO (default cargo), CARGO_TARGET_DIR (default fuzz/target), FUZZ_JOBS
# (default 2). Seeds are read from fuzz/corpus/TARGET (committed, never written); what the
# fuzzer finds goes to fuzz/corpus-run/TARGET, crash inputs to fuzz/artifacts/TARGET/, and each
# target's log to fuzz/artifacts/TARGET.log.
set -euo pipefail
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:?usage: fuzz/run.sh SECONDS [TARGET...]}"
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(config control schedule service_file http notify)
fi
jobs="${FUZZ_JOBS:-2}"
target_dir="${CARGO_TARGET_DIR:-$fuzz_dir/target}"
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"

(cd "$fuzz_dir" && CARGO_TARGET_DIR="$target_dir" "${CARGO:-cargo}" build --release --locked)

# Inputs longer than libFuzzer's default of 4096 bytes, where a limit of ours is larger.
max_len() {
  case "$1" in
    config | service_file) echo 16384 ;;
    http) echo 12288 ;; # past MAX_HEAD_BYTES (8 KiB)
    *) echo 4096 ;;
  esac
}

run_one() {
  local target="$1"
  local run_corpus="$fuzz_dir/corpus-run/$target" artifacts="$fuzz_dir/artifacts/$target"
  mkdir -p "$run_corpus" "$artifacts"
  "$bin_dir/$target" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
    -max_len="$(max_len "$target")" -dict="$fuzz_dir/dict/$target.dict" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$run_corpus" "$fuzz_dir/corpus/$target" \
    >"$fuzz_dir/artifacts/$target.log" 2>&1
}

summary() {
  local target="$1" status="$2" log="$fuzz_dir/artifacts/$1.log"
  local runs rate cov corpus
  # A target that crashed on a seed has none of these lines: print `?`, do not stop here.
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1) || true
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1) || true
  cov=$({ grep -o 'cov: [0-9]*' "$log" || true; } | tail -1 | cut -d' ' -f2)
  corpus=$({ grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" || true; } | tail -1 | cut -d' ' -f2)
  printf '%-13s %-6s %12s %10s %8s %14s\n' "$target" "$status" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${corpus:-?}"
}

mkdir -p "$fuzz_dir/artifacts"
declare -A pid_of
failed=()
running=0
for target in "${targets[@]}"; do
  if [ ! -x "$bin_dir/$target" ]; then
    echo "fuzz: no target named $target" >&2
    exit 2
  fi
  run_one "$target" &
  pid_of[$target]=$!
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done

printf '%-13s %-6s %12s %10s %8s %14s\n' target result execs execs/s cov corpus/bytes
for target in "${targets[@]}"; do
  if wait "${pid_of[$target]}"; then
    summary "$target" ok
  else
    summary "$target" FAILED
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  for target in "${failed[@]}"; do
    echo "--- $target: fuzz/artifacts/$target.log (end)" >&2
    tail -n 40 "$fuzz_dir/artifacts/$target.log" >&2
  done
  echo "fuzz: ${failed[*]} failed; inputs in fuzz/artifacts/TARGET/" >&2
  exit 1
fi
