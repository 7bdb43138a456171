//! Bounded KV memory (`max_kv_cache_bytes`): 32 concurrent long generations on a budget
//! of about two of them all finish (waiting for room) or, without a wait, get
//! `Error::KvMemory` (the distinct status of the C ABI) and generate nothing; the reserved
//! bytes never exceed the budget and come back when the generations end; a generation whose
//! worst case exceeds the whole budget fails at once. Generations that run are unchanged:
//! their greedy ids equal a run without a budget.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use sphana_llm::error::Status;
use sphana_llm::{Error, Flow, GenerateParams, LoadOptions, Model};

const NEW_TOKENS: usize = 100;

fn prompt() -> Vec<u32> {
    common::ids(
        &common::model_reference("tiny_llama")["variants"]["fp32"]["prompts"][2]["prompt_ids"],
    )
}

fn load(budget_generations: f64, wait: Duration) -> (Arc<Model>, usize) {
    let probe = Model::load(
        common::model_dir("tiny-llama/fp32"),
        &common::load_options(),
    )
    .unwrap();
    let per_generation =
        (prompt().len() + NEW_TOKENS) * probe.engine().unwrap().kv_bytes_per_position();
    assert!(per_generation > 0);
    let budget = (per_generation as f64 * budget_generations) as usize;
    let model = Model::load(
        common::model_dir("tiny-llama/fp32"),
        &LoadOptions {
            max_kv_cache_bytes: Some(budget),
            kv_wait: wait,
            ..common::load_options()
        },
    )
    .unwrap();
    (Arc::new(model), budget)
}

fn params() -> GenerateParams {
    GenerateParams {
        max_new_tokens: NEW_TOKENS,
        ignore_eos: true,
        ..Default::default()
    }
}

/// Runs 32 generations that start together; returns each result's ids or error, and the
/// largest reservation seen while they ran.
fn run_32(model: &Arc<Model>) -> (Vec<Result<Vec<u32>, Error>>, usize) {
    let barrier = Arc::new(Barrier::new(33));
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let (model, barrier) = (Arc::clone(model), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                model
                    .generate_from_ids(&prompt(), &params(), &mut |_| Flow::Continue)
                    .map(|g| g.token_ids)
            })
        })
        .collect();
    barrier.wait();
    let mut peak = 0;
    while threads.iter().any(|t| !t.is_finished()) {
        peak = peak.max(model.engine().unwrap().kv_budget().1);
        std::thread::sleep(Duration::from_micros(200));
    }
    (
        threads.into_iter().map(|t| t.join().unwrap()).collect(),
        peak,
    )
}

#[test]
fn thirty_two_generations_on_a_small_budget_wait_their_turn_and_all_finish() {
    let reference = Model::load(
        common::model_dir("tiny-llama/fp32"),
        &common::load_options(),
    )
    .unwrap()
    .generate_from_ids(&prompt(), &params(), &mut |_| Flow::Continue)
    .unwrap()
    .token_ids;
    let (model, budget) = load(2.5, Duration::from_secs(120));
    let (results, peak) = run_32(&model);
    for result in &results {
        assert_eq!(
            result.as_ref().unwrap(),
            &reference,
            "a budgeted generation's ids"
        );
    }
    assert!(peak <= budget, "{peak} bytes reserved, budget {budget}");
    assert!(peak > 0, "the reservations were seen");
    assert_eq!(
        model.engine().unwrap().kv_budget(),
        (Some(budget), 0),
        "all given back"
    );
}

#[test]
fn without_a_wait_the_generations_that_do_not_fit_fail_with_the_kv_status() {
    let (model, budget) = load(2.5, Duration::ZERO);
    let (results, peak) = run_32(&model);
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(ok >= 1, "at least the first generations run");
    assert!(
        !refused.is_empty(),
        "32 generations at once cannot all fit 2.5 of them"
    );
    for e in refused {
        assert!(matches!(e, Error::KvMemory(_)), "{e}");
        assert_eq!(e.status(), Status::KvMemory);
        assert!(e.to_string().contains("max_kv_cache_bytes"), "{e}");
    }
    assert!(peak <= budget, "{peak} bytes reserved, budget {budget}");
    assert_eq!(model.engine().unwrap().kv_budget().1, 0);
    // The handle still serves a generation afterwards.
    assert!(model
        .generate_from_ids(&prompt(), &params(), &mut |_| Flow::Continue)
        .is_ok());
}

#[test]
fn a_generation_larger_than_the_whole_budget_fails_at_once() {
    let (model, _) = load(0.5, Duration::from_secs(60));
    let started = Instant::now();
    let e = model
        .generate_from_ids(&prompt(), &params(), &mut |_| Flow::Continue)
        .map(|g| g.token_ids)
        .expect_err("refused");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it did not wait"
    );
    assert!(matches!(e, Error::KvMemory(_)), "{e}");
    assert!(e.to_string().contains("whole budget"), "{e}");
    // A shorter one fits.
    let short = GenerateParams {
        max_new_tokens: 4,
        ..params()
    };
    assert!(model
        .generate_from_ids(&prompt()[..8], &short, &mut |_| Flow::Continue)
        .is_ok());
}
