//! Chat templates: rendering a conversation and generating the assistant's reply.

use std::ffi::{c_char, c_void};

use super::common::*;
use super::generate::{
    run_generation, SphanaLlmGenerateParams, SphanaLlmGenerateStats, SphanaLlmTextCallback,
};
use super::model::{model_arg, read_versioned_struct, SphanaLlmModel};
use crate::chat::{ChatMessage, ChatOptions};
use crate::error::{Error, Result};
use crate::tools::{ToolCall, ToolChoice, Tools};

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
    // SAFETY: forwarded caller contract.
    unsafe {
        render_chat_tools(
            model,
            messages,
            count,
            None,
            add_generation_prompt,
            out_text,
            out_len,
        )
    }
}

/// # Safety
/// As `sphana_llm_apply_chat_template`; `out_len` NULL or valid for a write.
unsafe fn render_chat_tools(
    model: *const SphanaLlmModel,
    messages: *const SphanaLlmChatMessage,
    count: usize,
    tools: Option<&Tools>,
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
    let text = model.apply_chat_template_with_tools(
        &messages,
        tools,
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

/// `SphanaLlmChatTools.tool_choice`: the model decides whether to call a tool; calls it
/// writes are read from its reply.
pub const SPHANA_LLM_TOOL_CHOICE_AUTO: u32 = 0;
/// `SphanaLlmChatTools.tool_choice`: the reply is exactly one call of one of the tools,
/// constrained (as `SphanaLlmConstraint` constrains) so that it always parses and its
/// arguments match the tool's `parameters` schema (an object schema that names its
/// `properties` and says nothing of others gets only those).
pub const SPHANA_LLM_TOOL_CHOICE_REQUIRED: u32 = 1;
/// Most bytes of `SphanaLlmChatTools.tools_json`.
pub const SPHANA_LLM_MAX_TOOLS_BYTES: u32 = 262144;
const _: () = assert!(SPHANA_LLM_MAX_TOOLS_BYTES as usize == crate::tools::MAX_TOOLS_BYTES);

/// The tools of a chat. Versioned: set `struct_size` to `sizeof(SphanaLlmChatTools)`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SphanaLlmChatTools {
    /// `sizeof(SphanaLlmChatTools)` as the caller compiled it.
    pub struct_size: u32,
    /// `SPHANA_LLM_TOOL_CHOICE_AUTO` or `SPHANA_LLM_TOOL_CHOICE_REQUIRED`.
    pub tool_choice: u32,
    /// The tool definitions: a NUL-terminated UTF-8 JSON array, as `transformers`'
    /// `apply_chat_template(tools=...)` takes them, each
    /// `{"type": "function", "function": {"name": ..., "description": ..., "parameters": {JSON Schema}}}`
    /// (or the bare function object); at most `SPHANA_LLM_MAX_TOOLS_BYTES` bytes. The
    /// template receives them unchanged.
    pub tools_json: *const c_char,
}

impl SphanaLlmChatTools {
    const EMPTY: Self = Self {
        struct_size: std::mem::size_of::<Self>() as u32,
        tool_choice: SPHANA_LLM_TOOL_CHOICE_AUTO,
        tools_json: std::ptr::null(),
    };
}

/// One tool call read from a reply: both strings malloc'd, NUL-terminated UTF-8 (neither
/// holds a NUL byte: tool names cannot, and the arguments are JSON, which escapes it).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SphanaLlmToolCall {
    /// The tool's name (one of the tools given).
    pub name: *mut c_char,
    /// The arguments: a JSON object, compact.
    pub arguments_json: *mut c_char,
}

/// The tool calls of a reply, written by `sphana_llm_generate_chat_tools`; free with
/// `sphana_llm_tool_calls_free`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SphanaLlmToolCalls {
    /// `count` calls in the order the model wrote them (NULL when `count` is 0).
    pub calls: *mut SphanaLlmToolCall,
    /// Number of calls; 0 when the model answered in text.
    pub count: usize,
    /// The reply's text without the calls, trimmed, NUL-terminated (never NULL after a
    /// successful call). A model can generate U+0000: read it with `content_len`.
    pub content: *mut c_char,
    /// Length of `content` in bytes, without the terminating NUL.
    pub content_len: usize,
}

