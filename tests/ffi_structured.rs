//! Structured output through the C ABI: `SphanaLlmConstraint` in
//! `SphanaLlmGenerateParams.constraint` (each kind, checked by the independent validators of
//! `scripts/goldens/check_structured.py`), `SPHANA_LLM_FINISH_CONSTRAINT_INCOMPLETE`,
//! `constraint_ms`, the layout before the field (read as "no constraint", nothing after it
//! read), and bad constraints (refused with a message, nothing generated, stats untouched,
//! the handle still usable).

#[path = "support/capi.rs"]
mod capi;
mod common;
#[path = "support/micro.rs"]
mod micro;

use std::ffi::CString;
use std::ptr::{null, null_mut};

use capi::{generate, last_error, message, Generated, Handle, Prompt};
use sphana_llm::ffi::*;

const QUESTION: &[u8] = b"What is the capital of France? Answer in JSON.";
const SCHEMA: &str = r#"{"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}, "country": {"enum": ["France", "Germany", "Italy"]}, "population_millions": {"type": "integer", "minimum": 0, "maximum": 40}}, "required": ["city", "country", "population_millions"], "additionalProperties": false}"#;

fn model() -> Handle {
    micro::load(&common::model_dir("smollm2-135m-instruct"), |_| {})
}

fn constraint(kind: i32, text: Option<&CString>) -> SphanaLlmConstraint {
    SphanaLlmConstraint {
        struct_size: std::mem::size_of::<SphanaLlmConstraint>() as u32,
        kind,
        text: text.map_or(null(), |t| t.as_ptr()),
    }
}

fn params(max_new_tokens: u32, c: Option<&SphanaLlmConstraint>) -> SphanaLlmGenerateParams {
    let mut p = sphana_llm_generate_params_default();
    p.max_new_tokens = max_new_tokens;
    p.constraint = c.map_or(null(), |c| c as *const SphanaLlmConstraint);
    p
}

fn ask(model: Handle, p: &mut SphanaLlmGenerateParams) -> (Generated, SphanaLlmGenerateStats) {
    let messages = [message("user", QUESTION)];
    let again = *p;
    let g = generate(model, Prompt::Chat(&messages), Some(p), usize::MAX);
    // `generate` reads the stats it needs; run again for the whole struct.
    let mut stats = SphanaLlmGenerateStats {
        struct_size: std::mem::size_of::<SphanaLlmGenerateStats>() as u32,
        constraint_ms: -1.0,
        ..Default::default()
    };
    let status = unsafe {
        sphana_llm_generate_chat(
            model.0,
            messages.as_ptr(),
            messages.len(),
            &again,
            None,
            null_mut(),
            null_mut(),
            &mut stats,
        )
    };
    assert_eq!(status, g.status);
    (g, stats)
}

fn validate(kind: &str, constraint: &str, text: &str) {
    let verdict = common::check_structured(&[
        serde_json::json!({"kind": kind, "constraint": constraint, "text": text}),
    ]);
    assert_eq!(verdict[0], "", "{kind} {text:?}");
}

#[test]
fn every_constraint_kind_through_the_c_abi() {
    let model = model();
    let cases: [(i32, &str, Option<&str>); 4] = [
        (
            SPHANA_LLM_CONSTRAINT_JSON_SCHEMA,
            "json_schema",
            Some(SCHEMA),
        ),
        (
            SPHANA_LLM_CONSTRAINT_REGEX,
            "regex",
            Some("(Paris|Berlin|Rome), [A-Z][a-z]{2,10}"),
        ),
        (
            SPHANA_LLM_CONSTRAINT_LARK,
            "lark",
            Some("start: \"The capital is \" CITY \".\"\nCITY: /[A-Z][a-z]{1,12}/"),
        ),
        (SPHANA_LLM_CONSTRAINT_JSON_OBJECT, "json_object", None),
    ];
    for (kind, name, text) in cases {
        let text_c = text.map(|t| CString::new(t).unwrap());
        let c = constraint(kind, text_c.as_ref());
        let mut p = params(120, Some(&c));
        let (g, stats) = ask(model, &mut p);
        assert_eq!(g.status, SPHANA_LLM_OK, "{name}: {}", last_error());
        assert_eq!(g.finish, SPHANA_LLM_FINISH_EOS, "{name}: {:?}", g.text);
        assert!(stats.constraint_ms > 0.0, "{name}: constraint_ms");
        let out = g.text.unwrap();
        assert_eq!(g.chunks.concat(), out, "{name}: streamed chunks");
        validate(name, text.unwrap_or(""), &out);
    }
    // No constraint: constraint_ms is 0.
    let mut p = params(4, None);
    let (g, stats) = ask(model, &mut p);
    assert_eq!(g.status, SPHANA_LLM_OK);
    assert_eq!(
        stats.constraint_ms, 0.0,
        "constraint_ms without a constraint"
    );
    sphana_llm_free(model.0);
}

#[test]
fn too_few_tokens_finish_constraint_incomplete_with_the_partial_text() {
    let model = model();
    let schema = CString::new(SCHEMA).unwrap();
    let c = constraint(SPHANA_LLM_CONSTRAINT_JSON_SCHEMA, Some(&schema));
    let (g, _) = ask(model, &mut params(5, Some(&c)));
    assert_eq!(g.status, SPHANA_LLM_OK, "{}", last_error());
    assert_eq!(g.finish, SPHANA_LLM_FINISH_CONSTRAINT_INCOMPLETE);
    let text = g.text.unwrap();
    assert!(text.starts_with('{'), "{text:?}");
    assert_eq!(g.generated_tokens, 5);
    sphana_llm_free(model.0);
}

