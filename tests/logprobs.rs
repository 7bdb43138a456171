//! Log-probabilities and scoring: a generation's per-token log-probabilities and
//! `Model::score` of a given continuation equal the log-softmax of ONNX Runtime Python's
//! logits for the same ids (`scripts/goldens/ort_logprobs.py`, one run over the whole
//! sequence; tolerance 1e-4) on float models — tiny variants (one with a prompt longer than
//! the prefill chunk, one without a KV cache) and SmolLM2; they are the model's own
//! distribution, the same for greedy and sampled generation; batched generations report what
//! they report alone; bad requests are refused and change nothing.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use sphana_llm::{Error, Flow, GenerateParams, Model, TokenLogprob};

const TOLERANCE: f64 = 1e-4;

fn load(dir: &str) -> Model {
    Model::load(common::model_dir(dir), &common::load_options())
        .unwrap_or_else(|e| panic!("loading {dir}: {e}"))
}

/// ORT Python's log-probabilities of `ids[from..]` and the 8 most likely ids at each of
/// those positions.
struct Reference {
    logprobs: Vec<f64>,
    top: Vec<Vec<(u32, f64)>>,
}

fn reference(dir: &str, ids: &[u32], from: usize) -> Reference {
    let request = serde_json::json!({
        "model": common::model_dir(dir),
        "ids": ids,
        "from": from,
        "top": 8,
    });
    let mut child = Command::new("python3")
        .arg(common::repo_root().join("scripts/goldens/ort_logprobs.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 scripts/goldens/ort_logprobs.py");
    serde_json::to_writer(child.stdin.take().unwrap(), &request).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "ort_logprobs.py failed for {dir}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Reference {
        logprobs: v["logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect(),
        top: v["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap()))
                    .collect()
            })
            .collect(),
    }
}

/// Each token's log-probability equals the reference; each alternative is among the
/// reference's 8 most likely with the same log-probability, in order.
fn assert_matches(what: &str, got: &[TokenLogprob], ids: &[u32], want: &Reference) {
    assert_eq!(got.len(), want.logprobs.len(), "{what}: count");
    for (i, (t, &w)) in got.iter().zip(&want.logprobs).enumerate() {
        assert_eq!(t.id, ids[i], "{what}: id {i}");
        assert!(
            (f64::from(t.logprob) - w).abs() < TOLERANCE,
            "{what}: token {i} logprob {} vs ORT Python {w}",
            t.logprob
        );
        for pair in t.top.windows(2) {
            assert!(pair[0].logprob >= pair[1].logprob, "{what}: order at {i}");
        }
        for alt in &t.top {
            let Some(&(_, w)) = want.top[i].iter().find(|(id, _)| *id == alt.id) else {
                panic!(
                    "{what}: alternative {} at {i} is not in ORT's top 8",
                    alt.id
                );
            };
            assert!(
                (f64::from(alt.logprob) - w).abs() < TOLERANCE,
                "{what}: alt at {i}"
            );
        }
        // The most likely alternative is ORT's, unless the two are within rounding.
        if let (Some(first), [(id0, l0), (_, l1), ..]) = (t.top.first(), &want.top[i][..]) {
            if l0 - l1 > 1e-3 {
                assert_eq!(first.id, *id0, "{what}: top alternative at {i}");
            }
        }
    }
}

fn ids(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| 1000 + (i * 7919 + seed * 104_729) % 30_000)
        .collect()
}

#[test]
fn scores_equal_ort_python_on_the_float_models() {
    // (model, prompt length, continuation length): 300 > the 256-token prefill chunk.
    for (dir, prompt_len, cont_len) in [
        ("tiny-llama/fp32", 300, 40),
        ("tiny-llama/merged", 20, 12),
        ("tiny-llama/external-data", 20, 12),
        ("tiny-llama/no-position-ids", 20, 12),
        ("tiny-llama/no-kv", 20, 12),
        ("smollm2-135m-instruct", 120, 30),
    ] {
        let model = load(dir);
        let all = ids(prompt_len + cont_len, 1)
            .into_iter()
            .map(|id| id % model.tokenizer().vocab_size() as u32)
            .collect::<Vec<_>>();
        let (prompt, continuation) = all.split_at(prompt_len);
        let scored = model.score(prompt, continuation, 5).unwrap();
        assert!(scored.iter().all(|t| t.top.len() == 5), "{dir}");
        let want = reference(dir, &all, prompt_len);
        assert_matches(dir, &scored, continuation, &want);
    }
}

