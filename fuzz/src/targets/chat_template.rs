//! `sphana_llm_apply_chat_template(_with_len)` with arbitrary messages (roles and contents of
//! arbitrary bytes, NULL pointers with and without lengths, any count and
//! add_generation_prompt) on real chat templates: Llama 3.2's (dates, tools, system
//! handling), SmolLM2's (ChatML) and the micro model's.
//!
//! Checks: documented statuses only; NULL with a length and invalid UTF-8 are rejected
//! before rendering; an empty role is INVALID_ARGUMENT; on success the text is UTF-8 and
//! contains every user message's content verbatim (no template drops or rewrites it).

use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use super::super::*;

static MODELS: [OnceLock<Handle>; 3] = [const { OnceLock::new() }; 3];

fn model(i: usize) -> Handle {
    *MODELS[i].get_or_init(|| match i {
        0 => load(&assets().join("tokenizers/llama3.2"), |_| {}),
        1 => load(
            &assets().join("models/smollm2-135m-instruct/tokenizer.json"),
            |_| {},
        ),
        _ => load(&work().join("micro"), |_| {}),
    })
}

const ROLES: [&str; 6] = [
    "system",
    "user",
    "assistant",
    "tool",
    "ipython",
    "developer",
];

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let which = u.choose_index(MODELS.len())?;
    let m = model(which);
    let add_generation_prompt: u32 = if u.ratio(1, 8)? {
        u.arbitrary()?
    } else {
        u.int_in_range(0..=1)?
    };
    let count = u.int_in_range(0..=6)?;
    let mut owned: Vec<(Vec<u8>, Vec<u8>, u8)> = Vec::new();
    for _ in 0..count {
        let kind: u8 = u.arbitrary()?;
        let role = if kind & 0x80 != 0 {
            some_bytes(u, 12)?.to_vec()
        } else {
            ROLES[(kind as usize) % ROLES.len()].as_bytes().to_vec()
        };
        let content = some_bytes(u, 200)?.to_vec();
        owned.push((role, content, kind));
    }
    let mut expect_reject = None;
    let messages: Vec<SphanaLlmChatMessage> = owned
        .iter()
        .map(|(role, content, kind)| {
            // Bits 5-6: NULL role / content pointers (with their lengths kept).
            let role_ptr = if kind & 0x20 != 0 {
                null()
            } else {
                role.as_ptr().cast()
            };
            let content_ptr = if kind & 0x40 != 0 {
                null()
            } else {
                content.as_ptr().cast()
            };
            SphanaLlmChatMessage {
                role: role_ptr,
                role_len: role.len(),
                content: content_ptr,
                content_len: content.len(),
            }
        })
        .collect();
    // The library checks each message in turn: role (NULL with a length, UTF-8), content
    // (likewise), then an empty role.
    for (m, (role, content, _)) in messages.iter().zip(&owned) {
        let checks = [
            (
                m.role.is_null() && !role.is_empty(),
                SPHANA_LLM_ERR_INVALID_ARGUMENT,
            ),
            (
                std::str::from_utf8(role).is_err(),
                SPHANA_LLM_ERR_INVALID_UTF8,
            ),
            (
                m.content.is_null() && !content.is_empty(),
                SPHANA_LLM_ERR_INVALID_ARGUMENT,
            ),
            (
                std::str::from_utf8(content).is_err(),
                SPHANA_LLM_ERR_INVALID_UTF8,
            ),
            (role.is_empty(), SPHANA_LLM_ERR_INVALID_ARGUMENT),
        ];
        if let Some(&(_, status)) = checks.iter().find(|(bad, _)| *bad) {
            expect_reject = Some(status);
            break;
        }
    }
    let messages_ptr = if count == 0 && u.ratio(1, 2)? {
        null()
    } else {
        messages.as_ptr()
    };
    let mut out = null_mut();
    let mut len = usize::MAX;
    let status = unsafe {
        sphana_llm_apply_chat_template_with_len(
            m.0,
            messages_ptr,
            count,
            add_generation_prompt,
            &mut out,
            &mut len,
        )
    };
    let what = format!("model {which}, {count} messages");
    let text = if out.is_null() {
        assert_eq!(len, 0, "{what}: length {len} without text");
        None
    } else {
        // Messages may hold NUL bytes, so may the text: read `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(out.cast::<u8>(), len + 1) };
        assert_eq!(bytes[len], 0, "{what}: no NUL after the text");
        let t = String::from_utf8(bytes[..len].to_vec()).expect("chat text is UTF-8");
        unsafe { sphana_llm_string_free(out) };
        Some(t)
    };
    if let Some(want) = expect_reject {
        check(status, &[want], &what);
        assert!(text.is_none());
        return Ok(());
    }
    // A template may refuse an order of roles or a role (raise_exception): INVALID_ARGUMENT.
    check(
        status,
        &[
            SPHANA_LLM_OK,
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            SPHANA_LLM_ERR_LIMIT_EXCEEDED,
        ],
        &what,
    );
    if let Some(text) = text {
        for (role, content, _) in &owned {
            // Templates may trim contents (Llama 3.2 does `| trim`); check non-blank ones.
            let content = std::str::from_utf8(content).unwrap().trim();
            if role == b"user" && !content.is_empty() {
                assert!(
                    text.contains(content),
                    "{what}: user content {content:?} missing from {text:?}"
                );
            }
        }
    } else {
        assert_ne!(status, SPHANA_LLM_OK, "{what}: OK without text");
    }
    Ok(())
}

/// Runs one fuzz input.
pub fn fuzz_one(data: &[u8]) {
    let _ = run(&mut Unstructured::new(data));
}
