#!/usr/bin/env python3
"""Concurrent generation on one handle: continuous batching vs one request alone.

    python3 scripts/bench/bench_concurrent.py [--models fp32,int8] [--requests 4] [--new-tokens 64]
                                        [--threads N] [--rounds 3]

Loads SmolLM2-135M-Instruct (float32 and INT8, the files scripts/bench/bench_generate.py uses) through the
C ABI (ctypes; the GIL is released during each call, so Python threads are real concurrent callers)
three times:
  batched     max_decode_batch 8 (the default): concurrent decode steps share one session.run
  unbatched   max_decode_batch 1, one session: concurrent generations take turns step by step
  sessions    max_decode_batch 1, --requests sessions: each generation runs on its own session
and, per round (the order rotates), measures
  alone       one greedy request on the batched handle: its decode tokens/s (stats.decode_ms)
  concurrent  --requests greedy requests started together (different prompt lengths, so rows are
              padded), two aggregate figures:
                with prefill  all generated tokens / wall time from the first start to the last finish
                decode        all tokens after each request's first / time from the first prefill's
                              end to the last finish (a lower bound of the decode rate: the other
                              requests' prefills still fall inside that window)
Every side uses the same intra-op thread count (--threads, default: all cores). Greedy ids of each
concurrent request are compared with the same request alone: float32 must be identical; with
INT8 (DynamicQuantizeLinear: one activation scale per batch) differences are counted and reported.
Prints a table and a JSON line (RESULT ...) with the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading

import sphana_abi

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = {
    "fp32": os.path.join(ROOT, "assets", "models", "smollm2-135m-instruct"),
    "int8": os.path.join(ROOT, "assets", "models", "smollm2-135m-instruct-int8"),
}
ORT_LIB = os.path.join(ROOT, "assets", "onnxruntime", "1.23.2", "libonnxruntime.so")
GOLDEN = os.path.join(ROOT, "tests", "golden", "models", "smollm2.json")


class Bench:
    """The library and the two calls this benchmark makes."""

    def __init__(self, path: str):
        self.abi = sphana_abi.load(path)
        self.ort = ORT_LIB.encode()

    def load(self, model: str, threads: int, max_decode_batch: int, sessions: int):
        options = self.abi.load_options(ort_library_path=self.ort, intra_op_threads=threads,
                                        max_decode_batch=max_decode_batch, session_count=sessions)
        return self.abi.load_model(model, options)

    def generate(self, handle, prompt: list[int], n: int) -> dict:
        res = self.abi.greedy_from_ids(handle, prompt, n)
        stats = res["stats"]
        return {
            "ids": res["ids"],
            "start": res["start"],
            "end": res["end"],
            "prefill_ms": stats.prefill_ms,
            "decode_ms": stats.decode_ms,
            "batched_steps": stats.batched_steps,
        }


def concurrent(lib: Bench, handle, prompts: list[list[int]], n: int) -> dict:
    results: list[dict | None] = [None] * len(prompts)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(prompts))

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = lib.generate(handle, prompts[i], n)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    start = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    wall = end - start
    decode_window = end - min(r["start"] + r["prefill_ms"] / 1e3 for r in results)
    return {
        "ids": [r["ids"] for r in results],
        "aggregate_tok_s": len(prompts) * n / wall,
        "decode_tok_s": len(prompts) * (n - 1) / decode_window,
        "wall_ms": wall * 1e3,
        "batched_steps": [r["batched_steps"] for r in results],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=sphana_abi.RELEASE_LIB)
    ap.add_argument("--models", default="fp32,int8")
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    golden = json.load(open(GOLDEN))
    base = golden["prompt_ids"]  # the 37-token ChatML prompt
    # Different lengths (rows padded differently): the prompt, shortened and lengthened.
    prompts = []
    for i in range(args.requests):
        cut = max(4, len(base) - 8 * i) if i % 2 else len(base)
        prompt = base[:cut] + (base[1:1 + 11 * i] if i % 2 == 0 else [])
        prompts.append(prompt)

    lib = Bench(args.lib)
    report = {"threads": args.threads, "requests": args.requests, "new_tokens": args.new_tokens,
              "prompt_tokens": [len(p) for p in prompts], "models": {}}
    for name in args.models.split(","):
        model = MODELS[name]
        handles = {
            "batched": lib.load(model, args.threads, 8, 1),
            "unbatched": lib.load(model, args.threads, 1, 1),
            "sessions": lib.load(model, args.threads, 1, args.requests),
        }
        # Warm-up (first runs allocate ORT's arenas).
        for h in handles.values():
            concurrent(lib, h, prompts, 4)
        alone_ids = [lib.generate(handles["batched"], p, args.new_tokens)["ids"] for p in prompts]
        rows: dict[str, list[float]] = {"alone": [], "batched": [], "unbatched": [], "sessions": []}
        decode_rows: dict[str, list[float]] = {"batched": [], "unbatched": [], "sessions": []}
        differing = {"batched": 0, "unbatched": 0, "sessions": 0}
        batched_steps = []
        order = ["alone", "batched", "unbatched", "sessions"]
        for r in range(args.rounds):
            for side in order[r % len(order):] + order[: r % len(order)]:
                if side == "alone":
                    res = lib.generate(handles["batched"], prompts[0], args.new_tokens)
                    rows["alone"].append((args.new_tokens - 1) / (res["decode_ms"] / 1e3))
                    continue
                res = concurrent(lib, handles[side], prompts, args.new_tokens)
                rows[side].append(res["aggregate_tok_s"])
                decode_rows[side].append(res["decode_tok_s"])
                differing[side] += sum(1 for a, b in zip(res["ids"], alone_ids) if a != b)
                if side == "batched":
                    batched_steps.append(res["batched_steps"])
        for h in handles.values():
            lib.abi.free_model(h)
        med = {k: statistics.median(v) for k, v in rows.items()}
        dec = {k: statistics.median(v) for k, v in decode_rows.items()}
        dec["alone"] = med["alone"]
        report["models"][name] = {
            "tok_s_with_prefill": med,
            "decode_tok_s": dec,
            "ratio_vs_alone": {k: med[k] / med["alone"] for k in med},
            "decode_ratio_vs_alone": {k: dec[k] / dec["alone"] for k in dec},
            "requests_differing_from_alone": differing,
            "batched_steps_last_round": batched_steps[-1] if batched_steps else [],
            "rounds": rows,
            "decode_rounds": decode_rows,
        }
        print(f"\nSmolLM2-135M {name}: {args.requests} concurrent requests x {args.new_tokens} new tokens, "
              f"{args.threads} intra-op threads, prompts {report['prompt_tokens']} tokens, median of {args.rounds}")
        print(f"  {'side':<40}{'tok/s':>8}{'x alone':>9}{'decode':>8}{'x alone':>9}{'ids != alone':>14}")
        print("  (tok/s: with prefill; decode: the decode-window lower bound; alone: its decode rate in both)")
        labels = {
            "alone": "1 request alone (decode)",
            "batched": "concurrent, batched (default)",
            "unbatched": "concurrent, max_decode_batch 1",
            "sessions": f"concurrent, {args.requests} sessions, unbatched",
        }
        for k in order:
            diff = "" if k == "alone" else f"{differing[k]}/{args.requests * args.rounds}"
            print(f"  {labels[k]:<40}{med[k]:>8.1f}{med[k] / med['alone']:>9.2f}"
                  f"{dec[k]:>8.1f}{dec[k] / dec['alone']:>9.2f}{diff:>14}")
        sys.stdout.flush()
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main()
