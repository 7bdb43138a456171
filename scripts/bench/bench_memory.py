#!/usr/bin/env python3
"""Memory figures for generation: the machine's memory read bandwidth, each model's decode rate turned
into bytes read per second, and the peak RSS of a generation against model + KV cache + 64 MB.

    python3 scripts/bench/bench_memory.py [--new-tokens 32] [--threads 1]

* Read bandwidth: numpy sums a 1 GiB float32 array (one thread, median of 5) — a step that reads
  every weight once can at best run at bandwidth / model bytes per second.
* For each SmolLM2 file (fp32, int8): a fresh process loads libsphana_llm.so, generates --new-tokens
  greedy tokens from a 512-token prompt, and reports its decode tok/s, tok/s x ONNX file bytes, and its
  peak RSS (VmHWM) against the budget: ONNX file bytes + KV cache bytes (layers x 2 x kv_heads x
  head_dim x 4 bytes x positions) + 64 MiB. The Python interpreter's own RSS before loading anything
  is measured in the same process and subtracted.
* The peer: a fresh process runs the same prompt and steps with ONNX Runtime's Python API (1.23.2, the
  same ORT version and session settings: intra-op threads, optimization level all), a plain KV loop;
  its peak RSS, measured the same way, is what ONNX Runtime itself needs for this model and prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIB = 1 << 20


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def child(model: str, new_tokens: int, threads: int) -> None:
    baseline = status_kib("VmRSS")
    import ctypes

    import bench_concurrent as bc  # its loader: the release library through sphana_abi, ORT 1.23.2
    import sphana_abi

    lib = bc.Bench(sphana_abi.RELEASE_LIB)
    handle = lib.load(model, threads, 8, 1)
    config = json.load(open(os.path.join(model, "config.json")))
    text = open(os.path.join(ROOT, "assets", "texts", "multilingual_1mb.txt"), "rb").read()[:6000]  # > 512 tokens
    n = ctypes.c_size_t()
    ids = (ctypes.c_int32 * 8192)()
    lib.abi.check(lib.abi.lib.sphana_llm_tokenize(handle, text, len(text), 0, ids, 8192, ctypes.byref(n)), "tokenize")
    prompt = list(ids[:512])
    result = lib.generate(handle, prompt, new_tokens)
    peak = status_kib("VmHWM")
    layers = config["num_hidden_layers"]
    kv_heads = config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim", config["hidden_size"] // config["num_attention_heads"])
    kv_bytes = layers * 2 * kv_heads * head_dim * 4 * (len(prompt) + new_tokens)
    print(json.dumps({
        "baseline_kib": baseline,
        "peak_kib": peak,
        "kv_bytes": kv_bytes,
        "decode_tok_s": (new_tokens - 1) / (result["decode_ms"] / 1e3),
    }))


def child_ort(model: str, new_tokens: int, threads: int) -> None:
    baseline = status_kib("VmRSS")
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(os.path.join(model, "model.onnx"), so, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    past = [n for n in inputs if n.startswith("past_key_values.")]
    present = [o.name.replace("past_key_values", "present") for o in session.get_inputs() if o.name in past]
    config = json.load(open(os.path.join(model, "config.json")))
    kv_heads = config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim", config["hidden_size"] // config["num_attention_heads"])
    ids = np.arange(1000, 1512, dtype=np.int64)[None]
    feed = {n: np.zeros((1, kv_heads, 0, head_dim), np.float32) for n in past}
    length = 0
    for step in range(new_tokens):
        n = ids.shape[1]
        feed.update({"input_ids": ids, "attention_mask": np.ones((1, length + n), np.int64),
                     "position_ids": np.arange(length, length + n, dtype=np.int64)[None]})
        out = session.run(["logits"] + present, feed)
        length += n
        ids = np.array([[int(out[0][0, -1].argmax())]], dtype=np.int64)
        feed.update(dict(zip(past, out[1:])))
    print(json.dumps({"baseline_kib": baseline, "peak_kib": status_kib("VmHWM")}))


def bandwidth() -> float:
    import numpy as np

    a = np.ones(1 << 28, dtype=np.float32)  # 1 GiB
    a.sum()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        a.sum()
        times.append(time.perf_counter() - t)
    return a.nbytes / statistics.median(times) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-ort", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.new_tokens, args.threads)
        return
    if args.child_ort:
        child_ort(args.child_ort, args.new_tokens, args.threads)
        return
    gbs = bandwidth()
    print(f"memory read bandwidth (numpy sum of 1 GiB, one thread, median of 5): {gbs:.1f} GB/s")
    report = {"read_bandwidth_gb_s": gbs, "models": {}}
    import bench_concurrent as bc

    print(f"\n512-token prompt, {args.new_tokens} new tokens, {args.threads} intra-op thread(s)")
    print(f"  {'model':<6}{'file MB':>9}{'decode tok/s':>14}{'x file = GB/s':>15}{'of bandwidth':>14}"
          f"{'peak RSS MB':>13}{'budget MB':>11}{'within':>8}{'ORT Python peak MB':>20}")
    for name, model in bc.MODELS.items():
        onnx_bytes = sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model)
                         if f.endswith(".onnx") or f.endswith(".onnx_data") or f.endswith(".onnx.data"))
        out = subprocess.run([sys.executable, __file__, "--child", model, "--new-tokens", str(args.new_tokens),
                              "--threads", str(args.threads)], check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        out = subprocess.run([sys.executable, __file__, "--child-ort", model, "--new-tokens", str(args.new_tokens),
                              "--threads", str(args.threads)], check=True, capture_output=True, text=True).stdout
        peer = json.loads(out.strip().splitlines()[-1])
        peer_rss = (peer["peak_kib"] - peer["baseline_kib"]) * 1024
        rss = (r["peak_kib"] - r["baseline_kib"]) * 1024
        budget = onnx_bytes + r["kv_bytes"] + 64 * MIB
        read = r["decode_tok_s"] * onnx_bytes / 1e9
        report["models"][name] = {"onnx_bytes": onnx_bytes, "peak_rss_bytes": rss, "budget_bytes": budget,
                                  "kv_bytes": r["kv_bytes"], "decode_tok_s": r["decode_tok_s"],
                                  "bytes_read_gb_s": read, "ort_python_peak_rss_bytes": peer_rss}
        print(f"  {name:<6}{onnx_bytes / 1e6:>9.0f}{r['decode_tok_s']:>14.1f}{read:>15.2f}{read / gbs:>13.0%}"
              f"{rss / MIB:>13.0f}{budget / MIB:>11.0f}{'yes' if rss <= budget else 'NO':>8}{peer_rss / MIB:>20.0f}")
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main()
