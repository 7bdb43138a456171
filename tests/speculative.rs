//! Speculative decoding by prompt lookup (`GenerateParams::prompt_lookup_tokens`): greedy ids
//! equal those without it, token for token, on every float tiny variant and SmolLM2, alone
//! and with 4 concurrent generations of different draft lengths (batched and not); stop
//! strings, EOS ids, `max_new_tokens` and cancellation that land inside an accepted run end
//! the generation exactly where the plain loop ends it; seeded sampling gives the same ids
//! for the same seed and the same distribution over seeds (chi-square); log-probabilities
//! and the prefix cache are unchanged by it. Each test also checks that drafts were made and
//! accepted, so none of this holds vacuously.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use sphana_llm::{CancelToken, FinishReason, Flow, GenerateParams, Generation, LoadOptions, Model};

fn load(dir: &str, configure: impl FnOnce(&mut LoadOptions)) -> Model {
    let mut options = common::load_options();
    configure(&mut options);
    Model::load(common::model_dir(dir), &options).unwrap_or_else(|e| panic!("loading {dir}: {e}"))
}

fn params(n: usize, lookup: usize) -> GenerateParams {
    GenerateParams {
        max_new_tokens: n,
        ignore_eos: true,
        prompt_lookup_tokens: lookup,
        ..Default::default()
    }
}

fn run(model: &Model, prompt: &[u32], params: &GenerateParams) -> Generation {
    model
        .generate_from_ids(prompt, params, &mut |_| Flow::Continue)
        .unwrap_or_else(|e| panic!("generating: {e}"))
}

/// A prompt that repeats itself, so that lookups find matches (ids in every vocabulary here).
fn repetitive_prompt(seed: u32) -> Vec<u32> {
    let phrase: Vec<u32> = (0..12u32)
        .map(|i| 300 + (i * 37 + seed * 101) % 5000)
        .collect();
    let mut prompt = Vec::new();
    for round in 0..6u32 {
        prompt.extend_from_slice(&phrase);
        prompt.push(7000 + round + seed);
    }
    prompt.extend_from_slice(&phrase[..5]);
    prompt
}

/// A repetitive prompt, what the model says after it, and the prompt again: a random tiny
/// model's next token depends mostly on the last few, so it tends to say it again, and
/// lookups find it in the prompt.
fn echo_prompt(model: &Model, seed: u32, prompt_len: usize, said_len: usize) -> Vec<u32> {
    let mut prompt = repetitive_prompt(seed);
    prompt.truncate(prompt_len);
    let said = run(model, &prompt, &params(said_len, 0)).token_ids;
    let mut echo = prompt.clone();
    echo.extend_from_slice(&said);
    echo.extend_from_slice(&prompt);
    echo
}

const FLOAT_VARIANTS: [&str; 7] = [
    "fp32",
    "merged",
    "external-data",
    "no-position-ids",
    "fp16",
    "no-kv",
    "short-context",
];

#[test]
fn greedy_ids_equal_plain_decoding_on_every_float_tiny_variant() {
    for variant in FLOAT_VARIANTS {
        let model = load(&format!("tiny-llama/{variant}"), |_| {});
        let (mut drafted, mut accepted) = (0, 0);
        for seed in 0..3 {
            // short-context: 64 positions.
            let (prompt, n) = if variant == "short-context" {
                (echo_prompt(&model, seed, 16, 12), 16)
            } else {
                (echo_prompt(&model, seed, 100, 24), 40)
            };
            let plain = run(&model, &prompt, &params(n, 0));
            assert_eq!(plain.stats.draft_tokens, 0, "{variant}: off means off");
            for lookup in [1, 3, 8] {
                let fast = run(&model, &prompt, &params(n, lookup));
                assert_eq!(
                    fast.token_ids, plain.token_ids,
                    "{variant}, prompt {seed}, {lookup} draft tokens"
                );
                assert_eq!(fast.text, plain.text, "{variant}");
                assert_eq!(fast.stats.finish_reason, plain.stats.finish_reason);
                assert!(fast.stats.accepted_draft_tokens <= fast.stats.draft_tokens);
                drafted += fast.stats.draft_tokens;
                accepted += fast.stats.accepted_draft_tokens;
            }
        }
        assert!(accepted > 0, "{variant}: no draft token was ever accepted");
        assert!(
            drafted > accepted,
            "{variant}: no draft token was ever rejected"
        );
    }
}

