/*
 * leak_cycles.c — N cycles of load -> tokenize -> generate -> free through the C API,
 * for leak checking under valgrind memcheck / LeakSanitizer and for RSS-flatness checks.
 *
 * Built and run by tests/leaks.rs and scripts/ci/leak_check.sh:
 *   cc -std=c11 -O1 -g -Wall -Wextra -Werror -pedantic -I include tests/c/leak_cycles.c \
 *      -L <target>/<profile> -lsphana_llm -Wl,-rpath,<target>/<profile> -o leak_cycles
 *   ./leak_cycles MODEL_DIR ORT_LIBRARY CYCLES [MAX_HEAP_GROWTH_KB [MAX_RSS_GROWTH_KB]]
 *
 * Every cycle: load the model directory, tokenize (size query + fill, with offsets, batch),
 * decode, stream-decode, render the chat template when the model has one, generate
 * (text prompt with a callback, id prompt, a cancelled generation), cancellation
 * new/cancel/free, failing calls that set the thread's error message, free.
 * MODEL_DIR may also be a tokenizer-only directory (SentencePiece, tiktoken, ...): then
 * the cycle checks that generation is UNSUPPORTED and skips it.
 * The results of every cycle must equal the first cycle's.
 *
 * After a warm-up (the first 10% of the cycles, at least 5), the heap in use (glibc
 * mallinfo2: bytes allocated and not freed, whoever allocated them) may not grow by more
 * than MAX_HEAP_GROWTH_KB, and the resident set size by more than MAX_RSS_GROWTH_KB
 * (default 4 x the heap limit: freed memory the allocator keeps moves RSS by megabytes).
 * Prints the figures and exits non-zero on any failure.
 */

#define _POSIX_C_SOURCE 200809L
#include "sphana_llm.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "FAIL cycle %ld line %d: ", cycle, __LINE__);         \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, " (last error: %s)\n", sphana_llm_last_error());      \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

static long cycle;

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f == NULL) {
        return -1;
    }
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        resident = -1;
    }
    fclose(f);
    return resident < 0 ? -1 : resident * 4;
}

/* Bytes malloc has handed out and not got back (arenas and mmapped blocks): exact, unlike
   RSS, which allocator fragmentation moves by megabytes either way. */
static long heap_kb(void) {
    struct mallinfo2 mi = mallinfo2();
    return (long)((mi.uordblks + mi.hblkhd) / 1024);
}

struct collected {
    char text[4096];
    size_t len;
    int calls;
};

static int32_t collect(const char *text, size_t len, void *user_data) {
    struct collected *c = user_data;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, text, len);
        c->len += len;
        c->text[c->len] = 0;
    }
    c->calls++;
    return 0;
}

static int32_t stop_at_once(const char *text, size_t len, void *user_data) {
    (void)text;
    (void)len;
    (void)user_data;
    return 1;
}

/* What one cycle produced; compared with the first cycle's. */
struct result {
    int32_t ids[256];
    size_t id_count;
    char decoded[1024];
    char generated[4096];
    int32_t generated_ids[64];
    size_t generated_count;
    char from_ids[4096];
    size_t chat_len;
};

