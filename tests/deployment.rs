//! Sphana's own deployment: a folder with only the ONNX file (renamed `llm_generator.onnx`)
//! and `tokenizer.json`. The EOS set must then come from the vocabulary (Llama 3:
//! `<|end_of_text|>` `<|eom_id|>` `<|eot_id|>`; ChatML: `<|endoftext|>` `<|im_end|>`), the
//! model directory's own `generation_config.json` must win over a tokenizer given from
//! elsewhere, and the `eos_token_ids` / `context_length` load options override the files.

mod common;

use std::path::{Path, PathBuf};

use sphana_llm::EosSource;
use sphana_llm::{Error, FinishReason, Flow, GenerateParams, Model};

/// A fresh temporary directory holding links named as Sphana's guide names its two files.
fn sphana_folder(name: &str, model_dir: &Path) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sphana-llm-deployment-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(model_dir.join("model.onnx"), dir.join("llm_generator.onnx"))
        .unwrap();
    std::os::unix::fs::symlink(model_dir.join("tokenizer.json"), dir.join("tokenizer.json"))
        .unwrap();
    dir
}

/// The kind of prompt Sphana's QueryService sends.
fn rag_prompt() -> String {
    "Answer the question based on the following context:\n\n\
     Context (Score: 0.87): Paris is the capital and largest city of France. It lies on the Seine.\n\
     Context (Score: 0.74): France is a country in Western Europe; its capital is Paris.\n\n\
     Question: What is the capital of France?\nAnswer:"
        .to_owned()
}

#[test]
fn a_bare_llama32_tokenizer_json_derives_the_llama3_end_tokens() {
    let dir = sphana_folder("llama", &common::model_dir("tiny-llama/fp32"));
    let model = Model::load(&dir, &common::load_options()).unwrap();
    let t = model.tokenizer();
    assert_eq!(t.eos_ids(), &[128_001, 128_008, 128_009]);
    assert_eq!(t.eos_source(), &EosSource::Vocabulary);
    for (id, text) in [
        (128_001, "<|end_of_text|>"),
        (128_008, "<|eom_id|>"),
        (128_009, "<|eot_id|>"),
    ] {
        assert_eq!(t.id_to_token(id).as_deref(), Some(text));
        assert!(t.is_special(id));
    }
    assert_eq!(
        model.engine().unwrap().context_length(),
        None,
        "no config.json"
    );
}

