//! Structured output: generations constrained by a JSON Schema, a regular expression or a
//! Lark grammar (llguidance) always match it — checked by independent validators (Python
//! `jsonschema`, `re`, `lark`: `scripts/goldens/check_structured.py`) on SmolLM2 fp32 and
//! INT8, greedy and sampled, alone and four at a time in one batch with a different
//! constraint per row; the token-bytes bridge is exact for every tokenizer format; streaming,
//! stop strings, cancellation, speculation and `max_new_tokens` keep their meaning; bad
//! constraints are refused before anything runs and leave the handle usable.

mod common;

use std::process::Command;
use std::sync::{Arc, Barrier};

use sphana_llm::{
    CancelToken, ChatMessage, ChatOptions, Constraint, EncodeOptions, Error, FinishReason, Flow,
    GenerateParams, Generation, Model, Tokenizer, MAX_CONSTRAINT_BYTES,
};

const FP32: &str = "smollm2-135m-instruct";
const INT8: &str = "smollm2-135m-instruct-int8";

fn load(dir: &str) -> Model {
    Model::load(common::model_dir(dir), &common::load_options())
        .unwrap_or_else(|e| panic!("loading {dir}: {e}"))
}

/// Twelve schemas of the shapes a RAG service asks for (nested objects, arrays with
/// min/max items, enums, bounded numbers, required and optional fields, string patterns):
/// `tests/data/structured_schemas.json`, shared with `scripts/bench/bench_structured.py`.
fn schemas() -> Vec<(String, serde_json::Value)> {
    let all: serde_json::Value =
        serde_json::from_str(include_str!("data/structured_schemas.json")).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s["schema"].clone()))
        .collect()
}

const PROMPTS: [&str; 3] = [
    "Context (Score: 0.87) The Eiffel Tower was completed in 1889 in Paris, France, and is 330 metres tall. Question: Describe the Eiffel Tower. Answer in JSON.",
    "Give me the information as JSON about a famous book.",
    "Reply with JSON only: what is the weather like today?",
];

/// One output to check: the kind of constraint, its text and the generated text.
struct Output {
    what: String,
    kind: &'static str,
    constraint: String,
    text: String,
}

impl Output {
    fn new(what: String, constraint: &Constraint, text: String) -> Self {
        let kind = match constraint {
            Constraint::JsonSchema(_) => "json_schema",
            Constraint::Regex(_) => "regex",
            Constraint::Lark(_) => "lark",
            Constraint::JsonObject => "json_object",
        };
        Self {
            what,
            kind,
            constraint: constraint.text().to_owned(),
            text,
        }
    }
}

/// Every output passes the independent validator.
fn assert_all_valid(outputs: &[Output]) {
    let request: Vec<serde_json::Value> = outputs
        .iter()
        .map(|o| serde_json::json!({"kind": o.kind, "constraint": o.constraint, "text": o.text}))
        .collect();
    let verdicts = common::check_structured(&request);
    let failures: Vec<String> = outputs
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| !v.is_empty())
        .map(|(o, v)| format!("{}: {:?} — {v}", o.what, o.text))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} outputs do not validate:\n{}",
        failures.len(),
        outputs.len(),
        failures.join("\n")
    );
}

fn chat(model: &Model, prompt: &str, params: &GenerateParams) -> Generation {
    model
        .generate_chat(
            &[ChatMessage::new("user", prompt)],
            &ChatOptions::default(),
            params,
            &mut |_| Flow::Continue,
        )
        .unwrap_or_else(|e| panic!("{prompt:?}: {e}"))
}

fn schema_constraint(schema: &serde_json::Value) -> Constraint {
    Constraint::JsonSchema(schema.to_string())
}

/// A finished constrained generation: the grammar completed it, no special token inside.
fn assert_complete(model: &Model, what: &str, g: &Generation) {
    assert_eq!(
        g.stats.finish_reason,
        FinishReason::Eos,
        "{what}: {:?} did not complete",
        g.text
    );
    let tokenizer = model.tokenizer();
    assert!(
        g.token_ids.iter().all(|&id| !tokenizer.is_special(id)),
        "{what}: a special token inside the text"
    );
}

