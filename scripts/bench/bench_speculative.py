#!/usr/bin/env python3
"""Speculative decoding by prompt lookup on extractive RAG answers and on open-ended ones: sphana-llm
with it on (several draft lengths) and off, and onnxruntime-genai 0.18 with its default decoding and with
its own n-gram speculation, side by side in one run, on the same ONNX file and the same prompt ids.

    python3 scripts/bench/bench_speculative.py [--models fp32,int8] [--sides ...] [--new-tokens 128]
                                               [--concurrent 4] [--threads 0] [--json FILE]

Prompts (built here, not written by this project):
  extractive  24 RAG prompts in Sphana.Database's shape ("Answer the question based on the following
              context: Context (Score: 0.87) ... Question: ... Answer:"), each with 5 passages (300 to 500
              tokens) from the Python documentation this interpreter ships (pydoc_data.topics, the language
              reference behind help()), the first one about what the question asks ("What does the context
              say about attribute access?"), in SmolLM2's chat template (rendered with jinja2 from the model's
              tokenizer_config.json, ids from HF `tokenizers` on its tokenizer.json). SmolLM2-135M answers
              them partly by copying and partly in its own words (and sometimes loops, as greedy decoding of
              a small model does), which is what the acceptance rate reflects.
  open        8 open-ended requests (a story, an explanation, ...), the same template.
Every side generates greedily up to --new-tokens tokens and stops at the model's EOS, so the answers
are the model's own; decode tokens/s = (tokens - 1) / the time after the first token, summed over a
set. Float32 ids must equal across sphana's sides (the test suite proves it token for token); INT8
differences are counted (DynamicQuantizeLinear picks one activation scale per run).

Sides (each a long-lived worker process; they take turns prompt by prompt, the order rotating):
  sphana@V-kN[-nM]  libsphana_llm.so on ONNX Runtime V (1.23.2 or 1.32.0), prompt_lookup_tokens N (0: off),
               prompt_lookup_ngram M (default 3)
  genai        onnxruntime-genai 0.18.0 (assets/.venv-genai, ORT 1.32.0), default decoding
  genai-ngram  the same with set_speculative_options(ngram_size=3, max_draft_tokens=8), its n-gram
               speculation (batch size 1 only in 0.18)
--concurrent C also runs the extractive set C requests at a time: sphana's on one handle (continuous
batching, drafts verified in the batched run), genai's as C threads each with its own Generator on
one og.Model (genai's n-gram speculation needs batch size 1); per-request decode tokens/s.
Prints the CPU model, a table with ratios against sphana off and against genai, and a RESULT JSON line.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import threading
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
BENCH_DIR = os.path.join(ROOT, "assets", "bench", "genai-speculative")
DEFAULT_SIDES = "sphana@1.32.0-k0,sphana@1.32.0-k4,sphana@1.32.0-k8,sphana@1.32.0-k16,genai,genai-ngram"

# ================================================================================================
# prompts

OPEN_ENDED = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain why the sky is blue to a ten-year-old.",
    "Give me five tips for learning a new language.",
    "Describe a perfect autumn day in the countryside.",
    "What are the advantages and disadvantages of working from home?",
    "Write a poem about the ocean at night.",
    "How does a bicycle stay upright when it moves?",
    "Plan a three-day trip to a city you like and say why.",
]


def doc_passages() -> list[tuple[str, str]]:
    """(subject, paragraph) from the Python documentation this interpreter ships (`pydoc_data.topics`, the
    language reference's sections behind `help()`): per topic, the first of its 2nd to 4th paragraphs that is
    prose of 200 to 700 characters (no grammar rules, code or doctest); the subject is the topic's name in
    words ("attribute-access" -> "attribute access")."""
    import re

    import pydoc_data.topics

    out = []
    for name in sorted(pydoc_data.topics.topics):
        paragraphs = [" ".join(p.split()) for p in pydoc_data.topics.topics[name].split("\n\n")]
        for p in paragraphs[1:4]:
            if 200 <= len(p) <= 700 and not re.search(r"[{}\[\]=]{2,}|::=|>>>", p) and p[0].isupper():
                subject = re.sub(r"^(bltin|typesseq|types|atom)-", "", name).replace("-", " ")
                out.append((subject, p))
                break
    return out


def chat_ids(model_dir: str, messages: list[dict]) -> list[int]:
    import jinja2
    from tokenizers import Tokenizer

    cfg = json.load(open(os.path.join(model_dir, "tokenizer_config.json")))
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(cfg["chat_template"]).render(messages=messages, add_generation_prompt=True,
                                                         bos_token=cfg.get("bos_token"), eos_token=cfg.get("eos_token"))
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    return tok.encode(text, add_special_tokens=False).ids


def prompt_sets(model_dir: str, extractive: int = 24, passages: int = 5) -> dict[str, list[list[int]]]:
    docs = doc_passages()
    assert len(docs) >= extractive * 2, f"only {len(docs)} paragraphs"
    step = len(docs) // extractive
    sets: dict[str, list[list[int]]] = {"extractive": [], "open": []}
    for i in range(extractive):
        target = i * step
        # The passage that answers first (the best score), then others, as a retriever ranks them.
        chosen = [target] + [(target + 1 + j * 11) % len(docs) for j in range(passages - 1)]
        context = " ".join(f"Context (Score: {0.87 - 0.04 * k:.2f}) {docs[d][1]}" for k, d in enumerate(chosen))
        question = f"What does the context say about {docs[target][0]}?"
        content = f"Answer the question based on the following context: {context} Question: {question} Answer:"
        sets["extractive"].append(chat_ids(model_dir, [{"role": "user", "content": content}]))
    for q in OPEN_ENDED:
        sets["open"].append(chat_ids(model_dir, [{"role": "user", "content": q}]))
    return sets


# ================================================================================================
# workers


def emit(obj) -> None:
    sys.stdout.write("RESULT " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def worker_sphana(args) -> None:
    abi = sphana_abi.load(args.lib)
    options = abi.load_options(ort_library_path=args.ort_lib.encode(), intra_op_threads=args.threads)
    handle = abi.load_model(args.model, options)
    emit({"ready": True})

    def one(prompt: list[int], n: int, k: int) -> dict:
        out = (sphana_abi.c_int32 * n)()
        params = abi.generate_params(max_new_tokens=n, out_token_ids=out, out_token_ids_capacity=n,
                                     prompt_lookup_tokens=k, prompt_lookup_ngram=args.ngram)
        res = abi.generate_from_ids(handle, prompt, params)
        s = res["stats"]
        return {"ids": list(out)[: s.generated_tokens], "prefill_ms": s.prefill_ms, "decode_ms": s.decode_ms,
                "drafted": s.draft_tokens, "accepted": s.accepted_draft_tokens}

    for line in sys.stdin:
        req = json.loads(line)
        emit(run_requests(one, req["prompts"], req["n"], args.lookup))


def worker_genai(args) -> None:
    import onnxruntime_genai as og

    model = og.Model(args.model)
    emit({"ready": True, "version": og.__version__})

    def one(prompt: list[int], n: int, k: int) -> dict:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(prompt) + n, min_length=0, do_sample=False, num_beams=1)
        if k:
            params.set_speculative_options(ngram_size=3, max_draft_tokens=k)
        t0 = time.perf_counter()
        gen = og.Generator(model, params)
        gen.append_tokens(prompt)
        t1 = time.perf_counter()
        while not gen.is_done():
            gen.generate_next_token()
        t2 = time.perf_counter()
        seq = [int(x) for x in gen.get_sequence(0)][len(prompt):]
        eos = model_eos
        if seq and seq[-1] in eos:
            seq = seq[:-1]
        return {"ids": seq, "prefill_ms": (t1 - t0) * 1e3, "decode_ms": (t2 - t1) * 1e3,
                "drafted": None, "accepted": None}

    cfg = json.load(open(os.path.join(args.model, "genai_config.json")))
    eos_cfg = cfg["model"]["eos_token_id"]
    model_eos = set(eos_cfg if isinstance(eos_cfg, list) else [eos_cfg])
    for line in sys.stdin:
        req = json.loads(line)
        emit(run_requests(one, req["prompts"], req["n"], args.lookup))


def run_requests(one, prompts: list[list[int]], n: int, k: int) -> dict:
    """Runs the prompts at once (one thread each when several) and returns each one's result."""
    results: list = [None] * len(prompts)
    errors: list = []

    def go(i: int) -> None:
        try:
            results[i] = one(prompts[i], n, k)
        except BaseException as e:  # reported below
            errors.append(repr(e))

    if len(prompts) == 1:
        go(0)
    else:
        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        return {"error": errors[0]}
    return {"results": results}


class Worker:
    def __init__(self, side: str, model_key: str, threads: int, lib: str):
        me = os.path.abspath(__file__)
        if side.startswith("sphana@"):
            version, *knobs = side[len("sphana@"):].split("-")
            k = next((x[1:] for x in knobs if x.startswith("k")), "0")
            ngram = next((x[1:] for x in knobs if x.startswith("n")), "3")
            cmd = [sys.executable, me, "--worker", "sphana", "--ort-lib", ORT_LIBS[version],
                   "--model", MODELS[model_key], "--lookup", k, "--ngram", ngram]
        elif side in ("genai", "genai-ngram"):
            d = genai_model.genai_dir(MODELS[model_key], os.path.join(BENCH_DIR, f"{model_key}-t{threads}"), threads)
            cmd = [GENAI_PY, me, "--worker", "genai", "--model", d, "--lookup", "8" if side == "genai-ngram" else "0"]
        else:
            raise ValueError(side)
        cmd += ["--threads", str(threads), "--lib", lib]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads or os.cpu_count()))
        env.pop("ORT_DYLIB_PATH", None)
        self.side = side
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     bufsize=1)
        self.info = self._read()

    def _read(self):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.side} exited (rc={self.proc.wait()})")
            if line.startswith("RESULT "):
                return json.loads(line[7:])

    def run(self, prompts, n):
        self.proc.stdin.write(json.dumps({"prompts": prompts, "n": n}) + "\n")
        self.proc.stdin.flush()
        res = self._read()
        if "error" in res:
            raise RuntimeError(f"{self.side}: {res['error']}")
        return res["results"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


# ================================================================================================
# coordinator


def cpu_model() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def summarize(rows: list[dict]) -> dict:
    tokens = sum(max(len(r["ids"]) - 1, 0) for r in rows)
    decode_s = sum(r["decode_ms"] for r in rows) / 1e3
    drafted = sum(r["drafted"] or 0 for r in rows)
    accepted = sum(r["accepted"] or 0 for r in rows)
    per_request = [max(len(r["ids"]) - 1, 0) / (r["decode_ms"] / 1e3) for r in rows if r["decode_ms"] > 0]
    return {"tokens": tokens, "decode_tok_s": tokens / decode_s if decode_s else 0.0,
            "median_request_tok_s": statistics.median(per_request) if per_request else 0.0,
            "prefill_ms": statistics.median(r["prefill_ms"] for r in rows),
            "drafted": drafted, "accepted": accepted,
            "acceptance": accepted / drafted if drafted else None,
            "accepted_per_token": accepted / tokens if tokens else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.environ.get("SPHANA_LLM_LIB", sphana_abi.RELEASE_LIB))
    ap.add_argument("--models", default="fp32,int8")
    ap.add_argument("--sides", default=DEFAULT_SIDES)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ONNX Runtime's choice)")
    ap.add_argument("--concurrent", type=int, default=0)
    ap.add_argument("--sets", default="extractive,open")
    ap.add_argument("--limit", type=int, default=0, help="only the first N prompts of each set (a quick look)")
    ap.add_argument("--json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--ort-lib", help=argparse.SUPPRESS)
    ap.add_argument("--lookup", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--ngram", type=int, default=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        {"sphana": worker_sphana, "genai": worker_genai}[args.worker](args)
        return

    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); greedy, up to {args.new_tokens} tokens, EOS "
          f"ends an answer; sides take turns prompt by prompt")
    sides = args.sides.split(",")
    everything = []
    for model_key in args.models.split(","):
        sets = prompt_sets(MODELS[model_key])
        if args.limit:
            sets = {k: v[: max(args.limit, args.concurrent)] for k, v in sets.items()}
        lens = {k: (min(map(len, v)), max(map(len, v))) for k, v in sets.items()}
        print(f"\n### {model_key}: prompts {lens}")
        workers = {s: Worker(s, model_key, args.threads, args.lib) for s in sides}
        for w in workers.values():  # warm-up
            w.run([sets["open"][0]], 4)
        runs: dict = {}
        jobs = [(name, [p]) for name in args.sets.split(",") for p in sets[name]]
        if args.concurrent > 1:
            ex = sets["extractive"]
            jobs += [(f"extractive x{args.concurrent}", ex[i:i + args.concurrent])
                     for i in range(0, len(ex) - args.concurrent + 1, args.concurrent)]
        for j, (name, prompts) in enumerate(jobs):
            order = sides[j % len(sides):] + sides[: j % len(sides)]
            for s in order:
                runs.setdefault((name, s), []).extend(workers[s].run(prompts, args.new_tokens))
        for w in workers.values():
            w.close()
        names = list(dict.fromkeys(name for name, _ in jobs))
        base = sides[0]
        genai = "genai" if "genai" in sides else None
        print(f"| set | side | decode tok/s | ×{base} | ×genai | median request tok/s | prefill ms | "
              "acceptance | accepted / token | ids = " + base + " |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for name in names:
            ref = summarize(runs[(name, base)])
            g = summarize(runs[(name, genai)]) if genai else None
            for s in sides:
                rows = runs[(name, s)]
                x = summarize(rows)
                same = sum(a["ids"] == b["ids"] for a, b in zip(rows, runs[(name, base)]))
                x.update({"model": model_key, "set": name, "side": s, "same_ids": same, "requests": len(rows)})
                everything.append(x)
                acc = f"{x['acceptance']:.2f}" if x["acceptance"] is not None else "-"
                apt = f"{x['accepted_per_token']:.2f}" if x["accepted_per_token"] is not None else "-"
                vs_g = f"{x['decode_tok_s'] / g['decode_tok_s']:.2f}" if g else "-"
                print(f"| {name} | {s} | {x['decode_tok_s']:.1f} | {x['decode_tok_s'] / ref['decode_tok_s']:.2f} | "
                      f"{vs_g} | {x['median_request_tok_s']:.1f} | {x['prefill_ms']:.0f} | {acc} | {apt} | "
                      f"{same}/{len(rows)} |")
    print("RESULT " + json.dumps(everything))
    if args.json:
        json.dump(everything, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
