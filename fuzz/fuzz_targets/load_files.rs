//! libFuzzer entry point of the `load_files` target: the checks are in fuzz/src/targets/load_files.rs
//! (shared with the replay test, tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sphana_llm_fuzz::targets::load_files::fuzz_one(data));
