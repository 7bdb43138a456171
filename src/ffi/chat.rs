//! Chat templates: rendering a conversation and generating the assistant's reply.

use std::ffi::{c_char, c_void};

use super::common::*;
use super::generate::{
    run_generation, SphanaLlmGenerateParams, SphanaLlmGenerateStats, SphanaLlmTextCallback,
};
use super::model::{model_arg, SphanaLlmModel};
use crate::chat::{ChatMessage, ChatOptions};
use crate::error::Result;

/// One chat message: `role` ("system", "user", "assistant", ...) and `content`, each given
/// as UTF-8 bytes with an explicit length (not NUL-terminated).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SphanaLlmChatMessage {
    /// The role's bytes.
    pub role: *const c_char,
    /// Length of `role` in bytes.
    pub role_len: usize,
    /// The content's bytes (NULL allowed when `content_len` is 0).
    pub content: *const c_char,
    /// Length of `content` in bytes.
    pub content_len: usize,
}

/// Reads `count` messages.
///
/// # Safety
/// `messages` must point to `count` valid messages (or be NULL with count 0).
unsafe fn messages_arg(
    messages: *const SphanaLlmChatMessage,
    count: usize,
) -> Result<Vec<ChatMessage>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    non_null(messages, "messages")?;
    // SAFETY: caller contract.
    let items = unsafe { std::slice::from_raw_parts(messages, count) };
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // SAFETY: caller contract for each message's strings.
            let role = unsafe { utf8_arg(m.role, m.role_len, &format!("messages[{i}].role")) }?;
            // SAFETY: as above.
            let content =
                unsafe { utf8_arg(m.content, m.content_len, &format!("messages[{i}].content")) }?;
            if role.is_empty() {
                return Err(crate::Error::InvalidArgument(format!(
                    "messages[{i}].role is empty"
                )));
            }
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

/// Renders `count` messages with the model's own chat template (from
/// `tokenizer_config.json` or `chat_template.jinja`), exactly as HF `transformers`'
/// `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` does.
/// Templates that print a date (Llama 3.x) get today's date.
///
/// `out_text` receives a malloc'd NUL-terminated string (free with `sphana_llm_string_free`).
/// When a message holds a NUL byte so does the text, and `strlen` would cut it short (and
/// with it the template's text after that message): use
/// `sphana_llm_apply_chat_template_with_len`, which also returns the length.
/// Returns `SPHANA_LLM_OK`; `SPHANA_LLM_ERR_UNSUPPORTED` (the model has no chat template);
/// `SPHANA_LLM_ERR_INVALID_MODEL` (the template does not compile);
/// `SPHANA_LLM_ERR_INVALID_ARGUMENT` (NULL pointers, empty role, the template raised an
/// exception for these messages, e.g. an unsupported role order); `SPHANA_LLM_ERR_INVALID_UTF8`;
/// `SPHANA_LLM_ERR_LIMIT_EXCEEDED`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_apply_chat_template(
    model: *const SphanaLlmModel,
    messages: *const SphanaLlmChatMessage,
    count: usize,
    add_generation_prompt: u32,
    out_text: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded caller contract.
    guard(|| unsafe {
        render_chat(
            model,
            messages,
            count,
            add_generation_prompt,
            out_text,
            std::ptr::null_mut(),
        )
    })
}

/// Like `sphana_llm_apply_chat_template`, and writes the text's length in bytes (without
/// the terminating NUL) to `*out_len` (0 on failure). The text holds NUL bytes where the
/// messages do; read it with this length.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_apply_chat_template_with_len(
    model: *const SphanaLlmModel,
    messages: *const SphanaLlmChatMessage,
    count: usize,
    add_generation_prompt: u32,
    out_text: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        non_null(out_len, "out_len")?;
        // SAFETY: checked non-NULL; forwarded caller contract.
        unsafe {
            write_out(out_len, 0);
            render_chat(
                model,
                messages,
                count,
                add_generation_prompt,
                out_text,
                out_len,
            )
        }
    })
}

/// # Safety
/// As `sphana_llm_apply_chat_template`; `out_len` NULL or valid for a write.
unsafe fn render_chat(
    model: *const SphanaLlmModel,
    messages: *const SphanaLlmChatMessage,
    count: usize,
    add_generation_prompt: u32,
    out_text: *mut *mut c_char,
    out_len: *mut usize,
) -> Result<()> {
    non_null(out_text, "out_text")?;
    // SAFETY: checked non-NULL.
    unsafe { write_out(out_text, std::ptr::null_mut()) };
    let model = model_arg(model)?;
    // SAFETY: caller contract.
    let messages = unsafe { messages_arg(messages, count) }?;
    let text = model.apply_chat_template(
        &messages,
        add_generation_prompt != 0,
        &ChatOptions::default(),
    )?;
    // SAFETY: checked non-NULL.
    unsafe { write_out(out_text, malloc_string(&text)?) };
    if !out_len.is_null() {
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_len, text.len()) };
    }
    Ok(())
}

/// Renders the conversation with the model's chat template (adding the generation prompt)
/// and generates the assistant's reply, like `sphana_llm_generate` in every other respect.
///
/// Special-token text written by the template (e.g. "<|eot_id|>") becomes special ids;
/// message contents are always tokenized as plain text, so a retrieved document or user
/// input containing "<|eot_id|>" cannot end its turn. `params->parse_special` and
/// `params->add_special` do not apply (the template decides BOS).
/// Errors as `sphana_llm_generate`, plus those of `sphana_llm_apply_chat_template`.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_generate_chat(
    model: *const SphanaLlmModel,
    messages: *const SphanaLlmChatMessage,
    count: usize,
    params: *const SphanaLlmGenerateParams,
    on_text: SphanaLlmTextCallback,
    user_data: *mut c_void,
    out_text: *mut *mut c_char,
    out_stats: *mut SphanaLlmGenerateStats,
) -> i32 {
    guard(|| {
        // SAFETY: caller contract for every pointer.
        unsafe {
            run_generation(
                model,
                params,
                on_text,
                user_data,
                out_text,
                out_stats,
                |m, p, cb| {
                    let messages = messages_arg(messages, count)?;
                    m.generate_chat(&messages, &ChatOptions::default(), p, cb)
                },
            )
        }
    })
}
