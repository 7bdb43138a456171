#!/usr/bin/env bash
# The C# wrapper's per-call cost on a short chat message (20 tokens), on Mono and on CoreCLR 3.1:
# LlmModel.Tokenize / CountTokens against a bare P/Invoke of sphana_llm_tokenize and an empty P/Invoke
# (csharp-bindings/bench/TokenizeBench.cs). Uses the release library (built here unless SKIP_BUILD=1) and
# the runtimes csharp-bindings/test.sh sets up (run it, or scripts/setup.sh, first).
#
#   scripts/bench/bench_csharp.sh [calls per round = 200000] [rounds = 7]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/csharp_bench.sh
build_wrapper
mcs -nologo -optimize+ -unsafe -target:exe -r:System.dll -r:System.Core.dll -r:"$out/Sphana.Llm.dll" \
  -out:"$out/TokenizeBench.exe" csharp-bindings/bench/TokenizeBench.cs
coreclr_config TokenizeBench
tok="$assets/tokenizers/llama3.2"
mono --optimize=all "$out/TokenizeBench.exe" "$tok" "$@"
DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_TieredPGO=0 \
  "$dotnet" "$out/TokenizeBench.exe" "$tok" "$@"
