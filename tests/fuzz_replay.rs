//! The fuzz targets' checks (fuzz/src/targets/) run in the ordinary test build, without
//! cargo-fuzz or an instrumented build: every committed regression input
//! (fuzz/regressions/<target>/), every seed (fuzz/work/seeds/<target>/, made by
//! fuzz/make_seeds.py), every input a local fuzz run kept (fuzz/corpus/<target>/, if any),
//! and a fixed number of deterministic mutants of each of them (bit flips, byte edits,
//! inserts, deletes, duplicated and spliced ranges, truncation; `SPHANA_FUZZ_MUTANTS` per
//! input, default 24).
//!
//! An input fails when a check fails (a panic in the target) or when anything panics outside
//! the third-party files a target tolerates, even if the library caught it (as libFuzzer
//! treats it). Failing inputs are written to `target/fuzz-replay-failures/<target>/` and
//! named in the failure message; replay one under libFuzzer with
//! `cargo fuzz run --sanitizer none <target> <file>`. Coverage-guided runs stay with
//! `scripts/ci/fuzz.sh` (RELIABILITY.md).

#[allow(dead_code, clippy::all)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A small deterministic generator (SplitMix64) for the mutants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One libFuzzer-style mutation of `input` (`other`: a second input for splicing).
fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'<'];
                let i = rng.below(len);
                out[i] = if rng.below(2) == 0 {
                    INTERESTING[rng.below(INTERESTING.len())]
                } else {
                    rng.next() as u8
                };
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                out.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                let at = rng.below(len + 1);
                let copy = out[i..i + n].to_vec();
                out.splice(at..at, copy);
            }
            5 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            6 if len > 1 => out.truncate(rng.below(len)),
            _ if len > 0 => {
                let i = rng.below(len);
                out[i] = out[i].wrapping_add(1 + rng.below(3) as u8);
            }
            _ => out.push(rng.next() as u8),
        }
    }
    out
}

fn inputs_in(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

fn replay(target: &str, fuzz_one: fn(&[u8])) {
    fuzz::enter_replay_mode();
    let root = fuzz::repo_root();
    let seeds_dir = fuzz::work().join("seeds").join(target);
    let mut inputs = inputs_in(&root.join("fuzz/regressions").join(target));
    let regressions = inputs.len();
    inputs.extend(inputs_in(&seeds_dir));
    let seeds = inputs.len() - regressions;
    inputs.extend(inputs_in(&root.join("fuzz/corpus").join(target)));
    assert!(
        seeds > 0,
        "{}: no seeds; run `python3 fuzz/make_seeds.py` (scripts/setup.sh does)",
        seeds_dir.display()
    );
    let mutants: usize = std::env::var("SPHANA_FUZZ_MUTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let failures_dir = root.join("target/fuzz-replay-failures").join(target);
    let mut failures = Vec::new();
    let mut runs = 0usize;
    let mut rng = Rng(target.bytes().fold(0x5350_4841_4e41, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    }));
    for (i, (path, bytes)) in inputs.iter().enumerate() {
        let other = &inputs[(i + 1) % inputs.len()].1;
        for m in 0..=mutants {
            let data = if m == 0 {
                bytes.clone()
            } else {
                mutate(bytes, other, &mut rng)
            };
            runs += 1;
            let outcome = catch_unwind(AssertUnwindSafe(|| fuzz_one(&data)));
            let foreign = fuzz::take_foreign_panics();
            if outcome.is_err() || foreign > 0 {
                std::fs::create_dir_all(&failures_dir).unwrap();
                let name = format!("{}-mutant-{m}", path.file_name().unwrap().to_string_lossy());
                let out = failures_dir.join(name);
                std::fs::write(&out, &data).unwrap();
                failures.push(out.display().to_string());
            }
        }
    }
    eprintln!(
        "{target}: {runs} runs ({regressions} regressions, {seeds} seeds, {} corpus inputs, {mutants} mutants each)",
        inputs.len() - regressions - seeds
    );
    assert!(
        failures.is_empty(),
        "{target}: {} failing inputs (see the panics above): {failures:?}",
        failures.len()
    );
}

#[test]
fn tokenize() {
    replay("tokenize", fuzz::targets::tokenize::fuzz_one);
}

#[test]
fn stream_decode() {
    replay("stream_decode", fuzz::targets::stream_decode::fuzz_one);
}

#[test]
fn load_files() {
    replay("load_files", fuzz::targets::load_files::fuzz_one);
}

#[test]
fn chat_template() {
    replay("chat_template", fuzz::targets::chat_template::fuzz_one);
}

#[test]
fn generate_params() {
    replay("generate_params", fuzz::targets::generate_params::fuzz_one);
}

#[test]
fn fast_path() {
    replay("fast_path", fuzz::targets::fast_path::fuzz_one);
}
