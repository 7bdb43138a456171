#!/usr/bin/env python3
"""Time to first token and peak memory of a RAG-shaped prefill, with and without the load-time
logits rewrite, side by side in one run (issue: logits only where needed).

    python3 scripts/bench/bench_prefill.py [--models DIR ...] [--tokens 1000 4000] [--rounds 3]
                                           [--chunks 256 512 1024]

Each measurement is a fresh `sphana-llm generate` process (release build) on a prompt shaped like
Sphana.Database's ("Answer the question based on the following context: Context (Score: 0.87) ...
Question: ... Answer:") of about N tokens, generating one token: the prefill time comes from the CLI's
statistics line, the peak RSS from the process's rusage. Sides: `all positions` (`--all-position-logits`:
the graph as exported, the prompt in one run), `rewritten` (the head runs on the last position only, one
run) and `rewritten, chunks N` (the prompt read in runs of N tokens, `--prefill-chunk N`). Rounds alternate
the sides; the table shows medians and the speed-up over `all positions`. Prints the CPU model.
"""

from __future__ import annotations

import argparse
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


def run_measured(cli, model, prompt, side_args, threads):
    """(prefill ms, prompt tokens, peak RSS KiB) of one fresh process (fork + wait4 for its rusage)."""
    args = [str(cli), "generate", "--model", str(model), "--ort", ORT[0], "--max-new-tokens", "1",
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
    args = ap.parse_args()
    from tokenizers import Tokenizer

    ORT[0] = args.ort
    cli = Path(args.cli)
    if not cli.is_file():
        sys.exit(f"{cli} is missing: cargo build --release --bin sphana-llm")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); {args.rounds} rounds, medians; fresh process per run")
    sides = [("all positions", ["--all-position-logits", "--prefill-chunk", "0"]),
             ("rewritten", ["--prefill-chunk", "0"])]
    sides += [(f"rewritten, chunks {c}", ["--prefill-chunk", str(c)]) for c in args.chunks]
    print(f"{'model':28s} {'tokens':>6s} {'side':22s} {'prefill ms':>10s} {'speed-up':>8s} {'peak RSS MiB':>12s}")
    for model in map(Path, args.models):
        tok = Tokenizer.from_file(str(model / "tokenizer.json"))
        for target in args.tokens:
            prompt, n = rag_prompt(tok, target)
            results = {name: [] for name, _ in sides}
            for _ in range(args.rounds):
                for name, side_args in sides:
                    results[name].append(run_measured(cli, model, prompt, side_args, args.threads))
            base = statistics.median(r[0] for r in results[sides[0][0]])
            for name, _ in sides:
                ms = statistics.median(r[0] for r in results[name])
                rss = statistics.median(r[2] for r in results[name]) / 1024
                print(f"{model.name:28s} {results[name][0][1]:6d} {name:22s} {ms:10.0f} {base / ms:7.2f}x {rss:12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
