//! Chunked prefill (`Engine::prefill`): a prompt read in chunks, each attending to the
//! cache of the ones before, gives the greedy ids ONNX Runtime Python computes for the
//! prompt in one run (the committed references), on every float tiny variant and SmolLM2,
//! with chunk sizes that split every prompt into several runs; and the chunked last-row
//! logits equal the one-run ones within float rounding.

mod common;

use sphana_llm::{Flow, GenerateParams, LoadOptions, Model};

fn load(dir: &str, prefill_chunk_tokens: usize) -> Model {
    Model::load(
        common::model_dir(dir),
        &LoadOptions {
            prefill_chunk_tokens,
            ..common::load_options()
        },
    )
    .unwrap_or_else(|e| panic!("loading {dir}: {e}"))
}

fn greedy(n: usize) -> GenerateParams {
    GenerateParams {
        max_new_tokens: n,
        ignore_eos: true,
        ..Default::default()
    }
}

#[test]
fn chunked_prefill_gives_the_reference_ids_on_the_float_tiny_variants() {
    let reference = common::model_reference("tiny_llama");
    for variant in [
        "fp32",
        "merged",
        "external-data",
        "no-position-ids",
        "short-context",
        "fp16",
    ] {
        for chunk in [1, 5, 16] {
            let model = load(&format!("tiny-llama/{variant}"), chunk);
            assert_eq!(model.engine().unwrap().prefill_chunk_tokens(), chunk);
            for prompt in reference["variants"][variant]["prompts"]
                .as_array()
                .unwrap()
            {
                let prompt_ids = common::ids(&prompt["prompt_ids"]);
                let want = common::ids(&prompt["new_ids"]);
                let got = model
                    .generate_from_ids(&prompt_ids, &greedy(want.len()), &mut |_| Flow::Continue)
                    .unwrap_or_else(|e| panic!("{variant}: {e}"));
                let want_len = if variant == "short-context" {
                    prompt["new_ids_within_context"].as_array().unwrap().len()
                } else {
                    want.len()
                };
                assert_eq!(
                    got.token_ids,
                    want[..want_len],
                    "{variant}, chunks of {chunk}, a {}-token prompt",
                    prompt_ids.len()
                );
            }
        }
    }
}

#[test]
fn chunked_prefill_gives_smollm2_its_reference_answer() {
    let golden = common::model_reference("smollm2");
    let prompt_ids = common::ids(&golden["prompt_ids"]);
    let reference = &golden["models"]["fp32"];
    let mut want = common::ids(&reference["new_ids"]);
    if reference["stopped_at_eos"] == true {
        want.pop();
    }
    for chunk in [4, 13] {
        assert!(
            prompt_ids.len() > 2 * chunk,
            "the prompt is split into several runs"
        );
        let model = load("smollm2-135m-instruct", chunk);
        let params = GenerateParams {
            max_new_tokens: want.len(),
            ..Default::default()
        };
        let got = model
            .generate_from_ids(&prompt_ids, &params, &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(got.token_ids, want, "chunks of {chunk}");
    }
}

#[test]
fn chunked_last_row_logits_equal_one_run_within_rounding() {
    let prompt: Vec<u32> = (0..96u32).map(|i| 300 + i * 53 % 9000).collect();
    for dir in ["tiny-llama/fp32", "smollm2-135m-instruct"] {
        let logits = |chunk: usize| {
            let model = load(dir, chunk);
            let engine = model.engine().unwrap();
            let mut sequence = engine.new_sequence();
            engine.prefill(&mut sequence, &prompt).unwrap();
            assert_eq!(sequence.len(), prompt.len());
            sequence.logits().to_vec()
        };
        let one = logits(0);
        let scale = one.iter().fold(0f32, |m, v| m.max(v.abs()));
        for chunk in [7, 32, 95] {
            let chunked = logits(chunk);
            let worst = chunked
                .iter()
                .zip(&one)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                worst <= 1e-4 * scale,
                "{dir}, chunks of {chunk}: differs by {worst} (largest logit {scale})"
            );
        }
    }
}
