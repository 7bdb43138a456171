#!/usr/bin/env python3
"""Golden chat-template renderings made by the reference, HF `transformers`' apply_chat_template.

For the Llama 3.2 Instruct template (assets/tokenizers/llama3.2, Meta's tokenizer_config.json)
and SmolLM2-135M-Instruct's (assets/models/smollm2-135m-instruct), several conversations
(system message, several turns, non-ASCII content) are rendered with and without the
generation prompt; the ids are the reference tokenizer's encoding of the rendered text
(special tokens parsed, nothing added), i.e. what the model is fed.
Llama 3.x prints today's date; the goldens pass date_string="26 Jul 2024" explicitly.

Writes tests/golden/chat/chat_templates.json. `--check` compares instead of writing.
Needs: transformers (no torch), tokenizers. Run scripts/setup/fetch_tokenizers.py and
scripts/setup/convert_smollm2.py first.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "golden" / "chat" / "chat_templates.json"
DATE = "26 Jul 2024"

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "What is the capital of France?"}],
    "system_and_turns": [
        {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
        {"role": "user", "content": "Wie heißt die Hauptstadt von Österreich?"},
        {"role": "assistant", "content": "Die Hauptstadt von Österreich ist Wien."},
        {"role": "user", "content": "And Japan's? 日本の首都は？ 🗾"},
    ],
    "turns_without_system": [
        {"role": "user", "content": "  Leading and trailing spaces  "},
        {"role": "assistant", "content": "Noted.\n"},
        {"role": "user", "content": "Café, naïve, coöperate — résumé.\n\nTwo paragraphs."},
    ],
}

MODELS = {
    "llama3.2": ROOT / "assets" / "tokenizers" / "llama3.2",
    "smollm2": ROOT / "assets" / "models" / "smollm2-135m-instruct",
}


def render_all():
    import transformers
    from transformers import PreTrainedTokenizerFast

    result = {
        "description": __doc__.strip().splitlines()[0],
        "reference": f"transformers {transformers.__version__}",
        "date_string": DATE,
        "models": {},
    }
    for name, directory in MODELS.items():
        if not (directory / "tokenizer_config.json").is_file():
            sys.exit(f"{directory} is missing: run scripts/setup/fetch_tokenizers.py and scripts/setup/convert_smollm2.py")
        tok = PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
        cases = []
        for conv_name, messages in CONVERSATIONS.items():
            for add_generation_prompt in (True, False):
                kwargs = {"date_string": DATE} if name == "llama3.2" else {}
                text = tok.apply_chat_template(messages, tokenize=False,
                                               add_generation_prompt=add_generation_prompt, **kwargs)
                ids = tok(text, add_special_tokens=False)["input_ids"]
                cases.append({"conversation": conv_name, "add_generation_prompt": add_generation_prompt,
                              "text": text, "ids": ids})
        result["models"][name] = {"path": str(directory.relative_to(ROOT / "assets")), "cases": cases}
    result["conversations"] = CONVERSATIONS
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    data = json.dumps(render_all(), ensure_ascii=True, indent=1) + "\n"
    if args.check:
        if not OUT.is_file() or OUT.read_text() != data:
            sys.exit(f"{OUT.relative_to(ROOT)} differs from a fresh rendering")
        print(f"{OUT.relative_to(ROOT)} is current")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(data)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
