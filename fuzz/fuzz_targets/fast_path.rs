//! libFuzzer entry point of the `fast_path` target: the checks are in fuzz/src/targets/fast_path.rs
//! (shared with the replay test, tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sphana_llm_fuzz::targets::fast_path::fuzz_one(data));
