//! Generation with arbitrary `SphanaLlmGenerateParams` (NaN / infinite / negative floats,
//! top_p 0 or > 1, huge max_new_tokens and top_k, `struct_size` smaller or larger than ours
//! with zero or non-zero tails, NULL / empty / invalid / too many stop strings, forged,
//! cancelled and freed cancellation handles, output id buffers of any capacity, stats
//! structs of any declared size), prompts of arbitrary bytes or ids, chat messages, and a
//! text callback that stops after any number of chunks. Runs on the micro model
//! (context 48, so even max_new_tokens = UINT32_MAX ends within 48 steps).
//!
//! Checks: documented statuses only; a success implies the parameters were in their
//! documented ranges; the text is UTF-8 and equals the callback's chunks; counts respect
//! max_new_tokens and the context; output buffers are written only within their
//! capacity / declared size; a failure leaves `*out_text` NULL and a message.

use std::ffi::{c_char, c_void, CString};
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use super::super::*;

/// The fuzz micro model's context (fuzz/make_seeds.py).
const CONTEXT: usize = 48;

fn micro() -> Handle {
    static M: OnceLock<Handle> = OnceLock::new();
    *M.get_or_init(|| load(&work().join("micro"), |_| {}))
}

fn tokenizer_only() -> Handle {
    static M: OnceLock<Handle> = OnceLock::new();
    *M.get_or_init(|| load(&work().join("micro/tokenizer.json"), |_| {}))
}

struct Collector {
    text: Vec<u8>,
    calls: usize,
    stop_after: usize,
}

unsafe extern "C" fn on_text(text: *const c_char, len: usize, user: *mut c_void) -> i32 {
    let c = unsafe { &mut *user.cast::<Collector>() };
    let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len + 1) };
    assert_eq!(bytes[len], 0, "callback text is not NUL-terminated");
    assert!(len > 0, "callback called with an empty chunk");
    std::str::from_utf8(&bytes[..len]).expect("callback chunk is not UTF-8");
    c.text.extend_from_slice(&bytes[..len]);
    c.calls += 1;
    i32::from(c.calls > c.stop_after)
}

/// Our params struct followed by room for a caller's newer, larger struct.
#[repr(C)]
struct Padded {
    params: SphanaLlmGenerateParams,
    tail: [u8; 64],
}

#[repr(C)]
struct PaddedStats {
    stats: SphanaLlmGenerateStats,
    tail: [u8; 32],
}

