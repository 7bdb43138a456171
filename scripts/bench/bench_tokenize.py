#!/usr/bin/env python3
"""Tokenization throughput: sphana-llm (C ABI via ctypes) vs HF `tokenizers` vs `tiktoken`.

One process, same text, same machine. The Llama 3.2 tokenizer on assets/texts/multilingual_1mb.txt
(read as raw bytes, CRLF kept). All sides are first checked to return identical ids.

    python3 scripts/bench/bench_tokenize.py [--rounds 7] [--lib target/release/libsphana_llm.so]

Sides are alternated inside every round (A, B, C, A, B, C, ...) and the median over rounds is
reported, because the machine is small and shared. Batch figures run one subprocess per thread
count, since RAYON_NUM_THREADS must be set before a Rust library (ours or `tokenizers`) starts
its thread pool.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

import sphana_abi

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOK_DIR = os.path.join(ROOT, "assets", "tokenizers", "llama3.2")
TOK_JSON = os.path.join(TOK_DIR, "tokenizer.json")
TIKTOKEN_MODEL = os.path.join(ROOT, "assets", "tokenizers", "llama3-tiktoken", "tokenizer.model")
TEXT = os.path.join(ROOT, "assets", "texts", "multilingual_1mb.txt")

# Llama 3 pre-tokenization pattern (same as the Split regex of Llama 3.2's tokenizer.json).
LLAMA3_PAT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# A short user message: 20 tokens with the Llama 3 vocabulary (checked at run time).
SHORT_MSG = "Could you summarise the attached quarterly report in three short bullet points for me, please? Thanks!"


# ------------------------------------------------------------------------------------------------
# sphana-llm through sphana_abi (the C ABI via ctypes)


def sphana_load(abi: sphana_abi.Library, path: str, fmt: int = sphana_abi.FORMAT_AUTO):
    return abi.load_model(path, abi.load_options(tokenizer_format=fmt))


class SphanaTokenizer:
    """sphana_llm_tokenize with a preallocated ids buffer (flags 0)."""

    def __init__(self, abi: sphana_abi.Library, handle, capacity: int = 1 << 20):
        self.abi, self.lib, self.handle = abi, abi.lib, handle
        self.cap = capacity
        self.buf = (ctypes.c_int32 * capacity)()
        self.n = ctypes.c_size_t()

    def count(self, data: bytes) -> int:
        rc = self.lib.sphana_llm_tokenize(self.handle, data, len(data), 0, self.buf, self.cap, ctypes.byref(self.n))
        if rc == sphana_abi.ERR_BUFFER_TOO_SMALL:
            self.cap = self.n.value
            self.buf = (ctypes.c_int32 * self.cap)()
            rc = self.lib.sphana_llm_tokenize(self.handle, data, len(data), 0, self.buf, self.cap, ctypes.byref(self.n))
        self.abi.check(rc, "sphana_llm_tokenize")
        return self.n.value

    def ids(self, data: bytes) -> list[int]:
        n = self.count(data)
        return self.buf[:n]


class SphanaBatch:
    """sphana_llm_tokenize_batch over fixed texts; the pointer/length arrays are built once."""

    def __init__(self, abi: sphana_abi.Library, handle, chunks: list[bytes]):
        self.abi, self.lib, self.handle, self.n = abi, abi.lib, handle, len(chunks)
        self.ptrs = (ctypes.c_char_p * self.n)(*chunks)
        self.lens = (ctypes.c_size_t * self.n)(*[len(c) for c in chunks])
        self.out = sphana_abi.TokenBatch()

    def run(self) -> None:
        """One call + free: the ids stay in the library's arrays, as a C caller gets them."""
        self.abi.check(self.lib.sphana_llm_tokenize_batch(self.handle, self.ptrs, self.lens, self.n, 0,
                                                          ctypes.byref(self.out)), "tokenize_batch")
        self.lib.sphana_llm_token_batch_free(ctypes.byref(self.out))

    def ids(self) -> list[list[int]]:
        self.abi.check(self.lib.sphana_llm_tokenize_batch(self.handle, self.ptrs, self.lens, self.n, 0,
                                                          ctypes.byref(self.out)), "tokenize_batch")
        starts = self.out.starts[: self.n + 1]
        flat = self.out.ids[: starts[self.n]]
        self.lib.sphana_llm_token_batch_free(ctypes.byref(self.out))
        return [flat[starts[i]: starts[i + 1]] for i in range(self.n)]


# ------------------------------------------------------------------------------------------------
# peers


def tiktoken_llama3():
    import base64

    import tiktoken

    ranks = {}
    with open(TIKTOKEN_MODEL, "rb") as f:
        for line in f:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    n = len(ranks)
    names = [
        "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
        "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
        "<|eot_id|>", "<|python_tag|>",
    ]
    names += [f"<|reserved_special_token_{i}|>" for i in range(2, 2 + 256 - len(names))]
    special = {name: n + i for i, name in enumerate(names)}
    return tiktoken.Encoding(name="llama3", pat_str=LLAMA3_PAT, mergeable_ranks=ranks, special_tokens=special)


