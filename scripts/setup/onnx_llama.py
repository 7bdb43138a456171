"""Build a Llama-style decoder as a standard-ops ONNX graph in the Optimum export layout.

Shared by scripts/setup/make_tiny_models.py and scripts/setup/convert_smollm2.py. Needs only numpy + onnx.

Layout (what Optimum / Sphana's exporter writes):
  inputs   input_ids        int64 [batch_size, sequence_length]
           attention_mask   int64 [batch_size, past_sequence_length + sequence_length]
           position_ids     int64 [batch_size, sequence_length]          (optional)
           past_key_values.{i}.key / .value  [batch_size, kv_heads, past_sequence_length, head_dim]
           use_cache_branch bool [1]                                      (merged exports only)
  outputs  logits           [batch_size, sequence_length, vocab]
           present.{i}.key / .value  [batch_size, kv_heads, past_sequence_length + sequence_length, head_dim]

Semantics follow Hugging Face LlamaForCausalLM: RMSNorm (computed in float32), rotate-half RoPE
(optionally with Llama 3 frequency scaling), GQA (query head h uses kv head h // (heads/kv_heads)),
SwiGLU MLP, causal mask combined with the attention_mask padding mask (0 = masked; fully masked rows
give a uniform softmax instead of NaN), softmax in float32. Without a position_ids input, positions are
cumsum(attention_mask) - 1 clipped at 0 (what HF generate() feeds), restricted to the last
sequence_length columns.

Weights are given under Hugging Face names (model.embed_tokens.weight [V,H], *_proj.weight [out,in], ...).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18

DIM_BATCH = "batch_size"
DIM_SEQ = "sequence_length"
DIM_PAST = "past_sequence_length"
DIM_TOTAL = "past_sequence_length + sequence_length"


def llama3_inv_freq(head_dim: int, theta: float, rope_scaling: dict | None) -> np.ndarray:
    """inv_freq as transformers' _compute_default/_compute_llama3_parameters, computed in float64 and
    rounded once to float32 (torch computes it in float32; the two differ by an ulp at most)."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    if not rope_scaling:
        return inv_freq.astype(np.float32)
    rtype = rope_scaling.get("rope_type", rope_scaling.get("type"))
    if rtype in (None, "default"):
        return inv_freq.astype(np.float32)
    if rtype != "llama3":
        raise ValueError(f"unsupported rope_scaling {rope_scaling}")
    factor = rope_scaling["factor"]
    low_freq_factor = rope_scaling["low_freq_factor"]
    high_freq_factor = rope_scaling["high_freq_factor"]
    old_context_len = rope_scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(is_medium, smoothed, inv_freq_llama).astype(np.float32)


class _G:
    """Tiny helper that accumulates nodes / initializers with unique names."""

    def __init__(self, np_dtype):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0
        self.np_dtype = np_dtype
        self.consts: dict = {}

    def uniq(self, base: str) -> str:
        self.n += 1
        return f"/{base}_{self.n}"

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, name: str | None = None, outputs=None, **attrs):
        base = name or op_type
        if outputs is None:
            outputs = [self.uniq(base) + (f"_out{i}" if n_out > 1 else "_out") for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.uniq(base), **attrs))
        return outputs[0] if n_out == 1 else outputs

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.array(arr, order="C", copy=False) if np.ndim(arr) else np.asarray(arr), name))
        return name

    def i64(self, values) -> str:
        key = ("i64", tuple(np.atleast_1d(values).tolist()), np.ndim(values))
        if key not in self.consts:
            self.consts[key] = self.init(f"const_i64_{len(self.consts)}", np.array(values, dtype=np.int64))
        return self.consts[key]

    def f(self, value: float, dtype=None) -> str:
        dtype = dtype or self.np_dtype
        key = ("f", float(value), np.dtype(dtype).str)
        if key not in self.consts:
            self.consts[key] = self.init(f"const_f_{len(self.consts)}", np.array(value, dtype=dtype))
        return self.consts[key]


