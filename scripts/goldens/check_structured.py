#!/usr/bin/env python3
"""Independent checks of constrained generations, for tests/structured.rs and tests/ffi_structured.rs.

    echo '[{"kind": "json_schema", "constraint": "...", "text": "..."}, ...]' | python3 scripts/goldens/check_structured.py

For each item prints {"ok": bool, "error": str}: a JSON Schema output must parse with `json` and
validate with `jsonschema` (Draft 2020-12, formats not asserted); a regex output must satisfy
`re.fullmatch`; a Lark output must parse with `lark` (Earley, start rule `start`); a "json_object"
output must parse as a JSON object. A "tool_call" item (constraint: the tool list as JSON; "format":
"json" for Llama 3.x replies, the whole text one {"name", "parameters"} object, or "hermes" for
<tool_call>{"name", "arguments"}</tool_call> blocks) must be exactly one call, read here with `json` and a
regular expression, of one of the tools, and its arguments must validate with `jsonschema` against that
tool's "parameters". Prints a JSON array in the same order.
"""

from __future__ import annotations

import json
import re
import sys

import jsonschema
import lark


def check(item: dict) -> str | None:
    kind, text = item["kind"], item["text"]
    if kind in ("json_schema", "json_object"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            return f"not JSON: {e}"
        if kind == "json_object":
            return None if isinstance(value, dict) else f"not an object: {type(value).__name__}"
        schema = json.loads(item["constraint"])
        schema.pop("x-guidance", None)
        jsonschema.Draft202012Validator.check_schema(schema)
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=str)
        return "; ".join(e.message for e in errors) or None
    if kind == "tool_call":
        return check_tool_call(item["format"], json.loads(item["constraint"]), text)
    if kind == "regex":
        return None if re.fullmatch(item["constraint"], text) else "no full match"
    if kind == "lark":
        try:
            lark.Lark(item["constraint"], start="start", parser="earley").parse(text)
        except lark.exceptions.LarkError as e:
            return f"lark: {e}"
        return None
    raise ValueError(f"unknown kind {kind!r}")


def check_tool_call(fmt: str, tools: list, text: str) -> str | None:
    if fmt == "json":
        body = text.strip()
        if body.startswith("<|python_tag|>"):
            body = body[len("<|python_tag|>"):]
        bodies, key = [body], "parameters"
    elif fmt == "hermes":
        outside = re.sub(r"<tool_call>.*?</tool_call>", "", text, flags=re.S).strip()
        if outside:
            return f"text outside the call: {outside!r}"
        bodies, key = re.findall(r"<tool_call>(.*?)</tool_call>", text, flags=re.S), "arguments"
    else:
        raise ValueError(f"unknown tool-call format {fmt!r}")
    if len(bodies) != 1:
        return f"{len(bodies)} calls, want 1"
    try:
        call = json.loads(bodies[0])
    except json.JSONDecodeError as e:
        return f"the call is not JSON: {e}"
    if not isinstance(call, dict) or set(call) != {"name", key}:
        return f"the call is not {{\"name\", \"{key}\"}}: {call!r}"
    functions = {t.get("function", t)["name"]: t.get("function", t) for t in tools}
    if call["name"] not in functions:
        return f"no tool named {call['name']!r}"
    schema = functions[call["name"]].get("parameters", {"type": "object"})
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(call[key]), key=str)
    return "; ".join(e.message for e in errors) or None


def main() -> int:
    items = json.load(sys.stdin)
    out = []
    for item in items:
        error = check(item)
        out.append({"ok": error is None, "error": error or ""})
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
