//! Memory stays flat over load → tokenize → generate → free cycles, seen from C.
//!
//! `tests/c/leak_cycles.c` is compiled against `include/sphana_llm.h`, linked to the
//! `libsphana_llm.so` cargo built for this run, and runs N cycles (each one: load, every
//! tokenize variant, decode, streaming decode, chat rendering, three generations, a
//! cancellation, failing calls, free) on the micro model and on tokenizer-only SentencePiece
//! and tiktoken directories. Every cycle's results must equal the first cycle's; after a
//! warm-up, the heap in use (glibc `mallinfo2`, exact) may grow by at most 2 KiB per cycle
//! and the resident set size by at most 16 MiB (32 MiB for tiktoken; allocator noise).
//!
//! Regression: the `tokenizers` crate's thread-local BPE cache outlived each freed model, so
//! the heap grew by ~780 KiB per cycle with ~6000 distinct words per cycle (the cycle now tokenizes ~800, ~100 KiB per cycle unfixed).
//!
//! `LEAK_CYCLES` sets N (default 100). The same program runs under valgrind memcheck
//! (1000 cycles, 0 bytes definitely lost) in `scripts/ci/leak_check.sh`; see RELIABILITY.md.

#[path = "support/capi.rs"]
mod capi;
mod common;
#[path = "support/micro.rs"]
mod micro;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `libsphana_llm.so` cargo built for this test run: `cargo test` builds the cdylib into
/// `<target>/<profile>/deps/` and uplifts it to `<target>/<profile>/` only on `cargo build`,
/// so the copy in `deps/` is the current one (the other may be stale).
fn cdylib_dir() -> PathBuf {
    let profile = micro::profile_dir();
    [profile.join("deps"), profile]
        .into_iter()
        .find(|dir| dir.join("libsphana_llm.so").is_file())
        .expect("no libsphana_llm.so next to the test binary: the cdylib crate type is missing?")
}

/// Compiles the C program once per test binary.
fn leak_cycles_binary() -> PathBuf {
    let root = common::repo_root();
    let lib = cdylib_dir();
    let exe = micro::profile_dir().join(format!("leak_cycles-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let out = Command::new(&cc)
        .args([
            "-std=c11",
            "-O1",
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
        ])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c/leak_cycles.c"))
        .arg("-L")
        .arg(&lib)
        .arg("-lsphana_llm")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(
        out.status.success(),
        "compiling leak_cycles.c:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn cycles() -> u32 {
    std::env::var("LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// Runs `cycles` cycles on `dir` with the heap and RSS growth limits; returns the summary.
fn run(exe: &Path, dir: &Path, cycles: u32, rss_limit_kb: u32) -> String {
    let heap_limit_kb = (2 * cycles).max(1024);
    let out = Command::new(exe)
        .arg(dir)
        .arg(common::ort_library())
        .arg(cycles.to_string())
        .arg(heap_limit_kb.to_string())
        .arg(rss_limit_kb.to_string())
        .env("RUST_BACKTRACE", "0")
        // cargo puts `<target>/<profile>` on LD_LIBRARY_PATH, which beats the RUNPATH: the
        // stale uplifted copy of the library would be loaded instead of this run's.
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("running leak_cycles");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "leak_cycles {} failed:\n{stdout}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}: {}", dir.display(), stdout.trim());
    stdout
}

#[test]
fn rss_stays_flat_over_load_generate_free_cycles() {
    let exe = leak_cycles_binary();
    let n = cycles();
    run(&exe, &micro::micro_dir(), n, 16 * 1024);
    run(&exe, &common::tokenizer_dir("llama2-spm"), n / 3, 16 * 1024);
    // ~100 MB allocated and freed per load: glibc's RSS settles only after ~50 cycles.
    run(
        &exe,
        &common::tokenizer_dir("llama3-tiktoken"),
        (n / 20).max(6),
        32 * 1024,
    );
    let _ = std::fs::remove_file(&exe);
}
