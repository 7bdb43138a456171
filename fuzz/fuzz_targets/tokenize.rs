//! libFuzzer entry point of the `tokenize` target: the checks are in fuzz/src/targets/tokenize.rs
//! (shared with the replay test, tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sphana_llm_fuzz::targets::tokenize::fuzz_one(data));
