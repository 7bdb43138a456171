# Sourced by bench_csharp.sh and bench_dropin.sh from the repository root: the runtimes
# csharp-bindings/test.sh sets up (mcs, Mono, CoreCLR 3.1 under assets/dotnet/), and the wrapper
# compiled against the release library into target/csharp-bench/.
root=$(pwd)
assets="${SPHANA_LLM_ASSETS:-$root/assets}"
out="$root/target/csharp-bench"
dotnet="$assets/dotnet/dotnetcore2/bin/dotnet"
command -v mcs >/dev/null && [ -x "$dotnet" ] || { echo "run csharp-bindings/test.sh first (mcs, mono, CoreCLR)" >&2; exit 1; }

# Builds the release library (unless SKIP_BUILD=1) and compiles Sphana.Llm.dll next to a link to it.
build_wrapper() {
  [ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --lib
  mkdir -p "$out"
  mcs -nologo -optimize+ -target:library -r:System.dll -r:System.Core.dll -out:"$out/Sphana.Llm.dll" \
    csharp-bindings/Sphana.Llm/*.cs
  ln -sfn "$root/target/release/libsphana_llm.so" "$out/libsphana_llm.so"
}

# Lets CoreCLR 3.1 run $out/$1.exe ($out/$1.runtimeconfig.json).
coreclr_config() {
  cat > "$out/$1.runtimeconfig.json" <<'JSON'
{ "runtimeOptions": { "tfm": "netcoreapp3.1", "framework": { "name": "Microsoft.NETCore.App", "version": "3.1.0" } } }
JSON
}
