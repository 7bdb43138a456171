//! Continuous batching: concurrent generations on one handle share one `session.run` per
//! decode step, and each still produces the greedy ids ONNX Runtime's Python API computes for
//! its prompt alone (`tests/golden/models/*.json`).

mod common;

use std::sync::{Arc, Barrier};

use sphana_llm::{EncodeOptions, Flow, GenerateParams, LoadOptions, Model};

fn load(dir: &str, max_decode_batch: usize) -> Model {
    let options = LoadOptions {
        max_decode_batch,
        ..common::load_options()
    };
    Model::load(common::model_dir(dir), &options).unwrap_or_else(|e| panic!("loading {dir}: {e}"))
}

struct Request {
    prompt_ids: Vec<u32>,
    expected: Vec<u32>,
}

/// Runs every request on its own thread at the same time; each thread waits at a barrier
/// after its first generated text, so all of them are in their decode phase together.
/// Returns the decode steps that ran batched, per request.
fn run_concurrently(model: &Arc<Model>, requests: &[Request], what: &str) -> Vec<usize> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let threads: Vec<_> = requests
        .iter()
        .map(|r| {
            let model = Arc::clone(model);
            let barrier = Arc::clone(&barrier);
            let prompt_ids = r.prompt_ids.clone();
            let params = GenerateParams {
                max_new_tokens: r.expected.len(),
                ignore_eos: true,
                ..Default::default()
            };
            std::thread::spawn(move || {
                let mut first = true;
                model.generate_from_ids(&prompt_ids, &params, &mut |_| {
                    if std::mem::take(&mut first) {
                        barrier.wait();
                    }
                    Flow::Continue
                })
            })
        })
        .collect();
    let batched: Vec<usize> = threads
        .into_iter()
        .zip(requests)
        .enumerate()
        .map(|(i, (t, r))| {
            let result = t
                .join()
                .expect("generation thread")
                .unwrap_or_else(|e| panic!("{what} request {i}: {e}"));
            assert_eq!(
                result.token_ids,
                r.expected,
                "{what}: request {i} ({}-token prompt) differs from its solo reference",
                r.prompt_ids.len()
            );
            result.stats.batched_steps
        })
        .collect();
    // Visible with `--nocapture`.
    eprintln!("{what}: batched steps per request {batched:?}");
    batched
}

fn tiny_requests(variant: &str) -> Vec<Request> {
    let golden = common::model_reference("tiny_llama");
    let prompts = golden["variants"][variant]["prompts"]
        .as_array()
        .expect("prompts");
    // The three prompts (1, 7 and 42 tokens: rows padded differently) and the first again.
    prompts
        .iter()
        .chain(prompts.first())
        .map(|p| Request {
            prompt_ids: common::ids(&p["prompt_ids"]),
            expected: common::ids(&p["new_ids"]),
        })
        .collect()
}

fn check_tiny_batched(variant: &str) {
    let model = Arc::new(load(&format!("tiny-llama/{variant}"), 8));
    assert_eq!(model.engine().unwrap().max_decode_batch(), 8);
    let requests = tiny_requests(variant);
    let mut batched = 0;
    for round in 0..3 {
        batched += run_concurrently(&model, &requests, &format!("{variant} round {round}"))
            .iter()
            .sum::<usize>();
    }
    assert!(
        batched > 0,
        "{variant}: no decode step ran batched although four generations ran at once"
    );
}

#[test]
fn batched_greedy_equals_solo_reference_fp32() {
    check_tiny_batched("fp32");
}

#[test]
fn batched_greedy_equals_solo_reference_fp16_kv() {
    check_tiny_batched("fp16");
}

#[test]
fn batched_greedy_equals_solo_reference_merged_use_cache_branch() {
    check_tiny_batched("merged");
}

#[test]
fn batched_greedy_equals_solo_reference_external_data() {
    check_tiny_batched("external-data");
}

#[test]
fn models_that_cannot_be_batched_run_steps_alone_and_stay_correct() {
    // No position_ids: rows could not keep their own positions. No KV cache: nothing to batch.
    for variant in ["no-position-ids", "no-kv"] {
        let model = Arc::new(load(&format!("tiny-llama/{variant}"), 8));
        assert_eq!(model.engine().unwrap().max_decode_batch(), 1, "{variant}");
        let batched = run_concurrently(&model, &tiny_requests(variant), variant);
        assert!(batched.iter().all(|&b| b == 0), "{variant}: {batched:?}");
    }
}

#[test]
fn max_decode_batch_one_turns_batching_off() {
    let model = Arc::new(load("tiny-llama/fp32", 1));
    assert_eq!(model.engine().unwrap().max_decode_batch(), 1);
    let batched = run_concurrently(&model, &tiny_requests("fp32"), "max_decode_batch 1");
    assert!(batched.iter().all(|&b| b == 0), "{batched:?}");
}

#[test]
fn batches_never_exceed_max_decode_batch_and_every_request_completes() {
    // Six generations, batches of at most two: the queue drains in turns.
    let model = Arc::new(load("tiny-llama/fp32", 2));
    let mut requests = tiny_requests("fp32");
    requests.extend(tiny_requests("fp32").into_iter().take(2));
    let batched = run_concurrently(&model, &requests, "max_decode_batch 2");
    assert!(batched.iter().sum::<usize>() > 0, "{batched:?}");
}

#[test]
fn smollm2_concurrent_requests_answer_as_alone() {
    // A real model: the golden chat prompt (37 tokens) next to shorter and longer prompts.
    let golden = common::model_reference("smollm2");
    let model = Arc::new(load("smollm2-135m-instruct", 8));
    let solo = load("smollm2-135m-instruct", 1);
    let reference = &golden["models"]["fp32"];
    let mut expected = common::ids(&reference["new_ids"]);
    if reference["stopped_at_eos"] == true {
        expected.pop();
    }
    let golden_prompt = common::ids(&golden["prompt_ids"]);
    let texts = [
        "The three primary colors are",
        "Write one sentence about the sea. The sea is a vast and restless body of water that covers most of our planet, and",
    ];
    let mut requests = vec![Request {
        prompt_ids: golden_prompt,
        expected: expected.clone(),
    }];
    for text in texts {
        let prompt_ids = model
            .tokenize(
                text,
                EncodeOptions {
                    add_special: true,
                    parse_special: false,
                },
            )
            .unwrap();
        // The solo reference for these prompts: the same engine without batching, whose
        // greedy loop the golden prompt above checks against ONNX Runtime's Python API.
        let alone = solo
            .generate_from_ids(
                &prompt_ids,
                &GenerateParams {
                    max_new_tokens: 24,
                    ignore_eos: true,
                    ..Default::default()
                },
                &mut |_| Flow::Continue,
            )
            .unwrap();
        requests.push(Request {
            prompt_ids,
            expected: alone.token_ids,
        });
    }
    let batched = run_concurrently(&model, &requests, "smollm2 fp32");
    assert!(batched.iter().sum::<usize>() > 0, "{batched:?}");
}