/// Every schema × the first `greedy_prompts` prompts, greedy, and every schema once sampled
/// (the seed and the prompt change from schema to schema).
fn schemas_validate(dir: &str, greedy_prompts: usize) {
    let model = load(dir);
    let mut outputs = Vec::new();
    for (index, (name, schema)) in schemas().into_iter().enumerate() {
        let constraint = schema_constraint(&schema);
        for prompt in &PROMPTS[..greedy_prompts] {
            let params = GenerateParams {
                max_new_tokens: 200,
                constraint: Some(constraint.clone()),
                ..Default::default()
            };
            let g = chat(&model, prompt, &params);
            let what = format!("{dir} {name} greedy {prompt:?}");
            assert_complete(&model, &what, &g);
            assert!(g.stats.constraint_ms > 0.0, "{what}: constraint_ms");
            outputs.push(Output::new(what, &constraint, g.text));
        }
        let seed = [7, 1234][index % 2];
        let params = GenerateParams {
            max_new_tokens: 200,
            temperature: 0.9,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.02,
            repetition_penalty: 1.1,
            seed,
            constraint: Some(constraint.clone()),
            ..Default::default()
        };
        let g = chat(&model, PROMPTS[index % PROMPTS.len()], &params);
        let what = format!("{dir} {name} sampled seed {seed}");
        assert_complete(&model, &what, &g);
        outputs.push(Output::new(what, &constraint, g.text));
    }
    assert_all_valid(&outputs);
}

#[test]
fn json_schemas_always_validate_smollm2_fp32() {
    schemas_validate(FP32, 2);
}

#[test]
fn json_schemas_always_validate_smollm2_int8() {
    schemas_validate(INT8, 1);
}

#[test]
fn any_json_object_parses() {
    let model = load(FP32);
    // Free-form JSON has unbounded strings, and a 135M model asked for an open-ended
    // object may run on in one (then it ends ConstraintIncomplete); these prompts say what
    // the object holds.
    let prompts = [
        PROMPTS[0],
        PROMPTS[2],
        "Return a JSON object with the keys \"city\" and \"country\" for the capital of France.",
    ];
    let outputs: Vec<Output> = prompts
        .iter()
        .map(|p| {
            let params = GenerateParams {
                max_new_tokens: 200,
                constraint: Some(Constraint::JsonObject),
                ..Default::default()
            };
            let g = chat(&model, p, &params);
            assert_complete(&model, p, &g);
            Output::new(
                format!("json object {p:?}"),
                &Constraint::JsonObject,
                g.text,
            )
        })
        .collect();
    assert_all_valid(&outputs);
}

fn regexes() -> Vec<&'static str> {
    vec![
        r"(yes|no)",
        r"[0-9]{4}",
        r"(grounded|not grounded), because [a-z ]{5,40}",
        r"[A-Z][a-z]{1,12}( [A-Z][a-z]{1,12}){0,3}",
        r"\d{1,3}(\.\d{1,2})? (metres|meters|feet)",
        r"https://[a-z]{3,12}\.(org|com)/[a-z]{1,10}",
    ]
}

fn lark_grammars() -> Vec<&'static str> {
    vec![
        "start: \"The answer is \" ANSWER \".\"\nANSWER: \"yes\" | \"no\" | \"unknown\"",
        "start: item | item \", \" item | item \", \" item \", \" item\nitem: WORD\nWORD: /[a-z]{2,12}/",
        "start: \"SELECT \" cols \" FROM \" NAME\ncols: NAME | NAME \", \" NAME\nNAME: /[a-z_]{1,12}/",
        "start: NUMBER OP NUMBER (OP NUMBER)?\nOP: \" + \" | \" - \" | \" * \"\nNUMBER: /[0-9]{1,4}/",
    ]
}

#[test]
fn regex_and_lark_outputs_match_on_fp32_and_int8() {
    let mut outputs = Vec::new();
    for dir in [FP32, INT8] {
        let model = load(dir);
        let constraints = regexes()
            .into_iter()
            .map(|r| Constraint::Regex(r.into()))
            .chain(
                lark_grammars()
                    .into_iter()
                    .map(|g| Constraint::Lark(g.into())),
            );
        for (i, constraint) in constraints.enumerate() {
            for (mode, temperature) in [("greedy", 0.0), ("sampled", 1.0)] {
                let params = GenerateParams {
                    max_new_tokens: 128,
                    temperature,
                    seed: i as u64,
                    constraint: Some(constraint.clone()),
                    ..Default::default()
                };
                let g = chat(&model, PROMPTS[i % PROMPTS.len()], &params);
                let what = format!("{dir} {} {mode} {:?}", constraint.kind(), constraint.text());
                // Every pattern here is bounded, so each generation completes.
                assert_complete(&model, &what, &g);
                outputs.push(Output::new(what, &constraint, g.text));
            }
        }
    }
    assert_all_valid(&outputs);
}