static void one_cycle(const char *dir, const char *ort, struct result *r) {
    static const char text[] = "Hello world! The quick brown fox \xe2\x9c\x93 jumps over the lazy dog.";
    SphanaLlmLoadOptions options = sphana_llm_load_options_default();
    options.ort_library_path = ort;
    options.intra_op_threads = 1;
    SphanaLlmModel *model = NULL;
    int32_t status = sphana_llm_load(dir, &options, &model);
    CHECK(status == SPHANA_LLM_OK, "load %s: %d", dir, status);

    /* tokenize: size query, then fill */
    size_t n = 0;
    status = sphana_llm_tokenize(model, text, sizeof text - 1, SPHANA_LLM_TOKENIZE_ADD_SPECIAL,
                                 NULL, 0, &n);
    CHECK(status == SPHANA_LLM_ERR_BUFFER_TOO_SMALL && n > 0 && n <= 256, "size query %d %zu",
          status, n);
    status = sphana_llm_tokenize(model, text, sizeof text - 1, SPHANA_LLM_TOKENIZE_ADD_SPECIAL,
                                 r->ids, 256, &r->id_count);
    CHECK(status == SPHANA_LLM_OK && r->id_count == n, "tokenize %d", status);

    /* with offsets */
    int32_t ids2[256];
    SphanaLlmTokenSpan spans[256];
    size_t n2 = 0;
    status = sphana_llm_tokenize_with_offsets(model, text, sizeof text - 1, 0, ids2, spans, 256,
                                              &n2);
    CHECK(status == SPHANA_LLM_OK && n2 <= n, "tokenize_with_offsets %d %zu", status, n2);

    /* batch */
    const char *texts[3] = {text, "", "second text"};
    size_t lens[3] = {sizeof text - 1, 0, 11};
    SphanaLlmTokenBatch batch;
    status = sphana_llm_tokenize_batch(model, texts, lens, 3, 0, &batch);
    CHECK(status == SPHANA_LLM_OK && batch.text_count == 3 && batch.starts[1] == n2,
          "tokenize_batch %d", status);
    sphana_llm_token_batch_free(&batch);

    /* many distinct words: a per-model cache that outlived its model (the tokenizers
       crate's thread-local BPE cache did) shows up as ~0.3 MB of growth per cycle */
    {
        static char words[8 * 1024];
        static size_t words_len;
        if (words_len == 0) {
            unsigned x = 12345;
            while (words_len + 16 < sizeof words) {
                x = x * 1103515245u + 12345u;
                words_len += (size_t)snprintf(words + words_len, 16, "w%xq%u ", x >> 8, x % 97);
            }
        }
        size_t wn = 0;
        status = sphana_llm_tokenize(model, words, words_len, 0, NULL, 0, &wn);
        CHECK(status == SPHANA_LLM_ERR_BUFFER_TOO_SMALL && wn > 0, "words size query %d", status);
    }

    /* decode */
    size_t len = 0;
    status = sphana_llm_decode(model, r->ids, r->id_count, SPHANA_LLM_DECODE_SKIP_SPECIAL,
                               r->decoded, sizeof r->decoded, &len);
    CHECK(status == SPHANA_LLM_OK && strcmp(r->decoded, text) == 0, "decode %d '%s'", status,
          r->decoded);

    /* streaming decode */
    SphanaLlmStreamDecoder *decoder = NULL;
    status = sphana_llm_stream_decoder_new(model, SPHANA_LLM_DECODE_SKIP_SPECIAL, &decoder);
    CHECK(status == SPHANA_LLM_OK, "stream_decoder_new %d", status);
    char streamed[1024] = {0};
    size_t streamed_len = 0;
    for (size_t i = 0; i < r->id_count; i++) {
        char piece[256];
        size_t piece_len = 0;
        status = sphana_llm_stream_decoder_push(decoder, r->ids[i], piece, sizeof piece,
                                                &piece_len);
        CHECK(status == SPHANA_LLM_OK, "push %d", status);
        memcpy(streamed + streamed_len, piece, piece_len);
        streamed_len += piece_len;
    }
    {
        char piece[256];
        size_t piece_len = 0;
        status = sphana_llm_stream_decoder_flush(decoder, piece, sizeof piece, &piece_len);
        CHECK(status == SPHANA_LLM_OK, "flush %d", status);
        memcpy(streamed + streamed_len, piece, piece_len);
        streamed_len += piece_len;
    }
    CHECK(strcmp(streamed, text) == 0, "streamed '%s'", streamed);
    sphana_llm_stream_decoder_free(decoder);

    /* failing calls allocate error messages */
    status = sphana_llm_decode(model, r->ids, r->id_count, 0, NULL, 0, &len);
    CHECK(status == SPHANA_LLM_ERR_BUFFER_TOO_SMALL, "decode size query %d", status);
    int32_t bad_id = -5;
    status = sphana_llm_decode(model, &bad_id, 1, 0, r->decoded, sizeof r->decoded, &len);
    CHECK(status == SPHANA_LLM_ERR_INVALID_TOKEN_ID, "bad id %d", status);

    /* chat template, when the model has one */
    SphanaLlmChatMessage message = {"user", 4, "Hi there", 8};
    char *chat = NULL;
    status = sphana_llm_apply_chat_template(model, &message, 1, 1, &chat);
    CHECK(status == SPHANA_LLM_OK || status == SPHANA_LLM_ERR_UNSUPPORTED, "chat %d", status);
    r->chat_len = chat == NULL ? 0 : strlen(chat);
    sphana_llm_string_free(chat);

    /* a tokenizer-only load cannot generate: check that, and stop here */
    size_t context = 0;
    status = sphana_llm_context_length(model, &context);
    if (status == SPHANA_LLM_ERR_UNSUPPORTED) {
        status = sphana_llm_generate(model, text, sizeof text - 1, NULL, NULL, NULL, NULL, NULL);
        CHECK(status == SPHANA_LLM_ERR_UNSUPPORTED, "tokenizer-only generate %d", status);
        sphana_llm_free(model);
        return;
    }
    CHECK(status == SPHANA_LLM_OK, "context_length %d", status);

    /* generate from text, streaming through a callback */
    SphanaLlmGenerateParams params = sphana_llm_generate_params_default();
    params.max_new_tokens = 8;
    params.ignore_eos = 1;
    params.out_token_ids = r->generated_ids;
    params.out_token_ids_capacity = 64;
    struct collected c = {{0}, 0, 0};
    char *out = NULL;
    SphanaLlmGenerateStats stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    status = sphana_llm_generate(model, text, sizeof text - 1, &params, collect, &c, &out, &stats);
    CHECK(status == SPHANA_LLM_OK && out != NULL, "generate %d", status);
    CHECK(strcmp(out, c.text) == 0, "callback text differs");
    CHECK(stats.generated_tokens == 8 && stats.finish_reason == SPHANA_LLM_FINISH_LENGTH,
          "stats %zu %d", stats.generated_tokens, stats.finish_reason);
    snprintf(r->generated, sizeof r->generated, "%s", out);
    r->generated_count = stats.generated_tokens;
    sphana_llm_string_free(out);

    /* generate from ids, sampling */
    params = sphana_llm_generate_params_default();
    params.max_new_tokens = 4;
    params.temperature = 0.8f;
    params.top_k = 40;
    params.top_p = 0.9f;
    params.seed = 7;
    params.ignore_eos = 1;
    const char *stop = "zzzz-never";
    params.stop_strings = &stop;
    params.stop_string_count = 1;
    out = NULL;
    status = sphana_llm_generate_from_ids(model, r->ids, r->id_count, &params, NULL, NULL, &out,
                                          NULL);
    CHECK(status == SPHANA_LLM_OK && out != NULL, "generate_from_ids %d", status);
    snprintf(r->from_ids, sizeof r->from_ids, "%s", out);
    sphana_llm_string_free(out);

    /* a callback that stops at once, and a cancelled flag */
    params = sphana_llm_generate_params_default();
    params.max_new_tokens = 4;
    params.ignore_eos = 1;
    status = sphana_llm_generate(model, text, sizeof text - 1, &params, stop_at_once, NULL, NULL,
                                 NULL);
    CHECK(status == SPHANA_LLM_OK, "stopped generate %d", status);
    SphanaLlmCancellation *cancel = NULL;
    status = sphana_llm_cancellation_new(&cancel);
    CHECK(status == SPHANA_LLM_OK, "cancellation_new %d", status);
    CHECK(sphana_llm_cancellation_cancel(cancel) == SPHANA_LLM_OK, "cancel");
    params.cancel = cancel;
    out = NULL;
    stats.struct_size = sizeof stats;
    status = sphana_llm_generate(model, text, sizeof text - 1, &params, NULL, NULL, &out, &stats);
    CHECK(status == SPHANA_LLM_OK && stats.finish_reason == SPHANA_LLM_FINISH_CANCELLED &&
              out != NULL && out[0] == 0,
          "cancelled generate %d %d", status, stats.finish_reason);
    sphana_llm_string_free(out);
    sphana_llm_cancellation_free(cancel);

    /* a failing generation: a forged handle, then a double free */
    status = sphana_llm_generate((SphanaLlmModel *)0x1234, "x", 1, NULL, NULL, NULL, NULL, NULL);
    CHECK(status == SPHANA_LLM_ERR_INVALID_ARGUMENT, "forged handle %d", status);

    sphana_llm_free(model);
    sphana_llm_free(model);
    CHECK(strstr(sphana_llm_last_error(), "freed twice") != NULL, "double free not reported");
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR ORT_LIBRARY CYCLES [MAX_HEAP_GROWTH_KB [MAX_RSS_GROWTH_KB]]\n",
                argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    const char *ort = argv[2];
    long cycles = strtol(argv[3], NULL, 10);
    long max_heap_growth = argc > 4 ? strtol(argv[4], NULL, 10) : -1;
    long max_growth = argc > 5 ? strtol(argv[5], NULL, 10) : max_heap_growth * 4;
    long warmup = cycles / 10 < 5 ? 5 : cycles / 10;
    if (warmup >= cycles) {
        warmup = cycles - 1;
    }
    static struct result first, now;
    long rss_first = -1, rss_warm = -1, rss_max_after_warm = -1;
    long heap_first = -1, heap_warm = -1, heap_max_after_warm = -1;
    for (cycle = 0; cycle < cycles; cycle++) {
        struct result *r = cycle == 0 ? &first : &now;
        memset(r, 0, sizeof *r);
        one_cycle(dir, ort, r);
        if (cycle > 0) {
            CHECK(memcmp(&first, &now, sizeof first) == 0, "results differ from cycle 0");
        }
        long rss = rss_kb();
        long heap = heap_kb();
        if (cycle == 0) {
            rss_first = rss;
            heap_first = heap;
        }
        if (cycle == warmup) {
            rss_warm = rss;
            heap_warm = heap;
        }
        if (cycle >= warmup && rss > rss_max_after_warm) {
            rss_max_after_warm = rss;
        }
        if (cycle >= warmup && heap > heap_max_after_warm) {
            heap_max_after_warm = heap;
        }
        if (getenv("LEAK_CYCLES_VERBOSE") != NULL && (cycle % 50 == 0 || cycle == cycles - 1)) {
            fprintf(stderr, "cycle %ld rss_kb=%ld heap_kb=%ld\n", cycle, rss, heap);
        }
    }
    long rss_last = rss_kb();
    long heap_last = heap_kb();
    printf("cycles=%ld heap_kb first=%ld warm=%ld max_after_warm=%ld last=%ld (growth %ld); "
           "rss_kb first=%ld warm=%ld max_after_warm=%ld last=%ld (growth %ld)\n",
           cycles, heap_first, heap_warm, heap_max_after_warm, heap_last,
           heap_max_after_warm - heap_warm, rss_first, rss_warm, rss_max_after_warm, rss_last,
           rss_max_after_warm - rss_warm);
    if (max_heap_growth >= 0 && heap_max_after_warm - heap_warm > max_heap_growth) {
        fprintf(stderr, "FAIL: the heap in use grew by %ld KiB after the warm-up (limit %ld KiB)\n",
                heap_max_after_warm - heap_warm, max_heap_growth);
        return 1;
    }
    if (max_growth >= 0 && rss_max_after_warm - rss_warm > max_growth) {
        fprintf(stderr, "FAIL: RSS grew by %ld KiB after the warm-up (limit %ld KiB)\n",
                rss_max_after_warm - rss_warm, max_growth);
        return 1;
    }
    return 0;
}
