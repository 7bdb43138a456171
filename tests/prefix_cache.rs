//! The prefix cache (`prefix_cache_bytes`): a second request sharing a 300-token system
//! prompt prefills only its tail; a prompt that continues a finished generation reuses its
//! prompt and answer (turn 2 of a chat reuses turn 1); it works with
//! continuous batching and two sessions; and every greedy answer equals a cold run on a handle
//! without the cache (float models: tiny variants and SmolLM2). Each handle has its own cache.

mod common;

use std::sync::Arc;

use sphana_llm::{
    ChatMessage, ChatOptions, FinishReason, Flow, GenerateParams, LoadOptions, Model,
};

fn load(dir: &str, prefix_cache_bytes: usize, session_count: usize) -> Model {
    Model::load(
        common::model_dir(dir),
        &LoadOptions {
            prefix_cache_bytes,
            session_count,
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

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A 300-token "system prompt" and two questions after it (ids in every vocabulary here).
fn system_and_questions() -> (Vec<u32>, Vec<u32>) {
    let system: Vec<u32> = (0..300u32).map(|i| 1000 + i * 31 % 20000).collect();
    let mut a = system.clone();
    a.extend([77, 88, 99, 1234, 5678]);
    let mut b = system;
    b.extend([4321, 8765, 11, 22]);
    (a, b)
}

#[test]
fn a_shared_system_prompt_is_prefilled_once_on_the_tiny_float_variants() {
    let (a, b) = system_and_questions();
    for variant in ["fp32", "merged", "external-data", "no-position-ids", "fp16"] {
        let dir = format!("tiny-llama/{variant}");
        let cached = load(&dir, 64 << 20, 1);
        let cold = load(&dir, 0, 1);
        let first = cached
            .generate_from_ids(&a, &greedy(12), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(
            first.stats.cached_tokens, 0,
            "{variant}: nothing cached yet"
        );
        let second = cached
            .generate_from_ids(&b, &greedy(12), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(
            second.stats.cached_tokens,
            common_prefix(&a, &b),
            "{variant}: the shared system prompt comes from the cache"
        );
        assert!(second.stats.cached_tokens >= 300);
        let cold_b = cold
            .generate_from_ids(&b, &greedy(12), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(cold_b.stats.cached_tokens, 0, "{variant}: the cache is off");
        assert_eq!(
            second.token_ids, cold_b.token_ids,
            "{variant}: a cold run's ids"
        );
        // The same prompt again reuses all but its last token.
        let again = cached
            .generate_from_ids(&b, &greedy(12), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(again.stats.cached_tokens, b.len() - 1, "{variant}");
        assert_eq!(again.token_ids, cold_b.token_ids, "{variant}");
        // A prompt continuing the first generation (prompt, its 12 ids, 3 more) reuses the
        // prompt and the 11 ids fed back (the 12th was never run).
        let mut follow = a.clone();
        follow.extend(&first.token_ids);
        follow.extend([3, 4, 5]);
        let continued = cached
            .generate_from_ids(&follow, &greedy(8), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(continued.stats.cached_tokens, a.len() + 11, "{variant}");
        let cold_follow = cold
            .generate_from_ids(&follow, &greedy(8), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(continued.token_ids, cold_follow.token_ids, "{variant}");
        let (bytes, entries) = cached.engine().unwrap().prefix_cache_usage();
        assert!(
            bytes > 0 && entries >= 1,
            "{variant}: {bytes} bytes in {entries} entries"
        );
    }
}

#[test]
fn the_model_without_a_kv_cache_does_not_cache() {
    let (a, _) = system_and_questions();
    let model = load("tiny-llama/no-kv", 64 << 20, 1);
    for _ in 0..2 {
        let g = model
            .generate_from_ids(&a[..40], &greedy(3), &mut |_| Flow::Continue)
            .unwrap();
        assert_eq!(g.stats.cached_tokens, 0);
    }
    assert_eq!(model.engine().unwrap().prefix_cache_usage(), (0, 0));
}

#[test]
fn turn_two_of_a_chat_reuses_turn_one_on_smollm2() {
    let cached = load("smollm2-135m-instruct", 64 << 20, 1);
    let cold = load("smollm2-135m-instruct", 0, 1);
    let options = ChatOptions::default();
    let params = GenerateParams {
        max_new_tokens: 24,
        ..Default::default()
    };
    let mut messages = vec![
        ChatMessage::new(
            "system",
            "You are a helpful assistant. Answer in one short sentence.",
        ),
        ChatMessage::new("user", "What is the capital of France?"),
    ];
    let turn1 = cached
        .generate_chat(&messages, &options, &params, &mut |_| Flow::Continue)
        .unwrap();
    let (_, prompt1) = cached.encode_chat(&messages, true, &options).unwrap();
    messages.push(ChatMessage::new("assistant", turn1.text.trim()));
    messages.push(ChatMessage::new("user", "And of Italy?"));
    let (_, prompt2) = cached.encode_chat(&messages, true, &options).unwrap();
    let turn2 = cached
        .generate_chat(&messages, &options, &params, &mut |_| Flow::Continue)
        .unwrap();
    // What turn 1 left in the cache: its prompt and every answer id fed back (all of them
    // after EOS, all but the last after the length limit).
    let fed = match turn1.stats.finish_reason {
        FinishReason::Eos => turn1.token_ids.len(),
        _ => turn1.token_ids.len() - 1,
    };
    let mut entry = prompt1.clone();
    entry.extend(&turn1.token_ids[..fed]);
    assert_eq!(
        turn2.stats.cached_tokens,
        common_prefix(&entry, &prompt2),
        "turn 2 reuses turn 1's prompt and answer"
    );
    assert!(
        turn2.stats.cached_tokens > prompt1.len() + fed / 2,
        "{} cached of turn 1's {} + {fed}",
        turn2.stats.cached_tokens,
        prompt1.len()
    );
    let cold2 = cold
        .generate_chat(&messages, &options, &params, &mut |_| Flow::Continue)
        .unwrap();
    assert_eq!(turn2.token_ids, cold2.token_ids, "a cold run's answer");
    assert_eq!(turn2.text, cold2.text);
}

#[test]
fn concurrent_generations_with_batching_and_two_sessions_reuse_the_prefix() {
    let (a, b) = system_and_questions();
    let cold = load("tiny-llama/fp32", 0, 1);
    let want = cold
        .generate_from_ids(&b, &greedy(16), &mut |_| Flow::Continue)
        .unwrap()
        .token_ids;
    let model = Arc::new(load("tiny-llama/fp32", 64 << 20, 2));
    model
        .generate_from_ids(&a, &greedy(2), &mut |_| Flow::Continue)
        .unwrap();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (model, b) = (Arc::clone(&model), b.clone());
            std::thread::spawn(move || {
                model
                    .generate_from_ids(&b, &greedy(16), &mut |_| Flow::Continue)
                    .unwrap()
            })
        })
        .collect();
    for t in threads {
        let g = t.join().unwrap();
        assert!(g.stats.cached_tokens >= 300, "{}", g.stats.cached_tokens);
        assert_eq!(g.token_ids, want);
    }
    // The last of them to finish copied its row out of the batch: a prompt continuing the
    // answer reuses the prompt and the 15 ids fed back.
    let mut follow = b.clone();
    follow.extend(&want);
    follow.extend([3, 4, 5]);
    let continued = model
        .generate_from_ids(&follow, &greedy(8), &mut |_| Flow::Continue)
        .unwrap();
    assert_eq!(continued.stats.cached_tokens, b.len() + 15);
    let cold_follow = cold
        .generate_from_ids(&follow, &greedy(8), &mut |_| Flow::Continue)
        .unwrap();
    assert_eq!(continued.token_ids, cold_follow.token_ids);
}

#[test]
fn each_handle_has_its_own_cache() {
    let (a, _) = system_and_questions();
    let one = load("tiny-llama/fp32", 64 << 20, 1);
    let other = load("tiny-llama/no-position-ids", 64 << 20, 1);
    one.generate_from_ids(&a, &greedy(2), &mut |_| Flow::Continue)
        .unwrap();
    let g = other
        .generate_from_ids(&a, &greedy(2), &mut |_| Flow::Continue)
        .unwrap();
    assert_eq!(
        g.stats.cached_tokens, 0,
        "another handle's prompt is not reused"
    );
}
