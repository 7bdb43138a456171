#!/usr/bin/env python3
"""Time to first token and peak memory of a RAG-shaped prefill, with and without the load-time
logits rewrite, side by side in one run (issue: logits only where needed).

    python3 scripts/bench/bench_prefill.py [--models DIR ...] [--tokens 1000 4000] [--rounds 3]
                                           [--chunks 256 512 1024] [--genai] [--no-one-run]

Each measurement is a fresh `sphana-llm generate` process (release build) on a prompt shaped like
Sphana.Database's ("Answer the question based on the following context: Context (Score: 0.87) ...
Question: ... Answer:") of about N tokens, generating one token: the prefill time comes from the CLI's
statistics line, the peak RSS from the process's rusage. Sides: `all positions` (`--all-position-logits`:
the graph as exported, the prompt in one run), `rewritten` (the head runs on the last position only, one
run) and `rewritten, chunks N` (the prompt read in runs of N tokens, `--prefill-chunk N`). Rounds alternate
the sides; the table shows medians and the speed-up over `all positions`. Prints the CPU model.

`--genai` adds onnxruntime-genai 0.18.0 (its venv assets/.venv-genai and ONNX Runtime 1.32.0, see bench.sh):
a fresh Python process that loads the same file (`og.Model`, a genai_config.json beside links to the model's
files) and times `Generator.append_tokens` of the same prompt's ids (HF `tokenizers` on the same tokenizer.json,
specials added as its post-processor says, as the CLI does; the token counts are checked equal); its peak RSS
includes the Python interpreter (~10 MiB).
Beside it `sphana@1.32` runs the CLI with the default settings (logits rewrite, 256-token chunks) on ONNX
Runtime 1.32.0, so that pair compares the engines at one ORT version; the table then adds sphana's speed-up
over genai and the RSS difference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ORT = [""]  # set from --ort
PASSAGES = [
    "The Rhine is a river that flows from the Swiss Alps through Germany and the Netherlands to the North Sea. "
    "It is about 1,230 kilometres long and has been an important trade route since Roman times.",
    "Photosynthesis converts light energy into chemical energy. In plants it takes place in chloroplasts, "
    "where chlorophyll absorbs mostly blue and red light and water is split to release oxygen.",
    "The Treaty of Westphalia, signed in 1648, ended the Thirty Years' War and is often cited as the origin "
    "of the modern system of sovereign states in Europe.",
    "A hash table stores key-value pairs in an array of buckets; a hash function maps each key to a bucket, "
    "and collisions are resolved by chaining or open addressing.",
    "Mount Kilimanjaro in Tanzania is the highest mountain in Africa, rising 5,895 metres above sea level. "
    "Its three volcanic cones are Kibo, Mawenzi and Shira.",
]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def rag_prompt(tokenizer, target: int) -> tuple[str, int]:
    """Sphana's prompt with enough scored passages for about `target` tokens."""
    head = "Answer the question based on the following context:\n\n"
    tail = "\nQuestion: How long is the Rhine, and where does it flow?\nAnswer:"
    body, i = [], 0
    while True:
        passage = f"Context (Score: {0.91 - 0.01 * (i % 40):.2f}): {PASSAGES[i % len(PASSAGES)]}\n"
        candidate = head + "".join(body + [passage]) + tail
        if len(tokenizer.encode(candidate).ids) > target:
            break
        body.append(passage)
        i += 1
    prompt = head + "".join(body) + tail
    return prompt, len(tokenizer.encode(prompt).ids)


GENAI_PY = ROOT / "assets" / ".venv-genai" / "bin" / "python"
ORT_132 = ROOT / "assets" / "onnxruntime" / "1.32.0" / "libonnxruntime.so"


def genai_worker(model_dir: str) -> int:
    """Runs in the genai venv: one prefill of the prompt on stdin, a CLI-like statistics line on stderr."""
    import time

    import onnxruntime_genai as og

    model = og.Model(model_dir)
    ids = [int(i) for i in json.loads(sys.stdin.read())]
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1, min_length=0, do_sample=False, num_beams=1)
    t0 = time.perf_counter()
    gen = og.Generator(model, params)
    gen.append_tokens(ids)  # the prefill: the prompt in one run, logits of every position
    ms = (time.perf_counter() - t0) * 1e3
    print(f"[{len(ids)} prompt tokens, onnxruntime-genai {og.__version__}, prefill {ms:.0f} ms]", file=sys.stderr)
    return 0