#[test]
fn a_context_that_fills_up_inside_an_accepted_run_ends_there() {
    // short-context: 64 positions.
    let model = load("tiny-llama/short-context", |_| {});
    let prompt = echo_prompt(&model, 1, 16, 12);
    let plain = run(&model, &prompt, &params(100, 0));
    assert_eq!(plain.stats.finish_reason, FinishReason::ContextFull);
    let fast = run(&model, &prompt, &params(100, 8));
    assert_eq!(fast.token_ids, plain.token_ids);
    assert_eq!(fast.stats.finish_reason, FinishReason::ContextFull);
    assert!(fast.stats.accepted_draft_tokens > 0);
}

/// An extractive RAG prompt: the answer copies a span of the context.
fn rag_prompt() -> String {
    "<|im_start|>user\nAnswer the question based on the following context: Context (Score: 0.87) \
     The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is \
     named after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 \
     to 1889. Locally nicknamed \"La dame de fer\", it was constructed as the centerpiece of the \
     1889 World's Fair. Question: Who designed and built the Eiffel Tower, and when? \
     Answer:<|im_end|>\n<|im_start|>assistant\n"
        .to_owned()
}

fn rag_ids(model: &Model) -> Vec<u32> {
    model
        .tokenize(
            &rag_prompt(),
            sphana_llm::EncodeOptions {
                add_special: true,
                parse_special: true,
            },
        )
        .unwrap()
}

#[test]
fn greedy_ids_equal_plain_decoding_on_smollm2() {
    let model = load("smollm2-135m-instruct", |_| {});
    let prompt = rag_ids(&model);
    let eos = GenerateParams {
        ignore_eos: false,
        ..params(80, 0)
    };
    let plain = run(&model, &prompt, &eos);
    for lookup in [2, 8, 16] {
        let fast = run(
            &model,
            &prompt,
            &GenerateParams {
                prompt_lookup_tokens: lookup,
                ..eos.clone()
            },
        );
        assert_eq!(fast.token_ids, plain.token_ids, "{lookup} draft tokens");
        assert_eq!(fast.text, plain.text);
        assert_eq!(fast.stats.finish_reason, plain.stats.finish_reason);
        assert!(
            lookup < 8 || fast.stats.accepted_draft_tokens >= 8,
            "the answer copies the context, so drafts are accepted ({} of {} accepted, {} tokens)",
            fast.stats.accepted_draft_tokens,
            fast.stats.draft_tokens,
            plain.token_ids.len()
        );
    }
}

/// Runs `prompts[i]` with `lookups[i]` draft tokens on concurrent threads.
fn concurrent(
    model: &Arc<Model>,
    prompts: &[Vec<u32>],
    lookups: &[usize],
    n: usize,
) -> Vec<Generation> {
    let threads: Vec<_> = prompts
        .iter()
        .zip(lookups)
        .map(|(prompt, &lookup)| {
            let model = Arc::clone(model);
            let prompt = prompt.clone();
            std::thread::spawn(move || run(&model, &prompt, &params(n, lookup)))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn four_concurrent_generations_with_mixed_draft_lengths_equal_plain_decoding() {
    let reference = load("tiny-llama/fp32", |_| {});
    let prompts: Vec<Vec<u32>> = (0..4)
        .map(|s| echo_prompt(&reference, s, 60 + 7 * s as usize, 24))
        .collect();
    let lookups = [0, 2, 5, 8];
    let expected: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| run(&reference, p, &params(400, 0)).token_ids)
        .collect();
    // 400 tokens: the holes left by rejected drafts, and by padding behind batch mates'
    // longer drafts, are dropped by re-layouts on the way.
    // Batched (drafts of different lengths verified in one run, shorter rows padded) and
    // unbatched on two sessions (every generation verifies its own drafts).
    for (batch, sessions) in [(8, 1), (1, 2)] {
        let model = Arc::new(load("tiny-llama/fp32", |o| {
            o.max_decode_batch = batch;
            o.session_count = sessions;
        }));
        let (mut accepted, mut batched) = (0, 0);
        for round in 0..3 {
            let results = concurrent(&model, &prompts, &lookups, 400);
            for (i, result) in results.iter().enumerate() {
                assert_eq!(
                    result.token_ids, expected[i],
                    "batch {batch}, {sessions} sessions, round {round}, row {i} ({} draft tokens)",
                    lookups[i]
                );
                accepted += result.stats.accepted_draft_tokens;
                batched += result.stats.batched_steps;
            }
        }
        assert!(accepted > 0, "batch {batch}: drafts were accepted");
        assert_eq!(batched > 0, batch > 1, "batch {batch}: steps were batched");
    }
}

#[test]
fn four_concurrent_rag_answers_on_smollm2_equal_plain_decoding() {
    let model = Arc::new(load("smollm2-135m-instruct", |_| {}));
    let base = rag_prompt();
    let prompts: Vec<Vec<u32>> = [
        "Who designed and built the Eiffel Tower, and when?",
        "What is the Eiffel Tower's nickname?",
        "Where is the Eiffel Tower?",
        "What was the Eiffel Tower built for?",
    ]
    .iter()
    .map(|q| {
        let text = base.replace("Who designed and built the Eiffel Tower, and when?", q);
        model
            .tokenize(
                &text,
                sphana_llm::EncodeOptions {
                    add_special: true,
                    parse_special: true,
                },
            )
            .unwrap()
    })
    .collect();
    let expected: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| run(&model, p, &params(30, 0)).token_ids)
        .collect();
    let results = concurrent(&model, &prompts, &[8, 0, 4, 16], 30);
    let mut accepted = 0;
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.token_ids, expected[i], "request {i}");
        accepted += result.stats.accepted_draft_tokens;
    }
    assert!(accepted > 0);
}

