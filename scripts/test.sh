#!/usr/bin/env bash
# Runs every test of sphana-llm: sets up what is missing (scripts/setup.sh, which also makes
# this machine's model references and checks the committed model goldens against them), checks
# the committed tokenizer goldens against the Python references, then formatting, clippy, the
# Rust tests (ONNX Runtime 1.23.2; they include the fuzz targets' replay over their regression
# inputs, seeds and mutants), the generation, batching and RAG-engine tests (logits rewrite,
# chunked prefill, prefix cache, KV budget; speculative decoding's greedy exactness) again on
# ONNX Runtime 1.32.0, the panic test, the leak check (valgrind), the benchmarks' ctypes declarations of the C ABI
# against the library and the header, and the C# wrapper's tests on Mono and CoreCLR.
# Every step prints its wall time; the summary at the end lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

times=()
last_name=""
last_start=$SECONDS
t0=$SECONDS
step() {
  if [ -n "$last_name" ]; then
    times+=("$(printf '%5ds  %s' $((SECONDS - last_start)) "$last_name")")
  fi
  last_name="$*"
  last_start=$SECONDS
  printf '\n==> %s\n' "$*" >&2
}

step "setup (scripts/setup.sh): assets, model references, committed model goldens checked"
bash scripts/setup.sh

step "tokenizer goldens equal what the Python references produce now; nothing wrote to tests/golden/"
python3 scripts/goldens/make_tokenizer_golden.py --check
git diff --exit-code --stat -- tests/golden/ || { echo "setup changed tests/golden/" >&2; exit 1; }

step "cargo fmt --check / layering (scripts/ci/check_layering.py) / clippy -D warnings"
cargo fmt --all -- --check
python3 scripts/ci/check_layering.py
cargo clippy --all-targets --locked -- -D warnings

step "cargo test (ONNX Runtime 1.23.2)"
ORT_DYLIB_PATH="$root/assets/onnxruntime/1.23.2/libonnxruntime.so" cargo test --locked

step "generation, batching and RAG-engine tests again on ONNX Runtime 1.32.0"
ORT_DYLIB_PATH="$root/assets/onnxruntime/1.32.0/libonnxruntime.so" cargo test --locked --test generation --test batching \
  --test logits_rewrite --test prefill_chunks --test prefix_cache --test kv_budget
# Speculation's exactness on 1.32.0: greedy ids alone and in batches (its other tests, on 1.23.2).
ORT_DYLIB_PATH="$root/assets/onnxruntime/1.32.0/libonnxruntime.so" cargo test --locked --test speculative -- \
  greedy_ids_equal four_concurrent

step "panic test: an injected panic in an entry point is SPHANA_LLM_ERR_INTERNAL (feature test-hooks)"
ORT_DYLIB_PATH="$root/assets/onnxruntime/1.23.2/libonnxruntime.so" cargo test --locked --features test-hooks --test panic

step "leak check from C: valgrind memcheck (30 cycles) and heap/RSS over 300 cycles"
ORT_DYLIB_PATH="$root/assets/onnxruntime/1.23.2/libonnxruntime.so" bash scripts/ci/leak_check.sh --ci

step "Python ctypes declarations (scripts/bench/sphana_abi.py) against the library the leak check built and the header"
python3 scripts/bench/test_sphana_abi.py "${CARGO_TARGET_DIR:-$root/target}/debug/libsphana_llm.so"

step "C# wrapper tests (Mono and CoreCLR)"
bash csharp-bindings/test.sh

step "done"
printf '\n==> step times (total %ds)\n' $((SECONDS - t0)) >&2
printf '%s\n' "${times[@]}" >&2