#[test]
fn the_layout_before_constraint_reads_no_constraint_and_nothing_after_it() {
    let model = model();
    let (want, _) = ask(model, &mut params(12, None));
    let old_size = std::mem::offset_of!(SphanaLlmGenerateParams, constraint);
    // The old struct followed by garbage where `constraint` is: a wild pointer if read.
    let mut buffer = vec![0xAAu8; std::mem::size_of::<SphanaLlmGenerateParams>()];
    let mut ids = vec![0i32; 64];
    let mut p = params(12, None);
    p.out_token_ids = ids.as_mut_ptr();
    p.out_token_ids_capacity = ids.len();
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&p as *const SphanaLlmGenerateParams).cast::<u8>(),
            buffer.as_mut_ptr(),
            old_size,
        )
    };
    buffer[..4].copy_from_slice(&(old_size as u32).to_ne_bytes());
    let messages = [message("user", QUESTION)];
    let mut stats = SphanaLlmGenerateStats {
        struct_size: std::mem::size_of::<SphanaLlmGenerateStats>() as u32,
        ..Default::default()
    };
    let status = unsafe {
        sphana_llm_generate_chat(
            model.0,
            messages.as_ptr(),
            messages.len(),
            buffer.as_ptr().cast(),
            None,
            null_mut(),
            null_mut(),
            &mut stats,
        )
    };
    assert_eq!(status, SPHANA_LLM_OK, "{}", last_error());
    ids.truncate(stats.generated_tokens);
    assert_eq!(ids, want.ids);
    assert_eq!(
        stats.constraint_ms, 0.0,
        "constraint_ms without a constraint"
    );
    sphana_llm_free(model.0);
}

#[test]
fn bad_constraints_are_refused_with_a_message_and_change_nothing() {
    let model = model();
    let (before, _) = ask(model, &mut params(6, None));
    let schema = CString::new(SCHEMA).unwrap();
    let malformed = CString::new("{\"type\": \"object\",\n \"properties\": [}").unwrap();
    let bad_regex = CString::new("[a-z").unwrap();
    let bad_lark = CString::new("start: \"a\" (").unwrap();
    let empty = CString::new("").unwrap();
    let unknown_keyword =
        CString::new("{\"type\": \"integer\", \"multipleOf\": \"three\"}").unwrap();
    let huge = CString::new(format!(
        "{{\"enum\": [\"{}\"]}}",
        "a".repeat(SPHANA_LLM_MAX_CONSTRAINT_BYTES as usize)
    ))
    .unwrap();
    let invalid_utf8 = CString::new(vec![b'(', 0xC3, 0x28, b')']).unwrap();
    let cases: Vec<(&str, SphanaLlmConstraint, i32, &str)> = vec![
        (
            "malformed schema",
            constraint(SPHANA_LLM_CONSTRAINT_JSON_SCHEMA, Some(&malformed)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "line 2",
        ),
        (
            "bad keyword value",
            constraint(SPHANA_LLM_CONSTRAINT_JSON_SCHEMA, Some(&unknown_keyword)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "invalid JSON Schema",
        ),
        (
            "invalid regex",
            constraint(SPHANA_LLM_CONSTRAINT_REGEX, Some(&bad_regex)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "invalid regular expression",
        ),
        (
            "Lark syntax error",
            constraint(SPHANA_LLM_CONSTRAINT_LARK, Some(&bad_lark)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "invalid Lark grammar",
        ),
        (
            "empty grammar",
            constraint(SPHANA_LLM_CONSTRAINT_LARK, Some(&empty)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "empty",
        ),
        (
            "too large",
            constraint(SPHANA_LLM_CONSTRAINT_JSON_SCHEMA, Some(&huge)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "at most 262144 bytes",
        ),
        (
            "NULL text",
            constraint(SPHANA_LLM_CONSTRAINT_REGEX, None),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "text is NULL",
        ),
        (
            "text for JSON_OBJECT",
            constraint(SPHANA_LLM_CONSTRAINT_JSON_OBJECT, Some(&schema)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "takes no text",
        ),
        (
            "unknown kind",
            constraint(99, Some(&schema)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "kind 99",
        ),
        (
            "kind 0",
            constraint(0, Some(&schema)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "kind 0",
        ),
        (
            "bad struct_size",
            SphanaLlmConstraint {
                struct_size: 3,
                ..constraint(SPHANA_LLM_CONSTRAINT_JSON_SCHEMA, Some(&schema))
            },
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "struct_size",
        ),
        (
            "invalid UTF-8",
            constraint(SPHANA_LLM_CONSTRAINT_REGEX, Some(&invalid_utf8)),
            SPHANA_LLM_ERR_INVALID_UTF8,
            "constraint.text",
        ),
    ];
    for (what, c, status, needle) in cases {
        let mut p = params(6, Some(&c));
        let (g, stats) = ask(model, &mut p);
        assert_eq!(g.status, status, "{what}: {}", last_error());
        let error = last_error();
        assert!(error.contains(needle), "{what}: {error:?} lacks {needle:?}");
        assert!(g.chunks.is_empty(), "{what}: text was streamed");
        assert!(g.text.is_none(), "{what}: *out_text set");
        assert_eq!(stats.constraint_ms, -1.0, "{what}: stats written");
    }
    let (after, _) = ask(model, &mut params(6, None));
    assert_eq!(after.ids, before.ids, "the handle still works");
    sphana_llm_free(model.0);
}
