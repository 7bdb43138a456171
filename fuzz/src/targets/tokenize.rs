//! Tokenize, tokenize_with_offsets, tokenize_batch, decode, token lookups with arbitrary
//! bytes, flags and buffer capacities, on every tokenizer format (HF tokenizer.json BPE
//! and Unigram, SentencePiece, tiktoken).
//!
//! Checks: documented statuses only; a size query and a fill agree; a too-small buffer
//! gets BUFFER_TOO_SMALL, the needed size, and no writes; offsets are in range and match
//! the ids; decode output is NUL-terminated UTF-8; on the byte-level tokenizers (Llama 3
//! tokenizer.json and tiktoken, GPT-2), decode(tokenize(text)) == text; the two Llama 3
//! formats give the same ids.

use std::ptr::null_mut;
use std::sync::OnceLock;

use super::super::*;

/// (assets/tokenizers/<name>, exact byte-level round trip)
const TOKENIZERS: [(&str, bool); 9] = [
    ("llama3.2", true),
    ("llama3-tiktoken", true),
    ("gpt2", true),
    ("llama2-spm", false),
    ("mistral-v3-spm", false),
    ("qwen3", false),
    ("gemma", false),
    ("albert-spm", false),
    ("mistral-v1-json", false),
];

static HANDLES: [OnceLock<Handle>; 9] = [const { OnceLock::new() }; 9];

fn handle(i: usize) -> Handle {
    *HANDLES[i].get_or_init(|| load(&assets().join("tokenizers").join(TOKENIZERS[i].0), |_| {}))
}