/// The text of each generated token on its own, and where it ends in the text.
fn token_ends(model: &Model, ids: &[u32]) -> Vec<usize> {
    (1..=ids.len())
        .map(|n| model.tokenizer().decode(&ids[..n], true).unwrap().len())
        .collect()
}

#[test]
fn stop_strings_ending_inside_accepted_runs_end_the_text_there() {
    let model = load("smollm2-135m-instruct", |_| {});
    let prompt = rag_ids(&model);
    let plain = run(&model, &prompt, &params(40, 0));
    let ends = token_ends(&model, &plain.token_ids);
    let mut checked = 0;
    for i in 2..ends.len() {
        // The text of token i, as a stop string (a suffix ending where that token ends).
        let stop = plain.text[ends[i - 1]..ends[i]].trim().to_owned();
        if stop.len() < 3 || plain.text[..ends[i - 1]].contains(&stop) {
            continue;
        }
        let with = |lookup| GenerateParams {
            stop_strings: vec![stop.clone()],
            ..params(40, lookup)
        };
        let a = run(&model, &prompt, &with(0));
        let b = run(&model, &prompt, &with(8));
        assert_eq!(a.stats.finish_reason, FinishReason::StopString, "{stop:?}");
        assert_eq!(b.stats.finish_reason, FinishReason::StopString, "{stop:?}");
        assert_eq!(b.text, a.text, "stop string {stop:?}");
        assert_eq!(b.token_ids, a.token_ids, "stop string {stop:?}");
        assert!(b.stats.accepted_draft_tokens > 0);
        checked += 1;
        if checked == 10 {
            break;
        }
    }
    assert!(checked >= 5, "only {checked} stop strings tried");
}

#[test]
fn eos_ids_and_length_limits_inside_accepted_runs_end_generation_there() {
    let prompt = rag_ids(&load("smollm2-135m-instruct", |_| {}));
    let base = load("smollm2-135m-instruct", |_| {});
    let plain = run(&base, &prompt, &params(40, 0));
    // Every length limit gives the plain run's prefix.
    for n in [1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 34, 40] {
        let fast = run(&base, &prompt, &params(n, 8));
        assert_eq!(fast.token_ids, plain.token_ids[..n], "max_new_tokens {n}");
        assert_eq!(fast.stats.finish_reason, FinishReason::Length);
    }
    // An EOS id that first appears at position i ends the answer before it.
    let mut tried = 0;
    for i in (3..plain.token_ids.len()).step_by(3) {
        let id = plain.token_ids[i];
        if plain.token_ids[..i].contains(&id) {
            continue;
        }
        let model = load("smollm2-135m-instruct", |o| {
            o.eos_token_ids = Some(vec![id])
        });
        let eos = |lookup| GenerateParams {
            ignore_eos: false,
            ..params(40, lookup)
        };
        let a = run(&model, &prompt, &eos(0));
        let b = run(&model, &prompt, &eos(8));
        assert_eq!(a.token_ids, plain.token_ids[..i], "EOS {id} at {i}");
        assert_eq!(b.token_ids, a.token_ids, "EOS {id} at {i}");
        assert_eq!(b.stats.finish_reason, FinishReason::Eos);
        assert_eq!(b.text, a.text);
        tried += 1;
        if tried == 4 {
            break;
        }
    }
    assert!(tried >= 2);
}

