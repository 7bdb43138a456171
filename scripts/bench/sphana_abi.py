"""The C ABI of libsphana_llm.so for Python, through ctypes: include/sphana_llm.h's structs, constants
and functions, declared once for every script of this folder.

    import sphana_abi
    abi = sphana_abi.load("target/release/libsphana_llm.so")   # checks the structs against the library
    model = abi.load_model("assets/tokenizers/llama3.2")
    abi.lib.sphana_llm_tokenize(model, ...)                     # argtypes and restype are set

`load` refuses a library whose structs are not the ones declared here: every struct's ctypes size must
equal what the library's `sphana_llm_struct_size` reports (and the `struct_size` of the by-value
defaults), else `AbiMismatch` names the struct and both sizes. test_sphana_abi.py (run by
scripts/test.sh) also compares the declarations with the header: struct fields, constants and
function signatures.
"""

from __future__ import annotations

import ctypes
import os
import time
from ctypes import POINTER, c_char, c_char_p, c_double, c_float, c_int32, c_size_t, c_uint32, c_uint64, c_void_p

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE_LIB = os.path.join(ROOT, "target", "release", "libsphana_llm.so")

# ---- constants (#define SPHANA_LLM_<name>)

ABI_VERSION = 1

OK = 0
ERR_INVALID_ARGUMENT = -1
ERR_INVALID_UTF8 = -2
ERR_BUFFER_TOO_SMALL = -3
ERR_IO = -4
ERR_INVALID_MODEL = -5
ERR_INVALID_TOKEN_ID = -6
ERR_NOT_FOUND = -7
ERR_UNSUPPORTED = -8
ERR_LIMIT_EXCEEDED = -9
ERR_CONTEXT_OVERFLOW = -10
ERR_RUNTIME = -11
ERR_INTERNAL = -12
ERR_KV_MEMORY = -13

FINISH_EOS = 0
FINISH_STOP_STRING = 1
FINISH_LENGTH = 2
FINISH_CANCELLED = 3
FINISH_CONTEXT_FULL = 4
FINISH_CONSTRAINT_INCOMPLETE = 5

CONSTRAINT_JSON_SCHEMA = 1
CONSTRAINT_REGEX = 2
CONSTRAINT_LARK = 3
CONSTRAINT_JSON_OBJECT = 4
MAX_CONSTRAINT_BYTES = 262144

TOOL_CHOICE_AUTO = 0
TOOL_CHOICE_REQUIRED = 1
MAX_TOOLS_BYTES = 262144

FORMAT_AUTO = 0
FORMAT_HF_JSON = 1
FORMAT_SENTENCEPIECE = 2
FORMAT_TIKTOKEN = 3

PROVIDER_CPU = 0
PROVIDER_CUDA = 1

MAX_EOS_IDS = 4096
MAX_TOP_LOGPROBS = 20
DEFAULT_PROMPT_LOOKUP_TOKENS = 0
MAX_PROMPT_LOOKUP_TOKENS = 64
MAX_PROMPT_LOOKUP_NGRAM = 16

EOS_SOURCE_NONE = 0
EOS_SOURCE_LOAD_OPTION = 1
EOS_SOURCE_GENERATION_CONFIG = 2
EOS_SOURCE_CONFIG = 3
EOS_SOURCE_TOKENIZER_CONFIG = 4
EOS_SOURCE_TOKENIZER_FILE = 5
EOS_SOURCE_VOCABULARY = 6

LOGITS_ALL_POSITIONS = 0
LOGITS_REWRITTEN = 1
LOGITS_NATIVE = 2

STRUCT_LOAD_OPTIONS = 1
STRUCT_GENERATE_PARAMS = 2
STRUCT_GENERATE_STATS = 3
STRUCT_TOKEN_SPAN = 4
STRUCT_TOKEN_BATCH = 5
STRUCT_CHAT_MESSAGE = 6
STRUCT_CONSTRAINT = 7
STRUCT_CHAT_TOOLS = 8
STRUCT_TOOL_CALL = 9
STRUCT_TOOL_CALLS = 10

TOKENIZE_ADD_SPECIAL = 1
TOKENIZE_PARSE_SPECIAL = 2
DECODE_SKIP_SPECIAL = 1


# ---- structs, field for field as in the header


class ChatMessage(ctypes.Structure):
    c_name = "SphanaLlmChatMessage"
    _fields_ = [
        ("role", c_char_p),
        ("role_len", c_size_t),
        ("content", c_char_p),
        ("content_len", c_size_t),
    ]


