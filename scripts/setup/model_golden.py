"""Model references split by what a CPU can change.

ONNX Runtime picks its kernels by CPU: float32 logits differ in the sixth significant digit between
an AVX-512 VNNI and an AVX2-only machine, and INT8 `quantize_dynamic` models even change their greedy
ids (the AVX2 u8s8 kernels saturate 16-bit intermediate sums; VNNI does not). So each model reference
script (scripts/setup/make_tiny_models.py, scripts/setup/convert_smollm2.py) writes two files:

* `assets/reference/models/<name>.json` (ignored, made on the machine that runs the tests): the whole
  reference -- logit values, margins, float16 and INT8 ids -- with the CPU and ONNX Runtime that made
  it under "machine". Tests compare the library against it: same machine, same kernels.
* `tests/golden/models/<name>.json` (committed): only what no CPU changes -- prompt ids, the I/O
  layout, and float32 greedy ids whose every step's top-1/top-2 logit margin is at least
  FLOAT32_MACHINE_INDEPENDENT_MARGIN (1000x the float32 differences measured between the two CPUs).
  "produced_on" records which CPU wrote it, for the reader. Every run checks that the reference made
  now contains exactly these values; `--write-golden` rewrites the committed file instead.

The Rust tests (tests/common/mod.rs `model_reference`) check the same subset relation before they use
the reference, and that the reference was made on this CPU.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = ROOT / "tests" / "golden" / "models"

# Float32 greedy ids are committed when every step's top1 - top2 logit gap is at least this. The gaps
# between CPUs measured on these models are ~1e-5 (tiny Llama, logits ~10) to ~1e-4 (SmolLM2, 30 layers).
FLOAT32_MACHINE_INDEPENDENT_MARGIN = 0.01

# Keys of the committed file that are about it, not part of the reference.
META_KEYS = ("produced_on", "committed_part")

# CPU features that change which ONNX Runtime kernels run (and hence logits and INT8 results).
KERNEL_FLAGS = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
)


def assets_dir() -> Path:
    import os

    env = os.environ.get("SPHANA_LLM_ASSETS")
    return Path(env) if env else ROOT / "assets"


def reference_path(name: str) -> Path:
    return assets_dir() / "reference" / "models" / f"{name}.json"


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.json"


def cpu() -> dict:
    """The CPU as /proc/cpuinfo names it; `fingerprint` hashes the model name and all flags."""
    model, flags = "unknown", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model == "unknown":
                model = value.strip()
            elif key == "flags" and not flags:
                flags = value.strip()
    except OSError:
        pass
    flag_set = set(flags.split())
    return {
        "model_name": model,
        "kernel_flags": [f for f in KERNEL_FLAGS if f in flag_set],
        "fingerprint": cpu_fingerprint(model, flags),
    }


def cpu_fingerprint(model_name: str, flags: str) -> str:
    """sha256 of "<model name>\\n<flags, sorted, space-separated>" (tests/common/mod.rs computes the same)."""
    text = model_name + "\n" + " ".join(sorted(flags.split()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def machine() -> dict:
    import onnxruntime

    return {"cpu": cpu(), "onnxruntime_version": onnxruntime.__version__}


def reference_is_current(name: str, stamp: str) -> bool:
    """True when this machine's reference exists, was made on this CPU and from these inputs."""
    path = reference_path(name)
    if not path.exists():
        return False
    try:
        ref = json.loads(path.read_text())
    except ValueError:
        return False
    m = ref.get("machine", {})
    return m.get("cpu", {}).get("fingerprint") == cpu()["fingerprint"] and m.get("stamp") == stamp


def is_subset(part, whole, where="") -> list[str]:
    """Where `part` is not contained in `whole` (dicts: every key of part, recursively; lists: same length)."""
    if isinstance(part, dict):
        if not isinstance(whole, dict):
            return [f"{where or '/'}: object vs {type(whole).__name__}"]
        out = []
        for k, v in part.items():
            if k in META_KEYS and not where:
                continue
            if k not in whole:
                out.append(f"{where}/{k}: missing from the reference")  # wording matched in publish()
            else:
                out.extend(is_subset(v, whole[k], f"{where}/{k}"))
        return out
    if isinstance(part, list):
        if not isinstance(whole, list) or len(part) != len(whole):
            return [f"{where}: {json.dumps(part)[:200]} != {json.dumps(whole)[:200]}"]
        out = []
        for i, (a, b) in enumerate(zip(part, whole)):
            out.extend(is_subset(a, b, f"{where}[{i}]"))
        return out
    return [] if part == whole else [f"{where}: {json.dumps(part)[:200]} (committed) != {json.dumps(whole)[:200]} (computed now)"]


def publish(name: str, reference: dict, committed: dict, stamp: str, write_golden: bool, what: str) -> None:
    """Writes this machine's reference; checks (or, with write_golden, rewrites) the committed golden.

    `committed` must be a subset of `reference` (the caller builds it from the reference); `what` says,
    for the reader of the committed file, what it holds and what it leaves to the reference. Exits with
    status 1 and the differing paths when the committed file disagrees with what was computed now.
    """
    # Compare as JSON values (tuples become lists, as they do in the files).
    reference = json.loads(json.dumps(reference, ensure_ascii=False))
    committed = json.loads(json.dumps(committed, ensure_ascii=False))
    problems = is_subset(committed, reference)
    assert not problems, f"{name}: the committed part is not a subset of the reference: {problems[:5]}"
    reference["machine"] = dict(machine(), stamp=stamp)
    path = reference_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path} (this machine's reference: {reference['machine']['cpu']['model_name']})", flush=True)

    gpath = golden_path(name)
    if write_golden:
        out = {"committed_part": what, "produced_on": {k: v for k, v in reference["machine"].items() if k != "stamp"}}
        out.update(committed)
        gpath.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {gpath.relative_to(ROOT)} (committed, machine-independent)", flush=True)
        return
    if not gpath.exists():
        sys.exit(f"error: {gpath.relative_to(ROOT)} is missing; run this script with --write-golden")
    existing = json.loads(gpath.read_text())
    existing = {k: v for k, v in existing.items() if k not in META_KEYS}
    if existing != committed:
        print(f"error: {gpath.relative_to(ROOT)} disagrees with what ONNX Runtime computes now on "
              f"{reference['machine']['cpu']['model_name']}:", file=sys.stderr)
        problems = is_subset(existing, committed)  # values that differ, keys gone now
        problems += [p.replace("missing from the reference", "computed now, not in the committed file")
                     for p in is_subset(committed, existing) if p.endswith("missing from the reference")]
        for p in problems[:40]:
            print(f"  {p}", file=sys.stderr)
        sys.exit(1)
    print(f"{gpath.relative_to(ROOT)} equals the machine-independent part of the reference computed now", flush=True)


def float32_ids_are_machine_independent(margins) -> bool:
    return min(margins) >= FLOAT32_MACHINE_INDEPENDENT_MARGIN
