//! libFuzzer entry point of the `chat_template` target: the checks are in fuzz/src/targets/chat_template.rs
//! (shared with the replay test, tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sphana_llm_fuzz::targets::chat_template::fuzz_one(data));