class Constraint(ctypes.Structure):
    c_name = "SphanaLlmConstraint"
    _fields_ = [
        ("struct_size", c_uint32),
        ("kind", c_int32),
        ("text", c_char_p),
    ]


class ChatTools(ctypes.Structure):
    c_name = "SphanaLlmChatTools"
    _fields_ = [
        ("struct_size", c_uint32),
        ("tool_choice", c_uint32),
        ("tools_json", c_char_p),
    ]


class ToolCall(ctypes.Structure):
    c_name = "SphanaLlmToolCall"
    _fields_ = [
        ("name", POINTER(c_char)),
        ("arguments_json", POINTER(c_char)),
    ]


class ToolCalls(ctypes.Structure):
    c_name = "SphanaLlmToolCalls"
    _fields_ = [
        ("calls", POINTER(ToolCall)),
        ("count", c_size_t),
        ("content", POINTER(c_char)),
        ("content_len", c_size_t),
    ]


class GenerateParams(ctypes.Structure):
    c_name = "SphanaLlmGenerateParams"
    _fields_ = [
        ("struct_size", c_uint32),
        ("max_new_tokens", c_uint32),
        ("temperature", c_float),
        ("top_k", c_uint32),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repetition_penalty", c_float),
        ("seed", c_uint64),
        ("stop_strings", POINTER(c_char_p)),
        ("stop_string_count", c_size_t),
        ("parse_special", c_uint32),
        ("add_special", c_uint32),
        ("ignore_eos", c_uint32),
        ("cancel", c_void_p),
        ("out_token_ids", POINTER(c_int32)),
        ("out_token_ids_capacity", c_size_t),
        ("out_logprobs", POINTER(c_float)),
        ("out_top_logprob_ids", POINTER(c_int32)),
        ("out_top_logprobs", POINTER(c_float)),
        ("out_logprobs_capacity", c_size_t),
        ("top_logprobs", c_uint32),
        ("prompt_lookup_tokens", c_size_t),
        ("prompt_lookup_ngram", c_size_t),
        ("constraint", POINTER(Constraint)),
    ]


class GenerateStats(ctypes.Structure):
    c_name = "SphanaLlmGenerateStats"
    _fields_ = [
        ("struct_size", c_uint32),
        ("finish_reason", c_int32),
        ("prompt_tokens", c_size_t),
        ("generated_tokens", c_size_t),
        ("prefill_ms", c_double),
        ("decode_ms", c_double),
        ("session_run_ms", c_double),
        ("text_len", c_size_t),
        ("batched_steps", c_size_t),
        ("cached_tokens", c_size_t),
        ("draft_tokens", c_size_t),
        ("accepted_draft_tokens", c_size_t),
        ("constraint_ms", c_double),
    ]


class LoadOptions(ctypes.Structure):
    c_name = "SphanaLlmLoadOptions"
    _fields_ = [
        ("struct_size", c_uint32),
        ("tokenizer_format", c_int32),
        ("ort_library_path", c_char_p),
        ("onnx_file_name", c_char_p),
        ("intra_op_threads", c_int32),
        ("execution_provider", c_int32),
        ("device_id", c_int32),
        ("allow_cpu_fallback", c_uint32),
        ("max_input_bytes", c_uint64),
        ("max_batch_texts", c_uint64),
        ("session_count", c_uint32),
        ("tokenizer_path", c_char_p),
        ("max_decode_batch", c_uint32),
        ("eos_token_ids", POINTER(c_int32)),
        ("eos_token_count", c_uint64),
        ("context_length", c_uint64),
        ("prefill_chunk_tokens", c_uint64),
        ("max_kv_cache_bytes", c_uint64),
        ("kv_wait_ms", c_uint64),
        ("prefix_cache_bytes", c_uint64),
    ]


class TokenSpan(ctypes.Structure):
    c_name = "SphanaLlmTokenSpan"
    _fields_ = [
        ("start", c_size_t),
        ("end", c_size_t),
    ]


class TokenBatch(ctypes.Structure):
    c_name = "SphanaLlmTokenBatch"
    _fields_ = [
        ("ids", POINTER(c_int32)),
        ("starts", POINTER(c_size_t)),
        ("text_count", c_size_t),
    ]