fn float(u: &mut Unstructured<'_>, default: f32) -> arbitrary::Result<f32> {
    Ok(match u.int_in_range(0..=7)? {
        0 => f32::from_bits(u.arbitrary()?),
        1 => f32::NAN,
        2 => [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.5,
            1e-30,
        ][u.choose_index(8)?],
        3 => f32::from(u.arbitrary::<u8>()?) / 128.0,
        _ => default,
    })
}

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let ours = std::mem::size_of::<SphanaLlmGenerateParams>();
    let d = sphana_llm_generate_params_default();
    let mut padded = Padded {
        params: d,
        tail: [0; 64],
    };
    let p = &mut padded.params;
    p.max_new_tokens = match u.int_in_range(0..=5)? {
        0 => u.arbitrary()?,
        1 => u32::MAX,
        _ => u.int_in_range(0..=12)?,
    };
    p.temperature = float(u, 0.0)?;
    p.top_k = if u.ratio(1, 4)? { u.arbitrary()? } else { 0 };
    p.top_p = float(u, 1.0)?;
    p.min_p = float(u, 0.0)?;
    p.repetition_penalty = float(u, 1.0)?;
    p.seed = u.arbitrary()?;
    p.parse_special = if u.ratio(1, 4)? { u.arbitrary()? } else { 0 };
    p.add_special = if u.ratio(1, 4)? { u.arbitrary()? } else { 1 };
    p.ignore_eos = u.arbitrary::<u8>()? as u32 & 1;

    // Stop strings: some NULL, empty, invalid UTF-8, too long; sometimes too many.
    let stop_count = match u.int_in_range(0..=9)? {
        0 => 65,
        1 => 64,
        n => (n as usize) % 4,
    };
    let mut stop_owned: Vec<Option<CString>> = Vec::new();
    for i in 0..stop_count {
        let kind: u8 = if i < 4 { u.arbitrary()? } else { 1 };
        stop_owned.push(match kind % 8 {
            0 => None,
            1 => Some(CString::new(format!("stop{i}")).unwrap()),
            2 => Some(CString::new("").unwrap()),
            3 => Some(CString::new(vec![b'x'; 1025]).unwrap()),
            4 => Some(CString::new(vec![0xff, 0xfe]).unwrap()),
            _ => Some(c_string(some_bytes(u, 4)?)),
        });
    }
    let stop_ptrs: Vec<*const c_char> = stop_owned
        .iter()
        .map(|s| s.as_ref().map_or(null(), |s| s.as_ptr()))
        .collect();
    p.stop_string_count = stop_count;
    p.stop_strings = if stop_count > 0 && u.ratio(1, 16)? {
        null()
    } else {
        stop_ptrs.as_ptr()
    };
    let stops_valid = !p.stop_strings.is_null() || stop_count == 0;
    let stops_valid = stops_valid
        && stop_count <= 64
        && stop_owned.iter().all(|s| {
            s.as_ref().is_some_and(|s| {
                let b = s.as_bytes();
                !b.is_empty() && b.len() <= 1024 && std::str::from_utf8(b).is_ok()
            })
        });

    // Cancellation: none, fresh, cancelled before the call, freed, forged.
    let cancel_kind = u.int_in_range(0..=5)?;
    let mut cancel = null_mut();
    if (1..=3).contains(&cancel_kind) {
        check(
            unsafe { sphana_llm_cancellation_new(&mut cancel) },
            &[SPHANA_LLM_OK],
            "cancellation_new",
        );
        if cancel_kind == 2 {
            check(
                sphana_llm_cancellation_cancel(cancel),
                &[SPHANA_LLM_OK],
                "cancel",
            );
        }
        if cancel_kind == 3 {
            sphana_llm_cancellation_free(cancel);
        }
    } else if cancel_kind == 4 {
        cancel = 0x1234usize as *mut SphanaLlmCancellation;
    }
    p.cancel = cancel;
    let cancel_valid = !matches!(cancel_kind, 3 | 4);

    // Output ids.
    let ids_capacity = match u.int_in_range(0..=3)? {
        0 => 0,
        1 => u.int_in_range(0..=4)?,
        _ => u.int_in_range(0..=300)?,
    };
    let mut out_ids = vec![-99i32; ids_capacity + 4];
    let null_ids = u.ratio(1, 4)?;
    p.out_token_ids = if null_ids {
        null_mut()
    } else {
        out_ids.as_mut_ptr()
    };
    p.out_token_ids_capacity = ids_capacity;
    let ids_valid = !(null_ids && ids_capacity > 0);

    // struct_size.
    let size_kind = u.int_in_range(0..=7)?;
    let mut declared: u32 = match size_kind {
        0 => u.int_in_range(0..=ours as u32 - 1)?,
        1 => (ours + 8) as u32,
        2 => {
            padded.tail[u.choose_index(64)?] = u.arbitrary::<u8>()? | 1;
            (ours + 64) as u32
        }
        3 => u.arbitrary()?,
        _ => ours as u32,
    };
    if declared as usize > ours + 64 && declared as usize <= ours + (1 << 16) {
        // The library would read `declared` bytes: never claim more than the buffer has.
        declared = ours as u32;
    }
    padded.params.struct_size = declared;
    let declared = declared as usize;
    let tail_nonzero = declared > ours
        && padded.tail[..(declared - ours).min(64)]
            .iter()
            .any(|&b| b != 0);
    let size_valid = declared >= ours && declared <= ours + (1 << 16) && !tail_nonzero;
    let p = &padded.params;
    let floats_valid = p.temperature.is_finite()
        && p.temperature >= 0.0
        && p.top_p > 0.0
        && p.top_p <= 1.0
        && p.min_p >= 0.0
        && p.min_p < 1.0
        && p.repetition_penalty.is_finite()
        && p.repetition_penalty > 0.0;

    // Stats: NULL, or a struct of some declared size inside a padded buffer.
    let stats_kind = u.int_in_range(0..=5)?;
    let stats_declared: u32 = match stats_kind {
        0 => 0,
        1 => u.int_in_range(0..=64)?,
        _ => std::mem::size_of::<SphanaLlmGenerateStats>() as u32,
    };
    let mut stats = PaddedStats {
        stats: SphanaLlmGenerateStats {
            struct_size: stats_declared,
            ..Default::default()
        },
        tail: [0xa5; 32],
    };
    let stats_ptr: *mut SphanaLlmGenerateStats = if stats_kind == 0 {
        null_mut()
    } else {
        &mut stats.stats
    };
    let stats_valid = stats_kind == 0 || stats_declared >= 8;

    // Callback.
    let stop_after = match u.int_in_range(0..=3)? {
        0 => 0,
        1 => u.int_in_range(0..=8)?,
        _ => usize::MAX,
    };
    let use_callback = u.ratio(3, 4)?;
    let mut collector = Collector {
        text: Vec::new(),
        calls: 0,
        stop_after,
    };
    let (cb, user): (SphanaLlmTextCallback, *mut c_void) = if use_callback {
        (Some(on_text), (&mut collector as *mut Collector).cast())
    } else {
        (None, null_mut())
    };
    let params_ptr: *const SphanaLlmGenerateParams = if u.ratio(1, 16)? {
        null()
    } else {
        &padded.params
    };
    let params_valid = params_ptr.is_null()
        || (size_valid && floats_valid && stops_valid && cancel_valid && ids_valid);
    let use_tokenizer_only = u.ratio(1, 32)?;
    let m = if use_tokenizer_only {
        tokenizer_only()
    } else {
        micro()
    };

    // Entry point and prompt.
    let entry = u.int_in_range(0..=2)?;
    let mut out_text: *mut c_char = std::ptr::dangling_mut::<c_char>();
    let want_text = u.ratio(7, 8)?;
    let out_text_ptr: *mut *mut c_char = if want_text { &mut out_text } else { null_mut() };
    let prompt: Vec<u8> = some_bytes(u, 64)?.to_vec();
    let status = match entry {
        0 => unsafe {
            sphana_llm_generate(
                m.0,
                ptr_or_null(&prompt, true),
                prompt.len(),
                params_ptr,
                cb,
                user,
                out_text_ptr,
                stats_ptr,
            )
        },
        1 => {
            let ids: Vec<i32> = prompt
                .chunks(2)
                .map(|c| {
                    if c[0] == 0xff {
                        i32::from(c[0]) * -1
                    } else {
                        i32::from(c[0]) * 2 + i32::from(*c.get(1).unwrap_or(&0) & 1)
                    }
                })
                .collect();
            unsafe {
                sphana_llm_generate_from_ids(
                    m.0,
                    if ids.is_empty() { null() } else { ids.as_ptr() },
                    ids.len(),
                    params_ptr,
                    cb,
                    user,
                    out_text_ptr,
                    stats_ptr,
                )
            }
        }
        _ => {
            let half = prompt.len() / 2;
            let messages = [
                SphanaLlmChatMessage {
                    role: c"system".as_ptr(),
                    role_len: 6,
                    content: prompt[..half].as_ptr().cast(),
                    content_len: half,
                },
                SphanaLlmChatMessage {
                    role: c"user".as_ptr(),
                    role_len: 4,
                    content: prompt[half..].as_ptr().cast(),
                    content_len: prompt.len() - half,
                },
            ];
            unsafe {
                sphana_llm_generate_chat(
                    m.0,
                    messages.as_ptr(),
                    2,
                    params_ptr,
                    cb,
                    user,
                    out_text_ptr,
                    stats_ptr,
                )
            }
        }
    };
    let what = format!(
        "entry {entry} status {status} max_new {} T {} top_p {} min_p {} rep {} size {declared} stops {stop_count} cancel {cancel_kind} ids_cap {ids_capacity} stats {stats_kind}/{stats_declared}",
        p.max_new_tokens, p.temperature, p.top_p, p.min_p, p.repetition_penalty
    );
    check(
        status,
        &[
            SPHANA_LLM_OK,
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            SPHANA_LLM_ERR_INVALID_UTF8,
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            SPHANA_LLM_ERR_UNSUPPORTED,
            SPHANA_LLM_ERR_CONTEXT_OVERFLOW,
        ],
        &what,
    );
    let full_stats =
        stats_kind != 0 && stats_declared as usize >= std::mem::size_of::<SphanaLlmGenerateStats>();
    let text = if want_text {
        assert_ne!(
            out_text,
            std::ptr::dangling_mut::<c_char>(),
            "{what}: *out_text not written"
        );
        if status == SPHANA_LLM_OK && full_stats && !out_text.is_null() {
            // The text may hold NUL bytes: read `text_len` of them.
            let len = stats.stats.text_len;
            let bytes = unsafe { std::slice::from_raw_parts(out_text.cast::<u8>(), len + 1) };
            assert_eq!(bytes[len], 0, "{what}: no NUL after text_len bytes");
            let t = String::from_utf8(bytes[..len].to_vec()).expect("generated text is UTF-8");
            unsafe { sphana_llm_string_free(out_text) };
            Some(t)
        } else {
            unsafe { take_string(out_text, &what) }
        }
    } else {
        None
    };
    if status != SPHANA_LLM_OK {
        assert!(text.is_none(), "{what}: text on failure");
        assert!(
            out_ids[ids_capacity..].iter().all(|&v| v == -99),
            "{what}: ids past capacity"
        );
    } else {
        assert!(params_valid, "{what}: invalid parameters accepted");
        assert!(stats_valid, "{what}: a stats struct_size below 8 accepted");
        assert!(
            !use_tokenizer_only,
            "{what}: a tokenizer-only model generated"
        );
        let max_new = if params_ptr.is_null() {
            256
        } else {
            p.max_new_tokens as usize
        };
        if let Some(text) = &text {
            if use_callback && full_stats {
                assert_eq!(
                    text.as_bytes(),
                    &collector.text[..],
                    "{what}: callback chunks differ from the text"
                );
            }
        }
        if stats_kind != 0 {
            let s = &stats.stats;
            let written =
                (stats_declared as usize).min(std::mem::size_of::<SphanaLlmGenerateStats>());
            assert!(
                stats.tail.iter().all(|&b| b == 0xa5),
                "{what}: wrote past the stats struct"
            );
            if written >= std::mem::size_of::<SphanaLlmGenerateStats>() {
                assert!(
                    (0..=4).contains(&s.finish_reason),
                    "{what}: finish {}",
                    s.finish_reason
                );
                assert!(
                    s.generated_tokens <= max_new,
                    "{what}: {} tokens",
                    s.generated_tokens
                );
                assert!(
                    s.prompt_tokens + s.generated_tokens <= CONTEXT,
                    "{what}: past the context"
                );
                if cancel_kind == 2 && !params_ptr.is_null() {
                    assert_eq!(s.finish_reason, SPHANA_LLM_FINISH_CANCELLED, "{what}");
                    assert_eq!(s.generated_tokens, 0, "{what}: generated after cancel");
                }
                let written_ids = s.generated_tokens.min(ids_capacity);
                if !null_ids {
                    assert!(
                        out_ids[written_ids..].iter().all(|&v| v == -99),
                        "{what}: ids past the count"
                    );
                }
            }
        }
        if !null_ids {
            assert!(
                out_ids[ids_capacity..].iter().all(|&v| v == -99),
                "{what}: ids past capacity"
            );
        }
    }
    if (1..=2).contains(&cancel_kind) {
        sphana_llm_cancellation_free(cancel);
    }
    Ok(())
}

/// Runs one fuzz input.
pub fn fuzz_one(data: &[u8]) {
    let _ = run(&mut Unstructured::new(data));
}