#[test]
fn cancellation_inside_an_accepted_run_stops_at_the_same_token() {
    let model = load("smollm2-135m-instruct", |_| {});
    let prompt = rag_ids(&model);
    let full = run(&model, &prompt, &params(40, 0));
    for after in [1, 4, 9, 15] {
        let stop_after = |lookup: usize| {
            let mut chunks = 0;
            let result = model
                .generate_from_ids(&prompt, &params(40, lookup), &mut |_| {
                    chunks += 1;
                    if chunks >= after {
                        Flow::Stop
                    } else {
                        Flow::Continue
                    }
                })
                .unwrap();
            assert_eq!(result.stats.finish_reason, FinishReason::Cancelled);
            result
        };
        let (a, b) = (stop_after(0), stop_after(8));
        assert_eq!(b.token_ids, a.token_ids, "stopped after {after} chunks");
        assert_eq!(b.text, a.text);
        // A cancel token set from the callback: the generation ends within one token.
        let cancel = CancelToken::new();
        let mut seen = 0;
        let flagged = model
            .generate_from_ids(
                &prompt,
                &GenerateParams {
                    cancel: Some(cancel.clone()),
                    ..params(40, 8)
                },
                &mut |_| {
                    seen += 1;
                    if seen == after {
                        cancel.cancel();
                    }
                    Flow::Continue
                },
            )
            .unwrap();
        assert_eq!(flagged.stats.finish_reason, FinishReason::Cancelled);
        let n = flagged.token_ids.len();
        assert!(n <= a.token_ids.len() + 1, "ends within one token");
        assert_eq!(flagged.token_ids, full.token_ids[..n]);
    }
}

fn sampled(lookup: usize, seed: u64) -> GenerateParams {
    GenerateParams {
        temperature: 0.8,
        top_k: 4,
        seed,
        ..params(12, lookup)
    }
}

#[test]
fn seeded_sampling_gives_the_same_ids_as_plain_decoding() {
    let model = load("tiny-llama/fp32", |_| {});
    let prompt = repetitive_prompt(2);
    let mut accepted = 0;
    for seed in 0..40 {
        let plain = run(&model, &prompt, &sampled(0, seed));
        let fast = run(&model, &prompt, &sampled(6, seed));
        assert_eq!(fast.token_ids, plain.token_ids, "seed {seed}");
        assert_eq!(
            run(&model, &prompt, &sampled(6, seed)).token_ids,
            fast.token_ids
        );
        accepted += fast.stats.accepted_draft_tokens;
    }
    assert!(accepted > 0, "sampled drafts are accepted sometimes");
}

/// Chi-square critical values at p = 0.001 for 1..=12 degrees of freedom.
const CHI2_999: [f64; 12] = [
    10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91,
];

