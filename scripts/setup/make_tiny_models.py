#!/usr/bin/env python3
"""Build tiny random Llama-3.2-shaped ONNX decoders (Optimum layout) and their golden greedy ids.

Writes assets/models/tiny-llama/<variant>/ and this machine's reference assets/reference/models/tiny_llama.json
(both ignored), and checks that tests/golden/models/tiny_llama.json (committed: the machine-independent part,
see scripts/setup/model_golden.py) equals what was computed now; --write-golden rewrites it instead.
Needs: numpy, onnx, onnxruntime (1.23.x). Run: python3 scripts/setup/make_tiny_models.py [--skip-tokenizer-check] [--write-golden]

Goldens come from an independent reference: ONNX Runtime's Python API doing a full recompute of the
whole sequence at every step (zero-length past). The script also checks that
  * a numpy re-implementation of HF's Llama forward agrees with the fp32 graph (logits),
  * a Python KV-cache loop gives the same ids for every variant,
  * a left-padded batch of two prompts decodes to the same ids as each prompt alone,
  * all float32 variants (fp32, no-position-ids, no-kv, merged, external-data, short-context) agree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import model_golden
import onnx_llama as ol

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "assets" / "models" / "tiny-llama"
TOKENIZER_DIR = ROOT / "assets" / "tokenizers" / "llama3.2"

SEED = 135  # picked by a search over seeds 0..199 for large greedy margins in fp32, fp16 and int8
N_NEW = 24
N_BATCH_STEPS = 16
EOS_IDS = [128001, 128008, 128009]
BOS_ID = 128000
SHORT_CONTEXT = 64
PAD_ID = 128004  # <|finetune_right_pad_id|>; any id works, padded positions are masked

# Weight-scale knobs (chosen so that greedy margins are large and outputs vary, see check_margins()).
# A random subset of HOT_TOKENS ids (plus <|eot_id|> 128009) gets HOT_FACTOR times larger embedding rows, so the
# argmax is always one of them and top-1/top-2 gaps are large relative to the logit magnitude (with all
# 128256 rows alike the gaps are tiny and float16 logits tie). Layer outputs dominate the residual stream,
# so tokens do not just predict themselves through the tied embedding.
EMBED_STD = 0.02
HOT_TOKENS = 64
HOT_FACTOR = 8.0
LAYER_GAIN = 2.0
FINAL_NORM_GAIN = 5.0  # keeps top logits < 16 (float16 ulp 0.0078 there)

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "attention_bias": False,
    "mlp_bias": False,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "pretraining_tp": 1,
    "tie_word_embeddings": True,
    "use_cache": True,
    "bos_token_id": BOS_ID,
    "eos_token_id": EOS_IDS,
    "torch_dtype": "float32",
    "transformers_version": "4.46.0",
}
GENERATION_CONFIG = {"bos_token_id": BOS_ID, "eos_token_id": EOS_IDS, "do_sample": False}

VARIANTS = {
    # name: build options
    "fp32": dict(dtype="float32", with_past=True, position_ids_input=True),
    "fp16": dict(dtype="float16", with_past=True, position_ids_input=True),
    "no-position-ids": dict(dtype="float32", with_past=True, position_ids_input=False),
    "no-kv": dict(dtype="float32", with_past=False, position_ids_input=True),
    "merged": dict(dtype="float32", with_past=True, position_ids_input=True, merged=True),
    "int8": dict(dtype="float32", with_past=True, position_ids_input=True, quantize=True),
    # An untied lm_head (its own initializer, here a copy of the embeddings) is quantized too:
    # the head becomes quantize_dynamic's DynamicQuantizeLinear -> MatMulInteger chain.
    "int8-untied-head": dict(dtype="float32", with_past=True, position_ids_input=True, quantize=True, untied_head=True),
    "external-data": dict(dtype="float32", with_past=True, position_ids_input=True, external=True),
    "short-context": dict(dtype="float32", with_past=True, position_ids_input=True, max_pos=SHORT_CONTEXT),
}
FP32_FAMILY = ["fp32", "no-position-ids", "no-kv", "merged", "external-data", "short-context"]
MIN_MARGIN = {"float32": 1e-2, "float16": 5e-2, "int8": 5e-2}


def make_weights(cfg: dict, seed: int = SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, kvh, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def lin(out, inp, gain=LAYER_GAIN):
        return (rng.standard_normal((out, inp)) * gain / math.sqrt(inp)).astype(np.float32)

    def norm(n, base=1.0):
        return (base * (1.0 + 0.1 * rng.standard_normal(n))).astype(np.float32)

    emb = rng.standard_normal((V, H)) * EMBED_STD
    hot = np.concatenate([rng.choice(128000, HOT_TOKENS, replace=False), np.array([128009])])
    emb[hot] *= HOT_FACTOR
    w = {"model.embed_tokens.weight": emb.astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        w[f"{p}.input_layernorm.weight"] = norm(H)
        w[f"{p}.self_attn.q_proj.weight"] = lin(nh * hd, H)
        w[f"{p}.self_attn.k_proj.weight"] = lin(kvh * hd, H)
        w[f"{p}.self_attn.v_proj.weight"] = lin(kvh * hd, H)
        w[f"{p}.self_attn.o_proj.weight"] = lin(H, nh * hd)
        w[f"{p}.post_attention_layernorm.weight"] = norm(H)
        w[f"{p}.mlp.gate_proj.weight"] = lin(I, H)
        w[f"{p}.mlp.up_proj.weight"] = lin(I, H)
        w[f"{p}.mlp.down_proj.weight"] = lin(H, I)
    w["model.norm.weight"] = norm(H, FINAL_NORM_GAIN)
    return w


# ------------------------------------------------------------------------------------------------
# Independent numpy re-implementation of transformers' LlamaForCausalLM forward (float64), used to
# validate the ONNX graph itself (the ORT goldens alone would only prove self-consistency).


def _hf_llama3_inv_freq(cfg):
    dim, base = cfg["head_dim"], cfg["rope_theta"]
    inv = 1.0 / (base ** (np.arange(0, dim, 2) / dim))
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv
    factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    out = []
    for f in inv:
        wl = 2 * math.pi / f
        if wl < old / hi:
            out.append(f)
        elif wl > old / lo:
            out.append(f / factor)
        else:
            s = (old / wl - lo) / (hi - lo)
            out.append((1 - s) * f / factor + s * f)
    return np.array(out)


def numpy_reference_logits(cfg, W, ids, positions=None):
    W = {k: v.astype(np.float64) for k, v in W.items()}
    S = len(ids)
    nh, kvh, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    pos = np.arange(S) if positions is None else np.asarray(positions)
    # HF computes the rotary phases in float32 (inv_freq and positions as float32); do the same so that
    # far positions (1e5 rad phases) round identically, then continue in float64.
    freqs = np.outer(pos.astype(np.float32), _hf_llama3_inv_freq(cfg).astype(np.float32)).astype(np.float64)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb), np.sin(emb)

    def rms(x, w):
        return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))

    def rotate_half(x):
        return np.concatenate([-x[..., hd // 2:], x[..., : hd // 2]], axis=-1)

    causal = np.triu(np.full((S, S), -np.inf), 1)
    h = W["model.embed_tokens.weight"][np.asarray(ids)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        x = rms(h, W[f"{p}.input_layernorm.weight"])
        q = (x @ W[f"{p}.self_attn.q_proj.weight"].T).reshape(S, nh, hd).transpose(1, 0, 2)
        k = (x @ W[f"{p}.self_attn.k_proj.weight"].T).reshape(S, kvh, hd).transpose(1, 0, 2)
        v = (x @ W[f"{p}.self_attn.v_proj.weight"].T).reshape(S, kvh, hd).transpose(1, 0, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = np.repeat(k, nh // kvh, axis=0)  # repeat_kv
        v = np.repeat(v, nh // kvh, axis=0)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd) + causal
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(S, nh * hd)
        h = h + a @ W[f"{p}.self_attn.o_proj.weight"].T
        x = rms(h, W[f"{p}.post_attention_layernorm.weight"])
        gt = x @ W[f"{p}.mlp.gate_proj.weight"].T
        up = x @ W[f"{p}.mlp.up_proj.weight"].T
        h = h + (gt / (1 + np.exp(-gt)) * up) @ W[f"{p}.mlp.down_proj.weight"].T
    h = rms(h, W["model.norm.weight"])
    return h @ W["model.embed_tokens.weight"].T


def make_prompts():
    rng = np.random.default_rng(1235)  # fixed, independent of the weight seed
    lens = [1, 7, 42]
    return [[BOS_ID] + [int(t) for t in rng.integers(0, 128000, n - 1)] for n in lens]


# ------------------------------------------------------------------------------------------------


def build_variant(name, opts, weights, tmp_fp32_path):
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    path = d / "model.onnx"
    if opts.get("quantize"):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        source = tmp_fp32_path
        if opts.get("untied_head"):
            untied_cfg = dict(CONFIG, tie_word_embeddings=False)
            untied_weights = dict(weights, **{"lm_head.weight": weights["model.embed_tokens.weight"].copy()})
            source = d / "untied-fp32.onnx"
            ol.save_model(
                ol.build_llama_model(untied_cfg, untied_weights, dtype="float32", with_past=True,
                                     position_ids_input=True, graph_name=f"tiny_llama_{name}"),
                str(source),
            )
        quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8)
        if source != tmp_fp32_path:
            source.unlink()
        import onnx

        graph = onnx.load(str(path)).graph
        ops = {n.op_type for n in graph.node}
        assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops, ops
        if opts.get("untied_head"):
            producer = {o: n for n in graph.node for o in n.output}
            assert producer["logits"].op_type == "Mul", producer["logits"].op_type
    else:
        m = ol.build_llama_model(
            CONFIG,
            weights,
            dtype=opts["dtype"],
            with_past=opts["with_past"],
            position_ids_input=opts["position_ids_input"],
            merged=opts.get("merged", False),
            graph_name=f"tiny_llama_{name}",
        )
        ol.save_model(m, str(path), external_data=opts.get("external", False))
        for f in d.iterdir():
            f.chmod(0o644)  # onnx writes external data files 0600
    cfg = dict(CONFIG)
    cfg["torch_dtype"] = "float16" if opts.get("dtype") == "float16" else "float32"
    if "max_pos" in opts:
        cfg["max_position_embeddings"] = opts["max_pos"]
    (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (d / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2) + "\n")
    return path


def first_eos(ids):
    for i, t in enumerate(ids):
        if t in EOS_IDS:
            return i
    return None


WHAT_IS_COMMITTED = (
    "The machine-independent part of the greedy references for the tiny random Llama-3.2-shaped models "
    "(scripts/setup/make_tiny_models.py; the rule is in scripts/setup/model_golden.py): prompt ids, the I/O layout, and float32 "
    "greedy ids whose every step's top-1/top-2 logit margin is >= %g. Logit values, margins, float16 and INT8 ids "
    "depend on the CPU's ONNX Runtime kernels: they are in assets/reference/models/tiny_llama.json, which the same "
    "script makes on the machine that runs the tests." % model_golden.FLOAT32_MACHINE_INDEPENDENT_MARGIN
)
ID_KEYS = ("new_ids", "first_eos_index", "context_limit", "expected_new_tokens_until_context_full",
           "new_ids_within_context", "context_full")


def machine_independent(golden: dict) -> dict:
    """The committed part of the reference: all but logit values, margins, and float16 / INT8 ids."""
    out = {k: v for k, v in golden.items() if k not in ("variants", "batch", "onnxruntime_version", "description")}
    out["variants"] = {}
    for name, v in golden["variants"].items():
        entry = {k: x for k, x in v.items() if k != "prompts"}
        entry["prompts"] = []
        for p in v["prompts"]:
            e = {"prompt_ids": p["prompt_ids"]}
            if v["weights_dtype"] == "float32" and model_golden.float32_ids_are_machine_independent(p["step_margins"]):
                e.update({k: x for k, x in p.items() if k in ID_KEYS})
            entry["prompts"].append(e)
        out["variants"][name] = entry
    out["batch"] = {k: x for k, x in golden["batch"].items() if k != "new_ids_fp16"}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-tokenizer-check", action="store_true", help="do not fail when the Llama 3.2 tokenizer is missing")
    ap.add_argument("--write-golden", action="store_true", help="rewrite the committed golden instead of checking it")
    args = ap.parse_args()
    t_start = time.time()
    import onnxruntime as ort

    OUT.mkdir(parents=True, exist_ok=True)
    weights = make_weights(CONFIG)
    prompts = make_prompts()

    # fp32 model built first (also the input of quantize_dynamic)
    timings = {}
    paths = {}
    for name in ["fp32"] + [v for v in VARIANTS if v != "fp32"]:
        t0 = time.time()
        paths[name] = build_variant(name, VARIANTS[name], weights, OUT / "fp32" / "model.onnx")
        timings[name] = round(time.time() - t0, 2)
        print(f"built {name:16s} in {timings[name]:.2f}s", flush=True)
    t_built = time.time()

    # ---- validate graph against the numpy HF re-implementation
    sess32 = ol.ort_session(str(paths["fp32"]))
    for p in prompts:
        x = np.array([p], dtype=np.int64)
        m = np.ones_like(x)
        lg = sess32.run(["logits"], ol._feed(sess32, x, m, ol.positions_from_mask(m), ol.empty_past(sess32, 1)))[0][0]
        ref = numpy_reference_logits(CONFIG, weights, p)
        err = np.abs(lg - ref).max() / max(1.0, np.abs(ref).max())
        assert err < 1e-4, f"ONNX graph disagrees with numpy reference: rel err {err}"
        assert np.argmax(lg, -1).tolist() == np.argmax(ref, -1).tolist()
    # positions far beyond the original 8192 context (exercise llama3 rope scaling)
    far = np.array([[BOS_ID, 100, 200, 300]], dtype=np.int64)
    fpos = np.array([[0, 20000, 50000, 130000]], dtype=np.int64)
    lg = sess32.run(["logits"], ol._feed(sess32, far, np.ones_like(far), fpos, ol.empty_past(sess32, 1)))[0][0]
    ref = numpy_reference_logits(CONFIG, weights, far[0].tolist(), fpos[0])
    err = np.abs(lg - ref).max() / np.abs(ref).max()
    assert err < 1e-4, f"rope scaling mismatch {err}"
    print("numpy reference agrees with the fp32 graph", flush=True)

    golden = {
        "description": "Greedy goldens for the tiny random Llama-3.2-shaped models built by scripts/setup/make_tiny_models.py "
        "(reference: ONNX Runtime Python full recompute of the whole sequence per step, zero-length past; "
        "checked against a Python KV-cache loop and a numpy HF re-implementation).",
        "generator": "scripts/setup/make_tiny_models.py",
        "onnxruntime_version": ort.__version__,
        "model_dir": "assets/models/tiny-llama/<variant>",
        "config": {k: CONFIG[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size", "rope_theta", "rope_scaling", "max_position_embeddings", "tie_word_embeddings")},
        "bos_token_id": BOS_ID,
        "eos_token_ids": EOS_IDS,
        "max_new_tokens": N_NEW,
        "notes": [
            "new_ids: greedy (argmax, no sampling), exactly max_new_tokens steps, no EOS stopping; "
            "first_eos_index is the index in new_ids of the first id in eos_token_ids (null if none): "
            "an engine that stops at EOS returns new_ids[:first_eos_index + 1] (or without the EOS, by its convention).",
            "All float32 variants share the same weights, hence the same ids; fp16 casts them to float16 "
            "(weights, activations, KV cache and logits are float16; RMSNorm and softmax run in float32 inside the graph).",
            "int8 = onnxruntime.quantization.quantize_dynamic(fp32, weight_type=QInt8). DynamicQuantizeLinear uses one "
            "activation scale per tensor ([batch, seq, hidden]), so int8 results depend on how tokens are grouped into runs: "
            "its golden is the KV loop (whole prompt in one run, then one token per run, batch of one); full_recompute_ids "
            "differ and are informative only. Batched int8 also differs from solo int8.",
            "short-context: config max_position_embeddings = 64; expected_new_tokens_until_context_full = "
            "min(max_new_tokens, 64 - len(prompt)), i.e. prompt + generated <= 64 (HF max_length convention).",
            "step0_top1_logit: the largest logit of the first generated position (compare within ~1e-3 relative for "
            "float32, ~1e-2 for float16 / int8).",
            "Margins: min over all steps of (top1 - top2) logits; argmax ties never occur in these goldens.",
        ],
        "variants": {},
    }

    results = {}
    for name, opts in VARIANTS.items():
        t0 = time.time()
        sess = ol.ort_session(str(paths[name]))
        kind = "int8" if opts.get("quantize") else opts["dtype"]
        tol = MIN_MARGIN[kind]
        entries = []
        for p in prompts:
            full_ids, full_margins, full_top1 = ol.greedy_full_recompute(sess, p, N_NEW)
            kv_ids, kv_margins, kv_top1 = ol.greedy_kv_loop(sess, [p], N_NEW)
            kv_ids, kv_margins = kv_ids[0], kv_margins[0]
            assert abs(kv_top1[0] - full_top1[0]) < 1e-3 * max(1.0, abs(full_top1[0])), (name, kv_top1, full_top1)
            if opts.get("quantize"):
                # DynamicQuantizeLinear picks one activation scale per tensor, i.e. over the whole
                # [batch, seq, hidden] input: a full recompute and a KV loop quantize differently, so their
                # ids legitimately diverge. The golden is the KV loop (prefill the whole prompt in one run,
                # then one token per run, batch of one) -- what the Rust engine does.
                ids, margins, top1 = kv_ids, kv_margins, kv_top1
            else:
                ids, margins, top1 = full_ids, full_margins, full_top1
                assert kv_ids == ids, f"{name}: KV loop {kv_ids} != full recompute {ids}"
            if opts.get("merged"):  # Optimum-style first step: dummy past of length 1 + use_cache_branch=False
                d_ids, _, _ = ol.greedy_kv_loop(sess, [p], N_NEW, merged_dummy_len=1)
                assert d_ids[0] == ids, f"{name}: dummy-past first step differs"
            if kind == "float32":
                assert min(margins) > tol, f"{name}: margin {min(margins)} <= {tol} for prompt len {len(p)}"
            elif min(margins) <= tol:
                # float16 / INT8 ids are compared on the machine that made them (same kernels), so a small
                # margin is no error; it is worth knowing when a test fails on a new CPU.
                print(f"note: {name} prompt len {len(p)}: smallest top-1/top-2 margin {min(margins):.4f} <= {tol}", flush=True)
            e = {
                "prompt_ids": p,
                "new_ids": ids,
                "first_eos_index": first_eos(ids),
                "step0_top1_logit": round(top1[0], 6),
                "step0_top1_id": ids[0],
                "min_top1_top2_margin": round(min(margins), 6),
                "step_margins": [round(m, 6) for m in margins],
                "reference": "kv_loop" if opts.get("quantize") else "full_recompute",
            }
            if opts.get("quantize"):
                e["full_recompute_ids"] = full_ids
            if "max_pos" in opts:
                n_fit = max(0, min(N_NEW, opts["max_pos"] - len(p)))
                e["context_limit"] = opts["max_pos"]
                e["expected_new_tokens_until_context_full"] = n_fit
                e["new_ids_within_context"] = ids[:n_fit]
                e["context_full"] = n_fit < N_NEW
            entries.append(e)
        results[name] = entries
        sess_io = ol.describe_io(sess)
        golden["variants"][name] = {
            "path": f"assets/models/tiny-llama/{name}/model.onnx",
            "external_data": "model.onnx_data" if opts.get("external") else None,
            "weights_dtype": kind,
            "kv_dtype": None if not opts["with_past"] else ("float16" if kind == "float16" else "float32"),
            "logits_dtype": "float16" if kind == "float16" else "float32",
            "has_position_ids": opts["position_ids_input"],
            "has_past": opts["with_past"],
            "has_use_cache_branch": bool(opts.get("merged")),
            "max_position_embeddings": opts.get("max_pos", CONFIG["max_position_embeddings"]),
            "min_margin_required": tol,
            "io": sess_io,
            "prompts": entries,
        }
        print(f"golden {name:16s} margins>={min(min(e2['min_top1_top2_margin'] for e2 in entries), 99):.4f} "
              f"({time.time() - t0:.1f}s) ids[2][:12]={entries[2]['new_ids'][:12]}", flush=True)

    # all float32 variants share weights: identical ids
    for name in FP32_FAMILY:
        assert [e["new_ids"] for e in results[name]] == [e["new_ids"] for e in results["fp32"]], name
    for name in VARIANTS:
        for e in results[name]:
            assert len(set(e["new_ids"])) >= 3, f"{name}: continuation nearly constant {e['new_ids']}"

    # ---- batch golden: two prompts of different lengths, left padded, decoded together
    bprompts = [prompts[1], prompts[2][:19]]
    solo = {}
    sess_fp = ol.ort_session(str(paths["fp32"]))
    for i, p in enumerate(bprompts):
        solo[i], mg, _ = ol.greedy_full_recompute(sess_fp, p, N_BATCH_STEPS)
        assert min(mg) > MIN_MARGIN["float32"], f"batch prompt {i}: margin {min(mg)}"
    batch_entry = {
        "description": "Rows left-padded with pad_id (attention_mask 0), position_ids = max(cumsum(mask)-1, 0); "
        "greedy-decoded together must equal each prompt decoded alone.",
        "variants_checked": [],
        "pad_id": PAD_ID,
        "steps": N_BATCH_STEPS,
        "prompts": bprompts,
    }
    maxlen = max(len(p) for p in bprompts)
    batch_entry["input_ids"] = [[PAD_ID] * (maxlen - len(p)) + p for p in bprompts]
    batch_entry["attention_mask"] = [[0] * (maxlen - len(p)) + [1] * len(p) for p in bprompts]
    batch_entry["position_ids"] = ol.positions_from_mask(np.array(batch_entry["attention_mask"])).tolist()
    batch_entry["new_ids"] = [solo[0], solo[1]]
    for name in ["fp32", "no-position-ids", "merged", "no-kv", "fp16"]:
        sess = ol.ort_session(str(paths[name]))
        got, _, _ = ol.greedy_kv_loop(sess, bprompts, N_BATCH_STEPS, pad_id=PAD_ID)
        if name == "fp16":
            ref16 = [ol.greedy_full_recompute(sess, p, N_BATCH_STEPS) for p in bprompts]
            assert all(min(r[1]) > MIN_MARGIN["float16"] for r in ref16), "fp16 batch margins"
            ref16 = [r[0] for r in ref16]
            batch_entry["new_ids_fp16"] = ref16
            assert got == ref16, f"fp16 batch {got} != solo {ref16}"
        else:
            assert got == batch_entry["new_ids"], f"{name}: batch {got} != solo {batch_entry['new_ids']}"
        batch_entry["variants_checked"].append(name)
    golden["batch"] = batch_entry
    print("batch (left padded) == solo for", batch_entry["variants_checked"], flush=True)

    # ---- tokenizer files (a missing one is reported last, so the models/goldens can be developed without them)
    tok = TOKENIZER_DIR / "tokenizer.json"
    missing_tokenizer = None
    if tok.exists():
        # The tiny models are base models: Llama 3.2's tokenizer.json, and a tokenizer_config.json
        # of their own with BOS/EOS but no chat template (tests rely on a model without one).
        config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
        for name in VARIANTS:
            shutil.copy2(tok, OUT / name / "tokenizer.json")
            (OUT / name / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        print("copied the Llama 3.2 tokenizer.json into each variant dir")
    elif not args.skip_tokenizer_check:
        missing_tokenizer = (f"error: {tok.relative_to(ROOT)} is missing; run scripts/setup/fetch_tokenizers.py first, then re-run "
                             "this script (or pass --skip-tokenizer-check). Models and references were written.")

    t_golden = time.time()
    stamp = hashlib.sha256(Path(__file__).read_bytes() + Path(ol.__file__).read_bytes() + Path(model_golden.__file__).read_bytes()).hexdigest()
    model_golden.publish("tiny_llama", golden, machine_independent(golden), stamp, args.write_golden, WHAT_IS_COMMITTED)
    (OUT / "STAMP").write_text(stamp + "\n")
    print(f"build {t_built - t_start:.1f}s (per variant {timings}), goldens + checks {t_golden - t_built:.1f}s", flush=True)
    if missing_tokenizer:
        sys.exit(missing_tokenizer)


if __name__ == "__main__":
    main()