#[test]
fn generation_logprobs_are_the_models_own_for_greedy_and_sampled_runs() {
    let dir = "smollm2-135m-instruct";
    let model = load(dir);
    let prompt = model
        .tokenize(
            "The capital of France is",
            sphana_llm::EncodeOptions::default(),
        )
        .unwrap();
    let greedy = model
        .generate_from_ids(
            &prompt,
            &GenerateParams {
                max_new_tokens: 16,
                ignore_eos: true,
                top_logprobs: 3,
                ..Default::default()
            },
            &mut |_| Flow::Continue,
        )
        .unwrap();
    assert_eq!(greedy.logprobs.len(), greedy.token_ids.len());
    let mut all = prompt.clone();
    all.extend(&greedy.token_ids);
    assert_matches(
        "greedy",
        &greedy.logprobs,
        &greedy.token_ids,
        &reference(dir, &all, prompt.len()),
    );
    for t in &greedy.logprobs {
        assert_eq!(t.top[0].id, t.id, "greedy picks the most likely id");
    }
    // Sampling changes which ids come, not the distribution they are reported under.
    let sampled = model
        .generate_from_ids(
            &prompt,
            &GenerateParams {
                max_new_tokens: 16,
                ignore_eos: true,
                temperature: 1.3,
                top_k: 40,
                repetition_penalty: 1.3,
                seed: 7,
                logprobs: true,
                ..Default::default()
            },
            &mut |_| Flow::Continue,
        )
        .unwrap();
    assert!(sampled.logprobs.iter().all(|t| t.top.is_empty()));
    let scored = model.score(&prompt, &sampled.token_ids, 0).unwrap();
    for (i, (g, s)) in sampled.logprobs.iter().zip(&scored).enumerate() {
        assert_eq!(g.id, s.id);
        assert!(
            (g.logprob - s.logprob).abs() < 1e-4,
            "token {i}: generated {} vs scored {}",
            g.logprob,
            s.logprob
        );
    }
    // Off by default.
    let plain = model
        .generate_from_ids(
            &prompt,
            &GenerateParams {
                max_new_tokens: 4,
                ..Default::default()
            },
            &mut |_| Flow::Continue,
        )
        .unwrap();
    assert!(plain.logprobs.is_empty());
}

#[test]
fn batched_generations_report_what_they_report_alone() {
    let model = Arc::new(load("tiny-llama/fp32"));
    let params = GenerateParams {
        max_new_tokens: 12,
        ignore_eos: true,
        top_logprobs: 2,
        ..Default::default()
    };
    let prompts: Vec<Vec<u32>> = (0..4).map(|i| ids(10 + 7 * i, i as u32)).collect();
    let alone: Vec<_> = prompts
        .iter()
        .map(|p| {
            model
                .generate_from_ids(p, &params, &mut |_| Flow::Continue)
                .unwrap()
        })
        .collect();
    let threads: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (model, p, params) = (Arc::clone(&model), p.clone(), params.clone());
            std::thread::spawn(move || {
                model
                    .generate_from_ids(&p, &params, &mut |_| Flow::Continue)
                    .unwrap()
            })
        })
        .collect();
    let mut batched_steps = 0;
    for (t, want) in threads.into_iter().zip(&alone) {
        let got = t.join().unwrap();
        batched_steps += got.stats.batched_steps;
        assert_eq!(got.token_ids, want.token_ids);
        for (g, w) in got.logprobs.iter().zip(&want.logprobs) {
            assert!((g.logprob - w.logprob).abs() < 1e-4);
            let ids = |t: &TokenLogprob| t.top.iter().map(|a| a.id).collect::<Vec<_>>();
            assert_eq!(ids(g), ids(w));
        }
    }
    assert!(batched_steps > 0, "the generations were batched");
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let model = load("tiny-llama/fp32");
    let prompt = ids(12, 3);
    let before = model.score(&prompt, &[5, 6, 7], 2).unwrap();
    let refused = |r: Result<Vec<TokenLogprob>, Error>, what: &str| match r {
        Err(Error::InvalidArgument(message)) => assert!(!message.is_empty(), "{what}"),
        other => panic!("{what}: {other:?}"),
    };
    refused(model.score(&prompt, &[], 0), "empty continuation");
    refused(model.score(&[], &[5], 0), "empty prompt");
    refused(model.score(&prompt, &[5], 21), "21 alternatives");
    assert!(matches!(
        model.score(&prompt, &[u32::MAX], 0),
        Err(Error::InvalidTokenId { .. })
    ));
    let params = GenerateParams {
        top_logprobs: 21,
        ..Default::default()
    };
    assert!(matches!(
        model.generate_from_ids(&prompt, &params, &mut |_| Flow::Continue),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(model.score(&prompt, &[5, 6, 7], 2).unwrap(), before);
}
