//! The generation loop: prefill the prompt, then one token per step (or, with prompt
//! lookup, several drafted tokens verified in one run) until EOS, a stop string, the length
//! limit, a full context, or cancellation.

use std::time::Instant;

use super::constraint::{Allowed, ConstraintState, GrammarCompilerCell};
use super::logprobs::token_logprob;
use super::prompt_lookup::PromptLookup;
use super::sampling::Sampler;
use super::stopping::StopStrings;
use super::{FinishReason, Flow, GenerateParams, GenerateStats, Generation};
use crate::engine::{Engine, MAX_KV_HOLES};
use crate::error::{Error, Result};
use crate::tokenizer::stream::StreamDecoder;
use crate::tokenizer::Tokenizer;

/// Generates a continuation of `prompt_ids` with `engine`, streaming complete UTF-8 text
/// to `on_text` (never any part of a stop string; the chunks concatenate to the result text).
/// A constraint in `params` is compiled with `grammar` (built on first use) before anything
/// runs.
pub fn generate(
    engine: &Engine,
    tokenizer: &std::sync::Arc<Tokenizer>,
    grammar: &GrammarCompilerCell,
    prompt_ids: &[u32],
    params: &GenerateParams,
    on_text: &mut dyn FnMut(&str) -> Flow,
) -> Result<Generation> {
    params.validate()?;
    if prompt_ids.is_empty() {
        return Err(Error::InvalidArgument(
            "the prompt is empty (no tokens to start from)".into(),
        ));
    }
    let model_vocab = engine.layout().logits_vocab.unwrap_or(usize::MAX);
    let embeddable = model_vocab.min(tokenizer.vocab_size());
    if let Some(&bad) = prompt_ids.iter().find(|&&id| id as usize >= embeddable) {
        return Err(Error::InvalidTokenId {
            id: bad.into(),
            vocab_size: embeddable,
        });
    }
    let context = engine.context_length();
    if let Some(context) = context {
        if prompt_ids.len() >= context {
            return Err(Error::ContextOverflow(format!(
                "the prompt has {} tokens; the model's context is {context}, leaving no room to generate",
                prompt_ids.len()
            )));
        }
    }

    // The worst case of this generation's KV cache, held until it ends (waits for room in
    // the handle's budget, if it has one, before anything is allocated). Speculation may
    // leave up to MAX_KV_HOLES discarded positions in it before they are compacted.
    let mut positions = prompt_ids.len().saturating_add(params.max_new_tokens);
    if let Some(c) = context {
        positions = positions.min(c);
    }
    if params.prompt_lookup_tokens > 0 {
        positions = positions.saturating_add(MAX_KV_HOLES);
    }
    let (mut constraint, constraint_ms) = match &params.constraint {
        Some(c) => {
            let started = Instant::now();
            let state = grammar.get(tokenizer)?.compile(c)?;
            (Some(state), started.elapsed().as_secs_f64() * 1e3)
        }
        None => (None, 0.0),
    };
    let _kv = engine.reserve_kv(positions)?;

    let mut sampler = Sampler::new(params, embeddable);
    let mut decoder = StreamDecoder::new(std::sync::Arc::clone(tokenizer), true);
    let mut stops = StopStrings::new(&params.stop_strings);
    let mut lookup = PromptLookup::new(params.prompt_lookup_tokens, params.prompt_lookup_ngram);
    let mut history: Vec<u32> = prompt_ids.to_vec();
    let mut text = String::new();
    let mut sequence = engine.new_sequence();
    let want_logprobs = params.logprobs || params.top_logprobs > 0;
    let mut logprobs = Vec::new();
    // The step's raw logits, kept for the log-probabilities (sampling edits its buffer).
    let mut raw = Vec::new();
    // The logits of every position of the last verification run, and its draft.
    let mut verified: Vec<f32> = Vec::new();
    let mut vocab = 0;
    let mut draft: Vec<u32> = Vec::new();
    // Whether the last run was a verification run (its logits are in `verified`).
    let mut from_verified = false;
    let (mut drafted_total, mut accepted_total) = (0, 0);
    let cancelled = || params.cancel.as_ref().is_some_and(|c| c.is_cancelled());
    // The ids that end the text: none when the caller ignores EOS (a constraint still ends
    // the generation when its grammar is complete).
    let eos_ids: &[u32] = if params.ignore_eos {
        &[]
    } else {
        tokenizer.eos_ids()
    };

    let mut emit = |chunk: &str, text: &mut String| -> Flow {
        if chunk.is_empty() {
            return Flow::Continue;
        }
        text.push_str(chunk);
        on_text(chunk)
    };

    let started = Instant::now();
    let mut cached_tokens = 0;
    let mut finish = if cancelled() {
        Some(FinishReason::Cancelled)
    } else if params.max_new_tokens == 0 {
        Some(FinishReason::Length)
    } else {
        cached_tokens = beside_mask(constraint.as_mut(), || {
            engine.prefill(&mut sequence, prompt_ids)
        })?;
        None
    };
    let prefill_done = Instant::now();
    // Later steps share `session.run` with other generations on this engine.
    let mut slot = engine.decode_slot();

    // Each round reads the logits of the last run: one position after a plain step, or
    // the fed token and every draft token after a verification run. Position i's sample
    // is the next token; while it equals draft token i (already in the cache) the next
    // position is read too, else the rest of the draft is discarded and the sample is fed.
    while finish.is_none() {
        let rows = draft.len() + 1;
        let mut accepted = 0;
        for i in 0..rows {
            if cancelled() {
                finish = Some(FinishReason::Cancelled);
                break;
            }
            let row: &mut [f32] = if from_verified {
                &mut verified[i * vocab..(i + 1) * vocab]
            } else {
                sequence.logits_mut()
            };
            if want_logprobs {
                raw.clear();
                raw.extend_from_slice(row);
            }
            if let Some(c) = constraint.as_mut() {
                if c.apply(row, eos_ids)? == Allowed::EndOnly {
                    finish = Some(FinishReason::Eos);
                    break;
                }
            }
            let id = sampler.sample(row, &history);
            if eos_ids.contains(&id) {
                finish = Some(FinishReason::Eos);
                break;
            }
            let grammar_done = match constraint.as_mut() {
                Some(c) => {
                    c.consume(id)?;
                    c.is_stopped()
                }
                None => false,
            };
            history.push(id);
            let in_cache = draft.get(i) == Some(&id);
            if in_cache {
                accepted += 1;
            }
            if want_logprobs {
                logprobs.push(token_logprob(&raw, id, params.top_logprobs, embeddable));
            }
            let generated = history.len() - prompt_ids.len();
            let piece = decoder.push(id)?;
            let step = stops.push(&piece);
            if emit(&step.emit, &mut text) == Flow::Stop {
                finish = Some(FinishReason::Cancelled);
            } else if step.stopped {
                finish = Some(FinishReason::StopString);
            } else if grammar_done {
                finish = Some(FinishReason::Eos);
            } else if generated >= params.max_new_tokens {
                let incomplete = constraint.as_mut().is_some_and(|c| !c.is_accepting());
                finish = Some(if incomplete {
                    FinishReason::ConstraintIncomplete
                } else {
                    FinishReason::Length
                });
            } else if context.is_some_and(|c| history.len() >= c) {
                finish = Some(FinishReason::ContextFull);
            }
            if finish.is_some() || !in_cache {
                break;
            }
        }
        if !draft.is_empty() {
            lookup.record(draft.len(), accepted);
            drafted_total += draft.len();
            accepted_total += accepted;
            // The cache holds every draft token; keep the accepted ones.
            slot.discard(&mut sequence, draft.len() - accepted)?;
            draft.clear();
        }
        if finish.is_some() {
            break;
        }
        // The last token sampled is not in the cache yet: feed it, with a draft if there
        // is one (batched with the other generations' steps either way).
        let next = *history.last().expect("a token was sampled");
        let generated = history.len() - prompt_ids.len();
        let mut room = params.max_new_tokens - generated;
        if let Some(c) = context {
            room = room.min(c.saturating_sub(history.len()));
        }
        let mut proposal = lookup.draft(&history, room, slot.shared());
        if let Some(c) = constraint.as_mut() {
            // Verify only what the grammar could keep.
            let valid = c.valid_prefix(&proposal)?;
            proposal.truncate(valid);
        }
        // The grammar's next mask is computed while the model runs.
        if !proposal.is_empty() {
            let mut ids = Vec::with_capacity(proposal.len() + 1);
            ids.push(next);
            ids.extend_from_slice(&proposal);
            let fed;
            (vocab, fed) = beside_mask(constraint.as_mut(), || {
                slot.step_many(&mut sequence, &ids, &mut verified)
            })?;
            // A batch of several rows may have verified only the start of the draft.
            proposal.truncate(fed - 1);
            draft = proposal;
            from_verified = true;
        } else {
            beside_mask(constraint.as_mut(), || slot.step(&mut sequence, next))?;
            from_verified = false;
        }
    }
    // Keeps prompt + answer in the prefix cache (if on) for the next turn; leaves the batch.
    let fed = sequence.len().min(history.len());
    slot.finish(&mut sequence, &history[..fed]);
    let finish = finish.unwrap_or(FinishReason::Length);
    if matches!(
        finish,
        FinishReason::Eos
            | FinishReason::Length
            | FinishReason::ContextFull
            | FinishReason::ConstraintIncomplete
    ) {
        // Release text held back for an incomplete character or a possible stop string.
        let tail = decoder.flush()?;
        let mut rest = stops.push(&tail).emit;
        rest.push_str(&stops.finish());
        emit(&rest, &mut text);
    }
    let ended = Instant::now();
    Ok(Generation {
        text,
        token_ids: history[prompt_ids.len()..].to_vec(),
        logprobs,
        stats: GenerateStats {
            prompt_tokens: prompt_ids.len(),
            generated_tokens: history.len() - prompt_ids.len(),
            finish_reason: finish,
            prefill_ms: (prefill_done - started).as_secs_f64() * 1e3,
            decode_ms: (ended - prefill_done).as_secs_f64() * 1e3,
            session_run_ms: sequence.run_time.as_secs_f64() * 1e3,
            batched_steps: sequence.batched_steps,
            cached_tokens,
            draft_tokens: drafted_total,
            accepted_draft_tokens: accepted_total,
            constraint_ms,
        },
    })
}

/// Runs `step` (a forward pass) while another thread computes the constraint's next mask,
/// so the mask costs little wall time. Without a constraint, or when no thread can be
/// started, `step` runs alone and the mask is computed when it is needed.
fn beside_mask<T>(
    constraint: Option<&mut ConstraintState>,
    step: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let Some(c) = constraint else {
        return step();
    };
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("sphana-llm-mask".into())
            .spawn_scoped(scope, || c.prepare());
        let stepped = step();
        let masked = match helper {
            Ok(h) => h
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("the mask thread panicked".into()))),
            Err(_) => Ok(()),
        };
        let value = stepped?;
        masked.map(|()| value)
    })
}