# What sphana_llm_struct_size(kind) measures, for each declared struct.
STRUCTS = {
    STRUCT_LOAD_OPTIONS: LoadOptions,
    STRUCT_GENERATE_PARAMS: GenerateParams,
    STRUCT_GENERATE_STATS: GenerateStats,
    STRUCT_TOKEN_SPAN: TokenSpan,
    STRUCT_TOKEN_BATCH: TokenBatch,
    STRUCT_CHAT_MESSAGE: ChatMessage,
    STRUCT_CONSTRAINT: Constraint,
    STRUCT_CHAT_TOOLS: ChatTools,
    STRUCT_TOOL_CALL: ToolCall,
    STRUCT_TOOL_CALLS: ToolCalls,
}

# SphanaLlmTextCallback: (text, len, user_data) -> 0 to go on. The text may hold NUL bytes: read len bytes.
TEXT_CALLBACK = ctypes.CFUNCTYPE(c_int32, POINTER(c_char), c_size_t, c_void_p)
NO_CALLBACK = TEXT_CALLBACK()  # NULL (ctypes takes no None for a function pointer parameter)

# ---- functions: name -> (restype, argtypes). Opaque handles (SphanaLlmModel, SphanaLlmCancellation,
# SphanaLlmStreamDecoder) are c_void_p; buffers the library writes text into are POINTER(c_char) (pass
# ctypes.create_string_buffer); strings it allocates (char **out_text) come back as c_void_p, to be
# read with ctypes.string_at and freed with sphana_llm_string_free.

_model = c_void_p
_out_handle = POINTER(c_void_p)
_text_out = POINTER(c_char)
_size_out = POINTER(c_size_t)
_ids = POINTER(c_int32)

FUNCTIONS = {
    "sphana_llm_apply_chat_template": (c_int32, [_model, POINTER(ChatMessage), c_size_t, c_uint32, _out_handle]),
    "sphana_llm_apply_chat_template_with_len": (
        c_int32, [_model, POINTER(ChatMessage), c_size_t, c_uint32, _out_handle, _size_out]),
    "sphana_llm_generate_chat": (c_int32, [
        _model, POINTER(ChatMessage), c_size_t, POINTER(GenerateParams), TEXT_CALLBACK, c_void_p, _out_handle,
        POINTER(GenerateStats)]),
    "sphana_llm_apply_chat_template_tools": (c_int32, [
        _model, POINTER(ChatMessage), c_size_t, POINTER(ChatTools), c_uint32, _out_handle, _size_out]),
    "sphana_llm_generate_chat_tools": (c_int32, [
        _model, POINTER(ChatMessage), c_size_t, POINTER(ChatTools), POINTER(GenerateParams), TEXT_CALLBACK, c_void_p,
        _out_handle, POINTER(GenerateStats), POINTER(ToolCalls)]),
    "sphana_llm_tool_calls_free": (None, [POINTER(ToolCalls)]),
    "sphana_llm_last_error": (c_char_p, []),
    "sphana_llm_version": (c_char_p, []),
    "sphana_llm_abi_version": (c_uint32, []),
    "sphana_llm_string_free": (None, [c_void_p]),
    "sphana_llm_generate_params_init": (c_int32, [POINTER(GenerateParams), c_size_t]),
    "sphana_llm_generate_params_default": (GenerateParams, []),
    "sphana_llm_cancellation_new": (c_int32, [_out_handle]),
    "sphana_llm_cancellation_cancel": (c_int32, [c_void_p]),
    "sphana_llm_cancellation_free": (None, [c_void_p]),
    "sphana_llm_generate": (c_int32, [
        _model, c_char_p, c_size_t, POINTER(GenerateParams), TEXT_CALLBACK, c_void_p, _out_handle,
        POINTER(GenerateStats)]),
    "sphana_llm_generate_from_ids": (c_int32, [
        _model, _ids, c_size_t, POINTER(GenerateParams), TEXT_CALLBACK, c_void_p, _out_handle,
        POINTER(GenerateStats)]),
    "sphana_llm_score": (c_int32, [
        _model, _ids, c_size_t, _ids, c_size_t, c_uint32, POINTER(c_float), _ids, POINTER(c_float)]),
    "sphana_llm_context_length": (c_int32, [_model, _size_out]),
    "sphana_llm_max_decode_batch": (c_int32, [_model, _size_out]),
    "sphana_llm_logits_positions": (c_int32, [_model, POINTER(c_int32), _text_out, c_size_t, _size_out]),
    "sphana_llm_load_options_default": (LoadOptions, []),
    "sphana_llm_load_options_init": (c_int32, [POINTER(LoadOptions), c_size_t]),
    "sphana_llm_load": (c_int32, [c_char_p, POINTER(LoadOptions), _out_handle]),
    "sphana_llm_free": (None, [_model]),
    "sphana_llm_vocab_size": (c_int32, [_model, _size_out]),
    "sphana_llm_tokenizer_format": (c_int32, [_model, POINTER(c_int32)]),
    "sphana_llm_execution_provider": (c_int32, [_model, POINTER(c_int32)]),
    "sphana_llm_eos_source": (c_int32, [_model, POINTER(c_int32), _text_out, c_size_t, _size_out]),
    "sphana_llm_bos_id": (c_int32, [_model, POINTER(c_int32)]),
    "sphana_llm_eos_ids": (c_int32, [_model, _ids, c_size_t, _size_out]),
    "sphana_llm_struct_size": (c_int32, [c_uint32, _size_out]),
    "sphana_llm_tokenize": (c_int32, [_model, c_char_p, c_size_t, c_uint32, _ids, c_size_t, _size_out]),
    "sphana_llm_tokenize_with_offsets": (
        c_int32, [_model, c_char_p, c_size_t, c_uint32, _ids, POINTER(TokenSpan), c_size_t, _size_out]),
    "sphana_llm_tokenize_batch": (
        c_int32, [_model, POINTER(c_char_p), POINTER(c_size_t), c_size_t, c_uint32, POINTER(TokenBatch)]),
    "sphana_llm_token_batch_free": (None, [POINTER(TokenBatch)]),
    "sphana_llm_decode": (c_int32, [_model, _ids, c_size_t, c_uint32, _text_out, c_size_t, _size_out]),
    "sphana_llm_token_to_id": (c_int32, [_model, c_char_p, c_size_t, POINTER(c_int32)]),
    "sphana_llm_id_to_token": (c_int32, [_model, c_int32, _text_out, c_size_t, _size_out]),
    "sphana_llm_is_special": (c_int32, [_model, c_int32, POINTER(c_int32)]),
    "sphana_llm_stream_decoder_new": (c_int32, [_model, c_uint32, _out_handle]),
    "sphana_llm_stream_decoder_push": (c_int32, [c_void_p, c_int32, _text_out, c_size_t, _size_out]),
    "sphana_llm_stream_decoder_flush": (c_int32, [c_void_p, _text_out, c_size_t, _size_out]),
    "sphana_llm_stream_decoder_free": (None, [c_void_p]),
}


