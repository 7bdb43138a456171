#!/usr/bin/env python3
"""Inter-token latency of running generations while a long RAG prompt arrives, with the prefill in one
run and in chunks (issue: chunked prefill beside the batch).

    python3 scripts/bench/bench_interference.py [--model DIR] [--chunks 0 512 256] [--running 3]
                                                [--long-tokens 2000] [--rounds 2] [--sessions 1] [--threads 0]

One process, the release library (`cargo build --release --lib`), one handle per setting (`--sessions`
ONNX Runtime sessions, default one; continuous batching on). `--running` generations stream 200 tokens each from short
prompts; once they are all past their 20th token, a generation with a ~2,000-token prompt shaped like
Sphana's arrives. Every text callback of the running generations is timestamped: the *unloaded step* is
the median gap between two callbacks before the arrival, the *loaded* gaps are those that end while the
long prompt is being read (from its arrival to its first token). Prints, per chunk setting (0: the
prompt in one run), the unloaded step, the p50/p99/max loaded gap, p99 ÷ unloaded step, and the long
prompt's time to first token. Medians over rounds; prints the CPU model.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import sphana_abi
from bench_prefill import PASSAGES, cpu_model

ROOT = Path(__file__).resolve().parents[2]


def rag_prompt_ids(abi, handle, target: int) -> list[int]:
    head = "Answer the question based on the following context:\n\n"
    tail = "\nQuestion: How long is the Rhine, and where does it flow?\nAnswer:"
    body = "".join(f"Context (Score: {0.91 - 0.01 * (i % 40):.2f}): {PASSAGES[i % len(PASSAGES)]}\n"
                   for i in range(target // 40 + 2))
    ids = tokenize(abi, handle, head + body + tail)
    return ids[:target - 20] + tokenize(abi, handle, tail)


def tokenize(abi, handle, text: str) -> list[int]:
    data = text.encode()
    cap = len(data) + 8
    ids = (ctypes.c_int32 * cap)()
    n = ctypes.c_size_t()
    abi.check(abi.lib.sphana_llm_tokenize(handle, data, len(data), 0, ids, cap, ctypes.byref(n)),
              "sphana_llm_tokenize")
    return list(ids[:n.value])


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def one_round(abi, handle, running: int, short: list[int], long_prompt: list[int]) -> dict:
    stamps: list[list[float]] = [[] for _ in range(running)]
    callbacks = []
    threads = []
    for r in range(running):
        def on_text(text, length, user, r=r):
            stamps[r].append(time.perf_counter())
            return 0
        cb = sphana_abi.TEXT_CALLBACK(on_text)
        callbacks.append(cb)
        params = abi.generate_params(max_new_tokens=200, ignore_eos=1)

        def work(cb=cb, params=params, prompt=short):
            ids = (ctypes.c_int32 * len(prompt))(*prompt)
            stats = sphana_abi.GenerateStats()
            stats.struct_size = ctypes.sizeof(stats)
            abi.check(abi.lib.sphana_llm_generate_from_ids(handle, ids, len(prompt), ctypes.byref(params), cb, None,
                                                          None, ctypes.byref(stats)), "generate (running)")
        threads.append(threading.Thread(target=work))
    for t in threads:
        t.start()
    while min(len(s) for s in stamps) < 20:
        time.sleep(0.001)
    arrival = time.perf_counter()
    res = abi.generate_from_ids(handle, long_prompt, abi.generate_params(max_new_tokens=1, ignore_eos=1))
    first_token = res["end"]
    for t in threads:
        t.join()
    before, loaded = [], []
    for s in stamps:
        for a, b in zip(s, s[1:]):
            if b <= arrival:
                before.append(b - a)
            elif arrival < b <= first_token:
                loaded.append(b - a)
            elif a < first_token < b:
                loaded.append(b - a)  # the gap the prefill ends inside
    return {
        "step": statistics.median(before) * 1e3,
        "p50": percentile(loaded, 50) * 1e3,
        "p99": percentile(loaded, 99) * 1e3,
        "max": max(loaded) * 1e3 if loaded else float("nan"),
        "gaps": len(loaded),
        "ttft": (first_token - arrival) * 1e3,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "assets/models/smollm2-135m-instruct"))
    ap.add_argument("--chunks", nargs="+", type=int, default=[0, 512, 256])
    ap.add_argument("--running", type=int, default=3)
    ap.add_argument("--long-tokens", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its choice)")
    ap.add_argument("--sessions", type=int, default=1,
                    help="session_count: with 2, the long prompt's prefill runs beside the batch's steps")
    ap.add_argument("--lib", default=sphana_abi.RELEASE_LIB)
    ap.add_argument("--ort", default=str(ROOT / "assets/onnxruntime/1.23.2/libonnxruntime.so"))
    args = ap.parse_args()
    abi = sphana_abi.load(args.lib)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); model {Path(args.model).name}; {args.running} running "
          f"generations; a {args.long_tokens}-token prompt arrives; {args.sessions} session(s), intra-op threads "
          f"{args.threads or 'ORT default'}; medians of {args.rounds} rounds")
    print(f"{'chunk':>6s} {'step ms':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'p99/step':>9s} "
          f"{'gaps':>5s} {'long TTFT ms':>12s}")
    ort = args.ort.encode()
    for chunk in args.chunks:
        options = abi.load_options(ort_library_path=ort, prefill_chunk_tokens=chunk, intra_op_threads=args.threads,
                                   session_count=args.sessions)
        handle = abi.load_model(args.model, options)
        short = tokenize(abi, handle, "Write a long story about a lighthouse keeper and the sea.")
        long_prompt = rag_prompt_ids(abi, handle, args.long_tokens)
        abi.greedy_from_ids(handle, short, 4)  # warm-up
        rounds = [one_round(abi, handle, args.running, short, long_prompt) for _ in range(args.rounds)]
        abi.free_model(handle)
        m = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(f"{chunk:6d} {m['step']:8.1f} {m['p50']:8.1f} {m['p99']:8.1f} {m['max']:8.1f} "
              f"{m['p99'] / m['step']:8.1f}x {m['gaps']:5.0f} {m['ttft']:12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
