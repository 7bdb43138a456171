//! libFuzzer entry point of the `generate_params` target: the checks are in fuzz/src/targets/generate_params.rs
//! (shared with the replay test, tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| sphana_llm_fuzz::targets::generate_params::fuzz_one(data)
);
