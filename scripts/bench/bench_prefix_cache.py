#!/usr/bin/env python3
"""Time to first token of a follow-up request that shares a long prefix with an earlier one, with and
without the prefix cache (issue: prefix cache).

    python3 scripts/bench/bench_prefix_cache.py [--model DIR] [--tokens 1000] [--rounds 3]

One process, the release library (`cargo build --release --lib`). Two prompts shaped like Sphana's share
their ~N-token retrieved context and differ in the question. `cold`: the follow-up on a handle without
the cache (`prefix_cache_bytes` 0), i.e. its whole prompt prefilled; `cached`: the follow-up on a handle
with a 256 MiB cache, right after the first prompt ran there. Both generate one token; the figure is the
call's wall time (load excluded), median over rounds (each round a fresh pair of prompts: the question
changes). Prints the CPU model, the reused positions and cached ÷ cold.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
from pathlib import Path

import sphana_abi
from bench_interference import tokenize
from bench_prefill import PASSAGES, cpu_model

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "How long is the Rhine, and where does it flow?",
    "Which treaty ended the Thirty Years' War?",
    "What does chlorophyll absorb?",
    "How high is Kilimanjaro?",
    "How does a hash table resolve collisions?",
    "Where is Mount Kilimanjaro?",
    "What are the three cones of Kilimanjaro?",
]


def context_ids(abi, handle, target: int) -> list[int]:
    head = "Answer the question based on the following context:\n\n"
    body = "".join(f"Context (Score: {0.91 - 0.01 * (i % 40):.2f}): {PASSAGES[i % len(PASSAGES)]}\n"
                   for i in range(target // 40 + 2))
    return tokenize(abi, handle, head + body)[:target]


def first_token_ms(abi, handle, prompt: list[int]) -> tuple[float, int]:
    res = abi.generate_from_ids(handle, prompt, abi.generate_params(max_new_tokens=1, ignore_eos=1))
    return (res["end"] - res["start"]) * 1e3, res["stats"].cached_tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "assets/models/smollm2-135m-instruct"))
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lib", default=sphana_abi.RELEASE_LIB)
    ap.add_argument("--ort", default=str(ROOT / "assets/onnxruntime/1.23.2/libonnxruntime.so"))
    args = ap.parse_args()
    abi = sphana_abi.load(args.lib)
    ort = args.ort.encode()
    cold = abi.load_model(args.model, abi.load_options(ort_library_path=ort, intra_op_threads=args.threads))
    cached = abi.load_model(args.model, abi.load_options(ort_library_path=ort, intra_op_threads=args.threads,
                                                        prefix_cache_bytes=256 << 20))
    context = context_ids(abi, cold, args.tokens)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); model {Path(args.model).name}; a {len(context)}-token "
          f"shared context; medians of {args.rounds} rounds")
    cold_ms, warm_ms, reused = [], [], []
    for r in range(args.rounds):
        first = context + tokenize(abi, cold, f"\nQuestion: {QUESTIONS[(2 * r) % len(QUESTIONS)]}\nAnswer:")
        follow = context + tokenize(abi, cold, f"\nQuestion: {QUESTIONS[(2 * r + 1) % len(QUESTIONS)]}\nAnswer:")
        ms, _ = first_token_ms(abi, cold, follow)
        cold_ms.append(ms)
        first_token_ms(abi, cached, first)
        ms, n = first_token_ms(abi, cached, follow)
        warm_ms.append(ms)
        reused.append(n)
    c, w = statistics.median(cold_ms), statistics.median(warm_ms)
    print(f"{'side':10s} {'first token ms':>14s} {'reused positions':>16s}")
    print(f"{'cold':10s} {c:14.0f} {0:16d}")
    print(f"{'cached':10s} {w:14.0f} {statistics.median(reused):16.0f}")
    print(f"cached / cold = {w / c:.2f}")
    abi.free_model(cold)
    abi.free_model(cached)
    return 0


if __name__ == "__main__":
    sys.exit(main())
