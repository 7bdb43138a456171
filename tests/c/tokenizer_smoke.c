/*
 * tokenizer_smoke.c — exercises the sphana-llm C API from C, the way a C user would.
 *
 * Built and run by tests/c_api.rs:
 *   cc -std=c11 -Wall -Wextra -Werror -pedantic -I include tests/c/tokenizer_smoke.c \
 *      -L <target>/debug -lsphana_llm -Wl,-rpath,<target>/debug
 *
 * Every expected value (ids, decoded text, offsets, vocabulary facts) comes in through
 * argv as key=value pairs, read by the Rust side from the committed goldens that the
 * Python reference tokenizers produced. Nothing here hard-codes a token id.
 *
 * Prints one line per failed check, then "N passed, M failed"; exits non-zero on failure.
 */

#include "sphana_llm.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_argc;
static char **g_argv;
static int g_passed;
static int g_failed;

static void check_at(int line, int ok, const char *fmt, ...) {
    if (ok) {
        g_passed++;
        return;
    }
    g_failed++;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL (line %d): ", line);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

#define CHECK(cond, ...) check_at(__LINE__, (cond) != 0, __VA_ARGS__)

/* A status check that also prints the library's message when the status is wrong. */
#define EXPECT_STATUS(got, want, what)                                                  \
    do {                                                                                \
        int32_t got_ = (got);                                                           \
        CHECK(got_ == (want), "%s: status %d, expected %d (%s); last error: \"%s\"",   \
              (what), (int)got_, (int)(want), #want, sphana_llm_last_error());          \
    } while (0)

/* A failing call: the documented status and a non-empty message naming the problem. */
#define EXPECT_ERROR(got, want, keyword, what)                                           \
    do {                                                                                 \
        int32_t got_ = (got);                                                            \
        const char *msg_ = sphana_llm_last_error();                                      \
        CHECK(got_ == (want), "%s: status %d, expected %d (%s); last error: \"%s\"",    \
              (what), (int)got_, (int)(want), #want, msg_ ? msg_ : "(NULL)");            \
        CHECK(msg_ != NULL && msg_[0] != '\0', "%s: sphana_llm_last_error() is empty",   \
              (what));                                                                   \
        CHECK(msg_ != NULL && strstr(msg_, (keyword)) != NULL,                           \
              "%s: last error \"%s\" does not mention \"%s\"", (what),                   \
              msg_ ? msg_ : "(NULL)", (keyword));                                        \
    } while (0)

/* ---- arguments ------------------------------------------------------------------- */

static const char *arg(const char *key) {
    size_t n = strlen(key);
    for (int i = 1; i < g_argc; i++) {
        if (strncmp(g_argv[i], key, n) == 0 && g_argv[i][n] == '=') {
            return g_argv[i] + n + 1;
        }
    }
    fprintf(stderr, "tokenizer_smoke: missing argument %s=...\n", key);
    exit(2);
}

typedef struct {
    int32_t *v;
    size_t n;
} Ids;

/* "1,2,3" -> ids; "" -> no ids. */
static Ids ids_arg(const char *key) {
    const char *s = arg(key);
    Ids ids = {NULL, 0};
    if (*s == '\0') {
        return ids;
    }
    size_t n = 1;
    for (const char *p = s; *p; p++) {
        n += (*p == ',');
    }
    ids.v = malloc(n * sizeof *ids.v);
    if (!ids.v) {
        exit(3);
    }
    const char *p = s;
    for (size_t i = 0; i < n; i++) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p) {
            fprintf(stderr, "tokenizer_smoke: bad id list %s=%s\n", key, s);
            exit(2);
        }
        ids.v[i] = (int32_t)v;
        p = (*end == ',') ? end + 1 : end;
    }
    ids.n = n;
    return ids;
}

static long long_arg(const char *key) {
    return strtol(arg(key), NULL, 10);
}

static int ids_equal(const int32_t *a, size_t na, const Ids *b) {
    return na == b->n && (na == 0 || memcmp(a, b->v, na * sizeof *a) == 0);
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    printf("    %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 64; i++) {
        printf(" %d", (int)ids[i]);
    }
    printf("%s\n", n > 64 ? " ..." : "");
}

/* ---- UTF-8 ------------------------------------------------------------------------- */

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or partial characters). */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n) {
            return 0;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += len;
    }
    return 1;
}

/* ---- checks -------------------------------------------------------------------------- */

/* Ask for the size, check the too-small paths, then fill; compare with the golden ids. */
static void check_tokenize(const SphanaLlmModel *m, const char *text, uint32_t flags,
                           const Ids *want, const char *what) {
    size_t len = strlen(text);
    size_t n = (size_t)-1;
    int32_t st = sphana_llm_tokenize(m, text, len, flags, NULL, 0, &n);
    EXPECT_STATUS(st, want->n == 0 ? SPHANA_LLM_OK : SPHANA_LLM_ERR_BUFFER_TOO_SMALL, what);
    CHECK(n == want->n, "%s: size query gave %zu ids, golden has %zu", what, n, want->n);

    if (want->n > 1) {
        /* A buffer one short: BUFFER_TOO_SMALL, out_count set, nothing else written. */
        size_t cap = want->n - 1;
        int32_t *small = malloc(cap * sizeof *small);
        for (size_t i = 0; i < cap; i++) {
            small[i] = -777;
        }
        n = 0;
        st = sphana_llm_tokenize(m, text, len, flags, small, cap, &n);
        EXPECT_STATUS(st, SPHANA_LLM_ERR_BUFFER_TOO_SMALL, what);
        CHECK(n == want->n, "%s: too-small buffer reported %zu ids, want %zu", what, n, want->n);
        int untouched = 1;
        for (size_t i = 0; i < cap; i++) {
            untouched &= (small[i] == -777);
        }
        CHECK(untouched, "%s: a too-small buffer was written to", what);
        free(small);
    }

    size_t cap = want->n + 2;
    int32_t *ids = malloc(cap * sizeof *ids);
    n = 0;
    st = sphana_llm_tokenize(m, text, len, flags, ids, cap, &n);
    EXPECT_STATUS(st, SPHANA_LLM_OK, what);
    CHECK(ids_equal(ids, n, want), "%s: ids differ from the golden", what);
    if (!ids_equal(ids, n, want)) {
        print_ids("got ", ids, n);
        print_ids("want", want->v, want->n);
    }
    free(ids);
}

