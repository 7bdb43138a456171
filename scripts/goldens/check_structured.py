#!/usr/bin/env python3
"""Independent checks of constrained generations, for tests/structured.rs and tests/ffi_structured.rs.

    echo '[{"kind": "json_schema", "constraint": "...", "text": "..."}, ...]' | python3 scripts/goldens/check_structured.py

For each item prints {"ok": bool, "error": str}: a JSON Schema output must parse with `json` and
validate with `jsonschema` (Draft 2020-12, formats not asserted); a regex output must satisfy
`re.fullmatch`; a Lark output must parse with `lark` (Earley, start rule `start`); a "json_object"
output must parse as a JSON object. Prints a JSON array in the same order.
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
    if kind == "regex":
        return None if re.fullmatch(item["constraint"], text) else "no full match"
    if kind == "lark":
        try:
            lark.Lark(item["constraint"], start="start", parser="earley").parse(text)
        except lark.exceptions.LarkError as e:
            return f"lark: {e}"
        return None
    raise ValueError(f"unknown kind {kind!r}")


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