class AbiMismatch(RuntimeError):
    """The library's structs or functions are not the ones declared here."""


class SphanaError(RuntimeError):
    """A call returned a status other than SPHANA_LLM_OK."""

    def __init__(self, what: str, status: int, message: str):
        super().__init__(f"{what}: status {status}: {message}")
        self.status = status


def check_struct_sizes(lib: ctypes.CDLL, structs: dict = STRUCTS, where: str = "the library") -> None:
    """Raises AbiMismatch unless every struct's ctypes size equals sphana_llm_struct_size(kind) of `lib`.

    Then also checks the struct_size of the by-value defaults (only then: a by-value return into a
    smaller ctypes struct would write past it).
    """
    problems = []
    for kind, cls in structs.items():
        size = c_size_t()
        status = lib.sphana_llm_struct_size(kind, ctypes.byref(size))
        if status != OK:
            raise AbiMismatch(f"{where}: sphana_llm_struct_size({kind}) ({cls.c_name}) returned {status}: "
                              f"{lib.sphana_llm_last_error().decode(errors='replace')}")
        if size.value != ctypes.sizeof(cls):
            problems.append(f"{cls.c_name} is {ctypes.sizeof(cls)} bytes in {os.path.basename(__file__)} "
                            f"but {size.value} bytes in {where}")
    if problems:
        raise AbiMismatch("; ".join(problems) + ": update the declarations to include/sphana_llm.h")
    for name, kind in (("sphana_llm_load_options_default", STRUCT_LOAD_OPTIONS),
                       ("sphana_llm_generate_params_default", STRUCT_GENERATE_PARAMS)):
        cls = structs.get(kind)
        if cls is None:
            continue
        got = ctypes.CFUNCTYPE(cls)((name, lib))().struct_size  # a prototype of its own: lib's is left as it is
        if got != ctypes.sizeof(cls):
            raise AbiMismatch(f"{name}() of {where} says struct_size {got}, "
                              f"{os.path.basename(__file__)} declares {cls.c_name} as {ctypes.sizeof(cls)} bytes")


