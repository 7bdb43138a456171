//! Generation on the tiny random Llama-3.2-shaped decoders and on SmolLM2-135M-Instruct,
//! against goldens computed by ONNX Runtime's Python API (`scripts/setup/make_tiny_models.py`,
//! `scripts/setup/convert_smollm2.py`).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sphana_llm::{CancelToken, Error, FinishReason, Flow, GenerateParams, LoadOptions, Model};

fn tiny(variant: &str) -> Model {
    Model::load(
        common::model_dir(&format!("tiny-llama/{variant}")),
        &common::load_options(),
    )
    .unwrap_or_else(|e| panic!("loading tiny-llama/{variant}: {e}"))
}

fn greedy(max_new_tokens: usize, ignore_eos: bool) -> GenerateParams {
    GenerateParams {
        max_new_tokens,
        ignore_eos,
        ..Default::default()
    }
}

fn golden_prompts(variant: &str) -> Vec<serde_json::Value> {
    common::model_reference("tiny_llama")["variants"][variant]["prompts"]
        .as_array()
        .expect("prompts")
        .clone()
}

fn check_variant_greedy(variant: &str) {
    let model = tiny(variant);
    for prompt in golden_prompts(variant) {
        let prompt_ids = common::ids(&prompt["prompt_ids"]);
        let expected = common::ids(&prompt["new_ids"]);
        let result = model
            .generate_from_ids(&prompt_ids, &greedy(expected.len(), true), &mut |_| {
                Flow::Continue
            })
            .unwrap_or_else(|e| panic!("{variant}: {e}"));
        assert_eq!(
            result.token_ids,
            expected,
            "{variant}: greedy ids for a {}-token prompt",
            prompt_ids.len()
        );
        assert_eq!(result.stats.finish_reason, FinishReason::Length);
        assert_eq!(result.stats.prompt_tokens, prompt_ids.len());
    }
}

#[test]
fn greedy_ids_equal_reference_fp32() {
    check_variant_greedy("fp32");
}

#[test]
fn greedy_ids_equal_reference_fp16() {
    check_variant_greedy("fp16");
}

#[test]
fn greedy_ids_equal_reference_without_position_ids() {
    check_variant_greedy("no-position-ids");
}

#[test]
fn greedy_ids_equal_reference_without_kv_cache() {
    check_variant_greedy("no-kv");
}

#[test]
fn greedy_ids_equal_reference_merged_use_cache_branch() {
    check_variant_greedy("merged");
}

#[test]
fn greedy_ids_equal_reference_int8_quantize_dynamic() {
    check_variant_greedy("int8");
    // A quantized head (MatMulInteger), sliced by the load-time logits rewrite.
    check_variant_greedy("int8-untied-head");
}

#[test]
fn greedy_ids_equal_reference_external_data() {
    check_variant_greedy("external-data");
}