/// Reads a `SphanaLlmChatTools`.
///
/// # Safety
/// `tools` must point to a struct of its declared `struct_size` whose `tools_json` is NULL or
/// NUL-terminated.
unsafe fn tools_arg(tools: *const SphanaLlmChatTools) -> Result<(Tools, ToolChoice)> {
    non_null(tools, "tools")?;
    // SAFETY: forwarded contract.
    let t = unsafe {
        read_versioned_struct(tools, "SphanaLlmChatTools", SphanaLlmChatTools::EMPTY, &[])
    }?;
    if t.tools_json.is_null() {
        return Err(Error::InvalidArgument(
            "SphanaLlmChatTools.tools_json is NULL".into(),
        ));
    }
    // SAFETY: NUL-terminated per the contract.
    let json = unsafe { cstr_arg(t.tools_json, "tools_json") }?;
    let choice = match t.tool_choice {
        SPHANA_LLM_TOOL_CHOICE_AUTO => ToolChoice::Auto,
        SPHANA_LLM_TOOL_CHOICE_REQUIRED => ToolChoice::Required,
        other => {
            return Err(Error::InvalidArgument(format!(
                "SphanaLlmChatTools.tool_choice {other} is not one of SPHANA_LLM_TOOL_CHOICE_*"
            )))
        }
    };
    Ok((Tools::from_json(json)?, choice))
}

/// Renders the conversation with the model's chat template and `tools`, exactly as
/// `transformers`' `apply_chat_template(messages, tools=..., tokenize=False,
/// add_generation_prompt=...)` does (`tools->tool_choice` does not apply here).
///
/// Tool results go back as messages with role "tool". An assistant message that called
/// tools is given back as the text the reply had (`*out_text` of
/// `sphana_llm_generate_chat_tools`): when its content is only calls of these tools in the
/// template's format, the template renders it as those calls.
///
/// `out_text` and `out_len` (NULL allowed) as for `sphana_llm_apply_chat_template_with_len`.
/// Returns the statuses of `sphana_llm_apply_chat_template`, plus
/// `SPHANA_LLM_ERR_INVALID_ARGUMENT` for a NULL `tools`, a bad `struct_size` or
/// `tool_choice`, or tool JSON that is not an array of definitions (the message names what
/// is wrong); `SPHANA_LLM_ERR_UNSUPPORTED` when the template renders no tools. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_apply_chat_template_tools(
    model: *const SphanaLlmModel,
    messages: *const SphanaLlmChatMessage,
    count: usize,
    tools: *const SphanaLlmChatTools,
    add_generation_prompt: u32,
    out_text: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        if !out_len.is_null() {
            // SAFETY: non-NULL out-pointer.
            unsafe { write_out(out_len, 0) };
        }
        if !out_text.is_null() {
            // SAFETY: non-NULL out-pointer.
            unsafe { write_out(out_text, std::ptr::null_mut()) };
        }
        // SAFETY: caller contract.
        let (tools, _) = unsafe { tools_arg(tools) }?;
        // SAFETY: forwarded caller contract.
        unsafe {
            render_chat_tools(
                model,
                messages,
                count,
                Some(&tools),
                add_generation_prompt,
                out_text,
                out_len,
            )
        }
    })
}