def run_measured(cli, model, prompt, side_args, threads, ort=None):
    """(prefill ms, prompt tokens, peak RSS KiB) of one fresh process (fork + wait4 for its rusage).
    `cli` None runs the genai worker on the genai folder `model`."""
    if cli is None:
        args = [str(GENAI_PY), str(Path(__file__).resolve()), "--genai-worker", str(model)]
    else:
        args = [str(cli), "generate", "--model", str(model), "--ort", str(ort or ORT[0]), "--max-new-tokens", "1",
                "--threads", str(threads), *side_args]
    read_fd, write_fd = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(read_fd, 0)
        os.dup2(err_w, 2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.closerange(3, 256)
        os.execv(args[0], args)
    os.close(read_fd)
    os.close(err_w)
    os.write(write_fd, prompt.encode())
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(err_r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(err_r)
    _, status, usage = os.wait4(pid, 0)
    err = b"".join(chunks).decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(args)} failed:\n{err}")
    m = re.search(r"\[(\d+) prompt tokens.*?prefill (\d+) ms", err)
    if not m:
        sys.exit(f"no statistics line in:\n{err}")
    return float(m.group(2)), int(m.group(1)), usage.ru_maxrss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=[
        "assets/models/smollm2-135m-instruct", "assets/models/smollm2-135m-instruct-int8"])
    ap.add_argument("--tokens", nargs="+", type=int, default=[1000, 4000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunks", nargs="*", type=int, default=[256, 512, 1024],
                    help="chunked-prefill sizes to compare (the first sides read the prompt in one run)")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its choice)")
    ap.add_argument("--cli", default=str(ROOT / "target/release/sphana-llm"))
    ap.add_argument("--ort", default=str(ROOT / "assets/onnxruntime/1.23.2/libonnxruntime.so"),
                    help="libonnxruntime.so (default: the 1.23.2 copy setup fetched)")
    ap.add_argument("--genai", action="store_true",
                    help="add onnxruntime-genai 0.18.0 and sphana@1.32 (defaults, ONNX Runtime 1.32.0)")
    ap.add_argument("--no-one-run", action="store_true",
                    help="leave out the one-run sides (`all positions`, `rewritten`): speed-ups are then over the first "
                         "chunk size")
    ap.add_argument("--genai-worker", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.genai_worker:
        return genai_worker(args.genai_worker)
    from tokenizers import Tokenizer

    ORT[0] = args.ort
    cli = Path(args.cli)
    if not cli.is_file():
        sys.exit(f"{cli} is missing: cargo build --release --bin sphana-llm")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); {args.rounds} rounds, medians; fresh process per run")
    sides = [("all positions", ["--all-position-logits", "--prefill-chunk", "0"]),
             ("rewritten", ["--prefill-chunk", "0"])]
    sides += [(f"rewritten, chunks {c}", ["--prefill-chunk", str(c)]) for c in args.chunks]
    if args.no_one_run:
        sides = sides[2:]
    if args.genai:
        if not GENAI_PY.is_file() or not ORT_132.is_file():
            sys.exit(f"--genai needs {GENAI_PY} (scripts/bench/bench.sh creates it) and {ORT_132} (setup.sh)")
        sides += [("sphana@1.32", []), ("genai", None)]
    print(f"{'model':28s} {'tokens':>6s} {'side':22s} {'prefill ms':>10s} {'speed-up':>8s} {'peak RSS MiB':>12s}")
    for model in map(Path, args.models):
        tok = Tokenizer.from_file(str(model / "tokenizer.json"))
        genai_folder = None
        if args.genai:
            import genai_model

            genai_folder = genai_model.genai_dir(
                str(model), str(ROOT / "assets" / "bench" / "genai" / f"{model.parent.name}-{model.name}-t{args.threads}"),
                args.threads)
        for target in args.tokens:
            prompt, n = rag_prompt(tok, target)
            results = {name: [] for name, _ in sides}
            for _ in range(args.rounds):
                for name, side_args in sides:
                    if side_args is None:
                        r = run_measured(None, genai_folder, json.dumps(tok.encode(prompt).ids), None, args.threads)
                    else:
                        r = run_measured(cli, model, prompt, side_args, args.threads,
                                         ORT_132 if name == "sphana@1.32" else None)
                    results[name].append(r)
            counts = {name: results[name][0][1] for name, _ in sides}
            if len(set(counts.values())) != 1:
                sys.exit(f"the sides saw different prompt lengths: {counts}")
            base = statistics.median(r[0] for r in results[sides[0][0]])
            med = {name: (statistics.median(r[0] for r in results[name]),
                          statistics.median(r[2] for r in results[name]) / 1024) for name, _ in sides}
            for name, _ in sides:
                ms, rss = med[name]
                print(f"{model.name:28s} {counts[name]:6d} {name:22s} {ms:10.0f} {base / ms:7.2f}x {rss:12.0f}")
            if args.genai:
                (s_ms, s_rss), (g_ms, g_rss) = med["sphana@1.32"], med["genai"]
                print(f"{model.name:28s} {n:6d} sphana@1.32 vs genai: {g_ms / s_ms:.2f}x faster, "
                      f"peak RSS {s_rss:.0f} vs {g_rss:.0f} MiB ({g_rss - s_rss:+.0f} MiB for genai)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
