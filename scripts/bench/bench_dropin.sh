#!/usr/bin/env bash
# The Sphana drop-in under concurrency, as Sphana.Database deploys and constructs it: a folder with only
# llm_generator.onnx and tokenizer.json (links to SmolLM2-135M-Instruct fp32, or the model directory given
# as $1), new LlmGeneratorModel(onnx, tokenizer.json, useGpu: true, 0, maxPoolSize: 1, false, logger); four
# RAG-shaped requests one at a time, then all four at once (csharp-bindings/bench/DropInConcurrencyBench.cs),
# on Mono and on CoreCLR 3.1. Prints tokens/s and the ratio. Uses the release library (built here unless
# SKIP_BUILD=1) and the runtimes csharp-bindings/test.sh sets up (run it, or scripts/test.sh, first).
#
#   scripts/bench/bench_dropin.sh [model dir = assets/models/smollm2-135m-instruct] [max tokens = 64] [rounds = 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/csharp_bench.sh
model=$(cd "${1:-$assets/models/smollm2-135m-instruct}" && pwd)
[ $# -gt 0 ] && shift
build_wrapper
mcs -nologo -optimize+ -target:library -r:System.dll -r:System.Core.dll \
  -out:"$out/Microsoft.Extensions.Logging.Abstractions.dll" csharp-bindings/tests/LoggingShim.cs
mcs -nologo -optimize+ -target:library -r:System.dll -r:System.Core.dll -r:"$out/Sphana.Llm.dll" \
  -r:"$out/Microsoft.Extensions.Logging.Abstractions.dll" -out:"$out/Sphana.Llm.Service.dll" \
  csharp-bindings/Sphana.Llm.Service/*.cs
mcs -nologo -optimize+ -target:exe -r:System.dll -r:System.Core.dll -r:"$out/Sphana.Llm.dll" \
  -r:"$out/Sphana.Llm.Service.dll" -r:"$out/Microsoft.Extensions.Logging.Abstractions.dll" \
  -out:"$out/DropInConcurrencyBench.exe" csharp-bindings/bench/DropInConcurrencyBench.cs
coreclr_config DropInConcurrencyBench
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT
ln -s "$model/model.onnx" "$folder/llm_generator.onnx"
ln -s "$model/tokenizer.json" "$folder/tokenizer.json"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$assets/onnxruntime/1.23.2/libonnxruntime.so}"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) cores); model $model"
mono --optimize=all "$out/DropInConcurrencyBench.exe" "$folder" "$@"
DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 \
  "$dotnet" "$out/DropInConcurrencyBench.exe" "$folder" "$@"