def build_llama_model(
    cfg: dict,
    weights: dict[str, np.ndarray],
    *,
    dtype: str = "float32",
    with_past: bool = True,
    position_ids_input: bool = True,
    merged: bool = False,
    logits_dtype: str | None = None,
    graph_name: str = "llama",
) -> onnx.ModelProto:
    """Return an onnx.ModelProto (weights embedded as initializers).

    cfg: HF LlamaConfig-like dict (vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
    num_key_value_heads, head_dim, intermediate_size, rms_norm_eps, rope_theta, rope_scaling,
    tie_word_embeddings).
    dtype: "float32" or "float16" for weights / activations / KV cache.
    logits_dtype: defaults to dtype.
    merged: add a bool use_cache_branch input (requires with_past); when false the past inputs are
    ignored (sliced to zero length inside an If node), so any dummy past may be fed.
    """
    assert dtype in ("float32", "float16")
    assert not merged or with_past
    np_dt = np.float32 if dtype == "float32" else np.float16
    onnx_dt = TensorProto.FLOAT if dtype == "float32" else TensorProto.FLOAT16
    logits_dtype = logits_dtype or dtype
    onnx_logits_dt = TensorProto.FLOAT if logits_dtype == "float32" else TensorProto.FLOAT16

    V = cfg["vocab_size"]
    H = cfg["hidden_size"]
    L = cfg["num_hidden_layers"]
    nh = cfg["num_attention_heads"]
    kvh = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or H // nh
    rep = nh // kvh
    eps = float(cfg.get("rms_norm_eps", 1e-5))
    inv_freq = llama3_inv_freq(hd, float(cfg.get("rope_theta", 10000.0)), cfg.get("rope_scaling"))

    g = _G(np_dt)
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, [DIM_BATCH, DIM_SEQ]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [DIM_BATCH, DIM_TOTAL if with_past else DIM_SEQ]),
    ]
    if position_ids_input:
        inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT64, [DIM_BATCH, DIM_SEQ]))
    if with_past:
        for i in range(L):
            for kv in ("key", "value"):
                inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kv}", onnx_dt, [DIM_BATCH, kvh, DIM_PAST, hd]))
    if merged:
        inputs.append(helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1]))

    outputs = [helper.make_tensor_value_info("logits", onnx_logits_dt, [DIM_BATCH, DIM_SEQ, V])]
    if with_past:
        for i in range(L):
            for kv in ("key", "value"):
                outputs.append(helper.make_tensor_value_info(f"present.{i}.{kv}", onnx_dt, [DIM_BATCH, kvh, DIM_TOTAL, hd]))

    def w(name):
        return weights[name].astype(np_dt)

    # ---- weights
    embed = g.init("model.embed_tokens.weight", w("model.embed_tokens.weight"))

    # ---- shapes
    ids_shape = g.op("Shape", ["input_ids"], name="ids_shape")
    S = g.op("Gather", [ids_shape, g.i64(1)], name="seq_len", axis=0)  # scalar
    mask_shape = g.op("Shape", ["attention_mask"], name="mask_shape")
    T = g.op("Gather", [mask_shape, g.i64(1)], name="total_len", axis=0)  # scalar
    P = g.op("Sub", [T, S], name="past_len")  # scalar, query offset

    # ---- merged: effective past (If node selecting real past or a zero-length slice)
    past_names = {}
    if with_past:
        raw = [f"past_key_values.{i}.{kv}" for i in range(L) for kv in ("key", "value")]
        eff = raw
        if merged:
            then_nodes, then_outs, else_nodes, else_outs = [], [], [], []
            eff = []
            z = g.i64([0])
            ax = g.i64([2])
            for r in raw:
                tn = f"{r}/then"
                en = f"{r}/else"
                then_nodes.append(helper.make_node("Identity", [r], [tn], name=f"/if_then_{r}"))
                else_nodes.append(helper.make_node("Slice", [r, z, z, ax], [en], name=f"/if_else_{r}"))
                then_outs.append(helper.make_tensor_value_info(tn, onnx_dt, None))
                else_outs.append(helper.make_tensor_value_info(en, onnx_dt, None))
                eff.append(f"{r}/effective")
            then_g = helper.make_graph(then_nodes, "use_cache_true", [], then_outs)
            else_g = helper.make_graph(else_nodes, "use_cache_false", [], else_outs)
            cond = g.op("Squeeze", ["use_cache_branch"], name="use_cache_scalar")
            g.nodes.append(helper.make_node("If", [cond], eff, name="/optimum::if", then_branch=then_g, else_branch=else_g))
        for i in range(L):
            past_names[i] = (eff[2 * i], eff[2 * i + 1])

    # ---- positions
    if position_ids_input:
        pos = "position_ids"
    else:
        cs = g.op("CumSum", ["attention_mask", g.i64(1)], name="mask_cumsum")
        cs = g.op("Sub", [cs, g.i64(1)])
        cs = g.op("Max", [cs, g.i64(0)])
        P1 = g.op("Unsqueeze", [P, g.i64([0])])
        T1 = g.op("Unsqueeze", [T, g.i64([0])])
        pos = g.op("Slice", [cs, P1, T1, g.i64([1])], name="positions")

    # ---- rotary tables (float32 then cast), shape [B,1,S,hd]
    posf = g.op("Cast", [pos], to=TensorProto.FLOAT)
    posf = g.op("Unsqueeze", [posf, g.i64([2])])  # [B,S,1]
    invf = g.init("rotary.inv_freq", inv_freq.reshape(1, 1, -1).astype(np.float32))
    freqs = g.op("Mul", [posf, invf])  # [B,S,hd/2]
    emb = g.op("Concat", [freqs, freqs], axis=-1)
    cos = g.op("Cos", [emb], name="rope_cos")
    sin = g.op("Sin", [emb], name="rope_sin")
    if dtype != "float32":
        cos = g.op("Cast", [cos], to=onnx_dt)
        sin = g.op("Cast", [sin], to=onnx_dt)
    cos = g.op("Unsqueeze", [cos, g.i64([1])])
    sin = g.op("Unsqueeze", [sin, g.i64([1])])

    # ---- attention mask [B,1,1,S,T] bool (5-D for grouped-query scores)
    k_idx = g.op("Range", [g.i64(0), T, g.i64(1)], name="key_index")
    q_idx = g.op("Range", [P, T, g.i64(1)], name="query_index")
    causal = g.op("LessOrEqual", [g.op("Unsqueeze", [k_idx, g.i64([0])]), g.op("Unsqueeze", [q_idx, g.i64([1])])], name="causal")  # [S,T]
    padb = g.op("Cast", ["attention_mask"], to=TensorProto.BOOL)
    padb = g.op("Unsqueeze", [padb, g.i64([1, 2, 3])])  # [B,1,1,1,T]
    mask5 = g.op("And", [causal, padb], name="attn_mask")  # [B,1,1,S,T]
    neg = g.f(-1e9, np.float32)  # finite: fully masked (padding) query rows stay NaN-free

    def rmsnorm(x, wname):
        xf = x if dtype == "float32" else g.op("Cast", [x], to=TensorProto.FLOAT)
        var = g.op("ReduceMean", [g.op("Mul", [xf, xf]), g.i64([-1])], keepdims=1)
        inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [var, g.f(eps, np.float32)])])])
        y = g.op("Mul", [xf, inv])
        if dtype != "float32":
            y = g.op("Cast", [y], to=onnx_dt)
        return g.op("Mul", [y, g.init(wname, w(wname))], name="rmsnorm")

    def linear(x, wname):
        wt = g.init(wname + ".T", np.ascontiguousarray(w(wname).T))  # [in,out]
        return g.op("MatMul", [x, wt], name=wname.replace("model.", ""))

    half = hd // 2
    split_sizes = g.i64([half, half])

    def rope(x):  # x [B,heads,S,hd]
        x1, x2 = g.op("Split", [x, split_sizes], n_out=2, axis=-1)
        rot = g.op("Concat", [g.op("Neg", [x2]), x1], axis=-1)
        return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rot, sin])], name="rope")

    scale = g.f(1.0 / math.sqrt(hd))
    h = g.op("Gather", [embed, "input_ids"], name="embed_tokens", axis=0)  # [B,S,H]
    for i in range(L):
        p = f"model.layers.{i}"
        x = rmsnorm(h, f"{p}.input_layernorm.weight")
        q = linear(x, f"{p}.self_attn.q_proj.weight")
        k = linear(x, f"{p}.self_attn.k_proj.weight")
        v = linear(x, f"{p}.self_attn.v_proj.weight")
        q = g.op("Transpose", [g.op("Reshape", [q, g.i64([0, 0, nh, hd])])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [k, g.i64([0, 0, kvh, hd])])], perm=[0, 2, 1, 3])
        v = g.op("Transpose", [g.op("Reshape", [v, g.i64([0, 0, kvh, hd])])], perm=[0, 2, 1, 3])
        q = rope(q)
        k = rope(k)
        if with_past:
            pk, pv = past_names[i]
            k = g.op("Concat", [pk, k], axis=2, outputs=[f"present.{i}.key"])
            v = g.op("Concat", [pv, v], axis=2, outputs=[f"present.{i}.value"])
        # grouped-query attention by broadcasting: q [B,kvh,rep,S,hd], k/v [B,kvh,1,T,hd]
        q5 = g.op("Reshape", [q, g.i64([0, kvh, rep, -1, hd])])
        k5 = g.op("Unsqueeze", [k, g.i64([2])])
        v5 = g.op("Unsqueeze", [v, g.i64([2])])
        kt = g.op("Transpose", [k5], perm=[0, 1, 2, 4, 3])
        scores = g.op("MatMul", [g.op("Mul", [q5, scale]), kt], name="attn_scores")  # [B,kvh,rep,S,T]
        if dtype != "float32":
            scores = g.op("Cast", [scores], to=TensorProto.FLOAT)
        scores = g.op("Where", [mask5, scores, neg], name="apply_mask")
        probs = g.op("Softmax", [scores], axis=-1)
        if dtype != "float32":
            probs = g.op("Cast", [probs], to=onnx_dt)
        ctx = g.op("MatMul", [probs, v5], name="attn_context")  # [B,kvh,rep,S,hd]
        ctx = g.op("Reshape", [ctx, g.i64([0, nh, -1, hd])])
        ctx = g.op("Transpose", [ctx], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, g.i64([0, 0, nh * hd])])
        h = g.op("Add", [h, linear(ctx, f"{p}.self_attn.o_proj.weight")], name="residual_attn")
        x = rmsnorm(h, f"{p}.post_attention_layernorm.weight")
        gate = linear(x, f"{p}.mlp.gate_proj.weight")
        up = linear(x, f"{p}.mlp.up_proj.weight")
        act = g.op("Mul", [gate, g.op("Sigmoid", [gate])], name="silu")
        h = g.op("Add", [h, linear(g.op("Mul", [act, up]), f"{p}.mlp.down_proj.weight")], name="residual_mlp")
    h = rmsnorm(h, "model.norm.weight")
    if cfg.get("tie_word_embeddings", True) or "lm_head.weight" not in weights:
        head = g.op("Transpose", [embed], perm=[1, 0], name="lm_head_tied")  # constant-folded by ORT
    else:
        head = g.init("lm_head.weight.T", np.ascontiguousarray(w("lm_head.weight").T))
    logits_out = "logits" if logits_dtype == dtype else "logits_raw"
    g.op("MatMul", [h, head], name="lm_head", outputs=[logits_out])
    if logits_out != "logits":
        g.op("Cast", [logits_out], to=onnx_logits_dt, outputs=["logits"])

    graph = helper.make_graph(g.nodes, graph_name, inputs, outputs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sphana-llm-scripts")
    model.ir_version = 9
    return model


def save_model(model: onnx.ModelProto, path: str, external_data: bool = False) -> None:
    import os

    if external_data:
        loc = os.path.basename(path) + "_data"
        if os.path.exists(os.path.join(os.path.dirname(path), loc)):
            os.remove(os.path.join(os.path.dirname(path), loc))
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=loc, size_threshold=1024)
    else:
        onnx.save_model(model, path)