class Library:
    """A loaded libsphana_llm.so: `lib` is the ctypes.CDLL with every function's types set."""

    def __init__(self, path: str):
        self.path = path
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise AbiMismatch(f"cannot load {path}: {e}") from e
        missing = [name for name in FUNCTIONS if not hasattr(lib, name)]
        if missing:
            raise AbiMismatch(f"{path} does not export {', '.join(missing)}: an older library? rebuild it")
        for name, (restype, argtypes) in FUNCTIONS.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        abi = lib.sphana_llm_abi_version()
        if abi != ABI_VERSION:
            raise AbiMismatch(f"{path} has ABI version {abi}, {os.path.basename(__file__)} declares {ABI_VERSION}")
        check_struct_sizes(lib, where=path)
        self.lib = lib

    def last_error(self) -> str:
        return self.lib.sphana_llm_last_error().decode("utf-8", errors="replace")

    def version(self) -> str:
        return self.lib.sphana_llm_version().decode()

    def check(self, status: int, what: str) -> None:
        if status != OK:
            raise SphanaError(what, status, self.last_error())

    def load_options(self, **fields) -> LoadOptions:
        """The library's default load options (sphana_llm_load_options_init), with `fields` changed."""
        options = LoadOptions()
        self.check(self.lib.sphana_llm_load_options_init(ctypes.byref(options), ctypes.sizeof(options)),
                   "sphana_llm_load_options_init")
        for name, value in fields.items():
            setattr(options, name, value)
        return options

    def generate_params(self, **fields) -> GenerateParams:
        """The library's default generation parameters (greedy, 256 tokens), with `fields` changed."""
        params = GenerateParams()
        self.check(self.lib.sphana_llm_generate_params_init(ctypes.byref(params), ctypes.sizeof(params)),
                   "sphana_llm_generate_params_init")
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    def load_model(self, path: str, options: LoadOptions | None = None) -> c_void_p:
        """sphana_llm_load (options None: the defaults); free the handle with free_model."""
        handle = c_void_p()
        opts = ctypes.byref(options) if options is not None else None
        self.check(self.lib.sphana_llm_load(path.encode(), opts, ctypes.byref(handle)), f"sphana_llm_load {path}")
        return handle

    def free_model(self, handle: c_void_p) -> None:
        self.lib.sphana_llm_free(handle)

    def generate_from_ids(self, handle, prompt: list[int], params: GenerateParams) -> dict:
        """One sphana_llm_generate_from_ids call. Returns the stats and the wall time and this thread's CPU
        time of the call alone (perf_counter / thread_time around it): "start", "end", "cpu_s"."""
        stats = GenerateStats()
        stats.struct_size = ctypes.sizeof(GenerateStats)
        ids = (c_int32 * len(prompt))(*prompt)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        status = self.lib.sphana_llm_generate_from_ids(handle, ids, len(prompt), ctypes.byref(params), NO_CALLBACK,
                                                        None, None, ctypes.byref(stats))
        t1 = time.perf_counter()
        c1 = time.thread_time()
        self.check(status, "sphana_llm_generate_from_ids")
        return {"stats": stats, "start": t0, "end": t1, "cpu_s": c1 - c0}

    def greedy_from_ids(self, handle, prompt: list[int], n: int) -> dict:
        """Greedy generation of exactly n tokens (EOS ignored) from prompt ids: the benchmarks' run.
        Adds "ids" (the n generated ids) to what generate_from_ids returns."""
        out = (c_int32 * n)()
        params = self.generate_params(max_new_tokens=n, ignore_eos=1, out_token_ids=out, out_token_ids_capacity=n)
        assert params.temperature == 0.0  # greedy by default
        res = self.generate_from_ids(handle, prompt, params)
        stats = res["stats"]
        assert stats.generated_tokens == n and stats.prompt_tokens == len(prompt), (
            stats.generated_tokens, stats.prompt_tokens)
        res["ids"] = list(out)
        return res


def load(path: str = RELEASE_LIB) -> Library:
    """Loads libsphana_llm.so and checks it against these declarations (AbiMismatch if it differs)."""
    return Library(path)