/// Four concurrent generations with four different constraints share the batch; each
/// validates and, on the float model, equals its own run alone token for token.
fn batch_of_four(dir: &str, exact: bool) {
    let model = Arc::new(load(dir));
    assert!(model.engine().unwrap().max_decode_batch() >= 4);
    let all = schemas();
    let constraints = [
        schema_constraint(&all[0].1),
        Constraint::Regex(regexes()[2].into()),
        schema_constraint(&all[9].1),
        Constraint::Lark(lark_grammars()[1].into()),
    ];
    let params: Vec<GenerateParams> = constraints
        .iter()
        .map(|c| GenerateParams {
            max_new_tokens: 48,
            constraint: Some(c.clone()),
            ..Default::default()
        })
        .collect();
    let alone: Vec<Generation> = params
        .iter()
        .enumerate()
        .map(|(i, p)| chat(&model, PROMPTS[i % PROMPTS.len()], p))
        .collect();
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = params
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, p)| {
            let model = Arc::clone(&model);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                model.generate_chat(
                    &[ChatMessage::new("user", PROMPTS[i % PROMPTS.len()])],
                    &ChatOptions::default(),
                    &p,
                    &mut |_| Flow::Continue,
                )
            })
        })
        .collect();
    let together: Vec<Generation> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    assert!(
        together.iter().any(|g| g.stats.batched_steps > 0),
        "{dir}: no step ran batched"
    );
    let mut outputs = Vec::new();
    for (i, (c, (a, b))) in constraints
        .iter()
        .zip(alone.iter().zip(&together))
        .enumerate()
    {
        if exact {
            assert_eq!(a.token_ids, b.token_ids, "{dir} row {i}: batched != alone");
        }
        // Schemas and the Lark list may run out of tokens (ConstraintIncomplete is then
        // checked separately); here every row's text so far must be complete or a match.
        if b.stats.finish_reason != FinishReason::ConstraintIncomplete {
            outputs.push(Output::new(
                format!("{dir} batched row {i}"),
                c,
                b.text.clone(),
            ));
        }
    }
    assert!(outputs.len() >= 3, "{dir}: too few rows completed");
    assert_all_valid(&outputs);
}

#[test]
fn four_rows_with_different_constraints_in_one_batch_fp32() {
    batch_of_four(FP32, true);
}

#[test]
fn four_rows_with_different_constraints_in_one_batch_int8() {
    batch_of_four(INT8, false);
}

#[test]
fn too_few_tokens_end_with_constraint_incomplete_and_the_partial_text() {
    let model = load(FP32);
    let schema = schema_constraint(&schemas()[3].1);
    let full = chat(
        &model,
        PROMPTS[0],
        &GenerateParams {
            max_new_tokens: 200,
            constraint: Some(schema.clone()),
            ..Default::default()
        },
    );
    assert_eq!(full.stats.finish_reason, FinishReason::Eos);
    let cut = full.token_ids.len() / 2;
    let mut streamed = String::new();
    let partial = model
        .generate_chat(
            &[ChatMessage::new("user", PROMPTS[0])],
            &ChatOptions::default(),
            &GenerateParams {
                max_new_tokens: cut,
                constraint: Some(schema),
                ..Default::default()
            },
            &mut |chunk| {
                streamed.push_str(chunk);
                Flow::Continue
            },
        )
        .unwrap();
    assert_eq!(
        partial.stats.finish_reason,
        FinishReason::ConstraintIncomplete
    );
    assert_eq!(partial.token_ids, full.token_ids[..cut]);
    assert!(full.text.starts_with(&partial.text), "{:?}", partial.text);
    assert!(!partial.text.is_empty());
    assert_eq!(streamed, partial.text, "streamed chunks = the text");
}

#[test]
fn streaming_stop_strings_and_cancellation_keep_their_meaning() {
    let model = load(FP32);
    let schema = schema_constraint(&schemas()[4].1);
    let base = GenerateParams {
        max_new_tokens: 200,
        constraint: Some(schema),
        ..Default::default()
    };
    let mut chunks = Vec::new();
    let full = model
        .generate_chat(
            &[ChatMessage::new("user", PROMPTS[0])],
            &ChatOptions::default(),
            &base,
            &mut |c| {
                chunks.push(c.to_owned());
                Flow::Continue
            },
        )
        .unwrap();
    assert_eq!(full.stats.finish_reason, FinishReason::Eos);
    assert!(chunks.len() > 1, "streamed in pieces");
    assert_eq!(chunks.concat(), full.text);

    // A stop string inside the constrained text ends it there.
    let stop = ", ";
    let at = full
        .text
        .find(stop)
        .expect("a list of facts has a separator");
    let stopped = chat(
        &model,
        PROMPTS[0],
        &GenerateParams {
            stop_strings: vec![stop.into()],
            ..base.clone()
        },
    );
    assert_eq!(stopped.stats.finish_reason, FinishReason::StopString);
    assert_eq!(stopped.text, full.text[..at]);

    // Cancelled from the callback after the first chunk, and by a token cancelled before.
    let mut seen = 0;
    let cancelled = model
        .generate_chat(
            &[ChatMessage::new("user", PROMPTS[0])],
            &ChatOptions::default(),
            &base,
            &mut |_| {
                seen += 1;
                Flow::Stop
            },
        )
        .unwrap();
    assert_eq!(cancelled.stats.finish_reason, FinishReason::Cancelled);
    assert_eq!(seen, 1);
    let token = CancelToken::default();
    token.cancel();
    let pre = chat(
        &model,
        PROMPTS[0],
        &GenerateParams {
            cancel: Some(token),
            ..base
        },
    );
    assert_eq!(pre.stats.finish_reason, FinishReason::Cancelled);
    assert!(pre.token_ids.is_empty());
}