#[test]
fn a_bare_smollm2_tokenizer_json_derives_the_chatml_end_tokens() {
    let golden = common::golden("models/smollm2.json");
    let dir = sphana_folder("smollm2", &common::model_dir("smollm2-135m-instruct"));
    let model = Model::load(&dir, &common::load_options()).unwrap();
    let t = model.tokenizer();
    let specials: Vec<&str> = golden["special_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // <|endoftext|> and <|im_end|>, looked up by their text in the vocabulary.
    let expected: Vec<u32> = ["<|endoftext|>", "<|im_end|>"]
        .iter()
        .map(|s| {
            assert!(specials.contains(s), "{s} is a special token of SmolLM2");
            t.token_to_id(s).unwrap()
        })
        .collect();
    assert_eq!(t.eos_ids(), &expected[..]);
    assert!(
        t.eos_ids()
            .contains(&(golden["eos_token_ids"][0].as_u64().unwrap() as u32)),
        "the derived set holds the id the model's own configuration names"
    );
    assert_eq!(t.eos_source(), &EosSource::Vocabulary);
}

#[test]
fn sphanas_plain_rag_prompt_ends_by_itself_on_smollm2() {
    let dir = sphana_folder("smollm2-rag", &common::model_dir("smollm2-135m-instruct"));
    let model = Model::load(&dir, &common::load_options()).unwrap();
    let params = GenerateParams {
        max_new_tokens: 200,
        ..Default::default()
    };
    let result = model
        .generate(&rag_prompt(), &params, &mut |_| Flow::Continue)
        .unwrap();
    assert_eq!(
        result.stats.finish_reason,
        FinishReason::Eos,
        "{:?}",
        result.text
    );
    assert!(result.text.contains("Paris"), "{:?}", result.text);
}

#[test]
fn the_rag_prompt_ends_at_the_derived_eos_on_the_tiny_llama_as_with_its_configuration() {
    // The same ONNX file with its full directory (generation_config.json names 128001, 128008,
    // 128009) and as Sphana deploys it (derived set): identical answers, ending at EOS.
    let dir = sphana_folder("tiny-rag", &common::model_dir("tiny-llama/fp32"));
    let bare = Model::load(&dir, &common::load_options()).unwrap();
    let configured = Model::load(
        common::model_dir("tiny-llama/fp32"),
        &common::load_options(),
    )
    .unwrap();
    assert_eq!(bare.tokenizer().eos_ids(), configured.tokenizer().eos_ids());
    let params = GenerateParams {
        max_new_tokens: 200,
        ..Default::default()
    };
    let a = bare
        .generate(&rag_prompt(), &params, &mut |_| Flow::Continue)
        .unwrap();
    let b = configured
        .generate(&rag_prompt(), &params, &mut |_| Flow::Continue)
        .unwrap();
    assert_eq!(a.stats.finish_reason, FinishReason::Eos);
    assert_eq!(a.token_ids, b.token_ids);
    assert!(a.token_ids.len() < 200);
}

#[test]
fn the_model_directorys_generation_config_wins_over_the_tokenizer_directory() {
    // The tokenizer directory (Meta's Llama 3.2 files) names 128001, 128008, 128009 in its
    // generation_config.json and <|eot_id|> in tokenizer_config.json; the model directory's
    // generation_config.json says 128008, and wins.
    let model_dir = sphana_folder("precedence", &common::model_dir("tiny-llama/fp32"));
    std::fs::write(
        model_dir.join("generation_config.json"),
        r#"{"eos_token_id": [128008]}"#,
    )
    .unwrap();
    let tokenizer_dir = common::tokenizer_dir("llama3.2");
    let mut options = common::load_options();
    options.tokenizer_path = Some(tokenizer_dir.clone());
    let model = Model::load(&model_dir, &options).unwrap();
    assert_eq!(model.tokenizer().eos_ids(), &[128_008]);
    assert_eq!(
        model.tokenizer().eos_source(),
        &EosSource::GenerationConfig(model_dir.join("generation_config.json"))
    );
    // A config.json in the model directory also outranks the tokenizer directory.
    std::fs::remove_file(model_dir.join("generation_config.json")).unwrap();
    std::fs::write(model_dir.join("config.json"), r#"{"eos_token_id": 128001}"#).unwrap();
    let model = Model::load(&model_dir, &options).unwrap();
    assert_eq!(model.tokenizer().eos_ids(), &[128_001]);
    assert_eq!(
        model.tokenizer().eos_source(),
        &EosSource::ModelConfig(model_dir.join("config.json"))
    );
    // Without either, the tokenizer directory's own files decide.
    std::fs::remove_file(model_dir.join("config.json")).unwrap();
    let model = Model::load(&model_dir, &options).unwrap();
    assert_eq!(model.tokenizer().eos_ids(), &[128_001, 128_008, 128_009]);
    assert_eq!(
        model.tokenizer().eos_source(),
        &EosSource::GenerationConfig(tokenizer_dir.join("generation_config.json"))
    );
}

#[test]
fn the_eos_load_option_overrides_every_file_and_is_checked() {
    let mut options = common::load_options();
    options.eos_token_ids = Some(vec![128_006]);
    let model = Model::load(common::model_dir("tiny-llama/fp32"), &options).unwrap();
    assert_eq!(model.tokenizer().eos_ids(), &[128_006]);
    assert_eq!(model.tokenizer().eos_source(), &EosSource::LoadOption);

    options.eos_token_ids = Some(vec![]);
    let model = Model::load(common::model_dir("tiny-llama/fp32"), &options).unwrap();
    assert!(model.tokenizer().eos_ids().is_empty());

    options.eos_token_ids = Some(vec![128_256]);
    match Model::load(common::model_dir("tiny-llama/fp32"), &options) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("128256"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("an EOS id outside the vocabulary was accepted"),
    }
}

#[test]
fn the_context_length_option_limits_generation_like_config_json() {
    // short-context's config.json says 64; the fp32 model with the option must stop at the
    // same place (prompt + generated <= 64) with the same ids as the reference.
    let reference = common::model_reference("tiny_llama");
    let max_new_tokens = reference["max_new_tokens"].as_u64().unwrap() as usize;
    let mut options = common::load_options();
    options.context_length = Some(64);
    let model = Model::load(common::model_dir("tiny-llama/fp32"), &options).unwrap();
    assert_eq!(model.engine().unwrap().context_length(), Some(64));
    let mut checked = 0;
    for p in reference["variants"]["short-context"]["prompts"]
        .as_array()
        .unwrap()
    {
        let prompt = common::ids(&p["prompt_ids"]);
        let expected = common::ids(&p["new_ids_within_context"]);
        let result = model
            .generate_from_ids(
                &prompt,
                &GenerateParams {
                    max_new_tokens,
                    ignore_eos: true,
                    ..Default::default()
                },
                &mut |_| Flow::Continue,
            )
            .unwrap();
        assert_eq!(result.token_ids, expected);
        if p["context_full"] == true {
            assert_eq!(result.stats.finish_reason, FinishReason::ContextFull);
            checked += 1;
        } else {
            assert_eq!(result.stats.finish_reason, FinishReason::Length);
        }
    }
    assert!(checked > 0, "a prompt fills the 64-token context");
    options.context_length = None;
    let unlimited = Model::load(common::model_dir("tiny-llama/fp32"), &options).unwrap();
    assert_eq!(unlimited.engine().unwrap().context_length(), Some(131_072));
}

#[test]
fn a_tokenizer_without_a_template_is_named_in_the_chat_error() {
    let mut options = common::load_options();
    let tokenizer = common::model_dir("tiny-llama/fp32").join("tokenizer.json");
    options.tokenizer_path = Some(tokenizer.clone());
    let model = Model::load(common::model_dir("tiny-llama/fp32"), &options).unwrap();
    let err = model
        .apply_chat_template(
            &[sphana_llm::ChatMessage::new("user", "hi")],
            true,
            &Default::default(),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains(tokenizer.to_str().unwrap()),
        "{err}"
    );
}