/* Decode with the size query, the exactly-too-small buffer (no room for the NUL), then fill. */
static void check_decode(const SphanaLlmModel *m, const Ids *ids, uint32_t flags,
                         const char *want, const char *what) {
    size_t want_len = strlen(want);
    size_t len = (size_t)-1;
    int32_t st = sphana_llm_decode(m, ids->v, ids->n, flags, NULL, 0, &len);
    EXPECT_STATUS(st, SPHANA_LLM_ERR_BUFFER_TOO_SMALL, what);
    CHECK(len == want_len, "%s: size query gave %zu bytes, want %zu", what, len, want_len);

    char *buf = malloc(want_len + 8);
    memset(buf, 'X', want_len + 8);
    len = 0;
    st = sphana_llm_decode(m, ids->v, ids->n, flags, buf, want_len, &len);
    if (want_len > 0) {
        EXPECT_STATUS(st, SPHANA_LLM_ERR_BUFFER_TOO_SMALL, what);
        CHECK(len == want_len, "%s: too-small buffer reported %zu bytes", what, len);
        int untouched = 1;
        for (size_t i = 0; i < want_len + 8; i++) {
            untouched &= (buf[i] == 'X');
        }
        CHECK(untouched, "%s: a too-small text buffer was written to", what);
    }

    len = 0;
    st = sphana_llm_decode(m, ids->v, ids->n, flags, buf, want_len + 1, &len);
    EXPECT_STATUS(st, SPHANA_LLM_OK, what);
    CHECK(len == want_len, "%s: decoded %zu bytes, want %zu", what, len, want_len);
    CHECK(buf[want_len] == '\0', "%s: decoded text is not NUL-terminated", what);
    CHECK(memcmp(buf, want, want_len) == 0, "%s: decoded \"%.*s\", want \"%s\"", what,
          (int)want_len, buf, want);
    free(buf);
}

/* Feeds ids one at a time; every piece must be complete UTF-8; the pieces plus the flush
 * must equal `want`. Returns the number of pushes that produced no text. */
static size_t check_stream(const SphanaLlmModel *m, const Ids *ids, uint32_t flags,
                           const char *want, const char *what) {
    SphanaLlmStreamDecoder *d = NULL;
    EXPECT_STATUS(sphana_llm_stream_decoder_new(m, flags, &d), SPHANA_LLM_OK, what);
    CHECK(d != NULL, "%s: no decoder", what);
    size_t want_len = strlen(want);
    char *all = calloc(want_len + 64 * (ids->n + 1) + 1, 1);
    size_t total = 0;
    size_t empty_pushes = 0;
    int all_pieces_valid = 1;
    for (size_t i = 0; i < ids->n; i++) {
        char piece[64];
        size_t len = (size_t)-1;
        int32_t st = sphana_llm_stream_decoder_push(d, ids->v[i], piece, sizeof piece, &len);
        EXPECT_STATUS(st, SPHANA_LLM_OK, what);
        if (st != SPHANA_LLM_OK || len >= sizeof piece) {
            break;
        }
        CHECK(piece[len] == '\0', "%s: piece %zu not NUL-terminated", what, i);
        if (!valid_utf8((const unsigned char *)piece, len)) {
            all_pieces_valid = 0;
            printf("    %s: piece %zu (id %d) is not complete UTF-8\n", what, i, (int)ids->v[i]);
        }
        empty_pushes += (len == 0);
        memcpy(all + total, piece, len);
        total += len;
    }
    CHECK(all_pieces_valid, "%s: a streamed piece held a partial UTF-8 character", what);
    char rest[64];
    size_t rest_len = (size_t)-1;
    EXPECT_STATUS(sphana_llm_stream_decoder_flush(d, rest, sizeof rest, &rest_len), SPHANA_LLM_OK,
                  what);
    if (rest_len < sizeof rest) {
        memcpy(all + total, rest, rest_len);
        total += rest_len;
    }
    CHECK(total == want_len && memcmp(all, want, want_len) == 0,
          "%s: streamed \"%.*s\", want \"%s\"", what, (int)total, all, want);
    free(all);
    sphana_llm_stream_decoder_free(d);
    return empty_pushes;
}

static void check_eos_ids(const SphanaLlmModel *m, const Ids *want, const char *what) {
    size_t n = (size_t)-1;
    int32_t st = sphana_llm_eos_ids(m, NULL, 0, &n);
    EXPECT_STATUS(st, want->n == 0 ? SPHANA_LLM_OK : SPHANA_LLM_ERR_BUFFER_TOO_SMALL, what);
    CHECK(n == want->n, "%s: %zu eos ids, golden has %zu", what, n, want->n);
    int32_t got[16];
    n = 0;
    EXPECT_STATUS(sphana_llm_eos_ids(m, got, 16, &n), SPHANA_LLM_OK, what);
    CHECK(ids_equal(got, n, want), "%s: eos ids differ from the golden", what);
    if (!ids_equal(got, n, want)) {
        print_ids("got ", got, n);
        print_ids("want", want->v, want->n);
    }
}

/* ---- generation ---------------------------------------------------------------- */

typedef struct {
    char text[4096];
    size_t len;
    int calls;
    int stop_after; /* return non-zero on this call (0: never) */
    int bad_utf8;   /* a chunk was not complete UTF-8 */
} Sink;

static int utf8_complete(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)s[i + k] >> 6) != 2) return 0;
        }
        i += len;
    }
    return 1;
}

