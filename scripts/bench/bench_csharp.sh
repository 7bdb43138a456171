#!/usr/bin/env bash
# The C# wrapper's per-call cost on a short chat message (20 tokens), on Mono and on CoreCLR 3.1:
# LlmModel.Tokenize / CountTokens against a bare P/Invoke of sphana_llm_tokenize and an empty P/Invoke
# (csharp-bindings/bench/TokenizeBench.cs). Uses the release library (built here unless SKIP_BUILD=1) and
# the runtimes csharp-bindings/test.sh sets up (run it, or scripts/setup.sh, first).
#
#   scripts/bench/bench_csharp.sh [calls per round = 200000] [rounds = 7]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
assets="${SPHANA_LLM_ASSETS:-$root/assets}"
out="$root/target/csharp-bench"
dotnet="$assets/dotnet/dotnetcore2/bin/dotnet"
command -v mcs >/dev/null && [ -x "$dotnet" ] || { echo "run csharp-bindings/test.sh first (mcs, mono, CoreCLR)" >&2; exit 1; }
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --lib
mkdir -p "$out"
mcs -nologo -optimize+ -target:library -r:System.dll -r:System.Core.dll -out:"$out/Sphana.Llm.dll" \
  csharp-bindings/Sphana.Llm/*.cs
mcs -nologo -optimize+ -unsafe -target:exe -r:System.dll -r:System.Core.dll -r:"$out/Sphana.Llm.dll" \
  -out:"$out/TokenizeBench.exe" csharp-bindings/bench/TokenizeBench.cs
ln -sfn "$root/target/release/libsphana_llm.so" "$out/libsphana_llm.so"
cat > "$out/TokenizeBench.runtimeconfig.json" <<'JSON'
{ "runtimeOptions": { "tfm": "netcoreapp3.1", "framework": { "name": "Microsoft.NETCore.App", "version": "3.1.0" } } }
JSON
tok="$assets/tokenizers/llama3.2"
mono --optimize=all "$out/TokenizeBench.exe" "$tok" "$@"
DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_TieredPGO=0 \
  "$dotnet" "$out/TokenizeBench.exe" "$tok" "$@"
