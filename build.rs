//! Generates `include/sphana_llm.h` from `src/ffi` with cbindgen.
//!
//! cbindgen writes constants, then types, then functions. The header is the C user's
//! manual, so the items are then regrouped into sections in the order a user meets the API
//! ([`SECTIONS`]): every item lands in exactly one section, and an item no section claims
//! fails the build (a new entry point must be placed deliberately).
//!
//! The header is written to `$OUT_DIR/sphana_llm.h` and, when it differs, to
//! `include/sphana_llm.h` (which is committed; a test checks the committed copy is current).

use std::path::PathBuf;

/// The header's sections: title, introduction, and the items in order. A name ending in `*`
/// takes every item with that prefix, in cbindgen's order.
const SECTIONS: &[(&str, &str, &[&str])] = &[
    (
        "Versions and status codes",
        "Every function returns one of these statuses (or nothing, for the *_free functions).",
        &[
            "SPHANA_LLM_ABI_VERSION",
            "sphana_llm_abi_version",
            "sphana_llm_version",
            "SPHANA_LLM_OK",
            "SPHANA_LLM_ERR_*",
        ],
    ),
    (
        "Loading a model",
        "A model directory holds a tokenizer (tokenizer.json, tokenizer.model or a tiktoken\n\
         rank file) and, for generation, an ONNX decoder. One handle serves any number of threads.",
        &[
            "SphanaLlmModel",
            "SPHANA_LLM_FORMAT_*",
            "SPHANA_LLM_PROVIDER_*",
            "SPHANA_LLM_MAX_EOS_IDS",
            "SphanaLlmLoadOptions",
            "sphana_llm_load_options_default",
            "sphana_llm_load_options_init",
            "sphana_llm_load",
            "sphana_llm_free",
        ],
    ),
    (
        "What a loaded model is",
        "Facts of a handle: vocabulary, tokenizer format, execution provider, special tokens,\n\
         where the end-of-generation set came from, the context window, the decode batch,\n\
         whether logits are computed only for the positions generation uses.",
        &[
            "sphana_llm_vocab_size",
            "sphana_llm_tokenizer_format",
            "sphana_llm_execution_provider",
            "sphana_llm_bos_id",
            "sphana_llm_eos_ids",
            "SPHANA_LLM_EOS_SOURCE_*",
            "sphana_llm_eos_source",
            "sphana_llm_context_length",
            "sphana_llm_max_decode_batch",
            "SPHANA_LLM_LOGITS_*",
            "sphana_llm_logits_positions",
        ],
    ),
    (
        "Tokenizing",
        "Text to ids into caller buffers (a size query first: capacity 0 reports the count),\n\
         with byte offsets, or many texts at once; token lookups.",
        &[
            "SPHANA_LLM_TOKENIZE_*",
            "sphana_llm_tokenize",
            "SphanaLlmTokenSpan",
            "sphana_llm_tokenize_with_offsets",
            "SphanaLlmTokenBatch",
            "sphana_llm_tokenize_batch",
            "sphana_llm_token_batch_free",
            "sphana_llm_token_to_id",
            "sphana_llm_id_to_token",
            "sphana_llm_is_special",
        ],
    ),
    (
        "Decoding and streaming",
        "Ids to text, at once or one id at a time (a streaming decoder only ever returns\n\
         complete UTF-8).",
        &[
            "SPHANA_LLM_DECODE_SKIP_SPECIAL",
            "sphana_llm_decode",
            "SphanaLlmStreamDecoder",
            "sphana_llm_stream_decoder_new",
            "sphana_llm_stream_decoder_push",
            "sphana_llm_stream_decoder_flush",
            "sphana_llm_stream_decoder_free",
        ],
    ),
    (
        "Generating",
        "Text generation with a KV cache: parameters, streaming through a callback, stop\n\
         conditions, structured output (JSON Schema, regex, Lark), speculative decoding by\n\
         prompt lookup, statistics, log-probabilities,\n\
         scoring a given continuation,\n\
         cancellation from another thread.",
        &[
            "SphanaLlmCancellation",
            "SphanaLlmConstraint",
            "SPHANA_LLM_CONSTRAINT_*",
            "SPHANA_LLM_MAX_CONSTRAINT_BYTES",
            "SphanaLlmGenerateParams",
            "sphana_llm_generate_params_default",
            "sphana_llm_generate_params_init",
            "SphanaLlmTextCallback",
            "SPHANA_LLM_FINISH_*",
            "SphanaLlmGenerateStats",
            "SPHANA_LLM_MAX_TOP_LOGPROBS",
            "SPHANA_LLM_DEFAULT_PROMPT_LOOKUP_TOKENS",
            "SPHANA_LLM_MAX_PROMPT_LOOKUP_TOKENS",
            "SPHANA_LLM_MAX_PROMPT_LOOKUP_NGRAM",
            "sphana_llm_generate",
            "sphana_llm_generate_from_ids",
            "sphana_llm_score",
            "sphana_llm_string_free",
            "sphana_llm_cancellation_new",
            "sphana_llm_cancellation_cancel",
            "sphana_llm_cancellation_free",
        ],
    ),
    (
        "Chat",
        "Messages rendered with the model's own chat template, and generation from them.",
        &[
            "SphanaLlmChatMessage",
            "sphana_llm_apply_chat_template",
            "sphana_llm_apply_chat_template_with_len",
            "sphana_llm_generate_chat",
        ],
    ),
    (
        "Tool calling",
        "Tool definitions rendered by the chat template, the calls read from the reply in the\n\
         template family's format, and required calls constrained to the tools' schemas.",
        &[
            "SphanaLlmChatTools",
            "SPHANA_LLM_TOOL_CHOICE_*",
            "SPHANA_LLM_MAX_TOOLS_BYTES",
            "sphana_llm_apply_chat_template_tools",
            "SphanaLlmToolCall",
            "SphanaLlmToolCalls",
            "sphana_llm_generate_chat_tools",
            "sphana_llm_tool_calls_free",
        ],
    ),
    (
        "Errors and bindings",
        "The message of the last failed call on this thread, and the struct sizes a binding\n\
         checks its own declarations against.",
        &[
            "sphana_llm_last_error",
            "SPHANA_LLM_STRUCT_*",
            "sphana_llm_struct_size",
        ],
    ),
];

