//! Tool calling through the C ABI: `sphana_llm_apply_chat_template_tools` renders as the
//! Rust API does (which tests/tools.rs checks against `transformers`),
//! `sphana_llm_generate_chat_tools` with `SPHANA_LLM_TOOL_CHOICE_REQUIRED` returns one call
//! whose arguments validate (Python `jsonschema`), `sphana_llm_tool_calls_free`, and bad
//! input (NULL pointers, versions, choices, JSON, UTF-8, a template without tools) refused
//! with a message, nothing written, the handle still usable.

#[path = "support/capi.rs"]
mod capi;
mod common;
#[path = "support/micro.rs"]
mod micro;

use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};

use capi::{last_error, message, take_string, Handle};
use sphana_llm::ffi::*;

const TOOLS: &str = r#"[{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city.", "parameters": {"type": "object", "properties": {"location": {"type": "string", "maxLength": 40}, "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["location", "unit"], "additionalProperties": false}}},
 {"type": "function", "function": {"name": "get_document", "description": "Opens a document by id.", "parameters": {"type": "object", "properties": {"document_id": {"type": "integer", "minimum": 1}}, "required": ["document_id"], "additionalProperties": false}}}]"#;

/// SmolLM2 with Qwen3's template (Hermes `<tool_call>` blocks).
fn model_with_tools() -> Handle {
    let dir = common::smollm2_with_template("tokenizers/qwen3-chat", "ffi");
    let path = capi::cpath(&dir);
    let model = micro::load(&common::model_dir("smollm2-135m-instruct"), |o| {
        o.tokenizer_path = path.as_ptr();
    });
    let _ = std::fs::remove_dir_all(dir);
    model
}

fn tools(json: &CString, choice: u32) -> SphanaLlmChatTools {
    SphanaLlmChatTools {
        struct_size: std::mem::size_of::<SphanaLlmChatTools>() as u32,
        tool_choice: choice,
        tools_json: json.as_ptr(),
    }
}

struct Reply {
    status: i32,
    text: Option<String>,
    calls: Vec<(String, String)>,
    content: Option<String>,
    raw: SphanaLlmToolCalls,
}