# ----------------------------------------------------------------------------------------------
# Python ONNX Runtime helpers (reference decoding used for goldens)


def ort_session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def describe_io(sess) -> dict:
    return {
        "inputs": [{"name": i.name, "type": i.type, "shape": [str(d) for d in i.shape]} for i in sess.get_inputs()],
        "outputs": [{"name": o.name, "type": o.type, "shape": [str(d) for d in o.shape]} for o in sess.get_outputs()],
    }


def _kv_dtype(sess):
    for i in sess.get_inputs():
        if i.name.startswith("past_key_values."):
            return np.float16 if "float16" in i.type else np.float32
    return None


def _feed(sess, input_ids, attention_mask, position_ids, past, use_cache_branch=None):
    names = {i.name for i in sess.get_inputs()}
    feed = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "position_ids" in names:
        feed["position_ids"] = position_ids
    if "use_cache_branch" in names:
        feed["use_cache_branch"] = np.array([bool(use_cache_branch)], dtype=bool)
    feed.update(past or {})
    return feed


def empty_past(sess, batch: int, length: int = 0) -> dict:
    dt = _kv_dtype(sess)
    out = {}
    for i in sess.get_inputs():
        if i.name.startswith("past_key_values."):
            kvh, hd = i.shape[1], i.shape[3]
            out[i.name] = np.zeros((batch, kvh, length, hd), dtype=dt)
    return out


