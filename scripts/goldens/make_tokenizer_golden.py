#!/usr/bin/env python3
"""Produce golden token ids for sphana-llm's tokenizer tests with independent reference libraries.

Run `python3 scripts/setup/fetch_tokenizers.py` first (it puts the tokenizer files under
assets/tokenizers/ and the 1 MiB text under assets/texts/). This script writes

    tests/golden/tokenizers/inputs.json        the named input texts shared by every tokenizer
    tests/golden/tokenizers/<name>.json        one file per tokenizer

`--check` regenerates everything in memory and fails if a committed file differs.

Every tokenizer is run on every input with each (add_special, parse_special) in {F,T}^2.

Rules, per reference (also stored in each JSON file as "rules"):

hf_json (Python `tokenizers`, `Tokenizer.from_file(tokenizer.json)`):
  * add_special   <=> encode(text, add_special_tokens=add_special) (the file's post-processor decides
                      what is added).
  * parse_special <=> tok.encode_special_tokens = not parse_special; with parse_special=False the
                      special added tokens are matched as plain text (non-special added tokens are
                      still matched).
  * offsets (add_special=False, parse_special=False only): the library's character offsets into the
    input, converted to UTF-8 byte offsets. A token that holds only part of a character (byte-level
    or byte-fallback pieces) gets the span of the whole character(s) it touches.
  * decoded = tok.decode(ids, skip_special_tokens=False); decoded_skip_special = ... True.

sentencepiece (Python `sentencepiece`, `SentencePieceProcessor(model_file=tokenizer.model)`):
  * parse_special=False <=> ids = sp.encode(text) (plain text; SPM itself still matches user-defined
    pieces).
  * parse_special=True  <=> split the text at occurrences of the model's control pieces and of its
    unknown piece (sp.is_control / sp.is_unknown; scanning left to right, the leftmost occurrence wins
    and, at one position, the longest piece wins); encode every non-empty plain segment separately
    with sp.encode (each segment gets SPM's own dummy prefix) and put the special piece's id in
    between.
  * add_special <=> prepend the bos id if tokenizer_config.json says add_bos_token, append the eos id if
    it says add_eos_token (no tokenizer_config.json: nothing is added).
  * offsets (F/F only): sp.encode(text, return_type='proto').pieces[i].begin/.end, which are UTF-8 byte
    offsets; SPM gives byte-fallback pieces of one character empty spans at the character's start
    except the last, which spans the whole character.
  * decoded_skip_special = sp.decode([ids that are not control ids]).
    decoded = for maximal runs of non-control ids sp.decode(run), control ids as their piece text,
    concatenated in order.

tiktoken (Python `tiktoken`, Llama 3 `tokenizer.model` rank file):
  * enc = tiktoken.Encoding(name="llama3", pat_str=<Llama 3 pattern>, mergeable_ranks=
    load_tiktoken_bpe(tokenizer.model), special_tokens={the 256 names of the Llama 3.2 tokenizer.json
    at ids 128000..128255}).
  * parse_special=True <=> enc.encode(text, allowed_special="all");
    parse_special=False <=> enc.encode(text, allowed_special=set(), disallowed_special=()).
  * add_special <=> prepend 128000 (<|begin_of_text|>).
  * offsets (F/F only): cumulative lengths of enc.decode_single_token_bytes(id): exact UTF-8 byte spans
    (a token holding part of a character gets exactly its bytes).
  * decoded = enc.decode(ids); decoded_skip_special = enc.decode([i for i in ids if i < 128000]).
  * token_ids keys are the tokens' bytes read as UTF-8 text (only tokens that are valid UTF-8).
  The script asserts that these ids equal the Llama 3.2 tokenizer.json ids (tokenizers library) for every
  input, every flag combination and the 1 MiB text.

big: the 1 MiB text (assets/texts/multilingual_1mb.txt) encoded with add_special=False,
parse_special=False: "count" ids; "ids_sha256" = sha256 of the ids packed as little-endian uint32.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOK = ROOT / "assets" / "tokenizers"
TEXT = ROOT / "assets" / "texts" / "multilingual_1mb.txt"
OUT = ROOT / "tests" / "golden" / "tokenizers"

# sentencepiece is pinned to the C++ version the `sentencepiece` crate bundles (0.2.1):
# 0.2.3's unigram segmentation differs on a few inputs (e.g. ALBERT on the 1 MiB text).
EXPECTED_VERSIONS = {"tokenizers": "0.23.", "sentencepiece": "0.2.1", "tiktoken": "0.14."}

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# ---------------------------------------------------------------------------
# inputs shared by every tokenizer
# ---------------------------------------------------------------------------
INPUTS = [
    ("empty", ""),
    ("space", " "),
    ("space_runs", "a  b   c    d        e\u00a0f\u3000g  "),
    ("crlf_tabs", "line one\r\nline two\n\tindented\r\n\r\n\t\tdeep\t x \n\n"),
    ("leading_spaces", "   Hello world"),
    ("contractions", "I'm can't they'll we've She'S"),
    ("digits", "1234567890123456789 3.14159 1,000,000 0x1F 2024-06-01"),
    ("accents", "caf\u00e9 vs cafe\u0301, r\u00e9sum\u00e9 / re\u0301sume\u0301, na\u00efve, "
                "\u00c5ngstr\u00f6m \u212b A\u030a, Stra\u00dfe"),
    ("combining_marks", "Z\u0351\u036b\u0343\u036a\u0302a\u0300\u0301\u0302 s\u0323\u0307 "
                        "\u0915\u094d\u0937 \u0e01\u0e33 \u1100\u1161\u11a8"),
    ("compat_chars", "\ufb01le \u2460 \uff21\uff22 \u210c \u01c5 \u00bd x\u00b2"),
    ("cjk", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\u4e2d\u6587\u6587\u672c\uff0c"
            "\ud55c\uad6d\uc5b4 \ubb38\uc7a5. \U00020000\U0002a700"),
    ("emoji", "Family: \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 flags: "
              "\U0001f1ef\U0001f1f5\U0001f1fa\U0001f1f8 skin: \U0001f44d\U0001f3fd "
              "\u2764\ufe0f \U0001f3f3\ufe0f\u200d\U0001f308 \U0001f980"),
    ("special_llama3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"),
    ("special_mistral", "<s>[INST] hi [/INST]</s>"),
    ("special_gemma", "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"),
    ("special_chatml", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
    ("special_endoftext", "Hello<|endoftext|> world<|endoftext|>"),
    ("special_unk_cls", "<unk> [CLS] a [SEP] b [MASK]<pad></s>x"),
    ("code", "def add(a: int, b: int) -> int:\n    \"\"\"Add two ints.\"\"\"\n    return a + b  # sum\n\n"
             "print(add(40, 2), {'k': [1, 2.5, None]})\n"),
    ("mixed_script", "Hello \u043c\u0438\u0440 \u4e16\u754c \u0645\u0631\u062d\u0628\u0627 "
                     "\u0928\u092e\u0938\u094d\u0924\u0947 \u05e9\u05dc\u05d5\u05dd \U0001f30d!"),
    ("paragraph", "The quick brown fox jumps over the lazy dog. Tokenizers split text into "
                  "pieces; a model only ever sees their ids. When two libraries disagree about a "
                  "single space, every downstream number changes, so we compare them exactly, "
                  "byte for byte, on prose, code and numbers alike."),
]

TOKENIZERS = [
    # name, format, path (relative to assets/tokenizers)
    ("llama3.2", "hf_json", "llama3.2/tokenizer.json"),
    ("llama3-tiktoken", "tiktoken", "llama3-tiktoken/tokenizer.model"),
    ("llama2-spm", "sentencepiece", "llama2-spm/tokenizer.model"),
    ("albert-spm", "sentencepiece", "albert-spm/tokenizer.model"),
    ("mistral-v1-spm", "sentencepiece", "mistral-v1-spm/tokenizer.model"),
    ("mistral-v3-spm", "sentencepiece", "mistral-v3-spm/tokenizer.model"),
    ("mistral-v1-json", "hf_json", "mistral-v1-json/tokenizer.json"),
    ("gemma", "hf_json", "gemma/tokenizer.json"),
    ("gemma3", "hf_json", "gemma3/tokenizer.json"),
    ("qwen3", "hf_json", "qwen3/tokenizer.json"),
    ("gpt2", "hf_json", "gpt2/tokenizer.json"),
]

# tokens whose ids are recorded (when the tokenizer has them), besides those of "Hello world".
PROBE_TOKENS = [
    "<unk>", "<s>", "</s>", "<pad>", "<bos>", "<eos>", "[INST]", "[/INST]", "[CLS]", "[SEP]", "[MASK]",
    "<start_of_turn>", "<end_of_turn>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>", "<|reserved_special_token_247|>", "<|im_start|>", "<|im_end|>",
    "<|endoftext|>",
]
PROBE_TEXT = "Hello world"

RULES = {
    "hf_json": {
        "add_special": "encode(text, add_special_tokens=add_special); the tokenizer.json post-processor decides what is added",
        "parse_special": "tok.encode_special_tokens = not parse_special (False: special added tokens are matched as plain text; non-special added tokens are still matched)",
        "offsets": "add_special=False,parse_special=False only: the library's character offsets converted to UTF-8 byte offsets; a token holding part of a character spans the whole character(s) it touches",
        "decoded": "tok.decode(ids, skip_special_tokens=False)",
        "decoded_skip_special": "tok.decode(ids, skip_special_tokens=True)",
        "big": "ids of the 1 MiB text with add_special=False, parse_special=False; ids_sha256 = sha256 of the ids as little-endian uint32",
    },
    "sentencepiece": {
        "add_special": "prepend bos_id if tokenizer_config.json add_bos_token, append eos if add_eos_token; no tokenizer_config.json: nothing added",
        "parse_special": "False: sp.encode(text). True: split the text at occurrences of the control pieces and the unknown piece (leftmost match first; at one position the longest piece), sp.encode each non-empty plain segment separately (each gets the dummy prefix), special piece ids in between",
        "offsets": "add_special=False,parse_special=False only: sp.encode(text, return_type='proto') pieces' begin/end (the Python binding's character offsets, converted to UTF-8 byte offsets); byte-fallback pieces of one character: empty spans at the character's start, the last one spans the whole character",
        "decoded": "maximal runs of non-control ids -> sp.decode(run); control ids -> their piece text; concatenated",
        "decoded_skip_special": "sp.decode(ids without control ids)",
        "big": "ids of the 1 MiB text with add_special=False, parse_special=False; ids_sha256 = sha256 of the ids as little-endian uint32",
    },
    "tiktoken": {
        "encoding": "tiktoken.Encoding(name='llama3', pat_str=pattern, mergeable_ranks=load_tiktoken_bpe(tokenizer.model), special_tokens=256 Llama 3.2 names at 128000..128255)",
        "pattern": LLAMA3_PATTERN,
        "add_special": "prepend 128000",
        "parse_special": "True: encode(text, allowed_special='all'); False: encode(text, allowed_special=set(), disallowed_special=())",
        "offsets": "add_special=False,parse_special=False only: cumulative lengths of decode_single_token_bytes(id): exact UTF-8 byte spans",
        "decoded": "enc.decode(ids)",
        "decoded_skip_special": "enc.decode([i for i in ids if i < 128000])",
        "token_ids": "keys are the tokens' bytes read as UTF-8",
        "big": "ids of the 1 MiB text with add_special=False, parse_special=False; ids_sha256 = sha256 of the ids as little-endian uint32",
    },
}

FLAGS = [(False, False), (False, True), (True, False), (True, True)]


# ---------------------------------------------------------------------------
def die(msg: str) -> None:
    print("ERROR: " + msg, file=sys.stderr)
    sys.exit(1)


def ids_sha256(ids) -> str:
    return hashlib.sha256(struct.pack("<%dI" % len(ids), *ids)).hexdigest()


def char_to_byte_offsets(text: str):
    pos = [0] * (len(text) + 1)
    n = 0
    for i, ch in enumerate(text):
        pos[i] = n
        n += len(ch.encode("utf-8"))
    pos[len(text)] = n
    return pos


def load_json(p: Path):
    with open(p, encoding="utf-8") as f:
        return json.load(f)


def read_config(dirname: str, fname: str):
    p = TOK / dirname / fname
    return load_json(p) if p.is_file() else None


# ---------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------
class HfRef:
    fmt = "hf_json"

    def __init__(self, path: Path):
        import tokenizers
        self.tok = tokenizers.Tokenizer.from_file(str(path))
        self.reference = f"tokenizers {tokenizers.__version__}"

    def encode(self, text, add_special, parse_special, want_offsets=False):
        self.tok.encode_special_tokens = not parse_special
        enc = self.tok.encode(text, add_special_tokens=add_special)
        offs = None
        if want_offsets:
            pos = char_to_byte_offsets(text)
            offs = [[pos[s], pos[e]] for (s, e) in enc.offsets]
        return list(enc.ids), offs

    def decode(self, ids, skip):
        return self.tok.decode(ids, skip_special_tokens=skip)

    def vocab_size(self):
        return self.tok.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, t):
        return self.tok.token_to_id(t)

    def id_to_token(self, i):
        return self.tok.id_to_token(i)


class SpmRef:
    fmt = "sentencepiece"

    def __init__(self, path: Path, config):
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        self.reference = f"sentencepiece {spm.__version__}"
        sp = self.sp
        n = sp.get_piece_size()
        self.control = {i for i in range(n) if sp.is_control(i)}
        specials = {sp.id_to_piece(i): i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)}
        # longest first, so that at one position the longest piece wins; re finds the leftmost match.
        names = sorted(specials, key=lambda s: (-len(s), s))
        self.special_ids = specials
        self.special_re = re.compile("|".join(re.escape(s) for s in names)) if names else None
        cfg = config or {}
        self.add_bos = bool(cfg.get("add_bos_token", False))
        self.add_eos = bool(cfg.get("add_eos_token", False))
        self.bos = sp.piece_to_id(cfg["bos_token"]) if cfg.get("bos_token") else sp.bos_id()
        self.eos = sp.piece_to_id(cfg["eos_token"]) if cfg.get("eos_token") else sp.eos_id()

    def _plain(self, text):
        return list(self.sp.encode(text)) if text else []

    def encode(self, text, add_special, parse_special, want_offsets=False):
        offs = None
        if parse_special and self.special_re is not None:
            ids = []
            last = 0
            for m in self.special_re.finditer(text):
                ids += self._plain(text[last:m.start()])
                ids.append(self.special_ids[m.group(0)])
                last = m.end()
            ids += self._plain(text[last:])
        else:
            ids = self._plain(text)
            if want_offsets:
                pr = (self.sp.encode_as_immutable_proto(text) if hasattr(self.sp, "encode_as_immutable_proto") else self.sp.encode(text, return_type="proto"))
                if [p.id for p in pr.pieces] != ids:
                    die("sentencepiece proto ids differ from plain ids")
                # The Python binding reports character offsets; convert to UTF-8 bytes.
                pos = char_to_byte_offsets(text)
                offs = [[pos[p.begin], pos[p.end]] for p in pr.pieces]
        if add_special:
            if self.add_bos:
                ids = [self.bos] + ids
            if self.add_eos:
                ids = ids + [self.eos]
        return ids, offs

    def decode(self, ids, skip):
        if skip:
            return self.sp.decode([i for i in ids if i not in self.control])
        out, run = [], []
        for i in ids:
            if i in self.control:
                if run:
                    out.append(self.sp.decode(run))
                    run = []
                out.append(self.sp.id_to_piece(i))
            else:
                run.append(i)
        if run:
            out.append(self.sp.decode(run))
        return "".join(out)

    def vocab_size(self):
        return self.sp.get_piece_size()

    def token_to_id(self, t):
        i = self.sp.piece_to_id(t)
        # piece_to_id returns unk for unknown pieces
        return i if self.sp.id_to_piece(i) == t else None

    def id_to_token(self, i):
        return self.sp.id_to_piece(i)


class TiktokenRef:
    fmt = "tiktoken"

    def __init__(self, path: Path, special_names):
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
        ranks = load_tiktoken_bpe(str(path))
        if len(ranks) != 128000:
            die(f"{path}: {len(ranks)} ranks, expected 128000")
        self.enc = tiktoken.Encoding(name="llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks,
                                     special_tokens=special_names)
        self.reference = f"tiktoken {tiktoken.__version__}"

    def encode(self, text, add_special, parse_special, want_offsets=False):
        if parse_special:
            ids = self.enc.encode(text, allowed_special="all")
        else:
            ids = self.enc.encode(text, allowed_special=set(), disallowed_special=())
        offs = None
        if want_offsets:
            offs, n = [], 0
            for i in ids:
                k = len(self.enc.decode_single_token_bytes(i))
                offs.append([n, n + k])
                n += k
            if n != len(text.encode("utf-8")):
                die("tiktoken token bytes do not add up to the input")
        if add_special:
            ids = [128000] + ids
        return list(ids), offs

    def decode(self, ids, skip):
        if skip:
            ids = [i for i in ids if i < 128000]
        return self.enc.decode(ids)

    def vocab_size(self):
        return self.enc.n_vocab

    def token_to_id(self, t):
        try:
            return self.enc.encode_single_token(t.encode("utf-8"))
        except KeyError:
            try:
                return self.enc.encode_single_token(t)
            except KeyError:
                return None

    def id_to_token(self, i):
        b = self.enc.decode_single_token_bytes(i)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return None


def llama32_special_names():
    obj = load_json(TOK / "llama3.2" / "tokenizer.json")
    names = {t["content"]: t["id"] for t in obj["added_tokens"] if 128000 <= t["id"] <= 128255}
    if len(names) != 256 or sorted(names.values()) != list(range(128000, 128256)):
        die("llama3.2 tokenizer.json does not have 256 special tokens at 128000..128255")
    return names


def make_ref(name, fmt, relpath):
    path = TOK / relpath
    if not path.is_file():
        die(f"{path.relative_to(ROOT)} missing: run python3 scripts/setup/fetch_tokenizers.py first")
    dirname = relpath.split("/")[0]
    if fmt == "hf_json":
        return HfRef(path)
    if fmt == "sentencepiece":
        return SpmRef(path, read_config(dirname, "tokenizer_config.json"))
    return TiktokenRef(path, llama32_special_names())


# ---------------------------------------------------------------------------
def build(name, fmt, relpath, texts, big_text, big_sha):
    ref = make_ref(name, fmt, relpath)
    dirname = relpath.split("/")[0]
    tcfg = read_config(dirname, "tokenizer_config.json") or {}
    gcfg = read_config(dirname, "generation_config.json") or {}

    bos_id = ref.token_to_id(tcfg["bos_token"]) if tcfg.get("bos_token") else None
    if "eos_token_id" in gcfg:
        e = gcfg["eos_token_id"]
        eos_ids = list(e) if isinstance(e, list) else [e]
    elif tcfg.get("eos_token"):
        eos_ids = [ref.token_to_id(tcfg["eos_token"])]
    else:
        eos_ids = []

    token_ids = {}
    for t in PROBE_TOKENS:
        i = ref.token_to_id(t)
        if i is not None:
            token_ids[t] = i
    for i in ref.encode(PROBE_TEXT, False, False)[0]:
        t = ref.id_to_token(i)
        if t is not None:
            token_ids[t] = i
    for t, i in token_ids.items():  # round trip
        if ref.id_to_token(i) != t:
            die(f"{name}: token/id pair {t!r}={i} does not round-trip")

    cases = []
    for iname, text in texts:
        for add, parse in FLAGS:
            want_offs = (not add) and (not parse)
            ids, offs = ref.encode(text, add, parse, want_offs)
            c = {"input": iname, "add_special": add, "parse_special": parse, "ids": ids}
            if offs is not None:
                if len(offs) != len(ids):
                    die(f"{name}/{iname}: {len(offs)} offsets for {len(ids)} ids")
                c["offsets"] = offs
            c["decoded"] = ref.decode(ids, False)
            c["decoded_skip_special"] = ref.decode(ids, True)
            cases.append(c)

    big_ids, _ = ref.encode(big_text, False, False)
    doc = {
        "name": name,
        "format": fmt,
        "path": relpath,
        "reference": ref.reference,
        "rules": RULES[fmt],
        "vocab_size": ref.vocab_size(),
        "bos_id": bos_id,
        "eos_ids": eos_ids,
        "add_bos": bool(tcfg.get("add_bos_token", False)),
        "add_eos": bool(tcfg.get("add_eos_token", False)),
        "token_ids": token_ids,
        "cases": cases,
        "big": {"text_path": "texts/multilingual_1mb.txt", "text_sha256": big_sha,
                "text_bytes": len(big_text.encode("utf-8")), "count": len(big_ids),
                "ids_sha256": ids_sha256(big_ids)},
    }
    return doc, {(c["input"], c["add_special"], c["parse_special"]): c["ids"] for c in cases}, big_ids


def dumps_doc(doc) -> str:
    """Stable, diff-friendly layout: top-level keys indented, one case per line."""
    def j(v):
        return json.dumps(v, ensure_ascii=True, separators=(", ", ": "))
    lines = ["{"]
    keys = list(doc.keys())
    for k_i, k in enumerate(keys):
        comma = "," if k_i < len(keys) - 1 else ""
        v = doc[k]
        if k == "cases":
            lines.append(f'  "cases": [')
            for c_i, c in enumerate(v):
                lines.append("    " + j(c) + ("," if c_i < len(v) - 1 else ""))
            lines.append("  ]" + comma)
        elif isinstance(v, dict) and k in ("rules", "token_ids", "big"):
            lines.append(f"  {j(k)}: {{")
            items = list(v.items())
            for i_i, (kk, vv) in enumerate(items):
                lines.append(f"    {j(kk)}: {j(vv)}" + ("," if i_i < len(items) - 1 else ""))
            lines.append("  }" + comma)
        else:
            lines.append(f"  {j(k)}: {j(v)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def check_versions():
    import sentencepiece
    import tiktoken
    import tokenizers
    got = {"tokenizers": tokenizers.__version__, "sentencepiece": sentencepiece.__version__,
           "tiktoken": tiktoken.__version__}
    for k, pre in EXPECTED_VERSIONS.items():
        if not got[k].startswith(pre):
            sys.exit(f"{k} {got[k]} is not the pinned {pre}*: pip install -r scripts/setup/requirements-golden.txt")


GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def gpt2_tiktoken_ids(texts, big_text):
    """GPT-2 with tiktoken, built from OpenAI's original encoder.json + vocab.bpe (cross-check only)."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    d = TOK / "gpt2"
    ranks = data_gym_to_mergeable_bpe_ranks(str(d / "vocab.bpe"), str(d / "encoder.json"))
    enc = tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256})
    out = {}
    for iname, text in texts:
        for add, parse in FLAGS:
            if parse:
                out[(iname, add, parse)] = enc.encode(text, allowed_special="all")
            else:
                out[(iname, add, parse)] = enc.encode(text, allowed_special=set(), disallowed_special=())
    return out, enc.encode(big_text, allowed_special=set(), disallowed_special=())


