#!/usr/bin/env python3
"""Peak memory of many concurrent long generations with and without a KV budget (issue: bounded KV
memory): does the process stay under model + budget?

    python3 scripts/bench/bench_kv_budget.py [--model DIR] [--generations 32] [--prompt-tokens 300]
                                             [--new-tokens 100] [--budget-generations 4]

Each side is a fresh process (this script with `--side`), the release library through its C ABI: load the
model, run one short warm-up generation (ONNX Runtime's arenas reach their working size), read VmRSS (the
*baseline*: model, runtime, arenas), then start `--generations` threads at once, each greedy-generating
`--new-tokens` tokens from its own `--prompt-tokens`-token prompt (distinct prompts, no prefix cache), while
a monitor thread samples VmRSS every 5 ms. Sides: `unbounded` (max_kv_cache_bytes 0) and `budget` (room for
`--budget-generations` worst cases, kv_wait_ms 600 000: the rest wait their turn). Prints per side the KV
bytes one generation reserves, the budget, the peak RSS above the baseline, peak ÷ budget, how many
generations finished or got SPHANA_LLM_ERR_KV_MEMORY, and the wall time. The budget counts each cache once;
what exists beside it (a step's outputs next to its inputs, a re-layout's copy, activations) shows up as the
difference. Prints the CPU model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import sphana_abi
from bench_prefill import cpu_model

ROOT = Path(__file__).resolve().parents[2]
ORT_LIB = ROOT / "assets" / "onnxruntime" / "1.23.2" / "libonnxruntime.so"
KV_MEMORY = -13  # SPHANA_LLM_ERR_KV_MEMORY


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def kv_bytes_per_position(model: Path) -> int:
    cfg = json.loads((model / "config.json").read_text())
    head = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    return cfg["num_hidden_layers"] * 2 * cfg["num_key_value_heads"] * head * 4  # float32 cache


def side(args) -> dict:
    abi = sphana_abi.load(str(ROOT / "target/release/libsphana_llm.so"))
    per_gen = (args.prompt_tokens + args.new_tokens) * kv_bytes_per_position(Path(args.model))
    budget = int(per_gen * args.budget_generations) if args.side == "budget" else 0
    options = abi.load_options(ort_library_path=str(ORT_LIB).encode(), max_kv_cache_bytes=budget,
                               kv_wait_ms=600_000)
    handle = abi.load_model(args.model, options)
    abi.greedy_from_ids(handle, list(range(1000, 1000 + args.prompt_tokens)), 4)
    baseline = rss_bytes()
    peak = [baseline]
    done = threading.Event()

    def monitor() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(args.generations)

    def generate(i: int) -> None:
        prompt = [(1000 + i * 7919 + j * 31) % 40000 + 100 for j in range(args.prompt_tokens)]
        params = abi.generate_params(max_new_tokens=args.new_tokens, ignore_eos=1)
        barrier.wait()
        try:
            abi.generate_from_ids(handle, prompt, params)
            status = 0
        except sphana_abi.SphanaError as e:
            status = e.status
        with lock:
            statuses.append(status)

    watcher = threading.Thread(target=monitor)
    watcher.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=generate, args=(i,)) for i in range(args.generations)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done.set()
    watcher.join()
    abi.free_model(handle)
    return {"per_generation": per_gen, "budget": budget, "baseline": baseline, "peak_above": peak[0] - baseline,
            "finished": statuses.count(0), "kv_memory": statuses.count(KV_MEMORY),
            "other": len(statuses) - statuses.count(0) - statuses.count(KV_MEMORY), "wall_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "assets/models/smollm2-135m-instruct"))
    ap.add_argument("--generations", type=int, default=32)
    ap.add_argument("--prompt-tokens", type=int, default=300)
    ap.add_argument("--new-tokens", type=int, default=100)
    ap.add_argument("--budget-generations", type=float, default=4)
    ap.add_argument("--side", choices=["unbounded", "budget"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        print(json.dumps(side(args)))
        return 0
    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); {args.generations} generations of {args.prompt_tokens} + "
          f"{args.new_tokens} tokens on {Path(args.model).name}; fresh process per side")
    mib = 1 << 20
    print(f"{'side':10s} {'KV/gen MiB':>10s} {'budget MiB':>10s} {'baseline MiB':>12s} {'peak above MiB':>14s} "
          f"{'peak/budget':>11s} {'finished':>8s} {'KV_MEMORY':>9s} {'wall s':>7s}")
    for name in ("unbounded", "budget"):
        cmd = [sys.executable, __file__, "--side", name, "--model", args.model, "--generations", str(args.generations),
               "--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens),
               "--budget-generations", str(args.budget_generations)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        ratio = f"{r['peak_above'] / r['budget']:.2f}" if r["budget"] else "-"
        print(f"{name:10s} {r['per_generation'] / mib:10.1f} {r['budget'] / mib:10.1f} {r['baseline'] / mib:12.0f} "
              f"{r['peak_above'] / mib:14.0f} {ratio:>11s} {r['finished']:8d} {r['kv_memory']:9d} {r['wall_s']:7.1f}")
        if r["other"]:
            sys.exit(f"{r['other']} generations failed with another status")
    return 0


if __name__ == "__main__":
    sys.exit(main())