const KNOWN: u32 = SPHANA_LLM_TOKENIZE_ADD_SPECIAL | SPHANA_LLM_TOKENIZE_PARSE_SPECIAL;

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let which = u.choose_index(TOKENIZERS.len())?;
    let (name, round_trip) = TOKENIZERS[which];
    let m = handle(which);
    let raw_flags: u32 = u.arbitrary()?;
    let flags = if u.ratio(1, 8)? {
        raw_flags
    } else {
        raw_flags & KNOWN
    };
    let cap_choice: u8 = u.arbitrary()?;
    let decode_flags: u32 = if u.ratio(1, 16)? {
        u.arbitrary()?
    } else {
        u.int_in_range(0..=1)?
    };
    let extra_ids: Vec<i32> = (0..u.int_in_range(0..=8)?)
        .map(|_| u.arbitrary())
        .collect::<arbitrary::Result<_>>()?;
    let text = u.bytes(u.len())?;
    let valid_utf8 = std::str::from_utf8(text).is_ok();
    let what = format!(
        "{name} flags={flags:#x} text={:?}",
        String::from_utf8_lossy(text)
    );

    // Size query, then fills with capacities around the size.
    let mut n = 0usize;
    let status = unsafe {
        sphana_llm_tokenize(
            m.0,
            text.as_ptr().cast(),
            text.len(),
            flags,
            null_mut(),
            0,
            &mut n,
        )
    };
    let expected_failure = if flags & !KNOWN != 0 {
        Some(SPHANA_LLM_ERR_INVALID_ARGUMENT)
    } else if !valid_utf8 {
        Some(SPHANA_LLM_ERR_INVALID_UTF8)
    } else {
        None
    };
    if let Some(want) = expected_failure {
        check(status, &[want], &what);
        return Ok(());
    }
    check(
        status,
        &[SPHANA_LLM_OK, SPHANA_LLM_ERR_BUFFER_TOO_SMALL],
        &what,
    );
    assert_eq!(
        status == SPHANA_LLM_OK,
        n == 0,
        "{what}: size query status {status} for {n} ids"
    );
    let ids = tokenize(m, text, flags).unwrap_or_else(|s| panic!("{what}: tokenize {s}"));
    assert_eq!(ids.len(), n);
    let vocab = vocab_size(m);
    assert!(
        ids.iter().all(|&id| id >= 0 && (id as usize) < vocab),
        "{what}: id out of range"
    );

    let capacity = match cap_choice % 4 {
        0 => n.saturating_sub(1),
        1 => n + 1,
        2 => (cap_choice as usize) / 4,
        _ => n,
    };
    let mut buf = vec![-7i32; capacity + 1];
    let mut count = usize::MAX;
    let status = unsafe {
        sphana_llm_tokenize(
            m.0,
            text.as_ptr().cast(),
            text.len(),
            flags,
            buf.as_mut_ptr(),
            capacity,
            &mut count,
        )
    };
    assert_eq!(count, n, "{what}: count with capacity {capacity}");
    if capacity >= n {
        check(status, &[SPHANA_LLM_OK], &what);
        assert_eq!(
            &buf[..n],
            &ids[..],
            "{what}: fill differs from the sized call"
        );
        assert!(
            buf[n..].iter().all(|&v| v == -7),
            "{what}: wrote past the ids"
        );
    } else {
        check(status, &[SPHANA_LLM_ERR_BUFFER_TOO_SMALL], &what);
        assert!(
            buf.iter().all(|&v| v == -7),
            "{what}: a too-small buffer was written"
        );
    }

    // Offsets: same ids, ranges inside the text.
    let mut oids = vec![0i32; n];
    let mut spans = vec![SphanaLlmTokenSpan::default(); n];
    let mut on = 0usize;
    let status = unsafe {
        sphana_llm_tokenize_with_offsets(
            m.0,
            text.as_ptr().cast(),
            text.len(),
            flags,
            if n == 0 {
                null_mut()
            } else {
                oids.as_mut_ptr()
            },
            if n == 0 {
                null_mut()
            } else {
                spans.as_mut_ptr()
            },
            n,
            &mut on,
        )
    };
    check(status, &[SPHANA_LLM_OK], &what);
    assert_eq!(oids, ids, "{what}: ids with offsets differ");
    for s in &spans {
        assert!(
            s.start <= s.end && s.end <= text.len(),
            "{what}: span {s:?}"
        );
    }

    // Batch of the text split in three.
    let a = text.len() / 3;
    let b = 2 * text.len() / 3;
    let parts = [&text[..a], &text[a..b], &text[b..]];
    let parts_ok = parts.iter().all(|p| std::str::from_utf8(p).is_ok());
    let ptrs: Vec<*const std::ffi::c_char> = parts.iter().map(|p| p.as_ptr().cast()).collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    let mut batch = SphanaLlmTokenBatch {
        ids: null_mut(),
        starts: null_mut(),
        text_count: 0,
    };
    let status = unsafe {
        sphana_llm_tokenize_batch(m.0, ptrs.as_ptr(), lens.as_ptr(), 3, flags, &mut batch)
    };
    if parts_ok {
        check(status, &[SPHANA_LLM_OK], &what);
        for (i, part) in parts.iter().enumerate() {
            let want = tokenize(m, part, flags).unwrap();
            let got = unsafe {
                let starts = std::slice::from_raw_parts(batch.starts, 4);
                std::slice::from_raw_parts(batch.ids.add(starts[i]), starts[i + 1] - starts[i])
            };
            assert_eq!(got, &want[..], "{what}: batch part {i}");
        }
    } else {
        check(status, &[SPHANA_LLM_ERR_INVALID_UTF8], &what);
        assert!(batch.ids.is_null() && batch.starts.is_null() && batch.text_count == 0);
    }
    unsafe { sphana_llm_token_batch_free(&mut batch) };

    // Decode the ids back.
    let dflags_known = decode_flags & !SPHANA_LLM_DECODE_SKIP_SPECIAL == 0;
    match decode(m, &ids, decode_flags) {
        Ok(decoded) => {
            assert!(dflags_known, "{what}: unknown decode flags accepted");
            if round_trip && decode_flags == 0 && flags & SPHANA_LLM_TOKENIZE_ADD_SPECIAL == 0 {
                let text = std::str::from_utf8(text).unwrap();
                assert_eq!(decoded, text, "{what}: decode(tokenize(text)) != text");
            }
        }
        Err(status) => {
            check(status, &[SPHANA_LLM_ERR_INVALID_ARGUMENT], &what);
            assert!(!dflags_known, "{what}: decode failed: {}", last_error());
        }
    }
    if name == "llama3.2" && flags & SPHANA_LLM_TOKENIZE_PARSE_SPECIAL == 0 {
        // The tiktoken rank file is the same tokenizer as Llama 3.2's tokenizer.json.
        let tiktoken = handle(1);
        assert_eq!(
            tokenize(tiktoken, text, flags).unwrap(),
            ids,
            "{what}: tiktoken and tokenizer.json disagree"
        );
    }

    // Arbitrary ids: in range decodes, out of range is INVALID_TOKEN_ID.
    let status = decode(m, &extra_ids, 0).err().unwrap_or(SPHANA_LLM_OK);
    let all_in_range = extra_ids.iter().all(|&id| id >= 0 && (id as usize) < vocab);
    if !all_in_range {
        check(status, &[SPHANA_LLM_ERR_INVALID_TOKEN_ID], &what);
    } else {
        // Empty ids decode to "" (needs 1 byte: capacity 0 is BUFFER_TOO_SMALL).
        check(
            status,
            &[SPHANA_LLM_OK, SPHANA_LLM_ERR_INVALID_TOKEN_ID],
            &what,
        );
    }
    for &id in &extra_ids {
        let mut buf = [0u8; 300];
        let mut len = 0usize;
        let status = unsafe {
            sphana_llm_id_to_token(m.0, id, buf.as_mut_ptr().cast(), buf.len(), &mut len)
        };
        if status == SPHANA_LLM_OK {
            let token = check_text(&buf, len, "id_to_token");
            let mut back = -1;
            let status = unsafe {
                sphana_llm_token_to_id(m.0, token.as_ptr().cast(), token.len(), &mut back)
            };
            check(status, &[SPHANA_LLM_OK], &what);
        } else {
            check(
                status,
                &[
                    SPHANA_LLM_ERR_INVALID_TOKEN_ID,
                    SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
                ],
                &what,
            );
        }
        let mut special = -1;
        let status = unsafe { sphana_llm_is_special(m.0, id, &mut special) };
        check(
            status,
            &[SPHANA_LLM_OK, SPHANA_LLM_ERR_INVALID_TOKEN_ID],
            &what,
        );
    }

    // The text as a vocabulary entry.
    let mut id = -1;
    let status = unsafe { sphana_llm_token_to_id(m.0, text.as_ptr().cast(), text.len(), &mut id) };
    check(status, &[SPHANA_LLM_OK, SPHANA_LLM_ERR_NOT_FOUND], &what);
    if status == SPHANA_LLM_OK {
        assert!(id >= 0 && (id as usize) < vocab);
    }
    Ok(())
}

/// Runs one fuzz input.
pub fn fuzz_one(data: &[u8]) {
    let _ = run(&mut Unstructured::new(data));
}