fn generate(
    model: Handle,
    question: &[u8],
    t: *const SphanaLlmChatTools,
    params: &SphanaLlmGenerateParams,
) -> Reply {
    let messages = [message("user", question)];
    let mut text = null_mut();
    let mut calls = SphanaLlmToolCalls {
        calls: std::ptr::dangling_mut(),
        count: 99,
        content: std::ptr::dangling_mut(),
        content_len: 77,
    };
    let status = unsafe {
        sphana_llm_generate_chat_tools(
            model.0,
            messages.as_ptr(),
            messages.len(),
            t,
            params,
            None,
            null_mut(),
            &mut text,
            null_mut(),
            &mut calls,
        )
    };
    let list = (0..calls.count)
        .map(|i| unsafe {
            let c = &*calls.calls.add(i);
            (
                CStr::from_ptr(c.name).to_str().unwrap().to_owned(),
                CStr::from_ptr(c.arguments_json)
                    .to_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let content = (!calls.content.is_null()).then(|| {
        let bytes =
            unsafe { std::slice::from_raw_parts(calls.content.cast::<u8>(), calls.content_len) };
        assert_eq!(
            unsafe { *calls.content.add(calls.content_len) },
            0,
            "NUL after content"
        );
        String::from_utf8(bytes.to_vec()).unwrap()
    });
    Reply {
        status,
        text: unsafe { take_string(text, "out_text") },
        calls: list,
        content,
        raw: calls,
    }
}

#[test]
fn required_call_through_the_c_abi_validates() {
    let model = model_with_tools();
    let json = CString::new(TOOLS).unwrap();
    let t = tools(&json, SPHANA_LLM_TOOL_CHOICE_REQUIRED);
    let mut params = sphana_llm_generate_params_default();
    params.max_new_tokens = 100;
    let schemas: serde_json::Value = serde_json::from_str(TOOLS).unwrap();
    for question in [
        b"What is the weather like in Lisbon?".as_slice(),
        b"Please open document 7.",
    ] {
        let mut reply = generate(model, question, &t, &params);
        assert_eq!(reply.status, SPHANA_LLM_OK, "{}", last_error());
        assert_eq!(reply.calls.len(), 1, "{:?}", reply.text);
        assert_eq!(reply.content.as_deref(), Some(""));
        let (name, arguments) = &reply.calls[0];
        let tool = schemas
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["function"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no tool {name}"));
        let verdict = common::check_structured(&[serde_json::json!({
            "kind": "json_schema",
            "constraint": tool["function"]["parameters"].to_string(),
            "text": arguments,
        })])
        .remove(0);
        assert!(verdict.is_empty(), "{name} {arguments}: {verdict}");
        assert!(reply
            .text
            .as_deref()
            .unwrap()
            .contains(&format!("\"{name}\"")));
        unsafe { sphana_llm_tool_calls_free(&mut reply.raw) };
        assert!(reply.raw.calls.is_null() && reply.raw.count == 0 && reply.raw.content.is_null());
        assert_eq!(reply.raw.content_len, 0);
        unsafe { sphana_llm_tool_calls_free(&mut reply.raw) };
        unsafe { sphana_llm_tool_calls_free(null_mut()) };
    }
    sphana_llm_free(model.0);
}

#[test]
fn the_rendering_is_the_rust_apis() {
    let model = model_with_tools();
    let json = CString::new(TOOLS).unwrap();
    let t = tools(&json, SPHANA_LLM_TOOL_CHOICE_AUTO);
    let messages = [message("user", b"Weather in Rome?")];
    let mut text = null_mut();
    let mut len = 7usize;
    let status = unsafe {
        sphana_llm_apply_chat_template_tools(
            model.0,
            messages.as_ptr(),
            messages.len(),
            &t,
            1,
            &mut text,
            &mut len,
        )
    };
    assert_eq!(status, SPHANA_LLM_OK, "{}", last_error());
    let text = unsafe { take_string(text, "rendering") }.unwrap();
    assert_eq!(len, text.len());
    let dir = common::smollm2_with_template("tokenizers/qwen3-chat", "ffi-render");
    let rust = sphana_llm::Model::load(&dir, &sphana_llm::LoadOptions::default()).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    let want = rust
        .apply_chat_template_with_tools(
            &[sphana_llm::ChatMessage::new("user", "Weather in Rome?")],
            Some(&sphana_llm::Tools::from_json(TOOLS).unwrap()),
            true,
            &sphana_llm::ChatOptions::default(),
        )
        .unwrap();
    assert_eq!(text, want);
    assert!(text.contains("get_document") && text.ends_with("<|im_start|>assistant\n"));
    sphana_llm_free(model.0);
}

#[test]
fn bad_tool_input_is_refused_and_changes_nothing() {
    let model = model_with_tools();
    let json = CString::new(TOOLS).unwrap();
    let good = tools(&json, SPHANA_LLM_TOOL_CHOICE_REQUIRED);
    let mut params = sphana_llm_generate_params_default();
    params.max_new_tokens = 8;
    let not_json = CString::new("[{\"name\": ").unwrap();
    let not_array = CString::new("{\"name\": \"x\"}").unwrap();
    let bad_utf8 = CString::new(b"[{\"name\": \"\xff\"}]".to_vec()).unwrap();
    let mut bad_size = good;
    bad_size.struct_size = 3;
    let mut bad_choice = good;
    bad_choice.tool_choice = 7;
    let mut null_json = good;
    null_json.tools_json = null();
    let cases: Vec<(&str, SphanaLlmChatTools, i32, &str)> = vec![
        (
            "struct_size",
            bad_size,
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "struct_size",
        ),
        (
            "tool_choice",
            bad_choice,
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "tool_choice",
        ),
        (
            "NULL tools_json",
            null_json,
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "tools_json",
        ),
        (
            "not JSON",
            tools(&not_json, 0),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "not valid JSON",
        ),
        (
            "not an array",
            tools(&not_array, 0),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            "array",
        ),
        (
            "bad UTF-8",
            tools(&bad_utf8, 0),
            SPHANA_LLM_ERR_INVALID_UTF8,
            "UTF-8",
        ),
    ];
    for (what, t, status, needle) in cases {
        let reply = generate(model, b"Hi", &t, &params);
        assert_eq!(reply.status, status, "{what}: {}", last_error());
        assert!(last_error().contains(needle), "{what}: {}", last_error());
        assert!(
            reply.text.is_none()
                && reply.calls.is_empty()
                && reply.content.is_none()
                && reply.raw.content_len == 0,
            "{what}"
        );
    }
    // NULL tools, NULL out_calls.
    let reply = generate(model, b"Hi", null(), &params);
    assert_eq!(reply.status, SPHANA_LLM_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("tools"), "{}", last_error());
    let messages = [message("user", b"Hi")];
    let status = unsafe {
        sphana_llm_generate_chat_tools(
            model.0,
            messages.as_ptr(),
            1,
            &good,
            &params,
            None,
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, SPHANA_LLM_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("out_calls"), "{}", last_error());
    // A required call with a constraint of its own.
    let mut constrained = params;
    let object = SphanaLlmConstraint {
        struct_size: std::mem::size_of::<SphanaLlmConstraint>() as u32,
        kind: SPHANA_LLM_CONSTRAINT_JSON_OBJECT,
        text: null(),
    };
    constrained.constraint = &object;
    let reply = generate(model, b"Hi", &good, &constrained);
    assert_eq!(reply.status, SPHANA_LLM_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("constraint"), "{}", last_error());
    // SmolLM2's own template renders no tools.
    let plain = micro::load(&common::model_dir("smollm2-135m-instruct"), |_| {});
    let reply = generate(plain, b"Hi", &good, &params);
    assert_eq!(reply.status, SPHANA_LLM_ERR_UNSUPPORTED, "{}", last_error());
    sphana_llm_free(plain.0);
    // The rendering entry point: NULL out_text, NULL model, NULL messages, bad UTF-8.
    let auto = tools(&json, SPHANA_LLM_TOOL_CHOICE_AUTO);
    let bad_message = [message("user", b"\xff")];
    let render = |m: *const SphanaLlmModel,
                  messages: *const SphanaLlmChatMessage,
                  out: *mut *mut std::ffi::c_char| unsafe {
        sphana_llm_apply_chat_template_tools(m, messages, 1, &auto, 1, out, null_mut())
    };
    let good_message = [message("user", b"Hi")];
    type Render<'a> = Box<dyn Fn(*mut *mut std::ffi::c_char) -> i32 + 'a>;
    let cases: [(&str, Render, &str); 4] = [
        (
            "NULL out_text",
            Box::new(|_| render(model.0, good_message.as_ptr(), null_mut())),
            "out_text",
        ),
        (
            "NULL model",
            Box::new(|out| render(null(), good_message.as_ptr(), out)),
            "model",
        ),
        (
            "NULL messages",
            Box::new(|out| render(model.0, null(), out)),
            "messages",
        ),
        (
            "bad UTF-8",
            Box::new(|out| render(model.0, bad_message.as_ptr(), out)),
            "UTF-8",
        ),
    ];
    for (what, call, needle) in cases {
        let mut out: *mut std::ffi::c_char = std::ptr::dangling_mut();
        let status = call(&mut out);
        assert_ne!(status, SPHANA_LLM_OK, "{what}");
        assert!(last_error().contains(needle), "{what}: {}", last_error());
        assert!(
            out.is_null() || what == "NULL out_text",
            "{what}: text on failure"
        );
    }
    // The handle still works.
    let reply = generate(model, b"Hi", &auto, &params);
    assert_eq!(reply.status, SPHANA_LLM_OK, "{}", last_error());
    assert!(reply.text.is_some() && reply.content.is_some());
    let mut raw = reply.raw;
    unsafe { sphana_llm_tool_calls_free(&mut raw) };
    sphana_llm_free(model.0);
}