def hf_tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(TOK_JSON)


def chunk_text(data: bytes, count: int) -> list[bytes]:
    """Splits at line ends into about `count` pieces of similar size (whole UTF-8 lines)."""
    target = len(data) / count
    out, start = [], 0
    while start < len(data):
        end = int(start + target)
        if end >= len(data):
            out.append(data[start:])
            break
        nl = data.find(b"\n", end)
        end = len(data) if nl < 0 else nl + 1
        out.append(data[start:end])
        start = end
    return out


def timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def timed_cpu(fn):
    """(wall seconds, CPU seconds of this thread) of one call."""
    c = time.thread_time()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t, time.thread_time() - c


def median(xs):
    return statistics.median(xs)


# ------------------------------------------------------------------------------------------------
# batch subprocess: one thread count per process


def batch_worker(lib_path: str, rounds: int, nchunks: int) -> dict:
    data = open(TEXT, "rb").read()
    chunks = chunk_text(data, nchunks)
    strs = [c.decode("utf-8") for c in chunks]
    abi = sphana_abi.load(lib_path)
    handle = sphana_load(abi, TOK_DIR)
    hf = hf_tokenizer()
    tk = tiktoken_llama3()
    threads = int(os.environ["RAYON_NUM_THREADS"])
    # correctness: batch = per-chunk ids of every side
    batch = SphanaBatch(abi, handle, chunks)
    ours = batch.ids()
    hf_ids = [e.ids for e in hf.encode_batch(strs, add_special_tokens=False)]
    tk_ids = tk.encode_ordinary_batch(strs, num_threads=threads)
    assert ours == hf_ids == tk_ids, "batch ids differ between sides"
    times = {"sphana": [], "hf": [], "hf_fast": [], "tiktoken": []}
    for _ in range(rounds):
        times["sphana"].append(timed(batch.run))
        times["hf"].append(timed(lambda: hf.encode_batch(strs, add_special_tokens=False)))
        times["hf_fast"].append(timed(lambda: hf.encode_batch_fast(strs, add_special_tokens=False)))
        times["tiktoken"].append(timed(lambda: tk.encode_ordinary_batch(strs, num_threads=threads)))
    abi.free_model(handle)
    return {
        "threads": threads,
        "chunks": len(chunks),
        "bytes": len(data),
        "tokens": sum(len(x) for x in ours),
        "median_s": {k: median(v) for k, v in times.items()},
    }


