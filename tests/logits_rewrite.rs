//! The load-time logits rewrite (`engine::logits_rewrite`): the head runs on the last
//! position only, and what comes out is what the unmodified graph computes. For every tiny
//! variant and SmolLM2 (fp32, INT8) the last-row logits of a prompt equal the unmodified
//! graph's within 1e-5 relative, and greedy ids are identical. The unmodified graph is the
//! same file loaded with `rewrite_logits: false`; the generation tests compare the
//! rewritten graphs against ONNX Runtime Python's references as well.

mod common;

use sphana_llm::engine::logits_rewrite::LogitsPositions;
use sphana_llm::{Flow, GenerateParams, LoadOptions, Model};

fn load(dir: &str, rewrite_logits: bool) -> Model {
    Model::load(
        common::model_dir(dir),
        &LoadOptions {
            rewrite_logits,
            ..common::load_options()
        },
    )
    .unwrap_or_else(|e| panic!("loading {dir}: {e}"))
}

/// A 48-token prompt of in-vocabulary ids (every model here has at least 49,152 tokens).
fn prompt() -> Vec<u32> {
    (0..48u32).map(|i| 200 + i * 37 % 4000).collect()
}

/// Last-row logits of `prompt` in one forward pass (the prefill).
fn prefill_logits(model: &Model, prompt: &[u32]) -> Vec<f32> {
    let engine = model.engine().expect("a decoder");
    let mut sequence = engine.new_sequence();
    engine.forward(&mut sequence, prompt).expect("forward");
    sequence.logits().to_vec()
}

fn greedy_ids(model: &Model, prompt: &[u32], n: usize) -> Vec<u32> {
    let params = GenerateParams {
        max_new_tokens: n,
        ignore_eos: true,
        ..Default::default()
    };
    model
        .generate_from_ids(prompt, &params, &mut |_| Flow::Continue)
        .expect("generate")
        .token_ids
}

fn check(dir: &str, head: &str) {
    let rewritten = load(dir, true);
    let unmodified = load(dir, false);
    let engine = rewritten.engine().unwrap();
    assert_eq!(
        engine.logits_positions(),
        &LogitsPositions::Rewritten(if head == "MatMul" {
            "MatMul"
        } else {
            "MatMulInteger"
        }),
        "{dir}: {}",
        engine.logits_positions()
    );
    assert_eq!(
        engine.layout().logits_to_keep_input.as_deref(),
        Some("num_logits_to_keep")
    );
    assert!(
        matches!(
            unmodified.engine().unwrap().logits_positions(),
            LogitsPositions::AllPositions(why) if why.contains("turned off")
        ),
        "{dir}: {}",
        unmodified.engine().unwrap().logits_positions()
    );
    assert_eq!(
        unmodified.engine().unwrap().layout().logits_to_keep_input,
        None
    );

    let prompt = prompt();
    let a = prefill_logits(&rewritten, &prompt);
    let b = prefill_logits(&unmodified, &prompt);
    assert_eq!(a.len(), b.len(), "{dir}: vocabulary width");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-5 * scale,
        "{dir}: last-row logits differ by {worst} (largest logit {scale})"
    );
    assert_eq!(
        greedy_ids(&rewritten, &prompt, 12),
        greedy_ids(&unmodified, &prompt, 12),
        "{dir}: greedy ids"
    );
}

#[test]
fn tiny_float_variants_rewrite_exactly() {
    for variant in [
        "fp32",
        "fp16",
        "merged",
        "external-data",
        "no-position-ids",
        "no-kv",
        "short-context",
    ] {
        check(&format!("tiny-llama/{variant}"), "MatMul");
    }
}

#[test]
fn tiny_int8_rewrites_exactly() {
    // Tied head: quantize_dynamic leaves it a float MatMul.
    check("tiny-llama/int8", "MatMul");
    // Untied head: quantized, sliced after DynamicQuantizeLinear.
    check("tiny-llama/int8-untied-head", "MatMulInteger");
}

#[test]
fn smollm2_fp32_rewrites_exactly() {
    check("smollm2-135m-instruct", "MatMul");
}

#[test]
fn smollm2_int8_rewrites_exactly() {
    // SmolLM2 ties its head to the embeddings: quantize_dynamic leaves it a float MatMul.
    check("smollm2-135m-instruct-int8", "MatMul");
}
