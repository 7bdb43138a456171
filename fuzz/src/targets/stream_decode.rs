//! The streaming decoder fed arbitrary id sequences (in range, just outside, negative,
//! i32::MIN/MAX) with arbitrary output capacities, flushes in the middle, on every format.
//!
//! Checks: documented statuses only; out-of-range ids are INVALID_TOKEN_ID and change
//! nothing; BUFFER_TOO_SMALL reports the needed size and a retry with that size succeeds;
//! every chunk is NUL-terminated UTF-8; and when `decode` of the same valid ids is clean
//! UTF-8 (no U+FFFD), the chunks of each segment concatenate to exactly that text.

use std::ptr::null_mut;
use std::sync::OnceLock;

use super::super::*;

const TOKENIZERS: [&str; 8] = [
    "llama3.2",
    "llama3-tiktoken",
    "gpt2",
    "llama2-spm",
    "mistral-v3-spm",
    "qwen3",
    "gemma",
    "albert-spm",
];

static HANDLES: [OnceLock<Handle>; 8] = [const { OnceLock::new() }; 8];

fn handle(i: usize) -> Handle {
    *HANDLES[i].get_or_init(|| load(&assets().join("tokenizers").join(TOKENIZERS[i]), |_| {}))
}

#[derive(Clone, Copy)]
struct Decoder(*mut SphanaLlmStreamDecoder);

/// Calls push or flush with `capacity`; on BUFFER_TOO_SMALL retries with the size asked for.
fn step(
    d: Decoder,
    id: Option<i32>,
    capacity: usize,
    null_buffer: bool,
    what: &str,
) -> (i32, String) {
    let mut buf = vec![0xa5u8; capacity.max(1)];
    let out = if null_buffer && capacity == 0 {
        null_mut()
    } else {
        buf.as_mut_ptr().cast()
    };
    let mut len = usize::MAX;
    let call = |out: *mut std::ffi::c_char, capacity: usize, len: &mut usize| unsafe {
        match id {
            Some(id) => sphana_llm_stream_decoder_push(d.0, id, out, capacity, len),
            None => sphana_llm_stream_decoder_flush(d.0, out, capacity, len),
        }
    };
    let status = call(out, capacity, &mut len);
    match status {
        SPHANA_LLM_OK => (status, check_text(&buf, len, what)),
        SPHANA_LLM_ERR_BUFFER_TOO_SMALL => {
            assert!(
                len >= capacity,
                "{what}: BUFFER_TOO_SMALL for {len} bytes with capacity {capacity}"
            );
            assert!(
                buf.iter().all(|&b| b == 0xa5),
                "{what}: a too-small buffer was written"
            );
            let mut big = vec![0xa5u8; len + 1];
            let mut len2 = 0usize;
            let status = call(big.as_mut_ptr().cast(), big.len(), &mut len2);
            check(status, &[SPHANA_LLM_OK], what);
            assert_eq!(len2, len, "{what}: the retry's length differs");
            (SPHANA_LLM_OK, check_text(&big, len2, what))
        }
        other => {
            check(
                other,
                &[
                    SPHANA_LLM_ERR_INVALID_TOKEN_ID,
                    SPHANA_LLM_ERR_INVALID_ARGUMENT,
                ],
                what,
            );
            (other, String::new())
        }
    }
}

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let which = u.choose_index(TOKENIZERS.len())?;
    let m = handle(which);
    let vocab = vocab_size(m) as i64;
    let flags: u32 = if u.ratio(1, 16)? {
        u.arbitrary()?
    } else {
        u.int_in_range(0..=1)?
    };
    let mut d = Decoder(null_mut());
    let status = unsafe { sphana_llm_stream_decoder_new(m.0, flags, &mut d.0) };
    if flags > 1 {
        check(
            status,
            &[SPHANA_LLM_ERR_INVALID_ARGUMENT],
            "stream_decoder_new",
        );
        return Ok(());
    }
    check(status, &[SPHANA_LLM_OK], "stream_decoder_new");
    let what = format!("{} flags={flags}", TOKENIZERS[which]);

    let mut segment_ids: Vec<i32> = Vec::new();
    let mut segment_text = String::new();
    let finish_segment = |ids: &mut Vec<i32>, text: &mut String| {
        if let Ok(decoded) = decode(m, ids, flags) {
            if !decoded.contains('\u{fffd}') {
                assert_eq!(
                    *text, decoded,
                    "{what}: streamed text differs from decode of {ids:?}"
                );
            }
        }
        ids.clear();
        text.clear();
    };
    while !u.is_empty() {
        let kind: u8 = u.arbitrary()?;
        let capacity = match kind >> 4 {
            0 => 0,
            1 => 1,
            2..=5 => (kind & 0x0f) as usize + 2,
            _ => 64 + (kind & 0x0f) as usize * 16,
        };
        let id = match kind & 0x07 {
            0 => u.arbitrary::<i32>()?,
            1 => (vocab + i64::from(u.int_in_range(-2i8..=2)?)) as i32,
            2 => -(i32::from(u.arbitrary::<u8>()?)),
            7 if u.ratio(1, 4)? => {
                // Flush in the middle: a new sequence starts.
                let (status, text) = step(d, None, capacity, kind & 0x08 != 0, &what);
                check(status, &[SPHANA_LLM_OK], &what);
                segment_text.push_str(&text);
                finish_segment(&mut segment_ids, &mut segment_text);
                continue;
            }
            _ => (u.arbitrary::<u32>()? as i64 % vocab) as i32,
        };
        let (status, text) = step(d, Some(id), capacity, kind & 0x08 != 0, &what);
        let in_range = id >= 0 && i64::from(id) < vocab;
        if !in_range {
            assert_eq!(
                status, SPHANA_LLM_ERR_INVALID_TOKEN_ID,
                "{what}: id {id} accepted"
            );
            continue;
        }
        if status == SPHANA_LLM_OK {
            segment_ids.push(id);
            segment_text.push_str(&text);
        }
    }
    let (status, text) = step(d, None, 256, false, &what);
    check(status, &[SPHANA_LLM_OK], &what);
    segment_text.push_str(&text);
    finish_segment(&mut segment_ids, &mut segment_text);
    sphana_llm_stream_decoder_free(d.0);
    Ok(())
}

/// Runs one fuzz input.
pub fn fuzz_one(data: &[u8]) {
    let _ = run(&mut Unstructured::new(data));
}
