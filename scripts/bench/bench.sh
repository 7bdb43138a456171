#!/usr/bin/env bash
# Side-by-side benchmarks of sphana-llm (see BENCHMARKS.md): builds the release library, then
#   scripts/bench/bench_tokenize.py    tokenization vs HF tokenizers and tiktoken
#   scripts/bench/bench_generate.py    generation vs onnxruntime-genai and a Python ORT KV loop
#   scripts/bench/bench_concurrent.py  4 concurrent generations on one handle (continuous batching) vs one alone
#   scripts/bench/bench_memory.py      read bandwidth, bytes read per second, peak RSS vs the Python ORT loop
#   scripts/bench/bench_csharp.sh      the C# wrapper's per-call cost on a short message (Mono, CoreCLR), when
#                                      csharp-bindings/test.sh has set up mcs and CoreCLR
#   scripts/bench/bench_dropin.sh      the Sphana drop-in on Sphana's two-file folder, 4 requests at once vs one
#                                      at a time (Mono, CoreCLR), likewise
# and prints everything. About 9 minutes on a 2-core VM with the defaults.
#
#   scripts/bench/bench.sh                       defaults (3 generation rounds, 32 new tokens)
#   GEN_ARGS="--rounds 5 --new-tokens 64" scripts/bench/bench.sh     longer generation runs
#   TOK_ARGS="--rounds 9" scripts/bench/bench.sh
#   OUT=target/bench scripts/bench/bench.sh      where the JSON figures go (default target/bench)
#   SKIP_BUILD=1 scripts/bench/bench.sh          benchmark target/release/libsphana_llm.so as it is
#
# Needs the assets of scripts/setup.sh (tokenizers, ONNX Runtime 1.23.2 and 1.32.0, SmolLM2 fp32
# and int8) and Python tokenizers, tiktoken, onnxruntime 1.23.2, numpy. onnxruntime-genai 0.18.0
# requires onnxruntime >= 1.31, so it lives in its own venv (assets/.venv-genai, created here).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out=${OUT:-$root/target/bench}
mkdir -p "$out"

step() { printf '\n==> %s\n' "$*" >&2; }

for f in assets/tokenizers/llama3.2/tokenizer.json assets/tokenizers/llama3-tiktoken/tokenizer.model \
         assets/texts/multilingual_1mb.txt assets/onnxruntime/1.23.2/libonnxruntime.so \
         assets/onnxruntime/1.32.0/libonnxruntime.so assets/models/smollm2-135m-instruct/model.onnx \
         assets/models/smollm2-135m-instruct-int8/model.onnx; do
  [ -e "$f" ] || { echo "missing $f: run scripts/setup.sh first" >&2; exit 1; }
done

if ! assets/.venv-genai/bin/python -c "import onnxruntime_genai" 2>/dev/null; then
  step "venv assets/.venv-genai with onnxruntime-genai 0.18.0 (it needs onnxruntime >= 1.31)"
  python3 -m venv assets/.venv-genai
  assets/.venv-genai/bin/pip install -q --disable-pip-version-check onnxruntime-genai==0.18.0 numpy
fi

if [ "${SKIP_BUILD:-0}" = 1 ]; then
  step "SKIP_BUILD=1: using target/release/libsphana_llm.so as it is"
else
  step "cargo build --release"
  if ! cargo build --release > "$out/build.log" 2>&1; then
    grep -E "^error" "$out/build.log" >&2 || tail -20 "$out/build.log" >&2
    echo "cargo build --release failed (log: $out/build.log); SKIP_BUILD=1 benchmarks the existing library" >&2
    exit 1
  fi
  tail -1 "$out/build.log"
fi
test -f target/release/libsphana_llm.so

step "environment"
echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu:         $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) cores)"
echo "flags:       $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx_vnni|amx_tile)$' | tr '\n' ' ')"
echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sphana-llm:  $(git describe --always --dirty 2>/dev/null || echo '?') ($(rustc --version))"
echo "python:      $(python3 -c 'import sys, onnxruntime, tokenizers, tiktoken; print(sys.version.split()[0], "onnxruntime", onnxruntime.__version__, "tokenizers", tokenizers.__version__, "tiktoken", tiktoken.__version__)')"
echo "genai venv:  $(assets/.venv-genai/bin/python -c 'import onnxruntime as o, onnxruntime_genai as g; print("onnxruntime-genai", g.__version__, "onnxruntime", o.__version__)')"

step "tokenization (scripts/bench/bench_tokenize.py ${TOK_ARGS:-})"
# shellcheck disable=SC2086
python3 scripts/bench/bench_tokenize.py --json "$out/tokenize.json" ${TOK_ARGS:-}

step "generation (scripts/bench/bench_generate.py ${GEN_ARGS:-})"
# shellcheck disable=SC2086
python3 scripts/bench/bench_generate.py --json "$out/generate.json" ${GEN_ARGS:-}

step "concurrency (scripts/bench/bench_concurrent.py ${CONC_ARGS:-})"
# shellcheck disable=SC2086
python3 scripts/bench/bench_concurrent.py ${CONC_ARGS:-} | tee "$out/concurrent.txt"

step "memory (scripts/bench/bench_memory.py)"
python3 scripts/bench/bench_memory.py | tee "$out/memory.txt"

if command -v mcs >/dev/null && [ -x assets/dotnet/dotnetcore2/bin/dotnet ]; then
  step "C# per-call cost (scripts/bench/bench_csharp.sh)"
  SKIP_BUILD=1 bash scripts/bench/bench_csharp.sh | tee "$out/csharp.txt"
  step "C# drop-in, 4 concurrent requests (scripts/bench/bench_dropin.sh)"
  SKIP_BUILD=1 bash scripts/bench/bench_dropin.sh | tee "$out/dropin.txt"
else
  step "C# per-call cost skipped: run csharp-bindings/test.sh once to set up mcs and CoreCLR"
fi

echo "load avg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
