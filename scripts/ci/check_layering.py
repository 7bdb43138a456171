#!/usr/bin/env python3
"""The layering of src/, checked from its `use` lines: python3 scripts/ci/check_layering.py

* The C shell depends on the core, never the reverse: no file outside src/ffi/ (and the CLI)
  refers to `crate::ffi`.
* No import cycle between files of src/: every `crate::a::b` / `super::...` / `self::...` path is
  resolved to the file that defines the module it names, and the graph of those file-to-file
  edges must be acyclic. A file using one of its own ancestor modules (the shared types a
  `mod.rs` defines for the files below it, e.g. `super::EncodeOptions`, or `Encoding` for
  `tokenizer/fast_bpe/merge.rs`) is not counted: a module and what it contains are one unit
  there. Everything else is: siblings, other modules, the ancestors of another unit.

Prints the graph's edges with -v. Exits 1 with the offending files or the cycle.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

PATH_RE = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def module_of(path: Path) -> list[str]:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def file_of(module: list[str]) -> Path | None:
    """The file defining `module` (a list of names under the crate), or None."""
    if not module:
        return SRC / "lib.rs"
    base = SRC.joinpath(*module)
    for candidate in (base.with_suffix(".rs"), base / "mod.rs"):
        if candidate.is_file():
            return candidate
    return None


def resolve(path: str, here: list[str]) -> Path | None:
    parts = path.split("::")
    if parts[0] == "crate":
        module, names = [], parts[1:]
    elif parts[0] == "self":
        module, names = list(here), parts[1:]
    else:
        # `super` is the parent of the current module.
        module = list(here)
        names = parts
        while names and names[0] == "super":
            module = module[:-1]
            names = names[1:]
    # The longest prefix of the names that is a module file.
    best = file_of(module)
    for i in range(len(names)):
        f = file_of(module + names[: i + 1])
        if f is None:
            break
        best = f
    return best


def code_only(text: str) -> str:
    """Drops comments (doc comments mention paths too)."""
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def main() -> int:
    verbose = "-v" in sys.argv
    files = [p for p in SRC.rglob("*.rs") if "bin" not in p.relative_to(SRC).parts]
    edges: dict[Path, set[Path]] = {f: set() for f in files}
    problems = []
    for f in files:
        here = module_of(f)
        for path in PATH_RE.findall(code_only(f.read_text())):
            target = resolve(path, here)
            if target is None or target == f:
                continue
            if target.name == "mod.rs" and f.parent.is_relative_to(target.parent) and target != f:
                continue  # a file below this module using the module's own items
            edges[f].add(target)
            in_ffi = f.is_relative_to(SRC / "ffi")
            if not in_ffi and target.is_relative_to(SRC / "ffi"):
                problems.append(f"{f.relative_to(ROOT)} uses the C shell ({path})")
    # lib.rs only declares and re-exports: not part of the dependency graph.
    lib = SRC / "lib.rs"
    edges.pop(lib, None)
    for f in edges:
        edges[f].discard(lib)
    if verbose:
        for f in sorted(edges):
            for t in sorted(edges[f]):
                print(f"{f.relative_to(SRC)} -> {t.relative_to(SRC)}")
    # Strongly connected components (Tarjan): each with more than one file is a cycle.
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    on_stack: set[Path] = set()
    stack: list[Path] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strongconnect(v: Path) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in edges:
                continue
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                names = ", ".join(sorted(str(p.relative_to(SRC)) for p in component))
                problems.append(f"import cycle among: {names}")

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        n = sum(len(v) for v in edges.values())
        print(f"layering ok: {len(edges)} files, {n} file-to-file imports, no cycle, nothing outside src/ffi uses it")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
