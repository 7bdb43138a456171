#!/usr/bin/env python3
"""A random-weight decoder with Llama-3.2-1B-Instruct's real dimensions, for speed and memory benchmarks
(issue: RAG-shaped engine). Not used by the tests or CI.

    python3 scripts/setup/make_bench_llama.py [--out assets/models/bench-llama-1b] [--skip-int8]

Writes, into ignored assets/:
  <out>/fp32/model.onnx + model.onnx_data   Optimum layout (input_ids, attention_mask, position_ids,
                                            past_key_values.*, logits, present.*), float32, weights as
                                            external data (~4.9 GB)
  <out>/int8/model.onnx                     onnxruntime.quantization.quantize_dynamic(fp32, QInt8) of it:
                                            the seed's llm_generator.int8.onnx format (~1.5 GB)
and, in each, config.json (Llama-3.2-1B's: 16 layers, hidden 2048, 32 heads, 8 KV heads, head size 64,
intermediate 8192, vocabulary 128,256, tied embeddings, llama3 RoPE scaling), generation_config.json and
the real Llama 3.2 tokenizer.json (from assets/tokenizers/llama3.2, scripts/setup/fetch_tokenizers.py).

The weights are random (normal, std 0.02), so the text it generates is meaningless; prefill and decode
cost, memory and the logits head (a 2048 x 128,256 tied MatMul, a fifth of the parameters) are the real
model's. The untied INT8 variant's head is quantized like any other MatMul (`--untied-head`). Prints how
long each step took and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import onnx_llama as ol

ROOT = Path(__file__).resolve().parents[2]

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "tie_word_embeddings": True,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "torch_dtype": "float32",
}
GENERATION_CONFIG = {"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}


def weights(cfg: dict, seed: int, untied: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, kvh, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def lin(out_f: int, in_f: int) -> np.ndarray:
        return (rng.standard_normal((out_f, in_f), dtype=np.float32) * 0.02).astype(np.float32)

    w = {"model.embed_tokens.weight": lin(V, H)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        w[f"{p}.input_layernorm.weight"] = np.ones(H, np.float32)
        w[f"{p}.self_attn.q_proj.weight"] = lin(nh * hd, H)
        w[f"{p}.self_attn.k_proj.weight"] = lin(kvh * hd, H)
        w[f"{p}.self_attn.v_proj.weight"] = lin(kvh * hd, H)
        w[f"{p}.self_attn.o_proj.weight"] = lin(H, nh * hd)
        w[f"{p}.post_attention_layernorm.weight"] = np.ones(H, np.float32)
        w[f"{p}.mlp.gate_proj.weight"] = lin(I, H)
        w[f"{p}.mlp.up_proj.weight"] = lin(I, H)
        w[f"{p}.mlp.down_proj.weight"] = lin(H, I)
    w["model.norm.weight"] = np.ones(H, np.float32)
    if untied:
        w["lm_head.weight"] = w["model.embed_tokens.weight"].copy()
    return w


def side_files(d: Path, cfg: dict) -> None:
    (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (d / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2) + "\n")
    tokenizer = ROOT / "assets/tokenizers/llama3.2/tokenizer.json"
    if not tokenizer.is_file():
        sys.exit(f"{tokenizer} is missing: python3 scripts/setup/fetch_tokenizers.py")
    shutil.copy(tokenizer, d / "tokenizer.json")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "assets/models/bench-llama-1b"))
    ap.add_argument("--skip-int8", action="store_true")
    ap.add_argument("--untied-head", action="store_true", help="a separate lm_head (quantized in INT8)")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    out = Path(args.out)
    cfg = dict(CONFIG, tie_word_embeddings=not args.untied_head)
    t0 = time.time()
    w = weights(cfg, args.seed, args.untied_head)
    params = sum(v.size for v in w.values()) - (w["lm_head.weight"].size if args.untied_head else 0)
    print(f"random weights: {params / 1e9:.3f} B parameters, {time.time() - t0:.0f} s", flush=True)

    fp32 = out / "fp32"
    if fp32.exists():
        shutil.rmtree(fp32)
    fp32.mkdir(parents=True)
    t1 = time.time()
    model = ol.build_llama_model(cfg, w, dtype="float32", with_past=True, position_ids_input=True,
                                 graph_name="bench_llama_1b")
    del w
    ol.save_model(model, str(fp32 / "model.onnx"), external_data=True)
    del model
    for f in fp32.iterdir():
        f.chmod(0o644)
    side_files(fp32, cfg)
    size = sum(f.stat().st_size for f in fp32.iterdir())
    print(f"fp32: {size / 1e9:.2f} GB in {fp32}, {time.time() - t1:.0f} s; peak RSS {peak_rss_gib():.1f} GiB",
          flush=True)

    if not args.skip_int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8 = out / "int8"
        if int8.exists():
            shutil.rmtree(int8)
        int8.mkdir(parents=True)
        t2 = time.time()
        quantize_dynamic(str(fp32 / "model.onnx"), str(int8 / "model.onnx"), weight_type=QuantType.QInt8)
        side_files(int8, cfg)
        size = (int8 / "model.onnx").stat().st_size
        print(f"int8: {size / 1e9:.2f} GB in {int8}, {time.time() - t2:.0f} s; peak RSS {peak_rss_gib():.1f} GiB",
              flush=True)
    print(f"total {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