static int32_t on_text(const char *text, size_t len, void *user_data) {
    Sink *sink = (Sink *)user_data;
    sink->calls++;
    if (!utf8_complete(text, len) || text[len] != '\0') sink->bad_utf8 = 1;
    if (sink->len + len < sizeof sink->text) {
        memcpy(sink->text + sink->len, text, len);
        sink->len += len;
        sink->text[sink->len] = '\0';
    }
    return sink->stop_after != 0 && sink->calls >= sink->stop_after;
}

static void check_generation(void) {
    SphanaLlmLoadOptions options = sphana_llm_load_options_default();
    options.ort_library_path = arg("ort_library");
    SphanaLlmModel *smol = NULL;
    EXPECT_STATUS(sphana_llm_load(arg("smollm2_dir"), &options, &smol), SPHANA_LLM_OK, "load SmolLM2");
    if (smol == NULL) return;

    /* A hand-written ChatML prompt: special tokens parsed, streamed through the callback. */
    const char *prompt = arg("smollm2_prompt");
    SphanaLlmGenerateParams params = sphana_llm_generate_params_default();
    params.max_new_tokens = 48;
    params.parse_special = 1;
    Sink sink;
    memset(&sink, 0, sizeof sink);
    char *text = NULL;
    SphanaLlmGenerateStats stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    EXPECT_STATUS(sphana_llm_generate(smol, prompt, strlen(prompt), &params, on_text, &sink, &text, &stats),
                  SPHANA_LLM_OK, "generate");
    CHECK(text != NULL && strcmp(text, arg("smollm2_answer")) == 0, "answer \"%s\"", text ? text : "(NULL)");
    CHECK(text != NULL && strstr(text, "Paris") != NULL, "the answer names Paris");
    CHECK(text != NULL && strcmp(sink.text, text) == 0, "callback chunks \"%s\" join to out_text", sink.text);
    CHECK(sink.calls >= 2 && !sink.bad_utf8, "%d chunks, all complete UTF-8", sink.calls);
    CHECK(stats.finish_reason == SPHANA_LLM_FINISH_EOS, "finish reason %d", (int)stats.finish_reason);
    CHECK(stats.generated_tokens > 0 && stats.prompt_tokens > 10, "stats %zu/%zu",
          stats.prompt_tokens, stats.generated_tokens);
    sphana_llm_string_free(text);

    /* The same question through the model's chat template. */
    const char *question = arg("smollm2_question");
    SphanaLlmChatMessage message = {"user", 4, question, strlen(question)};
    char *rendered = NULL;
    EXPECT_STATUS(sphana_llm_apply_chat_template(smol, &message, 1, 1, &rendered), SPHANA_LLM_OK,
                  "apply_chat_template");
    CHECK(rendered != NULL && strcmp(rendered, prompt) == 0, "rendered chat equals the reference prompt");
    sphana_llm_string_free(rendered);
    text = NULL;
    EXPECT_STATUS(sphana_llm_generate_chat(smol, &message, 1, NULL, NULL, NULL, &text, NULL), SPHANA_LLM_OK,
                  "generate_chat");
    CHECK(text != NULL && strcmp(text, arg("smollm2_answer")) == 0, "chat answer \"%s\"", text ? text : "(NULL)");
    sphana_llm_string_free(text);

    /* A callback that asks to stop ends generation at once. */
    memset(&sink, 0, sizeof sink);
    sink.stop_after = 1;
    EXPECT_STATUS(sphana_llm_generate(smol, prompt, strlen(prompt), &params, on_text, &sink, NULL, &stats),
                  SPHANA_LLM_OK, "generate with a stopping callback");
    CHECK(sink.calls == 1 && stats.finish_reason == SPHANA_LLM_FINISH_CANCELLED, "%d calls, finish %d",
          sink.calls, (int)stats.finish_reason);

    /* A cancelled flag ends a generation before it starts. */
    SphanaLlmCancellation *cancel = NULL;
    EXPECT_STATUS(sphana_llm_cancellation_new(&cancel), SPHANA_LLM_OK, "cancellation_new");
    EXPECT_STATUS(sphana_llm_cancellation_cancel(cancel), SPHANA_LLM_OK, "cancel");
    params.cancel = cancel;
    EXPECT_STATUS(sphana_llm_generate(smol, prompt, strlen(prompt), &params, NULL, NULL, NULL, &stats),
                  SPHANA_LLM_OK, "generate with a cancelled flag");
    CHECK(stats.finish_reason == SPHANA_LLM_FINISH_CANCELLED && stats.generated_tokens == 0,
          "cancelled before start: finish %d, %zu tokens", (int)stats.finish_reason, stats.generated_tokens);
    sphana_llm_cancellation_free(cancel);
    params.cancel = NULL;

    /* Structured output: a regex constraint; the answer matches it, as C sees it. */
    SphanaLlmConstraint yes_no = {sizeof(SphanaLlmConstraint), SPHANA_LLM_CONSTRAINT_REGEX, "(Yes|No), [a-z]{2,12}\\."};
    params.constraint = &yes_no;
    text = NULL;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    EXPECT_STATUS(sphana_llm_generate(smol, prompt, strlen(prompt), &params, NULL, NULL, &text, &stats),
                  SPHANA_LLM_OK, "generate with a regex constraint");
    CHECK(text != NULL && (strncmp(text, "Yes, ", 5) == 0 || strncmp(text, "No, ", 4) == 0) &&
              text[strlen(text) - 1] == '.',
          "constrained answer \"%s\"", text ? text : "(NULL)");
    CHECK(stats.finish_reason == SPHANA_LLM_FINISH_EOS && stats.constraint_ms > 0.0, "finish %d, constraint %.1f ms",
          (int)stats.finish_reason, stats.constraint_ms);
    sphana_llm_string_free(text);
    SphanaLlmConstraint broken = {sizeof(SphanaLlmConstraint), SPHANA_LLM_CONSTRAINT_REGEX, "(Yes|No"};
    params.constraint = &broken;
    EXPECT_ERROR(sphana_llm_generate(smol, prompt, strlen(prompt), &params, NULL, NULL, NULL, NULL),
                 SPHANA_LLM_ERR_INVALID_ARGUMENT, "invalid regular expression", "generate with an invalid regex");
    params.constraint = NULL;

    /* Bad parameters are rejected with a message. */
    params.top_p = 0.0f;
    EXPECT_ERROR(sphana_llm_generate(smol, prompt, strlen(prompt), &params, NULL, NULL, NULL, NULL),
                 SPHANA_LLM_ERR_INVALID_ARGUMENT, "top_p", "generate with top_p 0");
    sphana_llm_free(smol);

    /* Greedy ids from an id prompt on the tiny model equal the reference. */
    SphanaLlmModel *tiny = NULL;
    EXPECT_STATUS(sphana_llm_load(arg("tiny_dir"), &options, &tiny), SPHANA_LLM_OK, "load tiny model");
    if (tiny == NULL) return;
    Ids prompt_ids = ids_arg("tiny_prompt_ids");
    Ids want = ids_arg("tiny_new_ids");
    int32_t got[64];
    SphanaLlmGenerateParams greedy = sphana_llm_generate_params_default();
    greedy.max_new_tokens = (uint32_t)want.n;
    greedy.ignore_eos = 1;
    greedy.out_token_ids = got;
    greedy.out_token_ids_capacity = 64;
    EXPECT_STATUS(sphana_llm_generate_from_ids(tiny, prompt_ids.v, prompt_ids.n, &greedy, NULL, NULL, NULL, &stats),
                  SPHANA_LLM_OK, "generate_from_ids");
    CHECK(stats.generated_tokens == want.n && memcmp(got, want.v, want.n * sizeof *got) == 0,
          "tiny model greedy ids equal the reference (%zu tokens)", stats.generated_tokens);
    free(prompt_ids.v);
    free(want.v);
    sphana_llm_free(tiny);

    /* Tokenizer-only loads cannot generate. */
    SphanaLlmModel *tok = NULL;
    EXPECT_STATUS(sphana_llm_load(arg("llama_dir"), NULL, &tok), SPHANA_LLM_OK, "load tokenizer-only");
    EXPECT_ERROR(sphana_llm_generate(tok, "hi", 2, NULL, NULL, NULL, NULL, NULL), SPHANA_LLM_ERR_UNSUPPORTED,
                 "tokenizer-only", "generate on a tokenizer-only model");
    sphana_llm_free(tok);
}

