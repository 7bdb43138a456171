#!/usr/bin/env python3
"""Greedy generation speed: sphana-llm (C ABI via ctypes) vs onnxruntime-genai vs a plain Python
ONNX Runtime KV-cache loop, on SmolLM2-135M-Instruct float32 and INT8 (the same ONNX files for
every side), 1 and 2 intra-op threads, a short (37-token ChatML) and a long (512-token) prompt.

    python3 scripts/bench/bench_generate.py [--rounds 3] [--new-tokens 32] [--threads 1,2]

Every side runs in its own long-lived worker process (ONNX Runtime is loaded once per process and
a process can hold only one ORT version): the coordinator starts the workers of one
(model, threads) configuration, then sends them one generation at a time, alternating the sides
in every round (the order rotates from round to round), and reports medians over the rounds.

Sides:
  sphana        libsphana_llm.so, sphana_llm_generate_from_ids, ORT 1.23.2 (assets/onnxruntime/1.23.2)
  sphana@1.32   the same library loading ORT 1.32.0 (assets/onnxruntime/1.32.0): the ORT version
                onnxruntime-genai 0.18 needs, so the genai comparison is not an ORT-version comparison
  genai         onnxruntime-genai 0.18.0 (venv assets/.venv-genai, its onnxruntime 1.32.0)
  ort-python    onnxruntime 1.23.2 Python API, numpy inputs, past = present of the previous run
  ort-python@1.32  (optional, --sides) the same loop on the venv's onnxruntime 1.32.0

All generate --new-tokens tokens with EOS ignored: one prefill run, then new_tokens - 1 decode runs
(the last token is picked from the logits of the last run). genai has no "ignore EOS", so its
genai_config.json names an EOS id that never comes up (min_length would instead forbid EOS and
change the ids).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import genai_model
import sphana_abi

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = {
    "fp32": os.path.join(ROOT, "assets", "models", "smollm2-135m-instruct"),
    "int8": os.path.join(ROOT, "assets", "models", "smollm2-135m-instruct-int8"),
}
ORT_LIBS = {
    "1.23.2": os.path.join(ROOT, "assets", "onnxruntime", "1.23.2", "libonnxruntime.so"),
    "1.32.0": os.path.join(ROOT, "assets", "onnxruntime", "1.32.0", "libonnxruntime.so"),
}
GENAI_PY = os.path.join(ROOT, "assets", ".venv-genai", "bin", "python")
BENCH_DIR = os.path.join(ROOT, "assets", "bench", "genai")
GOLDEN = os.path.join(ROOT, "tests", "golden", "models", "smollm2.json")
TEXT = os.path.join(ROOT, "assets", "texts", "multilingual_1mb.txt")
# genai stops at eos_token_id; this id (the last one of the vocabulary) never comes up in these runs,
# which is checked: a side that generates it fails the run.
GENAI_NEVER_EOS = 49151

SIDES = ["sphana", "sphana@1.32", "genai", "ort-python"]


# ================================================================================================
# workers


def emit(obj) -> None:
    sys.stdout.write("RESULT " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def worker_sphana(args):
    abi = sphana_abi.load(args.lib)
    options = abi.load_options(ort_library_path=args.ort_lib.encode(), intra_op_threads=args.threads)
    handle = abi.load_model(args.model, options)
    emit({"ready": True})
    for line in sys.stdin:
        req = json.loads(line)
        prompt, n = req["prompt"], req["n"]
        res = abi.greedy_from_ids(handle, prompt, n)
        stats = res["stats"]
        emit({
            "ids": res["ids"],
            "prefill_ms": stats.prefill_ms,
            "decode_ms": stats.decode_ms,
            # session_run_ms includes the prefill run; prefill_ms (>= the prefill run) is subtracted,
            # so this is a lower bound of the decode runs' time and the overhead an upper bound.
            "decode_run_ms": stats.session_run_ms - stats.prefill_ms,
            "wall_ms": (res["end"] - res["start"]) * 1e3,
            "cpu_ms": res["cpu_s"] * 1e3,
        })


def worker_genai(args):
    import onnxruntime_genai as og

    model = og.Model(args.model)  # a folder with genai_config.json
    emit({"ready": True, "version": og.__version__})
    for line in sys.stdin:
        req = json.loads(line)
        prompt, n = req["prompt"], req["n"]
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(prompt) + n, min_length=0, do_sample=False, num_beams=1)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        gen = og.Generator(model, params)
        gen.append_tokens(prompt)  # runs the prompt (prefill)
        t1 = time.perf_counter()
        while not gen.is_done():  # first call picks from the prefill logits; later ones run one step first
            gen.generate_next_token()
        t2 = time.perf_counter()
        cpu = (time.thread_time() - c0) * 1e3
        seq = [int(x) for x in gen.get_sequence(0)]
        assert seq[: len(prompt)] == list(prompt)
        emit({
            "ids": seq[len(prompt):],
            "prefill_ms": (t1 - t0) * 1e3,
            "decode_ms": (t2 - t1) * 1e3,
            "decode_run_ms": None,
            "wall_ms": (t2 - t0) * 1e3,
            "cpu_ms": cpu,
        })


def worker_ort_python(args):
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.log_severity_level = 3
    sess = ort.InferenceSession(os.path.join(args.model, "model.onnx"), so, providers=["CPUExecutionProvider"])
    in_names = {i.name for i in sess.get_inputs()}
    out_names = [o.name for o in sess.get_outputs()]
    past_inputs = [i for i in sess.get_inputs() if i.name.startswith("past_key_values.")]
    emit({"ready": True, "version": ort.__version__})
    for line in sys.stdin:
        req = json.loads(line)
        prompt, n = req["prompt"], req["n"]
        c0 = time.thread_time()
        t0 = time.perf_counter()
        x = np.array([prompt], dtype=np.int64)
        past = {i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), dtype=np.float32) for i in past_inputs}
        total = 0
        new = []
        run_ms = []
        t1 = None
        for step in range(n):
            s = x.shape[1]
            feed = {"input_ids": x, "attention_mask": np.ones((1, total + s), dtype=np.int64)}
            if "position_ids" in in_names:
                feed["position_ids"] = np.arange(total, total + s, dtype=np.int64)[None]
            feed.update(past)
            r0 = time.perf_counter()
            outs = sess.run(out_names, feed)
            run_ms.append((time.perf_counter() - r0) * 1e3)
            total += s
            res = dict(zip(out_names, outs))
            tok = int(np.argmax(res["logits"][0, -1]))
            new.append(tok)
            if step == 0:
                t1 = time.perf_counter()  # prefill = first run + first argmax, as the others
            if step + 1 < n:
                past = {k.replace("present.", "past_key_values."): v for k, v in res.items() if k.startswith("present.")}
                x = np.array([[tok]], dtype=np.int64)
        t2 = time.perf_counter()
        cpu = (time.thread_time() - c0) * 1e3
        emit({
            "ids": new,
            "prefill_ms": (t1 - t0) * 1e3,
            "decode_ms": (t2 - t1) * 1e3,
            "decode_run_ms": sum(run_ms[1:]),
            "wall_ms": (t2 - t0) * 1e3,
            "cpu_ms": cpu,
        })


# ================================================================================================
# coordinator


def genai_dir(model_key: str, threads: int) -> str:
    """assets/bench/genai/<model>-t<threads>/: links to the model's files + genai_config.json."""
    d = os.path.join(BENCH_DIR, f"{model_key}-t{threads}")
    # The real EOS is the model's; see the module docstring.
    return genai_model.genai_dir(MODELS[model_key], d, threads, eos_token_id=GENAI_NEVER_EOS)