/// The name an item declares: `#define NAME`, `typedef struct NAME`, a callback typedef's
/// `(*NAME)`, or a function's `NAME(`.
fn item_name(item: &str) -> Option<String> {
    let code: Vec<&str> = item
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("/**") || t.starts_with('*'))
        })
        .collect();
    let first = code.first()?.trim();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    if let Some(rest) = first.strip_prefix("#define ") {
        return Some(ident(rest));
    }
    if let (true, Some(at)) = (first.starts_with("typedef "), first.find("(*")) {
        return Some(ident(&first[at + 2..]));
    }
    if let Some(rest) = first.strip_prefix("typedef struct ") {
        return Some(ident(rest));
    }
    let open = first.find('(')?;
    let before = &first[..open];
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    Some(before[start..].to_owned())
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Regroups cbindgen's output into [`SECTIONS`], with a table of contents after the
/// includes and one `extern "C"` block around all of it.
fn arrange(generated: &str) -> String {
    const INCLUDES_END: &str = "#include <stdint.h>\n";
    let split = generated
        .find(INCLUDES_END)
        .expect("cbindgen output has the includes")
        + INCLUDES_END.len();
    let (head, body) = generated.split_at(split);
    let mut items: Vec<(String, &str)> = Vec::new();
    for item in body.split("\n\n").map(str::trim).filter(|i| !i.is_empty()) {
        if item.starts_with("#ifdef __cplusplus") || item.starts_with("#endif") {
            continue;
        }
        let name =
            item_name(item).unwrap_or_else(|| panic!("build.rs: cannot name header item:\n{item}"));
        items.push((name, item));
    }
    let mut placed = vec![false; items.len()];
    let mut out = String::from(head);
    out.push_str("\n/*\n * Contents:\n");
    for (i, (title, _, _)) in SECTIONS.iter().enumerate() {
        out.push_str(&format!(" *   {}. {title}\n", i + 1));
    }
    out.push_str(" */\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif  // __cplusplus\n");
    for (i, (title, intro, patterns)) in SECTIONS.iter().enumerate() {
        let rule = "-".repeat(86);
        out.push_str(&format!("\n/* {rule}\n * {}. {title}\n *\n", i + 1));
        for line in intro.lines() {
            out.push_str(&format!(" * {}\n", line.trim()));
        }
        out.push_str(&format!(" * {rule} */\n"));
        for pattern in *patterns {
            let mut found = false;
            for (k, (name, item)) in items.iter().enumerate() {
                if !placed[k] && matches(pattern, name) {
                    placed[k] = true;
                    found = true;
                    out.push('\n');
                    out.push_str(item);
                    out.push('\n');
                }
            }
            assert!(
                found,
                "build.rs: no header item matches `{pattern}` (SECTIONS is stale)"
            );
        }
    }
    let unplaced: Vec<&str> = items
        .iter()
        .zip(&placed)
        .filter(|(_, &p)| !p)
        .map(|((name, _), _)| name.as_str())
        .collect();
    assert!(
        unplaced.is_empty(),
        "build.rs: place these new header items in a section of SECTIONS: {unplaced:?}"
    );
    out.push_str(
        "\n#ifdef __cplusplus\n}  // extern \"C\"\n#endif  // __cplusplus\n\n#endif  /* SPHANA_LLM_H */\n",
    );
    out
}

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen failed to generate include/sphana_llm.h");
    let mut raw = Vec::new();
    bindings.write(&mut raw);
    let header = arrange(&String::from_utf8(raw).expect("cbindgen writes UTF-8"));
    let generated = out_dir.join("sphana_llm.h");
    std::fs::write(&generated, &header).expect("write $OUT_DIR/sphana_llm.h");

    let committed = crate_dir.join("include/sphana_llm.h");
    if std::fs::read(&committed).ok().as_deref() != Some(header.as_bytes()) {
        std::fs::create_dir_all(crate_dir.join("include")).expect("create include/");
        std::fs::write(&committed, header.as_bytes()).expect("write include/sphana_llm.h");
    }
}