def positions_from_mask(mask: np.ndarray) -> np.ndarray:
    return np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int64)


def top2(row: np.ndarray):
    row = row.astype(np.float64)
    i1 = int(np.argmax(row))
    v1 = float(row[i1])
    r2 = row.copy()
    r2[i1] = -np.inf
    i2 = int(np.argmax(r2))
    return i1, v1, v1 - float(r2[i2])


def greedy_full_recompute(sess, prompt_ids, n_new: int, pad_id: int = 0):
    """Reference: every step runs the whole sequence with zero-length past (batch of one)."""
    seq = list(prompt_ids)
    ids, margins, top1_vals = [], [], []
    for _ in range(n_new):
        x = np.array([seq], dtype=np.int64)
        m = np.ones_like(x)
        feed = _feed(sess, x, m, positions_from_mask(m), empty_past(sess, 1, 0), use_cache_branch=False)
        logits = sess.run(["logits"], feed)[0]
        t, v, mg = top2(logits[0, -1])
        ids.append(t)
        margins.append(mg)
        top1_vals.append(v)
        seq.append(t)
    return ids, margins, top1_vals


def greedy_kv_loop(sess, prompts: list[list[int]], n_new: int, pad_id: int = 0, eos_ids=(), merged_dummy_len: int = 0):
    """Batched (left-padded) greedy KV-cache loop. Returns (new ids per row, margins per row, step-0 top1 values).

    eos_ids: if given, a row stops (is fed pad afterwards, results truncated) after emitting an EOS.
    merged_dummy_len: length of the dummy past fed with use_cache_branch=False on the first step.
    """
    B = len(prompts)
    maxlen = max(len(p) for p in prompts)
    x = np.full((B, maxlen), pad_id, dtype=np.int64)
    mask = np.zeros((B, maxlen), dtype=np.int64)
    for b, p in enumerate(prompts):
        x[b, maxlen - len(p):] = p
        mask[b, maxlen - len(p):] = 1
    out_names = [o.name for o in sess.get_outputs()]
    past = empty_past(sess, B, merged_dummy_len)
    use_cache = False
    res = [[] for _ in range(B)]
    margins = [[] for _ in range(B)]
    top1_0 = [None] * B
    done = [False] * B
    for step in range(n_new):
        pos_full = positions_from_mask(mask)
        pos = pos_full[:, -x.shape[1]:]
        outs = sess.run(out_names, _feed(sess, x, mask, pos, past, use_cache_branch=use_cache))
        r = dict(zip(out_names, outs))
        nxt = np.zeros((B, 1), dtype=np.int64)
        for b in range(B):
            t, v, mg = top2(r["logits"][b, -1])
            if step == 0:
                top1_0[b] = v
            if not done[b]:
                res[b].append(t)
                margins[b].append(mg)
                if t in eos_ids:
                    done[b] = True
            nxt[b, 0] = t  # finished rows keep running; their outputs are ignored
        if all(done):
            break
        if past:
            past = {n.replace("present.", "past_key_values."): a for n, a in r.items() if n.startswith("present.")}
            use_cache = True
            x = nxt
            mask = np.concatenate([mask, np.ones((B, 1), dtype=np.int64)], axis=1)
        else:  # no-kv model: recompute everything
            x = np.concatenate([x, nxt], axis=1)
            mask = np.concatenate([mask, np.ones((B, 1), dtype=np.int64)], axis=1)
    return res, margins, top1_0
