#!/usr/bin/env python3
"""Structured output: the cost of a JSON Schema constraint (llguidance) on decode speed and on the time to
the first token, on SmolLM2-135M-Instruct, in one run.

    python3 scripts/bench/bench_structured.py [--models fp32,int8] [--rounds 2] [--concurrent 4] [--no-alone] [--json FILE]

For every schema of tests/data/structured_schemas.json (the twelve the tests validate) and three RAG-style
requests in the model's chat template, greedy:
  constrained    the request with the schema as SphanaLlmGenerateParams.constraint; it ends when the JSON is
                 complete (its length is the model's);
  unconstrained  the same request with no constraint, EOS ignored, exactly as many tokens as the constrained
                 run generated (same KV lengths, same number of steps).
The two take turns request by request (which goes first alternates). Decode tokens/s = (tokens - 1) / the
time after the first token, summed over the set; the ratio is constrained / unconstrained (the goal: >= 0.9).
--concurrent C runs C requests at a time on one handle (continuous batching; each row its own schema) in
both modes, group by group taking turns, per-request decode tokens/s; "batched steps" counts each request's
steps that ran with another row (fewer in one mode: rows missed each other's batches).
Compile cost: constraint_ms of the first constrained call on a fresh handle (llguidance's token trie for the
vocabulary, built once per handle, plus that schema), then each schema's constraint_ms (median of its calls).
Prints the CPU model, the table, and a RESULT JSON line.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import threading
import time

import sphana_abi

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = {
    "fp32": os.path.join(ROOT, "assets", "models", "smollm2-135m-instruct"),
    "int8": os.path.join(ROOT, "assets", "models", "smollm2-135m-instruct-int8"),
}
ORT = os.path.join(ROOT, "assets", "onnxruntime", "1.23.2", "libonnxruntime.so")
SCHEMAS = os.path.join(ROOT, "tests", "data", "structured_schemas.json")

REQUESTS = [
    "Answer the question based on the following context: Context (Score: 0.87) The Eiffel Tower was completed "
    "in 1889 in Paris, France, and is 330 metres tall. Context (Score: 0.74) It was designed by the engineering "
    "company of Gustave Eiffel. Question: Describe the Eiffel Tower. Answer in JSON.",
    "Answer the question based on the following context: Context (Score: 0.91) The Great Barrier Reef, off the "
    "coast of Queensland, Australia, is the world's largest coral reef system. Question: Where is the reef? "
    "Answer in JSON.",
    "Reply with JSON only: summarise what a database index is for.",
]


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


class Runner:
    def __init__(self, lib: sphana_abi.Library, handle):
        self.lib, self.handle = lib, handle

    def chat(self, request: str, schema: str | None, max_new_tokens: int, ignore_eos: bool) -> sphana_abi.GenerateStats:
        content = request.encode()
        message = sphana_abi.ChatMessage(b"user", 4, content, len(content))
        params = self.lib.generate_params(max_new_tokens=max_new_tokens, ignore_eos=int(ignore_eos))
        keep = None
        if schema is not None:
            keep = schema.encode()
            constraint = sphana_abi.Constraint(ctypes.sizeof(sphana_abi.Constraint),
                                               sphana_abi.CONSTRAINT_JSON_SCHEMA, keep)
            params.constraint = ctypes.pointer(constraint)
        stats = sphana_abi.GenerateStats()
        stats.struct_size = ctypes.sizeof(stats)
        status = self.lib.lib.sphana_llm_generate_chat(self.handle, ctypes.byref(message), 1, ctypes.byref(params),
                                                       sphana_abi.NO_CALLBACK, None, None, ctypes.byref(stats))
        self.lib.check(status, "sphana_llm_generate_chat")
        del keep
        return stats


def decode_rate(stats: list) -> tuple[float, int]:
    tokens = sum(max(s.generated_tokens - 1, 0) for s in stats)
    seconds = sum(s.decode_ms for s in stats) / 1e3
    return tokens / max(seconds, 1e-9), tokens


def bench_model(lib, key: str, schemas: list[dict], rounds: int, concurrent: int, alone: bool) -> dict:
    handle = lib.load_model(MODELS[key], lib.load_options(ort_library_path=ORT.encode()))
    run = Runner(lib, handle)
    texts = [json.dumps(s["schema"]) for s in schemas]
    first = run.chat(REQUESTS[0], texts[0], 200, False)
    compile_ms: dict[str, list[float]] = {s["name"]: [] for s in schemas}
    # A first pass learns each constrained answer's length (greedy: the same every time) and warms up.
    lengths = {(i, j): run.chat(request, text, 200, False).generated_tokens
               for i, text in enumerate(texts) for j, request in enumerate(REQUESTS)}
    constrained, unconstrained = [], []
    incomplete = 0
    for r in range(rounds if alone else 0):
        for i, (s, text) in enumerate(zip(schemas, texts)):
            for j, request in enumerate(REQUESTS):
                first_side = (i + j + r) % 2
                for side in (first_side, 1 - first_side):
                    if side == 0:
                        c = run.chat(request, text, 200, False)
                        compile_ms[s["name"]].append(c.constraint_ms)
                        incomplete += c.finish_reason != sphana_abi.FINISH_EOS
                        constrained.append(c)
                    else:
                        unconstrained.append(run.chat(request, None, max(lengths[(i, j)], 1), True))
    alone_c, tokens = decode_rate(constrained) if alone else (float("nan"), 0)
    alone_u, _ = decode_rate(unconstrained) if alone else (float("nan"), 0)

    batch = {}
    if concurrent > 1:
        # Groups of `concurrent` jobs (each its own schema) run together in both modes; the modes take turns
        # group by group (which goes first alternates), over `rounds` rounds.
        jobs = [(REQUESTS[k % len(REQUESTS)], texts[k % len(texts)]) for k in range(len(texts))]
        groups = [list(range(s, min(s + concurrent, len(jobs)))) for s in range(0, len(jobs), concurrent)]
        out = {"constrained": [], "unconstrained": []}
        lengths: dict[int, int] = {}

        def run_group(mode: str, group: list[int]) -> list:
            results = {}

            def go(k):
                req, text = jobs[k]
                if mode == "constrained":
                    results[k] = run.chat(req, text, 200, False)
                else:
                    results[k] = run.chat(req, None, max(lengths[k], 1), True)

            threads = [threading.Thread(target=go, args=(k,)) for k in group]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return [results[k] for k in group]

        # Lengths first (a batched greedy answer is the same every time on fp32; INT8 rows may differ slightly
        # with the batch's composition, so the unconstrained twin takes the length of this first run).
        for group in groups:
            for k, st in zip(group, run_group("constrained", group)):
                lengths[k] = st.generated_tokens
        for r in range(rounds):
            for g, group in enumerate(groups):
                first_mode = ("constrained", "unconstrained")[(g + r) % 2]
                for mode in (first_mode, "unconstrained" if first_mode == "constrained" else "constrained"):
                    out[mode].extend(run_group(mode, group))
        for mode, stats in out.items():
            batch[mode] = decode_rate(stats)[0]
            batch[mode + "_batched_steps"] = sum(s.batched_steps for s in stats)
            batch[mode + "_tokens"] = sum(s.generated_tokens for s in stats)
    lib.free_model(handle)
    later = {name: statistics.median(v) if v else float("nan") for name, v in compile_ms.items()}
    return {
        "model": key,
        "constrained_tok_s": alone_c,
        "unconstrained_tok_s": alone_u,
        "ratio": alone_c / alone_u,
        "decode_tokens": tokens,
        "generations": len(constrained),
        "incomplete": incomplete,
        "first_constraint_ms": first.constraint_ms,
        "trie_ms": first.constraint_ms - later[schemas[0]["name"]],
        "compile_ms": later,
        "concurrent": concurrent,
        "concurrent_constrained_tok_s": batch.get("constrained"),
        "concurrent_unconstrained_tok_s": batch.get("unconstrained"),
        "concurrent_ratio": (batch["constrained"] / batch["unconstrained"]) if batch else None,
        "concurrent_batched_steps": batch.get("constrained_batched_steps"),
        "concurrent_unconstrained_batched_steps": batch.get("unconstrained_batched_steps"),
        "concurrent_tokens": batch.get("constrained_tokens"),
        "concurrent_unconstrained_tokens": batch.get("unconstrained_tokens"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fp32,int8")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--concurrent", type=int, default=4)
    ap.add_argument("--no-alone", action="store_true", help="skip the one-at-a-time comparison")
    ap.add_argument("--json")
    args = ap.parse_args()
    lib = sphana_abi.load()
    with open(SCHEMAS) as f:
        schemas = json.load(f)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); sphana-llm {lib.version()}, ONNX Runtime 1.23.2; "
          f"{len(schemas)} schemas x {len(REQUESTS)} requests x {args.rounds} round(s), greedy")
    results = []
    for key in args.models.split(","):
        t0 = time.time()
        r = bench_model(lib, key, schemas, args.rounds, args.concurrent, not args.no_alone)
        results.append(r)
        print(f"\n[{key}] {r['generations']} constrained generations ({r['incomplete']} not complete), "
              f"{r['decode_tokens']} decode tokens, {time.time() - t0:.0f} s")
        print(f"  alone:        constrained {r['constrained_tok_s']:7.1f} tok/s, unconstrained "
              f"{r['unconstrained_tok_s']:7.1f} tok/s, ratio {r['ratio']:.3f}")
        if r["concurrent_ratio"] is not None:
            print(f"  {args.concurrent} at a time: constrained {r['concurrent_constrained_tok_s']:7.1f} tok/s per request, "
                  f"unconstrained {r['concurrent_unconstrained_tok_s']:7.1f}, ratio {r['concurrent_ratio']:.3f} "
                  f"(batched steps {r['concurrent_batched_steps']} vs {r['concurrent_unconstrained_batched_steps']}, "
                  f"tokens {r['concurrent_tokens']} vs {r['concurrent_unconstrained_tokens']})")
        print(f"  first constrained call: {r['first_constraint_ms']:.1f} ms (token trie {r['trie_ms']:.1f} ms + schema)")
        for name, ms in (r["compile_ms"].items() if not args.no_alone else ()):
            print(f"    compile {name:28s} {ms:6.2f} ms")
    line = json.dumps({"cpu": cpu_model(), "results": results})
    print("RESULT " + line)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
