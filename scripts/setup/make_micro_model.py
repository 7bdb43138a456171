#!/usr/bin/env python3
"""Write a micro Llama-shaped model directory for leak and fuzz runs:
python3 scripts/setup/make_micro_model.py OUT_DIR [CONTEXT]   (CONTEXT: max_position_embeddings, default 256)

The tiny-llama test models share Llama 3.2's 128256-token vocabulary (a 9 MB tokenizer.json and a
33 MB embedding), so one load takes seconds under valgrind. This one has a ~400-token byte-level BPE
(trained here on a fixed text, deterministic), a chat template, and a 2-layer decoder of hidden size 32
in the Optimum layout (scripts/setup/onnx_llama.py): a full load -> tokenize -> generate -> free cycle takes
milliseconds, so 1000 cycles fit under valgrind. Its weights are random: the text it generates is noise.
Needs numpy, onnx, tokenizers (scripts/setup/requirements.txt).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

import onnx_llama as ol

SPECIALS = ["<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "Sphana runs language models inside a database; it must never crash, leak or corrupt its host.",
    "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich. Ça va? ✓ 日本語のテキスト。",
    "def main():\n    return 42  # code with    spaces\tand tabs\r\n",
] * 4
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tokenizer(out: Path) -> int:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    bos = tok.token_to_id("<|bos|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A <|bos|> $B", special_tokens=[("<|bos|>", bos)]
    )
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": "<|bos|>",
                "eos_token": "<|im_end|>",
                "add_bos_token": False,
                "chat_template": CHAT_TEMPLATE,
            },
            indent=2,
        )
        + "\n"
    )
    return tok.get_vocab_size()


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    context = int(sys.argv[2]) if len(sys.argv) == 3 else 256
    out.mkdir(parents=True, exist_ok=True)
    vocab = make_tokenizer(out)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    bos, eos = tok.token_to_id("<|bos|>"), tok.token_to_id("<|im_end|>")
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "max_position_embeddings": context,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "tie_word_embeddings": True,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
    }
    rng = np.random.default_rng(7)
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], vocab
    nh, kvh, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def lin(o, i):
        return (rng.standard_normal((o, i)) * 2.0 / np.sqrt(i)).astype(np.float32)

    w = {"model.embed_tokens.weight": (rng.standard_normal((V, H)) * 0.5).astype(np.float32)}
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
    model = ol.build_llama_model(cfg, w, graph_name="micro_llama")
    ol.save_model(model, str(out / "model.onnx"))
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": bos, "eos_token_id": [eos]}, indent=2) + "\n"
    )
    print(f"{out}: vocab {vocab}, {sum(a.size for a in w.values())} parameters")


if __name__ == "__main__":
    main()