#[test]
fn speculation_keeps_constrained_greedy_output() {
    let model = load(FP32);
    // An answer that copies from the context: prompt lookup drafts it.
    let schema = schema_constraint(&schemas()[0].1);
    let base = GenerateParams {
        max_new_tokens: 120,
        constraint: Some(schema.clone()),
        ..Default::default()
    };
    let prompt = "Context (Score: 0.91) [1] The Great Barrier Reef is the world's largest coral reef system, composed of over 2,900 individual reefs. [2] It is located in the Coral Sea, off the coast of Queensland, Australia. Question: Where is the Great Barrier Reef? Answer in JSON with the answer copied from the context and the passage numbers.";
    let plain = chat(&model, prompt, &base);
    let speculative = chat(
        &model,
        prompt,
        &GenerateParams {
            prompt_lookup_tokens: 8,
            ..base
        },
    );
    assert_eq!(plain.token_ids, speculative.token_ids);
    assert_eq!(plain.stats.finish_reason, speculative.stats.finish_reason);
    assert!(speculative.stats.draft_tokens > 0, "nothing was drafted");
    assert_all_valid(&[Output::new("speculative".into(), &schema, speculative.text)]);
}

fn refused(model: &Model, constraint: Constraint) -> String {
    let mut called = false;
    let result = model.generate_chat(
        &[ChatMessage::new("user", "Hello")],
        &ChatOptions::default(),
        &GenerateParams {
            max_new_tokens: 8,
            constraint: Some(constraint.clone()),
            ..Default::default()
        },
        &mut |_| {
            called = true;
            Flow::Continue
        },
    );
    assert!(!called, "{constraint:?}: text was generated");
    match result {
        Err(Error::InvalidArgument(message)) => message,
        other => panic!("{constraint:?}: expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn bad_constraints_are_refused_before_anything_runs_and_the_handle_stays_usable() {
    let model = load(FP32);
    let plain = GenerateParams {
        max_new_tokens: 8,
        ..Default::default()
    };
    let before = chat(&model, "Hello", &plain);
    let big = format!(
        "{{\"type\": \"object\", \"description\": \"{}\"}}",
        "x".repeat(1 << 20)
    );
    let at_most = format!("at most {MAX_CONSTRAINT_BYTES}");
    let cases: Vec<(Constraint, Vec<&str>)> = vec![
        (
            Constraint::JsonSchema("{\"type\": \"object\", \"properties\": {".into()),
            vec!["not valid JSON", "line 1", "column"],
        ),
        (
            Constraint::JsonSchema("[1, 2]".into()),
            vec!["object or a boolean", "an array"],
        ),
        (
            Constraint::JsonSchema("{\"type\": \"string\", \"format\": \"no-such-format\"}".into()),
            vec!["invalid JSON Schema", "no-such-format"],
        ),
        (
            Constraint::JsonSchema("{\"type\": \"objekt\"}".into()),
            vec!["invalid JSON Schema", "objekt"],
        ),
        (
            Constraint::Regex("(abc".into()),
            vec!["invalid regular expression"],
        ),
        (
            Constraint::Lark("start: \"a\" (".into()),
            vec!["invalid Lark grammar"],
        ),
        (
            Constraint::Lark("start: missing_rule".into()),
            vec!["invalid Lark grammar", "missing_rule"],
        ),
        (
            Constraint::Lark(String::new()),
            vec!["Lark grammar is empty"],
        ),
        (
            Constraint::Regex(String::new()),
            vec!["regular expression is empty"],
        ),
        (Constraint::JsonSchema(big), vec!["bytes", &at_most]),
    ];
    for (constraint, needles) in cases {
        let message = refused(&model, constraint.clone());
        for needle in needles {
            assert!(
                message.contains(needle),
                "{:?}: message {message:?} does not say {needle:?}",
                &constraint.text()[..constraint.text().len().min(60)]
            );
        }
    }
    let after = chat(&model, "Hello", &plain);
    assert_eq!(before.token_ids, after.token_ids, "the handle still works");
}

/// The token bytes llguidance matches against concatenate to exactly what the tokenizer
/// decodes, for every tokenizer format the library reads; special tokens have none.
#[test]
fn token_bytes_concatenate_to_the_decoded_text_for_every_tokenizer() {
    let names = [
        "gpt2",
        "llama3.2",
        "llama3-tiktoken",
        "qwen3",
        "gemma",
        "gemma3",
        "llama2-spm",
        "mistral-v1-spm",
        "mistral-v1-json",
        "mistral-v3-spm",
    ];
    let inputs = common::inputs();
    for name in names {
        let tokenizer = Tokenizer::from_path(&common::tokenizer_dir(name), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let table = tokenizer
            .token_bytes()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(table.len(), tokenizer.vocab_size(), "{name}");
        for (id, bytes) in table.iter().enumerate() {
            if tokenizer.is_special(id as u32) {
                assert!(bytes.is_none(), "{name}: special id {id} has bytes");
            }
        }
        for (input, text) in &inputs {
            let ids = tokenizer
                .encode(
                    text,
                    EncodeOptions {
                        add_special: false,
                        parse_special: false,
                    },
                )
                .unwrap();
            let mut joined = Vec::new();
            for &id in &ids {
                match &table[id as usize] {
                    Some(b) => joined.extend_from_slice(b),
                    None => panic!("{name} {input}: id {id} in a text has no bytes"),
                }
            }
            let decoded = tokenizer.decode(&ids, false).unwrap();
            // SentencePiece adds a leading space (its dummy prefix) that decoding strips.
            let joined = String::from_utf8(joined).expect("whole text is UTF-8");
            assert!(
                joined == decoded || joined.strip_prefix(' ') == Some(&decoded),
                "{name} {input}: token bytes {joined:?} != decoded {decoded:?}"
            );
        }
    }
}

/// The CLI's `--json-schema FILE`, `--regex`, `--grammar FILE` and `--json-object`: the
/// printed answer validates; two constraints at once, or a bad one, are refused.
#[test]
fn cli_constraint_flags() {
    let exe = env!("CARGO_BIN_EXE_sphana-llm");
    let dir = std::env::temp_dir().join(format!("sphana-structured-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = schemas()[3].1.to_string();
    let grammar = lark_grammars()[0];
    std::fs::write(dir.join("schema.json"), &schema).unwrap();
    std::fs::write(dir.join("grammar.lark"), grammar).unwrap();
    let run = |flags: &[&str]| {
        let mut command = Command::new(exe);
        command
            .arg("chat")
            .arg("--model")
            .arg(common::model_dir(FP32))
            .arg("--ort")
            .arg(common::ort_library())
            .args(["--max-new-tokens", "120"])
            .args(flags)
            .arg(PROMPTS[0]);
        let out = command.output().expect("sphana-llm");
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap().trim_end().to_owned(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let schema_path = dir.join("schema.json").to_string_lossy().into_owned();
    let grammar_path = dir.join("grammar.lark").to_string_lossy().into_owned();
    let regex = regexes()[2];
    let mut outputs = Vec::new();
    for (flags, constraint) in [
        (
            vec!["--json-schema", &*schema_path],
            Constraint::JsonSchema(schema.clone()),
        ),
        (vec!["--regex", regex], Constraint::Regex(regex.into())),
        (
            vec!["--grammar", &*grammar_path],
            Constraint::Lark(grammar.into()),
        ),
        (vec!["--json-object"], Constraint::JsonObject),
    ] {
        let (ok, stdout, stderr) = run(&flags);
        assert!(ok, "{flags:?}: {stderr}");
        assert!(stderr.contains("finish: Eos"), "{flags:?}: {stderr}");
        assert!(stderr.contains("constraint compiled in"), "{stderr}");
        outputs.push(Output::new(format!("cli {flags:?}"), &constraint, stdout));
    }
    assert_all_valid(&outputs);
    let (ok, _, stderr) = run(&["--regex", "a+", "--json-object"]);
    assert!(!ok && stderr.contains("cannot be used with"), "{stderr}");
    let (ok, _, stderr) = run(&["--regex", "(a"]);
    assert!(
        !ok && stderr.contains("invalid regular expression"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