def compare(na, nb, per_ids, per_big) -> int:
    a, b = per_ids[na], per_ids[nb]
    bad = 0
    for key in a:
        if a[key] != b[key]:
            bad += 1
            print(f"MISMATCH {na} vs {nb}: input={key[0]} add_special={key[1]} parse_special={key[2]}\n"
                  f"  {na}: {a[key]}\n  {nb}: {b[key]}", file=sys.stderr)
    x, y = per_big[na], per_big[nb]
    if x != y:
        bad += 1
        k = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
        print(f"MISMATCH {na} vs {nb} on the 1 MiB text: counts {len(x)} vs {len(y)}, first difference at "
              f"id #{k}: {x[k:k + 8]} vs {y[k:k + 8]}", file=sys.stderr)
    if not bad:
        print(f"{na} == {nb} on all {len(a)} cases and the 1 MiB text")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = ap.parse_args()
    check_versions()

    if not TEXT.is_file():
        die(f"{TEXT.relative_to(ROOT)} missing: run python3 scripts/setup/fetch_tokenizers.py first")
    big_raw = TEXT.read_bytes()
    big_text = big_raw.decode("utf-8")
    big_sha = hashlib.sha256(big_raw).hexdigest()

    names = [n for n, _ in INPUTS]
    if len(set(names)) != len(names):
        die("duplicate input names")
    outputs = {}
    outputs["inputs.json"] = json.dumps({
        "inputs": [{"name": n, "text": t} for n, t in INPUTS],
        "big": {"text_path": "texts/multilingual_1mb.txt", "text_sha256": big_sha, "text_bytes": len(big_raw)},
    }, ensure_ascii=True, indent=2) + "\n"

    per_ids = {}
    per_big = {}
    for name, fmt, relpath in TOKENIZERS:
        t0 = time.time()
        doc, ids_by_case, big_ids = build(name, fmt, relpath, INPUTS, big_text, big_sha)
        per_ids[name] = ids_by_case
        per_big[name] = big_ids
        text = dumps_doc(doc)
        outputs[f"{name}.json"] = text
        print(f"{name:16s} {doc['reference']:22s} vocab {doc['vocab_size']:6d}  big {doc['big']['count']:7d} ids"
              f"  {len(text.encode('utf-8')) // 1024:4d} KB  {time.time() - t0:5.1f}s")

    # Cross-checks between independent references (ids only; decode/offset rules differ by format):
    #  * SOURCES.md claim: tiktoken on Llama 3's original rank file == Llama 3.2 tokenizer.json;
    #  * sentencepiece on Mistral's tokenizer.model == `tokenizers` on Mistral's tokenizer.json;
    #  * our gpt2/tokenizer.json == tiktoken built from OpenAI's encoder.json + vocab.bpe.
    g_ids, g_big = gpt2_tiktoken_ids(INPUTS, big_text)
    per_ids["gpt2-tiktoken"], per_big["gpt2-tiktoken"] = g_ids, g_big
    bad = 0
    for x, y in [("llama3-tiktoken", "llama3.2"), ("mistral-v1-spm", "mistral-v1-json"), ("gpt2-tiktoken", "gpt2")]:
        bad += compare(x, y, per_ids, per_big)
    if bad:
        die(f"{bad} disagreements between independent references (see above)")

    if args.check:
        diff = [f for f, t in outputs.items()
                if not (OUT / f).is_file() or (OUT / f).read_text(encoding="utf-8") != t]
        if diff:
            die("golden files differ from a fresh run: " + ", ".join(diff))
        print("goldens up to date")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for f, t in outputs.items():
        (OUT / f).write_text(t, encoding="utf-8", newline="\n")
    print(f"wrote {len(outputs)} files to {OUT.relative_to(ROOT).as_posix()}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
