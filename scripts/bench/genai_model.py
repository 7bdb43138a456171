"""The model folder onnxruntime-genai 0.18 reads: links to an Optimum export's files plus a
genai_config.json written from its config.json. Shared by the benchmarks that run genai.
"""

from __future__ import annotations

import json
import os


def genai_dir(src: str, dest: str, threads: int, eos_token_id: int | None = None) -> str:
    """Fills `dest` with links to every file of `src` (the ONNX file, its external data, the
    tokenizer files) and a genai_config.json for it, `threads` intra-op threads (0: ORT's choice).
    `eos_token_id` overrides the model's EOS (the generation benchmark uses an id that never comes
    up, genai having no "ignore EOS"). Returns `dest`."""
    cfg = json.load(open(os.path.join(src, "config.json")))
    os.makedirs(dest, exist_ok=True)
    for f in sorted(os.listdir(src)):
        if f == "genai_config.json" or not os.path.isfile(os.path.join(src, f)):
            continue
        link = os.path.join(dest, f)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.abspath(os.path.join(src, f)), link)
    head = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    eos = cfg["eos_token_id"] if eos_token_id is None else eos_token_id
    first_eos = eos[0] if isinstance(eos, list) else eos
    genai = {
        "model": {
            "bos_token_id": cfg["bos_token_id"],
            "eos_token_id": eos,
            "pad_token_id": cfg.get("pad_token_id") if cfg.get("pad_token_id") is not None else first_eos,
            "context_length": cfg["max_position_embeddings"],
            "vocab_size": cfg["vocab_size"],
            "type": "llama",
            "decoder": {
                "session_options": {
                    "log_id": "onnxruntime-genai",
                    "intra_op_num_threads": threads,
                    "provider_options": [],
                },
                "filename": "model.onnx",
                "head_size": head,
                "hidden_size": cfg["hidden_size"],
                "num_attention_heads": cfg["num_attention_heads"],
                "num_hidden_layers": cfg["num_hidden_layers"],
                "num_key_value_heads": cfg["num_key_value_heads"],
                "inputs": {
                    "input_ids": "input_ids",
                    "attention_mask": "attention_mask",
                    "position_ids": "position_ids",
                    "past_key_names": "past_key_values.%d.key",
                    "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
            },
        },
        "search": {
            "do_sample": False, "num_beams": 1, "num_return_sequences": 1, "max_length": cfg["max_position_embeddings"],
            "min_length": 0, "past_present_share_buffer": False, "repetition_penalty": 1.0, "temperature": 1.0,
            "top_k": 1, "top_p": 1.0, "early_stopping": True, "length_penalty": 1.0, "no_repeat_ngram_size": 0,
            "diversity_penalty": 0.0,
        },
    }
    with open(os.path.join(dest, "genai_config.json"), "w") as f:
        json.dump(genai, f, indent=1)
    return dest
