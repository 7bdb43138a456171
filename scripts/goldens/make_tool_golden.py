#!/usr/bin/env python3
"""Golden chat-template renderings with tools, made by the reference, HF `transformers`' apply_chat_template(tools=...).

Two template families: Llama 3.2 Instruct's official template (assets/tokenizers/llama3.2, Meta's
tokenizer_config.json: tools go into the first user message, a call is {"name", "parameters"}, a tool
result is an `ipython` turn) and Qwen3's (assets/tokenizers/qwen3-chat, Qwen's own tokenizer_config.json:
tools in the system turn, calls as <tool_call> blocks, results as <tool_response> in a user turn).
Conversations: a question with and without a system message, a round trip (a call and its result), and
for Qwen3 two calls in one turn (Llama 3.2's template refuses more than one). The tool list has three
RAG-service tools, a non-ASCII description (tojson keeps it) and properties in a deliberate, non-sorted
order (renderers keep it). The ids are the reference tokenizer's encoding of the rendered text (special
tokens parsed, nothing added), as in make_chat_golden.py. Llama 3.x prints today's date; the goldens pass
date_string="26 Jul 2024".

Writes tests/golden/chat/tool_templates.json. `--check` compares instead of writing.
Needs: transformers (no torch), tokenizers. Run scripts/setup/fetch_tokenizers.py first.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "golden" / "chat" / "tool_templates.json"
DATE = "26 Jul 2024"

RAG_TOOLS = [
    {"type": "function", "function": {
        "name": "search_passages",
        "description": "Searches the knowledge base and returns the best passages for a query.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "What to search for."},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 10, "description": "How many passages."},
        }, "required": ["query"]},
    }},
    {"type": "function", "function": {
        "name": "get_document",
        "description": "Opens one document by its id.",
        "parameters": {"type": "object", "properties": {
            "document_id": {"type": "integer", "minimum": 1},
        }, "required": ["document_id"]},
    }},
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Météo actuelle d'une ville — current weather in a city.",
        # Properties deliberately not in alphabetical order (nor in the order of `required`
        # or of the call's arguments): a renderer that sorts keys differs from the reference.
        "parameters": {"type": "object", "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "location": {"type": "string", "description": "City name, e.g. Zürich."},
        }, "required": ["location", "unit"]},
    }},
]

SYSTEM = {"role": "system", "content": "You answer questions about the service's documents. Use the tools when they help."}


def call(name: str, arguments: dict) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


CONVERSATIONS = {
    "ask": [SYSTEM, {"role": "user", "content": "What is the weather like in Paris right now?"}],
    "ask_no_system": [{"role": "user", "content": "Find passages about the Eiffel Tower's construction."}],
    "round_trip": [
        SYSTEM,
        {"role": "user", "content": "What is the weather like in Paris right now?"},
        {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"location": "Paris", "unit": "celsius"})]},
        {"role": "tool", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"},
    ],
    "two_calls": [
        {"role": "user", "content": "Open document 42 and search for its author."},
        {"role": "assistant", "content": "", "tool_calls": [
            call("get_document", {"document_id": 42}),
            call("search_passages", {"query": "author of document 42", "top_k": 3}),
        ]},
        {"role": "tool", "content": "{\"title\": \"Coral reefs\", \"author\": \"A. Lee\"}"},
        {"role": "tool", "content": "[\"A. Lee is a marine biologist.\"]"},
    ],
}

MODELS = {
    "llama3.2": (ROOT / "assets" / "tokenizers" / "llama3.2", ["ask", "ask_no_system", "round_trip"]),
    "qwen3": (ROOT / "assets" / "tokenizers" / "qwen3-chat", ["ask", "ask_no_system", "round_trip", "two_calls"]),
}


def render_all():
    import transformers
    from transformers import PreTrainedTokenizerFast

    result = {
        "description": __doc__.strip().splitlines()[0],
        "reference": f"transformers {transformers.__version__}",
        "date_string": DATE,
        "tools": {"rag_tools": RAG_TOOLS},
        "conversations": CONVERSATIONS,
        "models": {},
    }
    for name, (directory, conversations) in MODELS.items():
        if not (directory / "tokenizer_config.json").is_file():
            sys.exit(f"{directory} is missing: run scripts/setup/fetch_tokenizers.py")
        tok = PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
        cases = []
        for conv_name in conversations:
            for add_generation_prompt in (True, False):
                kwargs = {"date_string": DATE} if name == "llama3.2" else {}
                text = tok.apply_chat_template(CONVERSATIONS[conv_name], tools=RAG_TOOLS, tokenize=False,
                                               add_generation_prompt=add_generation_prompt, **kwargs)
                ids = tok(text, add_special_tokens=False)["input_ids"]
                cases.append({"conversation": conv_name, "tools": "rag_tools",
                              "add_generation_prompt": add_generation_prompt, "text": text, "ids": ids})
        result["models"][name] = {"path": str(directory.relative_to(ROOT / "assets")), "cases": cases}
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
