//! libFuzzer entry point of the `stream_decode` target: the checks are in fuzz/src/targets/stream_decode.rs
//! (shared with the replay test, tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sphana_llm_fuzz::targets::stream_decode::fuzz_one(data));