/// Renders the conversation with `tools` (as `sphana_llm_apply_chat_template_tools`), generates
/// the reply like `sphana_llm_generate_chat`, and reads the tool calls in it in the template
/// family's format (Llama 3.x: the reply is `{"name": ..., "parameters": {...}}`;
/// Qwen/Hermes: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks). With
/// `SPHANA_LLM_TOOL_CHOICE_REQUIRED` the reply is constrained to one call whose arguments
/// match the tool's schema (`params->constraint` must then be NULL); with
/// `SPHANA_LLM_TOOL_CHOICE_AUTO` the model may answer in text, and text that is not a
/// well-formed call of a given tool stays text. The text streams to `on_text` as it is
/// generated (call text included); `*out_text` is the whole reply.
///
/// `out_calls` (required) receives the calls and the text without them; zeroed first and on
/// failure. Free it with `sphana_llm_tool_calls_free`.
/// Returns the statuses of `sphana_llm_generate_chat` and
/// `sphana_llm_apply_chat_template_tools`; `SPHANA_LLM_ERR_UNSUPPORTED` also when the template's
/// tool-call format is not one the library reads; `SPHANA_LLM_ERR_INVALID_ARGUMENT` for a
/// required call with `params->constraint` set. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_generate_chat_tools(
    model: *const SphanaLlmModel,
    messages: *const SphanaLlmChatMessage,
    count: usize,
    tools: *const SphanaLlmChatTools,
    params: *const SphanaLlmGenerateParams,
    on_text: SphanaLlmTextCallback,
    user_data: *mut c_void,
    out_text: *mut *mut c_char,
    out_stats: *mut SphanaLlmGenerateStats,
    out_calls: *mut SphanaLlmToolCalls,
) -> i32 {
    guard(|| {
        non_null(out_calls, "out_calls")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_calls, ZERO_CALLS) };
        // SAFETY: caller contract.
        let (tools, choice) = unsafe { tools_arg(tools) }?;
        let mut read: Option<(Vec<ToolCall>, String)> = None;
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
                    let reply = m.generate_chat_with_tools(
                        &messages,
                        &tools,
                        choice,
                        &ChatOptions::default(),
                        p,
                        cb,
                    )?;
                    read = Some((reply.tool_calls, reply.content));
                    Ok(reply.generation)
                },
            )
        }?;
        // run_generation writes `*out_text` only once nothing of it can fail any more.
        let (calls, content) = read.unwrap_or_default();
        let result = calls_to_c(&calls, &content);
        match result {
            Ok(c) => {
                // SAFETY: checked non-NULL.
                unsafe { write_out(out_calls, c) };
                Ok(())
            }
            Err(e) => {
                if !out_text.is_null() {
                    // SAFETY: non-NULL out-pointer holding NULL or a malloc'd string.
                    unsafe {
                        libc::free((*out_text).cast());
                        write_out(out_text, std::ptr::null_mut());
                    }
                }
                Err(e)
            }
        }
    })
}

const ZERO_CALLS: SphanaLlmToolCalls = SphanaLlmToolCalls {
    calls: std::ptr::null_mut(),
    count: 0,
    content: std::ptr::null_mut(),
    content_len: 0,
};

/// The C form of a reply's calls (all malloc'd; freed again if an allocation fails).
fn calls_to_c(calls: &[ToolCall], content: &str) -> Result<SphanaLlmToolCalls> {
    let mut out = ZERO_CALLS;
    let built = (|| -> Result<()> {
        out.content = malloc_string(content)?;
        out.content_len = content.len();
        if calls.is_empty() {
            return Ok(());
        }
        let empty = SphanaLlmToolCall {
            name: std::ptr::null_mut(),
            arguments_json: std::ptr::null_mut(),
        };
        out.calls = malloc_array(&vec![empty; calls.len()])?;
        out.count = calls.len();
        for (i, call) in calls.iter().enumerate() {
            // SAFETY: `out.calls` holds `calls.len()` entries.
            let slot = unsafe { &mut *out.calls.add(i) };
            slot.name = malloc_string(&call.name)?;
            slot.arguments_json = malloc_string(&call.arguments_json())?;
        }
        Ok(())
    })();
    match built {
        Ok(()) => Ok(out),
        Err(e) => {
            // SAFETY: everything in `out` is NULL or malloc'd above.
            unsafe { free_calls(&mut out) };
            Err(e)
        }
    }
}

/// # Safety
/// Every pointer in `calls` is NULL or malloc'd by this library.
unsafe fn free_calls(calls: &mut SphanaLlmToolCalls) {
    if !calls.calls.is_null() {
        for i in 0..calls.count {
            // SAFETY: `count` entries, each NULL or malloc'd.
            unsafe {
                let c = &*calls.calls.add(i);
                libc::free(c.name.cast());
                libc::free(c.arguments_json.cast());
            }
        }
        // SAFETY: malloc'd array.
        unsafe { libc::free(calls.calls.cast()) };
    }
    // SAFETY: NULL or malloc'd.
    unsafe { libc::free(calls.content.cast()) };
    *calls = ZERO_CALLS;
}

/// Frees what `sphana_llm_generate_chat_tools` wrote to a `SphanaLlmToolCalls` and zeroes it.
/// NULL, or an already-freed (zeroed) struct, is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_tool_calls_free(calls: *mut SphanaLlmToolCalls) {
    if calls.is_null() {
        return;
    }
    // SAFETY: the caller passes a struct this library filled (or zeroed).
    unsafe { free_calls(&mut *calls) };
}