/// Pearson's chi-square of two samples' category counts (categories under 5 expected
/// merged), and its degrees of freedom.
fn chi_square(a: &HashMap<u32, usize>, b: &HashMap<u32, usize>) -> (f64, usize) {
    let (na, nb) = (
        a.values().sum::<usize>() as f64,
        b.values().sum::<usize>() as f64,
    );
    let mut keys: Vec<u32> = a.keys().chain(b.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut cells: Vec<(f64, f64)> = Vec::new();
    let mut rare = (0.0, 0.0);
    for k in keys {
        let (x, y) = (
            *a.get(&k).unwrap_or(&0) as f64,
            *b.get(&k).unwrap_or(&0) as f64,
        );
        if (x + y) * na.min(nb) / (na + nb) < 5.0 {
            rare = (rare.0 + x, rare.1 + y);
        } else {
            cells.push((x, y));
        }
    }
    if rare.0 + rare.1 > 0.0 {
        cells.push(rare);
    }
    let mut chi = 0.0;
    for &(x, y) in &cells {
        let total = x + y;
        let (ea, eb) = (total * na / (na + nb), total * nb / (na + nb));
        chi += (x - ea).powi(2) / ea + (y - eb).powi(2) / eb;
    }
    (chi, cells.len().saturating_sub(1))
}

#[test]
fn sampled_tokens_have_the_plain_distribution_over_seeds() {
    let model = load("tiny-llama/fp32", |_| {});
    let prompt = repetitive_prompt(2);
    let count = 300u64;
    let mut second = (HashMap::new(), HashMap::new());
    let mut third = (HashMap::new(), HashMap::new());
    let mut accepted = 0;
    for s in 0..count {
        // Different seeds on each side: independent samples of the two distributions.
        let plain = run(&model, &prompt, &sampled(0, s));
        let fast = run(&model, &prompt, &sampled(6, count + s));
        accepted += fast.stats.accepted_draft_tokens;
        *second.0.entry(plain.token_ids[1]).or_insert(0) += 1;
        *second.1.entry(fast.token_ids[1]).or_insert(0) += 1;
        *third.0.entry(plain.token_ids[2]).or_insert(0) += 1;
        *third.1.entry(fast.token_ids[2]).or_insert(0) += 1;
    }
    assert!(accepted > 0);
    for (name, (a, b)) in [("second", &second), ("third", &third)] {
        let (chi, df) = chi_square(a, b);
        assert!(df >= 1, "{name} token: a single category ({a:?})");
        let critical = CHI2_999[(df - 1).min(CHI2_999.len() - 1)];
        assert!(
            chi < critical,
            "{name} token: chi-square {chi:.2} >= {critical} with {df} degrees of freedom ({a:?} vs {b:?})"
        );
    }
}

#[test]
fn log_probabilities_are_those_of_plain_decoding() {
    let model = load("smollm2-135m-instruct", |_| {});
    let prompt = rag_ids(&model);
    let with = |lookup| GenerateParams {
        logprobs: true,
        top_logprobs: 3,
        ..params(30, lookup)
    };
    let a = run(&model, &prompt, &with(0));
    let b = run(&model, &prompt, &with(8));
    assert!(b.stats.accepted_draft_tokens > 0);
    assert_eq!(a.token_ids, b.token_ids);
    assert_eq!(a.logprobs.len(), b.logprobs.len());
    for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
        assert_eq!(x.id, y.id);
        assert!((x.logprob - y.logprob).abs() < 1e-4, "{x:?} vs {y:?}");
        for (p, q) in x.top.iter().zip(&y.top) {
            assert!((p.logprob - q.logprob).abs() < 1e-4, "{p:?} vs {q:?}");
        }
    }
}

#[test]
fn the_prefix_cache_keeps_a_speculative_answer_without_its_discarded_drafts() {
    let prompt = repetitive_prompt(3);
    for variant in ["fp32", "no-position-ids"] {
        let dir = format!("tiny-llama/{variant}");
        let cached = load(&dir, |o| o.prefix_cache_bytes = 64 << 20);
        let cold = load(&dir, |_| {});
        let first = run(&cached, &prompt, &params(30, 8));
        assert!(first.stats.draft_tokens > first.stats.accepted_draft_tokens);
        let mut next = prompt.clone();
        next.extend_from_slice(&first.token_ids);
        next.extend([11, 22, 33]);
        let second = run(&cached, &next, &params(20, 8));
        // The answer's last id is cached only when it was an accepted draft (plain
        // decoding samples it and never feeds it).
        let answered = prompt.len() + first.token_ids.len();
        assert!(
            (answered - 1..=answered).contains(&second.stats.cached_tokens),
            "{variant}: prompt and answer reused ({} of {answered})",
            second.stats.cached_tokens
        );
        assert_eq!(
            second.token_ids,
            run(&cold, &next, &params(20, 0)).token_ids,
            "{variant}"
        );
    }
}

#[test]
fn bad_prompt_lookup_settings_are_refused() {
    let model = load("tiny-llama/fp32", |_| {});
    let prompt = repetitive_prompt(0);
    for bad in [
        GenerateParams {
            prompt_lookup_tokens: 65,
            ..params(4, 0)
        },
        GenerateParams {
            prompt_lookup_ngram: 0,
            ..params(4, 8)
        },
        GenerateParams {
            prompt_lookup_ngram: 17,
            ..params(4, 8)
        },
    ] {
        let err = model
            .generate_from_ids(&prompt, &bad, &mut |_| Flow::Continue)
            .unwrap_err();
        assert!(
            matches!(err, sphana_llm::Error::InvalidArgument(_)),
            "{err}"
        );
        assert!(err.to_string().contains("prompt_lookup"), "{err}");
    }
}