# ------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.environ.get("SPHANA_LLM_LIB", sphana_abi.RELEASE_LIB))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--chunks", type=int, default=1000)
    ap.add_argument("--short-calls", type=int, default=20000)
    ap.add_argument("--batch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    if args.batch_worker:
        print(json.dumps(batch_worker(args.lib, args.rounds, args.chunks)))
        return

    import tiktoken
    import tokenizers

    data = open(TEXT, "rb").read()
    text = data.decode("utf-8")
    mb = len(data) / 1e6
    abi = sphana_abi.load(args.lib)
    lib = abi.lib
    print(f"sphana-llm {abi.version()} ({args.lib}); tokenizers {tokenizers.__version__}; "
          f"tiktoken {tiktoken.__version__}")
    print(f"text: {TEXT} — {len(data)} bytes, {text.count(chr(13) + chr(10))} CRLF; {args.rounds} rounds, medians")

    handle = sphana_load(abi, TOK_DIR)  # tokenizer.json
    handle_tt = sphana_load(abi, TIKTOKEN_MODEL, sphana_abi.FORMAT_TIKTOKEN)  # tiktoken rank file, same vocabulary
    ours = SphanaTokenizer(abi, handle)
    ours_tt = SphanaTokenizer(abi, handle_tt)
    hf = hf_tokenizer()
    tk = tiktoken_llama3()

    # ---- correctness first
    ids_ours = ours.ids(data)
    ids_ours_tt = ours_tt.ids(data)
    ids_hf = hf.encode(text, add_special_tokens=False).ids
    ids_tk = tk.encode_ordinary(text)
    ids_tk2 = tk.encode(text, allowed_special=set(), disallowed_special=())
    assert ids_ours == ids_hf, "sphana-llm and HF tokenizers differ"
    assert ids_ours_tt == ids_hf, "sphana-llm (tiktoken file) and HF tokenizers differ"
    assert ids_tk == ids_hf and ids_tk2 == ids_hf, "tiktoken and HF tokenizers differ"
    ntok = len(ids_ours)
    print(f"ids identical on all sides: {ntok} tokens")

    # ---- single text, one thread
    sides = {
        "sphana-llm (tokenizer.json)": lambda: ours.count(data),
        "sphana-llm (tiktoken .model)": lambda: ours_tt.count(data),
        "HF tokenizers encode": lambda: hf.encode(text, add_special_tokens=False),
        "tiktoken encode_ordinary": lambda: tk.encode_ordinary(text),
        "tiktoken encode(allowed_special=set())": lambda: tk.encode(text, allowed_special=set(), disallowed_special=()),
    }
    for fn in sides.values():  # warm-up
        fn()
    times = {k: [] for k in sides}
    cpu = {k: [] for k in sides}
    for _ in range(args.rounds):
        for k, fn in sides.items():
            w, c = timed_cpu(fn)
            times[k].append(w)
            cpu[k].append(c)
    res_single = {k: mb / median(v) for k, v in times.items()}
    res_cpu = {k: mb / median(v) for k, v in cpu.items()}
    base = res_single["sphana-llm (tokenizer.json)"]
    base_cpu = res_cpu["sphana-llm (tokenizer.json)"]
    print("\n## Single text, one thread (MB/s = 1e6 bytes/s; 'CPU' = per second of this thread's CPU time)")
    print(f"| side | median s | MB/s | Mtok/s | sphana-llm ÷ side | MB/s CPU | sphana-llm ÷ side, CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k, v in times.items():
        s = median(v)
        print(f"| {k} | {s:.3f} | {mb / s:.2f} | {ntok / s / 1e6:.2f} | {base / res_single[k]:.2f}× | "
              f"{res_cpu[k]:.2f} | {base_cpu / res_cpu[k]:.2f}× |")

    # ---- per-call overhead on a short message
    short = SHORT_MSG.encode()
    short_ids = ours.ids(short)
    assert short_ids == hf.encode(SHORT_MSG, add_special_tokens=False).ids == tk.encode_ordinary(SHORT_MSG)
    ncalls = args.short_calls
    small = SphanaTokenizer(abi, handle, capacity=64)
    abi_version = lib.sphana_llm_abi_version

    def loop_ours():
        f, h, b, n, cap, ref = lib.sphana_llm_tokenize, handle, small.buf, small.n, small.cap, ctypes.byref(small.n)
        for _ in range(ncalls):
            f(h, short, len(short), 0, b, cap, ref)

    def loop_ctypes_noop():
        for _ in range(ncalls):
            abi_version()

    def loop_hf():
        e = hf.encode
        for _ in range(ncalls):
            e(SHORT_MSG, add_special_tokens=False)

    def loop_tk():
        e = tk.encode_ordinary
        for _ in range(ncalls):
            e(SHORT_MSG)

    calls = {
        "sphana-llm sphana_llm_tokenize": loop_ours,
        "HF tokenizers encode": loop_hf,
        "tiktoken encode_ordinary": loop_tk,
        "ctypes no-op call (sphana_llm_abi_version)": loop_ctypes_noop,
    }
    for fn in calls.values():
        fn()
    ctimes = {k: [] for k in calls}
    for _ in range(args.rounds):
        for k, fn in calls.items():
            ctimes[k].append(timed(fn) / ncalls * 1e6)
    print(f"\n## Per call, short text ({len(short)} bytes, {len(short_ids)} tokens), {ncalls} calls per round")
    print("| side | µs per call (median) | side ÷ sphana-llm |")
    print("|---|---:|---:|")
    ob = median(ctimes["sphana-llm sphana_llm_tokenize"])
    for k, v in ctimes.items():
        print(f"| {k} | {median(v):.2f} | {median(v) / ob:.2f}× |")

    abi.free_model(handle)
    abi.free_model(handle_tt)

    # ---- batch, 1 and 2 threads (subprocess per thread count)
    batch = []
    for threads in (1, 2):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--batch-worker", "--lib", args.lib,
             "--rounds", str(args.rounds), "--chunks", str(args.chunks)],
            env=env, check=True, capture_output=True, text=True,
        )
        batch.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"\n## Batch: the text in {batch[0]['chunks']} line-aligned chunks, RAYON_NUM_THREADS = threads "
          "(tiktoken: num_threads)")
    print("| threads | sphana-llm tokenize_batch MB/s | HF encode_batch MB/s | HF encode_batch_fast MB/s | "
          "tiktoken encode_ordinary_batch MB/s | ours ÷ HF | ours ÷ HF fast | ours ÷ tiktoken |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in batch:
        m = {k: b["bytes"] / 1e6 / s for k, s in b["median_s"].items()}
        print(f"| {b['threads']} | {m['sphana']:.2f} | {m['hf']:.2f} | {m['hf_fast']:.2f} | {m['tiktoken']:.2f} | "
              f"{m['sphana'] / m['hf']:.2f}× | {m['sphana'] / m['hf_fast']:.2f}× | {m['sphana'] / m['tiktoken']:.2f}× |")
    s1 = batch[0]["median_s"]["sphana"]
    s2 = batch[1]["median_s"]["sphana"]
    print(f"sphana-llm batch scaling 1 → 2 threads: {s1 / s2:.2f}×")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"single_s": {k: median(v) for k, v in times.items()},
                       "single_cpu_s": {k: median(v) for k, v in cpu.items()},
                       "per_call_us": {k: median(v) for k, v in ctimes.items()},
                       "batch": batch, "bytes": len(data), "tokens": ntok}, f, indent=1)


if __name__ == "__main__":
    # Single-thread peers: set before `tokenizers` starts its pool (batch workers override this).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    main()
