#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer, on the C ABI) and runs each one
# for a while; exits non-zero when any target finds a crash (a panic — even one the library
# would catch —, an abort, a failed check, a timeout or too much memory).
#
#   scripts/ci/fuzz.sh                    every target for FUZZ_SECONDS (default 12) seconds: the CI smoke run
#   scripts/ci/fuzz.sh 3600 tokenize      one target (or several) for an hour each
#   FUZZ_ASAN=1 scripts/ci/fuzz.sh 600    with AddressSanitizer (RUSTC_BOOTSTRAP=1; about 5x slower)
#   FUZZ_JOBS=2 scripts/ci/fuzz.sh 3600   libFuzzer workers per target (-fork)
#
# Targets: tokenize, stream_decode, load_files, chat_template, generate_params, fast_path (see the doc
# comment at the top of each fuzz/fuzz_targets/*.rs). Inputs that grew coverage are kept in
# fuzz/corpus/<target>/ (ignored by git); the seeds come from fuzz/make_seeds.py (fuzz/work/,
# also ignored, rebuilt when missing); fuzz/regressions/<target>/ holds (committed) inputs that
# once crashed a target. A crash leaves its input in fuzz/artifacts/<target>/;
# replay it with `cargo fuzz run --sanitizer none <target> <file>` (add -- -runs=1).
# Stable Rust only needs `--sanitizer none`; ASan uses RUSTC_BOOTSTRAP=1 (see shared TOOLING notes).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

seconds=${1:-${FUZZ_SECONDS:-12}}
[ $# -gt 0 ] && shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(tokenize stream_decode load_files chat_template generate_params fast_path)
fi

step() { printf '\n==> %s\n' "$*" >&2; }

if ! command -v cargo-fuzz >/dev/null; then
  step "cargo install cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

if [ ! -f fuzz/work/micro/model.onnx ] || [ ! -d fuzz/work/seeds/fast_path ]; then
  step "fuzz/make_seeds.py (micro model and seed inputs)"
  python3 fuzz/make_seeds.py fuzz/work
fi

export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$root/assets/onnxruntime/1.23.2/libonnxruntime.so}
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

sanitizer=(--sanitizer none)
env_prefix=()
if [ "${FUZZ_ASAN:-0}" = 1 ]; then
  sanitizer=(--sanitizer address)
  env_prefix=(env RUSTC_BOOTSTRAP=1)
fi

step "cargo fuzz build ${sanitizer[*]}"
"${env_prefix[@]}" cargo fuzz build "${sanitizer[@]}"

failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  step "fuzz $t for ${seconds}s"
  log=$(mktemp)
  args=(-max_total_time="$seconds" -timeout=60 -rss_limit_mb=6144 -print_final_stats=1)
  if [ -n "${FUZZ_JOBS:-}" ]; then
    args+=(-fork="$FUZZ_JOBS" -ignore_crashes=0)
  fi
  set +e
  corpora=("fuzz/corpus/$t" "fuzz/work/seeds/$t")
  [ -d "fuzz/regressions/$t" ] && corpora+=("fuzz/regressions/$t")
  "${env_prefix[@]}" cargo fuzz run "${sanitizer[@]}" "$t" "${corpora[@]}" -- "${args[@]}" 2>&1 | tee "$log" | grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|panicked|SUMMARY|deadly signal|Test unit written|stat::number_of_executed_units" >&2
  status=${PIPESTATUS[0]}
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
  cov=$(grep -E '^#[0-9]+[[:space:]]' "$log" | grep -oE 'cov: [0-9]+' | tail -1 || true)
  summary+=("$t: ${execs} executions in ${seconds}s, ${cov:-cov: ?}, exit ${status}")
  if [ "$status" != 0 ]; then
    failed+=("$t")
    echo "---- $t failed; the end of its log:" >&2
    tail -60 "$log" >&2
  fi
  rm -f "$log"
done

step "fuzz summary"
printf '%s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets with crashes: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
