#!/usr/bin/env python3
"""Checks sphana_abi.py, the benchmarks' declaration of the C ABI, against the library and the header:

    python3 scripts/bench/test_sphana_abi.py [LIB]   (default: $SPHANA_LLM_LIB, else target/debug/libsphana_llm.so)

* The library loads through sphana_abi.load: every struct's ctypes size equals what
  sphana_llm_struct_size reports (and the struct_size of the by-value defaults), every declared
  function is exported, the ABI version is the declared one.
* That check fails when it should: a GenerateStats that ends at session_run_ms (bench_generate.py's
  own, before sphana_abi) and a LoadOptions padded with a 512-byte buffer are reported with the
  struct's name and both sizes.
* The declarations are the header's: every struct's fields (names and types, in order), every
  SPHANA_LLM_* constant, and every function's return and parameter types. include/sphana_llm.h is
  read with regular expressions: cbindgen writes one field per line and every declaration alike.

scripts/test.sh runs it once the library is built; it takes about a second.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import unittest
from ctypes import POINTER, c_char, c_char_p, c_double, c_float, c_int32, c_size_t, c_uint32, c_uint64, c_void_p

import sphana_abi as abi

HEADER = os.path.join(abi.ROOT, "include", "sphana_llm.h")
LIB = os.environ.get("SPHANA_LLM_LIB") or os.path.join(abi.ROOT, "target", "debug", "libsphana_llm.so")

SCALARS = {"int32_t": c_int32, "uint32_t": c_uint32, "uint64_t": c_uint64, "size_t": c_size_t, "float": c_float,
           "double": c_double}
OPAQUE = {"SphanaLlmModel", "SphanaLlmCancellation", "SphanaLlmStreamDecoder"}
STRUCTS_BY_C_NAME = {cls.c_name: cls for cls in abi.STRUCTS.values()}
# Parameters whose ctypes type the rules below do not give: the string sphana_llm_string_free takes
# back is the pointer the library returned (c_void_p), not a buffer.
EXCEPTIONS = {("sphana_llm_string_free", 0): c_void_p}


def header_text() -> str:
    with open(HEADER) as f:
        return re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)


def expected_ctype(c_type: str):
    """The ctypes type sphana_abi uses for a C type of the header."""
    const = bool(re.match(r"\s*const\b", c_type))
    stars = c_type.count("*")
    base = re.sub(r"\b(const|struct)\b|\*", " ", c_type).split()
    assert len(base) == 1, c_type
    base = base[0]
    if stars == 0:
        if base == "void":
            return None
        if base == "SphanaLlmTextCallback":
            return abi.TEXT_CALLBACK
        return SCALARS.get(base) or STRUCTS_BY_C_NAME[base]
    if stars == 1:
        if base in OPAQUE or base == "void":
            return c_void_p
        if base == "char":
            return c_char_p if const else POINTER(c_char)  # text in / a buffer the library writes
        return POINTER(SCALARS.get(base) or STRUCTS_BY_C_NAME[base])
    assert stars == 2, c_type
    if base == "char" and const:
        return POINTER(c_char_p)  # const char *const *: an array of strings
    assert base in OPAQUE or base == "char", c_type
    return POINTER(c_void_p)  # an out-handle, or an out-string the library allocates


def split_declaration(decl: str) -> tuple[str, str]:
    """'const char *role' -> ('const char *', 'role')."""
    m = re.fullmatch(r"(.*?)(\w+)", " ".join(decl.split()))
    assert m, decl
    return m.group(1).strip(), m.group(2)


class Library(unittest.TestCase):
    def test_loads_and_sizes_match(self):
        lib = abi.load(LIB)
        for kind, cls in abi.STRUCTS.items():
            size = c_size_t()
            self.assertEqual(lib.lib.sphana_llm_struct_size(kind, ctypes.byref(size)), abi.OK)
            self.assertEqual(size.value, ctypes.sizeof(cls), cls.c_name)
        self.assertEqual(lib.load_options().struct_size, ctypes.sizeof(abi.LoadOptions))
        self.assertEqual(lib.generate_params().struct_size, ctypes.sizeof(abi.GenerateParams))
        self.assertEqual(lib.lib.sphana_llm_load_options_default().struct_size, ctypes.sizeof(abi.LoadOptions))
        self.assertEqual(lib.lib.sphana_llm_generate_params_default().struct_size,
                         ctypes.sizeof(abi.GenerateParams))

    def mismatch(self, kind, cls) -> str:
        lib = abi.load(LIB)
        with self.assertRaises(abi.AbiMismatch) as caught:
            abi.check_struct_sizes(lib.lib, {**abi.STRUCTS, kind: cls}, where="the library")
        return str(caught.exception)

    def test_a_struct_that_stops_early_is_reported(self):
        class OldStats(ctypes.Structure):  # bench_generate.py's, which stopped at session_run_ms
            c_name = "SphanaLlmGenerateStats"
            _fields_ = abi.GenerateStats._fields_[:7]

        message = self.mismatch(abi.STRUCT_GENERATE_STATS, OldStats)
        self.assertIn(f"SphanaLlmGenerateStats is {ctypes.sizeof(OldStats)} bytes in sphana_abi.py", message)
        self.assertIn(f"but {ctypes.sizeof(abi.GenerateStats)} bytes in the library", message)

    def test_a_padded_struct_is_reported(self):
        class PaddedOptions(ctypes.Structure):  # the old LoadOptionsBuf: known fields + 512 bytes of room
            c_name = "SphanaLlmLoadOptions"
            _fields_ = [("o", abi.LoadOptions), ("_room", ctypes.c_ubyte * 512)]

        message = self.mismatch(abi.STRUCT_LOAD_OPTIONS, PaddedOptions)
        self.assertIn(f"SphanaLlmLoadOptions is {ctypes.sizeof(PaddedOptions)} bytes", message)
        self.assertIn(f"but {ctypes.sizeof(abi.LoadOptions)} bytes", message)


class Header(unittest.TestCase):
    def test_struct_fields(self):
        text = header_text()
        found = re.findall(r"typedef struct (\w+) \{(.*?)\} \1;", text, flags=re.S)
        self.assertEqual(sorted(name for name, _ in found), sorted(STRUCTS_BY_C_NAME))
        for name, body in found:
            fields = [split_declaration(d) for d in body.split(";") if d.strip()]
            cls = STRUCTS_BY_C_NAME[name]
            self.assertEqual([n for _, n in fields], [n for n, _ in cls._fields_], name)
            for (c_type, field), (_, ctype) in zip(fields, cls._fields_):
                self.assertIs(ctype, expected_ctype(c_type), f"{name}.{field} ({c_type})")

    def test_constants(self):
        defines = re.findall(r"^#define SPHANA_LLM_(\w+) (-?\d+)u?$", header_text(), flags=re.M)
        self.assertGreater(len(defines), 40)
        for name, value in defines:
            self.assertEqual(getattr(abi, name, None), int(value), f"SPHANA_LLM_{name}")

    def test_functions(self):
        declared = {}
        for m in re.finditer(r"^([A-Za-z][\w *]*?)\b(sphana_llm_\w+)\(([^;]*?)\);", header_text(), flags=re.M):
            params = " ".join(m.group(3).split())
            declared[m.group(2)] = (m.group(1).strip(), [] if params == "void" else params.split(", "))
        self.assertEqual(sorted(declared), sorted(abi.FUNCTIONS))
        for name, (ret, params) in declared.items():
            restype, argtypes = abi.FUNCTIONS[name]
            self.assertIs(restype, expected_ctype(ret), f"{name} returns {ret}")
            self.assertEqual(len(argtypes), len(params), name)
            for i, (param, ctype) in enumerate(zip(params, argtypes)):
                c_type, pname = split_declaration(param)
                want = EXCEPTIONS.get((name, i)) or expected_ctype(c_type)
                self.assertIs(ctype, want, f"{name}({pname}: {c_type})")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        LIB = sys.argv.pop(1)
    print(f"sphana_abi.py against {LIB} and include/sphana_llm.h", file=sys.stderr)
    unittest.main()