int main(int argc, char **argv) {
    g_argc = argc;
    g_argv = argv;
    const uint32_t ADD = SPHANA_LLM_TOKENIZE_ADD_SPECIAL;
    const uint32_t PARSE = SPHANA_LLM_TOKENIZE_PARSE_SPECIAL;

    /* ---- version, ABI, fresh error state ---- */
    CHECK(sphana_llm_abi_version() == SPHANA_LLM_ABI_VERSION, "ABI version %u, header says %d",
          (unsigned)sphana_llm_abi_version(), SPHANA_LLM_ABI_VERSION);
    const char *version = sphana_llm_version();
    CHECK(version != NULL && strcmp(version, arg("version")) == 0, "version \"%s\", want \"%s\"",
          version ? version : "(NULL)", arg("version"));
    CHECK(sphana_llm_last_error() != NULL && sphana_llm_last_error()[0] == '\0',
          "last error is not empty before any failure: \"%s\"", sphana_llm_last_error());

    /* ---- struct sizes: this compiler's layout of the header equals the library's ---- */
    {
        static const struct { uint32_t kind; size_t size; const char *name; } structs[] = {
            {SPHANA_LLM_STRUCT_LOAD_OPTIONS, sizeof(SphanaLlmLoadOptions), "SphanaLlmLoadOptions"},
            {SPHANA_LLM_STRUCT_GENERATE_PARAMS, sizeof(SphanaLlmGenerateParams), "SphanaLlmGenerateParams"},
            {SPHANA_LLM_STRUCT_GENERATE_STATS, sizeof(SphanaLlmGenerateStats), "SphanaLlmGenerateStats"},
            {SPHANA_LLM_STRUCT_TOKEN_SPAN, sizeof(SphanaLlmTokenSpan), "SphanaLlmTokenSpan"},
            {SPHANA_LLM_STRUCT_TOKEN_BATCH, sizeof(SphanaLlmTokenBatch), "SphanaLlmTokenBatch"},
            {SPHANA_LLM_STRUCT_CHAT_MESSAGE, sizeof(SphanaLlmChatMessage), "SphanaLlmChatMessage"},
            {SPHANA_LLM_STRUCT_CONSTRAINT, sizeof(SphanaLlmConstraint), "SphanaLlmConstraint"},
            {SPHANA_LLM_STRUCT_CHAT_TOOLS, sizeof(SphanaLlmChatTools), "SphanaLlmChatTools"},
            {SPHANA_LLM_STRUCT_TOOL_CALL, sizeof(SphanaLlmToolCall), "SphanaLlmToolCall"},
            {SPHANA_LLM_STRUCT_TOOL_CALLS, sizeof(SphanaLlmToolCalls), "SphanaLlmToolCalls"},
        };
        for (size_t i = 0; i < sizeof structs / sizeof structs[0]; i++) {
            size_t size = 0;
            EXPECT_STATUS(sphana_llm_struct_size(structs[i].kind, &size), SPHANA_LLM_OK, structs[i].name);
            CHECK(size == structs[i].size, "sizeof(%s): library %zu, header %zu", structs[i].name, size,
                  structs[i].size);
        }
        size_t untouched = 12345;
        EXPECT_ERROR(sphana_llm_struct_size(0, &untouched), SPHANA_LLM_ERR_INVALID_ARGUMENT, "struct kind",
                     "struct_size of kind 0");
        EXPECT_ERROR(sphana_llm_struct_size(11, &untouched), SPHANA_LLM_ERR_INVALID_ARGUMENT, "struct kind",
                     "struct_size of kind 11");
        CHECK(untouched == 12345, "a rejected struct_size call wrote %zu", untouched);
        EXPECT_ERROR(sphana_llm_struct_size(SPHANA_LLM_STRUCT_LOAD_OPTIONS, NULL), SPHANA_LLM_ERR_INVALID_ARGUMENT,
                     "out_size", "struct_size with NULL out_size");
    }

    /* ---- load with NULL options ---- */
    SphanaLlmModel *m = NULL;
    EXPECT_STATUS(sphana_llm_load(arg("llama_dir"), NULL, &m), SPHANA_LLM_OK, "load llama3.2");
    if (!m) {
        printf("cannot go on without a model\n%d passed, %d failed\n", g_passed, g_failed + 1);
        return 1;
    }
    int32_t format = -1;
    EXPECT_STATUS(sphana_llm_tokenizer_format(m, &format), SPHANA_LLM_OK, "tokenizer_format");
    CHECK(format == SPHANA_LLM_FORMAT_HF_JSON, "llama3.2 format %d, want HF_JSON", (int)format);

    /* ---- load with options from sphana_llm_load_options_default() ---- */
    SphanaLlmLoadOptions opts = sphana_llm_load_options_default();
    CHECK(opts.struct_size == sizeof opts, "default struct_size %u, sizeof %zu",
          (unsigned)opts.struct_size, sizeof opts);
    CHECK(opts.tokenizer_format == SPHANA_LLM_FORMAT_AUTO, "default tokenizer_format %d",
          (int)opts.tokenizer_format);
    CHECK(opts.execution_provider == SPHANA_LLM_PROVIDER_CPU, "default provider %d",
          (int)opts.execution_provider);
    CHECK(opts.ort_library_path == NULL && opts.onnx_file_name == NULL,
          "default path options are not NULL");
    CHECK(opts.max_input_bytes == (uint64_t)256 << 20, "default max_input_bytes %llu",
          (unsigned long long)opts.max_input_bytes);
    CHECK(opts.max_batch_texts == 65536, "default max_batch_texts %llu",
          (unsigned long long)opts.max_batch_texts);
    SphanaLlmModel *defaults = NULL;
    EXPECT_STATUS(sphana_llm_load(arg("llama_dir"), &opts, &defaults), SPHANA_LLM_OK,
                  "load llama3.2 with default options");
    Ids para_ids_10 = ids_arg("ids_paragraph_10");
    if (defaults) {
        check_tokenize(defaults, arg("text_paragraph"), ADD, &para_ids_10,
                       "default-options model: paragraph ADD_SPECIAL");
        sphana_llm_free(defaults);
    }

    SphanaLlmModel *tt = NULL;
    opts.tokenizer_format = SPHANA_LLM_FORMAT_TIKTOKEN;
    EXPECT_STATUS(sphana_llm_load(arg("tiktoken_dir"), &opts, &tt), SPHANA_LLM_OK,
                  "load llama3 tiktoken with tokenizer_format = TIKTOKEN");
    if (tt) {
        format = -1;
        EXPECT_STATUS(sphana_llm_tokenizer_format(tt, &format), SPHANA_LLM_OK, "tiktoken format");
        CHECK(format == SPHANA_LLM_FORMAT_TIKTOKEN, "tiktoken format %d", (int)format);
        Ids tt_special = ids_arg("tt_ids_special_llama3_11");
        check_tokenize(tt, arg("text_special_llama3"), ADD | PARSE, &tt_special,
                       "tiktoken: special_llama3 ADD|PARSE");
        Ids tt_para = ids_arg("tt_ids_paragraph_00");
        check_tokenize(tt, arg("text_paragraph"), 0, &tt_para, "tiktoken: paragraph");
        Ids tt_eos = ids_arg("tt_eos_ids");
        check_eos_ids(tt, &tt_eos, "tiktoken eos_ids");
        free(tt_special.v);
        free(tt_para.v);
        free(tt_eos.v);
        sphana_llm_free(tt);
    }

    /* ---- vocabulary facts ---- */
    size_t vocab = 0;
    EXPECT_STATUS(sphana_llm_vocab_size(m, &vocab), SPHANA_LLM_OK, "vocab_size");
    CHECK((long)vocab == long_arg("vocab_size"), "vocab size %zu, want %s", vocab,
          arg("vocab_size"));
    int32_t bos = -2;
    EXPECT_STATUS(sphana_llm_bos_id(m, &bos), SPHANA_LLM_OK, "bos_id");
    CHECK(bos == long_arg("bos_id"), "bos id %d, want %s", (int)bos, arg("bos_id"));
    Ids eos = ids_arg("eos_ids");
    check_eos_ids(m, &eos, "llama3.2 eos_ids (generation_config.json)");
    if (eos.n > 1) {
        int32_t one[1] = {-777};
        size_t n = 0;
        EXPECT_STATUS(sphana_llm_eos_ids(m, one, 1, &n), SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
                      "eos_ids with room for one");
        CHECK(n == eos.n && one[0] == -777, "eos_ids too small: count %zu, buffer %d", n,
              (int)one[0]);
    }

    /* ---- tokenize: every flag combination against the goldens ---- */
    static const char *const inputs[] = {"empty", "paragraph", "special_llama3", "emoji",
                                         "cjk", "crlf_tabs"};
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        char key[96];
        snprintf(key, sizeof key, "text_%s", inputs[i]);
        const char *text = arg(key);
        for (uint32_t flags = 0; flags < 4; flags++) {
            /* golden keys: ids_<input>_<add_special><parse_special> */
            snprintf(key, sizeof key, "ids_%s_%d%d", inputs[i], (flags & ADD) ? 1 : 0,
                     (flags & PARSE) ? 1 : 0);
            Ids want = ids_arg(key);
            char what[128];
            snprintf(what, sizeof what, "tokenize %s flags=%s", inputs[i],
                     flags == 0             ? "0"
                     : flags == ADD         ? "ADD_SPECIAL"
                     : flags == PARSE       ? "PARSE_SPECIAL"
                                            : "ADD_SPECIAL|PARSE_SPECIAL");
            check_tokenize(m, text, flags, &want, what);
            free(want.v);
        }
    }
    /* text_len 0 with a NULL text is allowed. */
    {
        size_t n = 99;
        EXPECT_STATUS(sphana_llm_tokenize(m, NULL, 0, 0, NULL, 0, &n), SPHANA_LLM_OK,
                      "tokenize NULL text of length 0");
        CHECK(n == 0, "tokenize of no text gave %zu ids", n);
    }

    /* ---- tokenize_with_offsets ---- */
    {
        const char *text = arg("text_mixed_script");
        Ids want = ids_arg("ids_mixed_script_00");
        Ids spans = ids_arg("offsets_mixed_script_00"); /* start,end,start,end,... */
        size_t n = (size_t)-1;
        EXPECT_STATUS(sphana_llm_tokenize_with_offsets(m, text, strlen(text), 0, NULL, NULL, 0, &n),
                      SPHANA_LLM_ERR_BUFFER_TOO_SMALL, "offsets size query");
        CHECK(n == want.n, "offsets size query gave %zu, want %zu", n, want.n);
        int32_t ids[256];
        SphanaLlmTokenSpan sp[256];
        n = 0;
        EXPECT_STATUS(sphana_llm_tokenize_with_offsets(m, text, strlen(text), 0, ids, sp, 256, &n),
                      SPHANA_LLM_OK, "tokenize_with_offsets");
        CHECK(ids_equal(ids, n, &want), "tokenize_with_offsets ids differ from the golden");
        CHECK(spans.n == 2 * want.n, "golden offsets: %zu numbers for %zu ids", spans.n, want.n);
        int spans_ok = (n == want.n);
        for (size_t i = 0; spans_ok && i < n && 2 * i + 1 < spans.n; i++) {
            if (sp[i].start != (size_t)spans.v[2 * i] || sp[i].end != (size_t)spans.v[2 * i + 1]) {
                printf("    span %zu: [%zu, %zu), golden [%d, %d)\n", i, sp[i].start, sp[i].end,
                       (int)spans.v[2 * i], (int)spans.v[2 * i + 1]);
                spans_ok = 0;
            }
        }
        CHECK(spans_ok, "tokenize_with_offsets spans differ from the golden");

        /* With ADD_SPECIAL the added BOS has an empty range and the rest is unchanged. */
        Ids want_add = ids_arg("ids_mixed_script_10");
        n = 0;
        EXPECT_STATUS(sphana_llm_tokenize_with_offsets(m, text, strlen(text), ADD, ids, sp, 256, &n),
                      SPHANA_LLM_OK, "tokenize_with_offsets ADD_SPECIAL");
        CHECK(ids_equal(ids, n, &want_add), "tokenize_with_offsets ADD_SPECIAL ids differ");
        CHECK(n == want.n + 1 && sp[0].start == sp[0].end,
              "the added BOS has span [%zu, %zu), want an empty range", sp[0].start, sp[0].end);
        spans_ok = (n == want.n + 1);
        for (size_t i = 0; spans_ok && i < want.n; i++) {
            spans_ok = sp[i + 1].start == (size_t)spans.v[2 * i] &&
                       sp[i + 1].end == (size_t)spans.v[2 * i + 1];
        }
        CHECK(spans_ok, "tokenize_with_offsets ADD_SPECIAL: text spans moved");
        free(want.v);
        free(spans.v);
        free(want_add.v);
    }

    /* ---- tokenize_batch + token_batch_free ---- */
    {
        static const char *const names[] = {"paragraph", "special_llama3", "emoji", "empty", "cjk"};
        enum { COUNT = sizeof names / sizeof *names };
        const char *texts[COUNT];
        size_t lens[COUNT];
        Ids want[COUNT];
        for (size_t i = 0; i < COUNT; i++) {
            char key[96];
            snprintf(key, sizeof key, "text_%s", names[i]);
            texts[i] = arg(key);
            lens[i] = strlen(texts[i]);
            snprintf(key, sizeof key, "ids_%s_10", names[i]);
            want[i] = ids_arg(key);
        }
        texts[3] = NULL; /* length 0: NULL is allowed */
        SphanaLlmTokenBatch batch;
        memset(&batch, 0xAB, sizeof batch);
        EXPECT_STATUS(sphana_llm_tokenize_batch(m, texts, lens, COUNT, ADD, &batch), SPHANA_LLM_OK,
                      "tokenize_batch");
        CHECK(batch.text_count == COUNT, "batch text_count %zu", batch.text_count);
        if (batch.text_count == COUNT && batch.starts && batch.ids) {
            CHECK(batch.starts[0] == 0, "batch starts[0] = %zu", batch.starts[0]);
            for (size_t i = 0; i < COUNT; i++) {
                size_t n = batch.starts[i + 1] - batch.starts[i];
                CHECK(ids_equal(batch.ids + batch.starts[i], n, &want[i]),
                      "batch text %zu (%s) differs from the golden", i, names[i]);
            }
        }
        sphana_llm_token_batch_free(&batch);
        CHECK(batch.ids == NULL && batch.starts == NULL && batch.text_count == 0,
              "token_batch_free did not zero the batch");
        sphana_llm_token_batch_free(&batch); /* a freed (zeroed) batch is a no-op */
        sphana_llm_token_batch_free(NULL);   /* NULL is a no-op */
        for (size_t i = 0; i < COUNT; i++) {
            free(want[i].v);
        }

        EXPECT_STATUS(sphana_llm_tokenize_batch(m, NULL, NULL, 0, 0, &batch), SPHANA_LLM_OK,
                      "empty tokenize_batch");
        CHECK(batch.text_count == 0 && batch.starts != NULL && batch.starts[0] == 0,
              "empty batch: text_count %zu, starts[0] missing or non-zero", batch.text_count);
        sphana_llm_token_batch_free(&batch);
    }

    /* ---- decode (with and without special tokens) ---- */
    {
        Ids ids = ids_arg("ids_special_llama3_11");
        check_decode(m, &ids, 0, arg("decoded_special_llama3_11"), "decode special_llama3");
        check_decode(m, &ids, SPHANA_LLM_DECODE_SKIP_SPECIAL,
                     arg("decoded_skip_special_special_llama3_11"),
                     "decode special_llama3 SKIP_SPECIAL");
        Ids emoji = ids_arg("ids_emoji_00");
        check_decode(m, &emoji, 0, arg("decoded_emoji_00"), "decode emoji");
        CHECK(strcmp(arg("decoded_emoji_00"), arg("text_emoji")) == 0,
              "golden decode of emoji is not the input text");
        size_t len = 99;
        char out[4] = "zzz";
        EXPECT_STATUS(sphana_llm_decode(m, NULL, 0, 0, out, sizeof out, &len), SPHANA_LLM_OK,
                      "decode no ids");
        CHECK(len == 0 && out[0] == '\0', "decode of no ids gave %zu bytes", len);

        /* ---- streaming decode, one id at a time ---- */
        size_t empty = check_stream(m, &emoji, 0, arg("text_emoji"), "stream emoji");
        CHECK(empty > 0, "stream emoji: every push produced text, so no character was held back");
        Ids cjk = ids_arg("ids_cjk_00");
        check_stream(m, &cjk, 0, arg("text_cjk"), "stream cjk");
        check_stream(m, &ids, 0, arg("decoded_special_llama3_11"), "stream special_llama3");
        check_stream(m, &ids, SPHANA_LLM_DECODE_SKIP_SPECIAL,
                     arg("decoded_skip_special_special_llama3_11"),
                     "stream special_llama3 SKIP_SPECIAL");

        /* A too-small buffer leaves the decoder unchanged: the same id then succeeds. */
        SphanaLlmStreamDecoder *d = NULL;
        EXPECT_STATUS(sphana_llm_stream_decoder_new(m, 0, &d), SPHANA_LLM_OK, "stream new");
        char tiny[1];
        char piece[64];
        size_t first_len = 0;
        int32_t st = sphana_llm_stream_decoder_push(d, emoji.v[0], tiny, sizeof tiny, &first_len);
        EXPECT_STATUS(st, SPHANA_LLM_ERR_BUFFER_TOO_SMALL, "stream push into 1 byte");
        size_t len2 = 0;
        EXPECT_STATUS(sphana_llm_stream_decoder_push(d, emoji.v[0], piece, sizeof piece, &len2),
                      SPHANA_LLM_OK, "stream push after BUFFER_TOO_SMALL");
        CHECK(len2 == first_len && len2 > 0 && strncmp(piece, arg("text_emoji"), len2) == 0,
              "stream retry gave \"%s\" (%zu bytes, first said %zu)", piece, len2, first_len);
        EXPECT_ERROR(sphana_llm_stream_decoder_push(d, -1, piece, sizeof piece, &len2),
                     SPHANA_LLM_ERR_INVALID_TOKEN_ID, "-1", "stream push of id -1");
        sphana_llm_stream_decoder_free(d);
        sphana_llm_stream_decoder_free(NULL);
        free(ids.v);
        free(emoji.v);
        free(cjk.v);
    }

    /* ---- token_to_id / id_to_token / is_special ---- */
    {
        const char *names[2] = {arg("token_a"), arg("token_b")};
        long want_ids[2] = {long_arg("token_a_id"), long_arg("token_b_id")};
        for (int i = 0; i < 2; i++) {
            int32_t id = -2;
            EXPECT_STATUS(sphana_llm_token_to_id(m, names[i], strlen(names[i]), &id), SPHANA_LLM_OK,
                          "token_to_id");
            CHECK(id == want_ids[i], "token_to_id(\"%s\") = %d, want %ld", names[i], (int)id,
                  want_ids[i]);
            size_t len = 0;
            EXPECT_STATUS(sphana_llm_id_to_token(m, (int32_t)want_ids[i], NULL, 0, &len),
                          SPHANA_LLM_ERR_BUFFER_TOO_SMALL, "id_to_token size query");
            CHECK(len == strlen(names[i]), "id_to_token(%ld) length %zu, want %zu", want_ids[i],
                  len, strlen(names[i]));
            char buf[64];
            memset(buf, 'X', sizeof buf);
            EXPECT_STATUS(sphana_llm_id_to_token(m, (int32_t)want_ids[i], buf, sizeof buf, &len),
                          SPHANA_LLM_OK, "id_to_token");
            CHECK(len < sizeof buf && buf[len] == '\0' && strcmp(buf, names[i]) == 0,
                  "id_to_token(%ld) = \"%s\", want \"%s\"", want_ids[i], buf, names[i]);
        }
        int32_t special = -1;
        EXPECT_STATUS(sphana_llm_is_special(m, (int32_t)want_ids[0], &special), SPHANA_LLM_OK,
                      "is_special");
        CHECK(special == 1, "%s is not reported special", names[0]);
        EXPECT_STATUS(sphana_llm_is_special(m, (int32_t)want_ids[1], &special), SPHANA_LLM_OK,
                      "is_special");
        CHECK(special == 0, "%s is reported special", names[1]);
    }

    /* ---- errors: each returns its documented status with a message naming the problem ---- */
    {
        SphanaLlmModel *sentinel = (SphanaLlmModel *)&g_passed; /* must stay untouched */
        SphanaLlmModel *out = sentinel;
        EXPECT_ERROR(sphana_llm_load(NULL, NULL, &out), SPHANA_LLM_ERR_INVALID_ARGUMENT, "path",
                     "load(NULL path)");
        CHECK(out == sentinel, "a failed load wrote *out_model");
        EXPECT_ERROR(sphana_llm_load(arg("llama_dir"), NULL, NULL), SPHANA_LLM_ERR_INVALID_ARGUMENT,
                     "out_model", "load(NULL out_model)");
        EXPECT_ERROR(sphana_llm_load(arg("missing_dir"), NULL, &out), SPHANA_LLM_ERR_IO,
                     arg("missing_dir"), "load(missing dir)");
        CHECK(out == sentinel, "a failed load wrote *out_model");
        EXPECT_ERROR(sphana_llm_load("/tmp/\xff\xfe-not-utf8", NULL, &out),
                     SPHANA_LLM_ERR_INVALID_UTF8, "UTF-8", "load(invalid UTF-8 path)");

        const char *text = "Hello world";
        size_t n = 0;
        int32_t ids[16];
        EXPECT_ERROR(sphana_llm_tokenize(m, text, strlen(text), 0, ids, 16, NULL),
                     SPHANA_LLM_ERR_INVALID_ARGUMENT, "out_count", "tokenize(NULL out_count)");
        EXPECT_ERROR(sphana_llm_tokenize(m, NULL, 5, 0, ids, 16, &n),
                     SPHANA_LLM_ERR_INVALID_ARGUMENT, "text", "tokenize(NULL text, 5 bytes)");
        EXPECT_ERROR(sphana_llm_tokenize(m, text, strlen(text), 0, NULL, 16, &n),
                     SPHANA_LLM_ERR_INVALID_ARGUMENT, "out_ids", "tokenize(NULL out_ids, cap 16)");
        EXPECT_ERROR(sphana_llm_tokenize(NULL, text, strlen(text), 0, ids, 16, &n),
                     SPHANA_LLM_ERR_INVALID_ARGUMENT, "handle", "tokenize(NULL model)");
        EXPECT_ERROR(sphana_llm_tokenize(m, text, strlen(text), 0x80, ids, 16, &n),
                     SPHANA_LLM_ERR_INVALID_ARGUMENT, "flags", "tokenize(unknown flag)");
        const char bad[] = "ok \xc3\x28 bad";
        EXPECT_ERROR(sphana_llm_tokenize(m, bad, sizeof bad - 1, 0, ids, 16, &n),
                     SPHANA_LLM_ERR_INVALID_UTF8, "UTF-8", "tokenize(invalid UTF-8)");
        int32_t id = 0;
        EXPECT_ERROR(sphana_llm_token_to_id(m, bad, sizeof bad - 1, &id), SPHANA_LLM_ERR_INVALID_UTF8,
                     "UTF-8", "token_to_id(invalid UTF-8)");
        EXPECT_ERROR(sphana_llm_token_to_id(m, "no-such-token-zq", 16, &id), SPHANA_LLM_ERR_NOT_FOUND,
                     "no-such-token-zq", "token_to_id(unknown token)");

        /* A successful call does not clear the message. */
        EXPECT_STATUS(sphana_llm_vocab_size(m, &vocab), SPHANA_LLM_OK, "vocab_size");
        CHECK(strstr(sphana_llm_last_error(), "no-such-token-zq") != NULL,
              "a successful call changed the last error to \"%s\"", sphana_llm_last_error());

        char buf[64];
        size_t len = 0;
        int32_t out_of_range[2] = {1, (int32_t)vocab};
        EXPECT_ERROR(sphana_llm_decode(m, out_of_range, 2, 0, buf, sizeof buf, &len),
                     SPHANA_LLM_ERR_INVALID_TOKEN_ID, arg("vocab_size"), "decode(id = vocab size)");
        int32_t negative[1] = {-5};
        EXPECT_ERROR(sphana_llm_decode(m, negative, 1, 0, buf, sizeof buf, &len),
                     SPHANA_LLM_ERR_INVALID_TOKEN_ID, "-5", "decode(id -5)");
        EXPECT_ERROR(sphana_llm_decode(m, NULL, 3, 0, buf, sizeof buf, &len),
                     SPHANA_LLM_ERR_INVALID_ARGUMENT, "ids", "decode(NULL ids, count 3)");
        EXPECT_ERROR(sphana_llm_id_to_token(m, (int32_t)vocab, buf, sizeof buf, &len),
                     SPHANA_LLM_ERR_INVALID_TOKEN_ID, arg("vocab_size"), "id_to_token(vocab size)");
        EXPECT_ERROR(sphana_llm_id_to_token(m, -1, buf, sizeof buf, &len),
                     SPHANA_LLM_ERR_INVALID_TOKEN_ID, "-1", "id_to_token(-1)");
        EXPECT_ERROR(sphana_llm_vocab_size(m, NULL), SPHANA_LLM_ERR_INVALID_ARGUMENT, "out_size",
                     "vocab_size(NULL out)");

        /* A freed handle is detected, not dereferenced. */
        SphanaLlmModel *freed = NULL;
        EXPECT_STATUS(sphana_llm_load(arg("llama_dir"), NULL, &freed), SPHANA_LLM_OK,
                      "load a second handle");
        sphana_llm_free(freed);
        EXPECT_ERROR(sphana_llm_vocab_size(freed, &vocab), SPHANA_LLM_ERR_INVALID_ARGUMENT,
                     "not live", "vocab_size(freed handle)");
        EXPECT_ERROR(sphana_llm_tokenize(freed, text, strlen(text), 0, ids, 16, &n),
                     SPHANA_LLM_ERR_INVALID_ARGUMENT, "not live", "tokenize(freed handle)");
        SphanaLlmStreamDecoder *d = NULL;
        EXPECT_ERROR(sphana_llm_stream_decoder_new(freed, 0, &d), SPHANA_LLM_ERR_INVALID_ARGUMENT,
                     "not live", "stream_decoder_new(freed handle)");
        sphana_llm_free(freed); /* twice: detected and ignored, the message is set */
        CHECK(strstr(sphana_llm_last_error(), "freed twice") != NULL,
              "double free: last error is \"%s\"", sphana_llm_last_error());
        sphana_llm_free(NULL);

        /* The live handle still works after all of that. */
        Ids want = ids_arg("ids_paragraph_10");
        check_tokenize(m, arg("text_paragraph"), ADD, &want, "tokenize after the error checks");
        free(want.v);
    }

    // GENERATION
    check_generation();

    sphana_llm_free(m);
    free(para_ids_10.v);
    free(eos.v);

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
