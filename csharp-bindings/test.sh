#!/usr/bin/env bash
# Builds the C# wrapper (Sphana.Llm), the drop-in (Sphana.Llm.Service) and the console tests with Mono's
# mcs, then runs the tests on Mono and on CoreCLR 3.1. Each run ends with "<runtime>: N passed, M failed";
# the script exits non-zero when either run failed.
#
# Sets up what is missing: mcs/mono (Debian's mono-mcs, mono-runtime), the CoreCLR 3.1 runtime (PyPI
# wheel dotnetcore2==3.1.23, unpacked under assets/dotnet/), libsphana_llm.so (`cargo build`).
# Env: SPHANA_LLM_LIB=/path/libsphana_llm.so tests that build instead of running cargo;
#      ORT_DYLIB_PATH picks the ONNX Runtime (default assets/onnxruntime/1.23.2/libonnxruntime.so);
#      SPHANA_LLM_CS_FILTER=name runs only the tests whose name contains it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
out="$root/target/csharp"
assets="${SPHANA_LLM_ASSETS:-$root/assets}"

step() { printf '\n==> %s\n' "$*" >&2; }

if ! command -v mcs >/dev/null || ! command -v mono >/dev/null; then
  step "installing mono-mcs and mono-runtime"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mono-mcs mono-runtime >/dev/null
fi

dotnet_dir="$assets/dotnet/dotnetcore2/bin"
dotnet="$dotnet_dir/dotnet"
if [ ! -x "$dotnet" ] || [ ! -d "$dotnet_dir/shared/Microsoft.NETCore.App" ]; then
  step "fetching the CoreCLR 3.1 runtime (PyPI dotnetcore2==3.1.23)"
  mkdir -p "$assets/.downloads"
  wheel=$(ls "$assets"/.downloads/dotnetcore2-3.1.23-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux1_x86_64 \
      dotnetcore2==3.1.23 -d "$assets/.downloads"
    wheel=$(ls "$assets"/.downloads/dotnetcore2-3.1.23-*.whl | head -n1)
  fi
  rm -rf "$assets/dotnet"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$assets/dotnet"
  chmod +x "$dotnet"
fi

if [ -n "${SPHANA_LLM_LIB:-}" ]; then
  native="$SPHANA_LLM_LIB"
else
  step "cargo build (libsphana_llm.so)"
  cargo build --lib
  native="$root/target/debug/libsphana_llm.so"
fi
[ -f "$native" ] || { echo "missing $native" >&2; exit 1; }

step "compiling with mcs into target/csharp/"
mkdir -p "$out"
mcs_flags=(-nologo -debug -warn:4 -warnaserror -r:System.dll -r:System.Core.dll)
# The wrapper and the drop-in: every public member documented (-doc makes a missing comment a warning).
mcs "${mcs_flags[@]}" -target:library -doc:"$out/Sphana.Llm.xml" -out:"$out/Sphana.Llm.dll" \
  "$here"/Sphana.Llm/*.cs
# Stand-in for the Microsoft.Extensions.Logging.Abstractions package (no NuGet here).
mcs -nologo -debug -target:library -out:"$out/Microsoft.Extensions.Logging.Abstractions.dll" \
  -r:System.dll -r:System.Core.dll "$here/tests/LoggingShim.cs"
mcs "${mcs_flags[@]}" -target:library -doc:"$out/Sphana.Llm.Service.xml" -out:"$out/Sphana.Llm.Service.dll" \
  -r:"$out/Sphana.Llm.dll" -r:"$out/Microsoft.Extensions.Logging.Abstractions.dll" "$here"/Sphana.Llm.Service/*.cs
tests=()
for f in "$here"/tests/*.cs; do
  [ "$(basename "$f")" = LoggingShim.cs ] || tests+=("$f")
done
mcs "${mcs_flags[@]}" -target:exe -out:"$out/Sphana.Llm.Tests.exe" -r:"$out/Sphana.Llm.dll" \
  -r:"$out/Sphana.Llm.Service.dll" -r:"$out/Microsoft.Extensions.Logging.Abstractions.dll" "${tests[@]}"
# DllImport("sphana_llm") finds libsphana_llm.so next to the assemblies, as in a published app.
ln -sfn "$native" "$out/libsphana_llm.so"
cat > "$out/Sphana.Llm.Tests.runtimeconfig.json" <<'JSON'
{
  "runtimeOptions": {
    "tfm": "netcoreapp3.1",
    "framework": { "name": "Microsoft.NETCore.App", "version": "3.1.0" }
  }
}
JSON

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$assets/onnxruntime/1.23.2/libonnxruntime.so}"
export SPHANA_LLM_REPO="$root"
filter=(${SPHANA_LLM_CS_FILTER:+"$SPHANA_LLM_CS_FILTER"})
status=0

step "tests on Mono ($(mono --version | head -n1 | cut -d'(' -f1))"
start=$SECONDS
mono --debug "$out/Sphana.Llm.Tests.exe" "${filter[@]}" || status=1
echo "mono run: $((SECONDS - start)) s" >&2

step "tests on CoreCLR 3.1 ($dotnet)"
start=$SECONDS
DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 \
  "$dotnet" "$out/Sphana.Llm.Tests.exe" "${filter[@]}" || status=1
echo "coreclr run: $((SECONDS - start)) s" >&2

exit $status