class Worker:
    def __init__(self, side: str, model_key: str, threads: int, lib: str):
        me = os.path.abspath(__file__)
        if side == "sphana":
            cmd = [sys.executable, me, "--worker", "sphana", "--ort-lib", ORT_LIBS["1.23.2"], "--model", MODELS[model_key]]
        elif side == "sphana@1.32":
            cmd = [sys.executable, me, "--worker", "sphana", "--ort-lib", ORT_LIBS["1.32.0"], "--model", MODELS[model_key]]
        elif side == "genai":
            cmd = [GENAI_PY, me, "--worker", "genai", "--model", genai_dir(model_key, threads)]
        elif side == "ort-python":
            cmd = [sys.executable, me, "--worker", "ort-python", "--model", MODELS[model_key]]
        elif side == "ort-python@1.32":
            cmd = [GENAI_PY, me, "--worker", "ort-python", "--model", MODELS[model_key]]
        else:
            raise ValueError(side)
        cmd += ["--threads", str(threads), "--lib", lib]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        env.pop("ORT_DYLIB_PATH", None)
        self.side = side
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.info = None

    def wait_ready(self):
        self.info = self._read()

    def _read(self):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.side} exited (rc={self.proc.wait()})")
            if line.startswith("RESULT "):
                return json.loads(line[7:])

    def run(self, prompt, n):
        self.proc.stdin.write(json.dumps({"prompt": prompt, "n": n}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def prompts() -> dict:
    from tokenizers import Tokenizer

    golden = json.load(open(GOLDEN))
    short = golden["prompt_ids"]
    tok = Tokenizer.from_file(os.path.join(MODELS["fp32"], "tokenizer.json"))
    text = open(TEXT, "rb").read()[:16384].decode("utf-8", errors="ignore")
    long = tok.encode(text, add_special_tokens=False).ids[:512]
    assert len(short) == 37 and len(long) == 512
    return {"chat-37": short, "text-512": long}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.environ.get("SPHANA_LLM_LIB", sphana_abi.RELEASE_LIB))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default="fp32,int8")
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--json", help="also write all figures to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--ort-lib", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        args.threads = int(args.threads)
        {"sphana": worker_sphana, "genai": worker_genai, "ort-python": worker_ort_python}[args.worker](args)
        return

    n = args.new_tokens
    sides = args.sides.split(",")
    ps = prompts()
    results = []  # one row per (model, threads, prompt, side)
    mismatches = []
    t_start = time.time()
    print(f"{n} new tokens, EOS ignored, greedy; {args.rounds} rounds, medians; sides alternate in every round "
          f"(order rotates)")
    for model_key in args.models.split(","):
        for threads in [int(t) for t in args.threads.split(",")]:
            workers = {s: Worker(s, model_key, threads, args.lib) for s in sides}  # they load in parallel
            for w in workers.values():
                w.wait_ready()
            # warm-up: one short generation per side (first runs allocate ORT's arenas)
            for w in workers.values():
                w.run(ps["chat-37"], 4)
            runs = {(p, s): [] for p in ps for s in sides}
            for r in range(args.rounds):
                for pname, prompt in ps.items():
                    order = sides[r % len(sides):] + sides[: r % len(sides)]
                    for s in order:
                        res = workers[s].run(prompt, n)
                        assert len(res["ids"]) == n, (s, len(res["ids"]))
                        assert GENAI_NEVER_EOS not in res["ids"], "the id used as genai's EOS came up"
                        runs[(pname, s)].append(res)
            for w in workers.values():
                w.close()
            for pname, prompt in ps.items():
                ref = runs[(pname, sides[0])][0]["ids"]
                for s in sides:
                    rs = runs[(pname, s)]
                    ids = rs[0]["ids"]
                    same = ids == ref
                    if not same:
                        first = next(i for i, (a, b) in enumerate(zip(ids, ref)) if a != b)
                        mismatches.append(f"{model_key} t{threads} {pname}: {s} differs from {sides[0]} "
                                          f"from new token {first} ({ids[first]} vs {ref[first]})")
                    if any(x["ids"] != ids for x in rs):
                        mismatches.append(f"{model_key} t{threads} {pname}: {s} not deterministic across rounds")
                    prefill = med([x["prefill_ms"] for x in rs])
                    decode = med([x["decode_ms"] for x in rs])
                    overhead = med([(x["decode_ms"] - x["decode_run_ms"]) / (n - 1) if x["decode_run_ms"] is not None
                                    else None for x in rs])
                    results.append({
                        "model": model_key, "threads": threads, "prompt": pname, "prompt_tokens": len(prompt),
                        "side": s, "prefill_ms": prefill, "decode_ms": decode, "wall_ms": med([x["wall_ms"] for x in rs]),
                        "cpu_ms": med([x["cpu_ms"] for x in rs]),
                        "prefill_ms_best": min(x["prefill_ms"] for x in rs),
                        "decode_ms_best": min(x["decode_ms"] for x in rs),
                        "rounds_prefill_ms": [x["prefill_ms"] for x in rs],
                        "rounds_decode_ms": [x["decode_ms"] for x in rs],
                        "prefill_tok_s": len(prompt) / prefill * 1e3, "decode_tok_s": (n - 1) / decode * 1e3,
                        "overhead_ms_per_step": overhead, "same_ids": same, "first_ids": ids[:12],
                    })
            print(f"  done {model_key} t{threads} ({time.time() - t_start:.0f} s)", file=sys.stderr)

    def row(m, t, p, s):
        return next(x for x in results if (x["model"], x["threads"], x["prompt"], x["side"]) == (m, t, p, s))

    print("\n## Per side (medians). prefill tok/s = prompt tokens / prefill time; decode tok/s = "
          f"{n - 1} decode runs / time after prefill")
    print("| model | threads | prompt | side | prefill ms | prefill tok/s | decode tok/s | ms/decode step | "
          "overhead outside session.run ms/step | overhead share | ids = sphana |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|")
    for x in results:
        step = x["decode_ms"] / (n - 1)
        ov = x["overhead_ms_per_step"]
        ovs = f"{ov:.3f}" if ov is not None else "n/a"
        share = f"{ov / step * 100:.2f}%" if ov is not None else "n/a"
        print(f"| {x['model']} | {x['threads']} | {x['prompt']} | {x['side']} | {x['prefill_ms']:.1f} | "
              f"{x['prefill_tok_s']:.0f} | {x['decode_tok_s']:.2f} | {step:.2f} | {ovs} | {share} | "
              f"{'yes' if x['same_ids'] else 'NO'} |")

    peers = [s for s in sides if s != "sphana"]
    pairs = [("sphana", p) for p in peers]
    if "genai" in sides and "sphana@1.32" in sides:
        pairs.append(("sphana@1.32", "genai"))  # same ORT version (1.32.0)
    if pairs:
        for title, pk, dk in [("medians", "prefill_ms", "decode_ms"), ("best of the rounds", "prefill_ms_best", "decode_ms_best")]:
            print(f"\n## Ratios, {title}: speed of A ÷ speed of B (> 1: A faster). "
                  "sphana@1.32 vs genai is at the same ORT version")
            hdr = [f"{q} {a} vs {b}" for a, b in pairs for q in ("prefill", "decode")]
            print("| model | threads | prompt | " + " | ".join(hdr) + " |")
            print("|---|---:|---|" + "---:|" * len(hdr))
            for m in args.models.split(","):
                for t in [int(t) for t in args.threads.split(",")]:
                    for p in ps:
                        cells = []
                        for a, b in pairs:
                            ra, rb = row(m, t, p, a), row(m, t, p, b)
                            cells += [f"{rb[pk] / ra[pk]:.2f}×", f"{rb[dk] / ra[dk]:.2f}×"]
                        print(f"| {m} | {t} | {p} | " + " | ".join(cells) + " |")

    if pairs and 1 in [int(t) for t in args.threads.split(",")]:
        print("\n## Ratios, 1 intra-op thread, CPU time of the calling thread for the whole generation (medians): "
              "B ÷ A (> 1: A uses less). With one intra-op thread ORT runs every op on the calling thread, so this "
              "leaves out time the VM gave to other processes")
        hdr = [f"{a} vs {b}" for a, b in pairs]
        print("| model | prompt | " + " | ".join(hdr) + " |")
        print("|---|---|" + "---:|" * len(hdr))
        for m in args.models.split(","):
            for p in ps:
                cells = [f"{row(m, 1, p, b)['cpu_ms'] / row(m, 1, p, a)['cpu_ms']:.2f}×" for a, b in pairs]
                print(f"| {m} | {p} | " + " | ".join(cells) + " |")

    print("\n## Greedy ids across sides")
    if mismatches:
        for mm in mismatches:
            print("  " + mm)
    else:
        print("  identical on every side, model, thread count and prompt")
    for m in args.models.split(","):
        for p in ps:
            print(f"  {m} {p}: first new ids {row(m, int(args.threads.split(',')[0]), p, sides[0])['first_ids']}")
    print(f"\ntotal {time.time() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"new_tokens": n, "rounds": args.rounds, "results": results, "mismatches": mismatches}, f, indent=1)


if __name__ == "__main__":
    main()
