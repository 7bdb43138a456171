#!/usr/bin/env bash
# Runs every test of sphana-llm: sets up what is missing (scripts/setup.sh), checks the
# committed goldens against the Python references, then formatting, clippy, the Rust
# tests (ONNX Runtime 1.23.2), the generation and batching tests again on ONNX Runtime 1.32.0, the panic
# test, the leak check (valgrind) and a short run of every fuzz target, and the C# wrapper's
# tests on Mono and CoreCLR.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh

step() { printf '\n==> %s\n' "$*" >&2; }

step "goldens equal what the Python references produce now"
python3 scripts/make_tokenizer_golden.py --check
git diff --exit-code --stat -- tests/golden/ || { echo "regenerating goldens changed tests/golden/" >&2; exit 1; }

step "cargo fmt --check / clippy -D warnings"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "cargo test (ONNX Runtime 1.23.2)"
ORT_DYLIB_PATH="$root/assets/onnxruntime/1.23.2/libonnxruntime.so" cargo test --locked

step "generation and batching tests again on ONNX Runtime 1.32.0"
ORT_DYLIB_PATH="$root/assets/onnxruntime/1.32.0/libonnxruntime.so" cargo test --locked --test generation --test batching

step "panic test: an injected panic in an entry point is SPHANA_LLM_ERR_INTERNAL (feature test-hooks)"
ORT_DYLIB_PATH="$root/assets/onnxruntime/1.23.2/libonnxruntime.so" cargo test --locked --features test-hooks --test panic

step "leak check from C: valgrind memcheck (60 cycles) and heap/RSS over 300 release cycles"
ORT_DYLIB_PATH="$root/assets/onnxruntime/1.23.2/libonnxruntime.so" bash scripts/leak_check.sh --ci

step "fuzz smoke: each fuzz target for 12 s (scripts/fuzz.sh)"
bash scripts/fuzz.sh 12

if [ -x csharp-bindings/test.sh ]; then
  step "C# wrapper tests (Mono and CoreCLR)"
  bash csharp-bindings/test.sh
fi