#[test]
fn cached_and_uncached_runs_agree() {
    let cached = tiny("fp32");
    let uncached = tiny("no-kv");
    assert!(cached.engine().unwrap().layout().has_kv_cache());
    assert!(!uncached.engine().unwrap().layout().has_kv_cache());
    for prompt in golden_prompts("fp32") {
        let ids = common::ids(&prompt["prompt_ids"]);
        let a = cached
            .generate_from_ids(&ids, &greedy(16, true), &mut |_| Flow::Continue)
            .unwrap();
        let b = uncached
            .generate_from_ids(&ids, &greedy(16, true), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(a.token_ids, b.token_ids);
    }
}

#[test]
fn stops_at_the_first_eos_of_the_set() {
    let model = tiny("fp32");
    assert_eq!(model.tokenizer().eos_ids(), &[128_001, 128_008, 128_009]);
    let mut checked = 0;
    for prompt in golden_prompts("fp32") {
        let Some(eos_at) = prompt["first_eos_index"].as_u64() else {
            continue;
        };
        let ids = common::ids(&prompt["prompt_ids"]);
        let expected = common::ids(&prompt["new_ids"]);
        let result = model
            .generate_from_ids(&ids, &greedy(24, false), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(result.stats.finish_reason, FinishReason::Eos);
        assert_eq!(result.token_ids, expected[..eos_at as usize]);
        checked += 1;
    }
    assert!(checked > 0, "the golden has no prompt that reaches EOS");
}

#[test]
fn generation_stops_when_the_context_is_full() {
    let model = tiny("short-context");
    assert_eq!(model.engine().unwrap().context_length(), Some(64));
    let prompt = golden_prompts("short-context")
        .into_iter()
        .find(|p| p["context_full"] == true)
        .expect("a prompt that fills the context");
    let ids = common::ids(&prompt["prompt_ids"]);
    let result = model
        .generate_from_ids(&ids, &greedy(100, true), &mut |_| Flow::Continue)
        .unwrap();
    assert_eq!(result.stats.finish_reason, FinishReason::ContextFull);
    assert_eq!(
        result.token_ids,
        common::ids(&prompt["new_ids_within_context"])
    );
    assert_eq!(
        result.token_ids.len() as u64,
        prompt["expected_new_tokens_until_context_full"]
            .as_u64()
            .unwrap()
    );

    let too_long: Vec<u32> = (0..64).map(|i| 1000 + i).collect();
    let err = model
        .generate_from_ids(&too_long, &greedy(4, true), &mut |_| Flow::Continue)
        .unwrap_err();
    assert!(matches!(err, Error::ContextOverflow(_)), "{err}");
}

#[test]
fn seeded_sampling_is_reproducible() {
    let model = tiny("fp32");
    let ids = common::ids(&golden_prompts("fp32")[1]["prompt_ids"]);
    let params = |seed| GenerateParams {
        max_new_tokens: 24,
        temperature: 1.5,
        top_k: 50,
        top_p: 0.95,
        seed,
        ignore_eos: true,
        ..Default::default()
    };
    let run = |seed| {
        model
            .generate_from_ids(&ids, &params(seed), &mut |_| Flow::Continue)
            .unwrap()
            .token_ids
    };
    let a = run(7);
    assert_eq!(a, run(7), "same seed, same output");
    let others: Vec<Vec<u32>> = (8..12).map(run).collect();
    assert!(
        others.iter().any(|o| *o != a),
        "different seeds all gave the same sample"
    );
}

#[test]
fn tokenizer_only_model_cannot_generate() {
    let model = Model::load(common::tokenizer_dir("llama3.2"), &LoadOptions::default()).unwrap();
    assert!(model.engine().is_none());
    let err = model
        .generate("Hello", &GenerateParams::default(), &mut |_| Flow::Continue)
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
}

#[test]
fn cuda_without_fallback_is_a_load_error_and_with_fallback_runs_on_cpu() {
    // The PyPI onnxruntime wheel has no CUDA provider, so CUDA cannot be enabled here.
    let mut options = common::load_options();
    options.execution_provider = sphana_llm::ExecutionProvider::Cuda;
    let err = match Model::load(common::model_dir("tiny-llama/fp32"), &options) {
        Err(e) => e,
        Ok(_) => panic!("CUDA was enabled on a CPU-only ONNX Runtime"),
    };
    assert!(
        matches!(err, Error::Runtime(_)) && err.to_string().contains("CUDA"),
        "{err}"
    );
    options.allow_cpu_fallback = true;
    let model = Model::load(common::model_dir("tiny-llama/fp32"), &options).unwrap();
    assert_eq!(
        model.engine().unwrap().provider(),
        sphana_llm::ExecutionProvider::Cpu
    );
}

fn smollm2(dir: &str) -> (Model, serde_json::Value) {
    let model = Model::load(common::model_dir(dir), &common::load_options()).unwrap();
    (model, common::model_reference("smollm2"))
}

fn check_smollm2(dir: &str, key: &str) {
    let (model, golden) = smollm2(dir);
    let prompt = golden["prompt_text"].as_str().unwrap();
    let params = GenerateParams {
        max_new_tokens: 48,
        parse_special: true,
        add_special: true,
        ..Default::default()
    };
    let chunks = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&chunks);
    let result = model
        .generate(prompt, &params, &mut |chunk| {
            sink.lock().unwrap().push(chunk.to_owned());
            Flow::Continue
        })
        .unwrap();
    assert_eq!(
        result.stats.prompt_tokens,
        golden["prompt_ids"].as_array().unwrap().len()
    );
    let reference = &golden["models"][key];
    let mut expected = common::ids(&reference["new_ids"]);
    if reference["stopped_at_eos"] == true {
        expected.pop();
        assert_eq!(result.stats.finish_reason, FinishReason::Eos);
    }
    assert_eq!(result.token_ids, expected, "{key}: greedy ids");
    assert_eq!(result.text, reference["text"].as_str().unwrap());
    assert!(result.text.contains("Paris"), "{}", result.text);
    assert_eq!(
        chunks.lock().unwrap().concat(),
        result.text,
        "stream chunks join to the text"
    );
}

#[test]
fn smollm2_answers_paris_fp32() {
    check_smollm2("smollm2-135m-instruct", "fp32");
}

#[test]
fn smollm2_answers_paris_int8() {
    check_smollm2("smollm2-135m-instruct-int8", "int8");
}

#[test]
fn stop_string_across_tokens_is_caught_and_not_emitted() {
    let (model, golden) = smollm2("smollm2-135m-instruct");
    let prompt = golden["prompt_text"].as_str().unwrap();
    // "France is" spans several tokens of the reference answer.
    let params = GenerateParams {
        max_new_tokens: 48,
        parse_special: true,
        stop_strings: vec!["ance is".into()],
        ..Default::default()
    };
    let mut streamed = String::new();
    let result = model
        .generate(prompt, &params, &mut |chunk| {
            streamed.push_str(chunk);
            Flow::Continue
        })
        .unwrap();
    assert_eq!(result.stats.finish_reason, FinishReason::StopString);
    assert_eq!(result.text, "The capital of Fr");
    assert_eq!(streamed, result.text);
}

#[test]
fn callback_stop_and_cancel_token_end_generation_within_one_token() {
    let model = tiny("fp32");
    let ids = common::ids(&golden_prompts("fp32")[2]["prompt_ids"]);
    let mut calls = 0;
    let result = model
        .generate_from_ids(&ids, &greedy(24, true), &mut |_| {
            calls += 1;
            Flow::Stop
        })
        .unwrap();
    assert_eq!(result.stats.finish_reason, FinishReason::Cancelled);
    assert_eq!(calls, 1);
    assert!(result.stats.generated_tokens <= 4, "{:?}", result.stats);

    let cancel = CancelToken::new();
    let params = GenerateParams {
        cancel: Some(cancel.clone()),
        ..greedy(100_000, true)
    };
    let cancel_after_first_text = cancel.clone();
    let mut generated_at_cancel = None;
    let mut count = 0usize;
    let result = model
        .generate_from_ids(&ids, &params, &mut |_| {
            count += 1;
            if count == 3 {
                let c = cancel_after_first_text.clone();
                std::thread::spawn(move || c.cancel()).join().unwrap();
                generated_at_cancel = Some(count);
            }
            Flow::Continue
        })
        .unwrap();
    assert_eq!(result.stats.finish_reason, FinishReason::Cancelled);
    assert!(generated_at_cancel.is_some());
    assert!(result.stats.generated_tokens <= 3 + 4, "{:?}", result.stats);

    // Cancelled before the start: nothing is generated.
    let result = model
        .generate_from_ids(&ids, &params, &mut |_| Flow::Continue)
        .unwrap();
    assert_eq!(result.stats.finish_reason, FinishReason::Cancelled);
    assert_eq!(result.stats.generated_tokens, 0);
}

#[test]
fn concurrent_generations_on_one_handle_match_single_runs() {
    let model = Arc::new(tiny("fp32"));
    let prompts: Vec<Vec<u32>> = golden_prompts("fp32")
        .iter()
        .map(|p| common::ids(&p["prompt_ids"]))
        .collect();
    let expected: Vec<Vec<u32>> = prompts
        .iter()
        .map(|ids| {
            model
                .generate_from_ids(ids, &greedy(12, true), &mut |_| Flow::Continue)
                .unwrap()
                .token_ids
        })
        .collect();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let model = Arc::clone(&model);
            let ids = prompts[t % prompts.len()].clone();
            let want = expected[t % prompts.len()].clone();
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let got = model
                        .generate_from_ids(&ids, &greedy(12, true), &mut |_| Flow::Continue)
                        .unwrap();
                    assert_eq!(got.token_ids, want);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn tokenizer_path_option_loads_the_tokenizer_from_elsewhere() {
    // A model directory whose tokenizer lives elsewhere (the service configures both paths).
    let dir = std::env::temp_dir().join(format!("sphana-llm-model-only-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = common::model_dir("tiny-llama/fp32");
    for file in ["model.onnx", "config.json", "generation_config.json"] {
        std::fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    let without = Model::load(&dir, &common::load_options());
    assert!(
        matches!(without, Err(Error::Io { .. })),
        "no tokenizer in the directory"
    );
    let options = LoadOptions {
        tokenizer_path: Some(common::tokenizer_dir("llama3.2").join("tokenizer.json")),
        ..common::load_options()
    };
    let model = Model::load(&dir, &options).unwrap();
    let prompt = &golden_prompts("fp32")[1];
    let ids = common::ids(&prompt["prompt_ids"]);
    let result = model
        .generate_from_ids(&ids, &greedy(8, true), &mut |_| Flow::Continue)
        .unwrap();
    assert_eq!(result.token_ids, common::ids(&prompt["new_ids"])[..8]);
    std::fs::remove_dir_all(&dir).unwrap();
}
