//! The fuzz targets' checks, one module each: `fuzz_one(data)` runs one input. The libFuzzer
//! binaries (fuzz/fuzz_targets/) and the replay test (tests/fuzz_replay.rs) both call them.

pub mod chat_template;
pub mod fast_path;
pub mod generate_params;
pub mod load_files;
pub mod stream_decode;
pub mod tokenize;
