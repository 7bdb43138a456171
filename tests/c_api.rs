//! The C API seen from C: `tests/c/tokenizer_smoke.c` is compiled against the committed
//! `include/sphana_llm.h` with a strict C11 compiler, linked to the `libsphana_llm.so`
//! cargo built for this test run, and run with expected values read from the goldens.
//! Also checks that the committed header is the one cbindgen generates from `src/ffi`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::Value;

/// `<target-dir>/<profile>`: the test binary lives in its `deps/` folder.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary is not in <target>/<profile>/deps")
        .to_path_buf()
}

/// The golden case of `input` with the given flags.
fn case<'a>(golden: &'a Value, input: &str, add: bool, parse: bool) -> &'a Value {
    golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["input"] == input && c["add_special"] == add && c["parse_special"] == parse)
        .unwrap_or_else(|| panic!("no golden case {input} add={add} parse={parse}"))
}

fn joined(values: &Value) -> String {
    values
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_u64().expect("number").to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The key=value arguments the C program reads; every expected value is from a golden.
fn smoke_args() -> Vec<String> {
    let golden = common::golden("tokenizers/llama3.2.json");
    let tiktoken = common::golden("tokenizers/llama3-tiktoken.json");
    let inputs: std::collections::HashMap<String, String> = common::inputs().into_iter().collect();
    let smollm2 = common::model_reference("smollm2");
    let tiny = common::model_reference("tiny_llama");
    let tiny_prompt = &tiny["variants"]["fp32"]["prompts"][1];
    let mut args = vec![
        format!("version={}", env!("CARGO_PKG_VERSION")),
        format!("ort_library={}", common::ort_library().display()),
        format!(
            "smollm2_dir={}",
            common::model_dir("smollm2-135m-instruct").display()
        ),
        format!(
            "smollm2_prompt={}",
            smollm2["prompt_text"].as_str().unwrap()
        ),
        format!(
            "smollm2_question={}",
            smollm2["messages"][0]["content"].as_str().unwrap()
        ),
        format!(
            "smollm2_answer={}",
            smollm2["models"]["fp32"]["text"].as_str().unwrap()
        ),
        format!(
            "tiny_dir={}",
            common::model_dir("tiny-llama/fp32").display()
        ),
        format!("tiny_prompt_ids={}", joined(&tiny_prompt["prompt_ids"])),
        format!("tiny_new_ids={}", joined(&tiny_prompt["new_ids"])),
        format!("llama_dir={}", common::tokenizer_dir("llama3.2").display()),
        format!(
            "tiktoken_dir={}",
            common::tokenizer_dir("llama3-tiktoken").display()
        ),
        format!(
            "missing_dir={}",
            std::env::temp_dir()
                .join(format!("sphana-llm-no-such-dir-{}", std::process::id()))
                .display()
        ),
        format!("vocab_size={}", golden["vocab_size"]),
        format!("bos_id={}", golden["bos_id"]),
        format!("eos_ids={}", joined(&golden["eos_ids"])),
        format!("tt_eos_ids={}", joined(&tiktoken["eos_ids"])),
    ];
    // One special and one ordinary vocabulary entry, with their golden ids.
    let token_ids = golden["token_ids"].as_object().unwrap();
    for (key, token) in [("token_a", "<|eot_id|>"), ("token_b", "Ġworld")] {
        let id = token_ids
            .get(token)
            .unwrap_or_else(|| panic!("golden token_ids lacks {token}"));
        args.push(format!("{key}={token}"));
        args.push(format!("{key}_id={id}"));
    }
    for name in [
        "empty",
        "paragraph",
        "special_llama3",
        "emoji",
        "cjk",
        "crlf_tabs",
        "mixed_script",
    ] {
        args.push(format!("text_{name}={}", inputs[name]));
        for (add, parse) in [(false, false), (false, true), (true, false), (true, true)] {
            let flags = format!("{}{}", u8::from(add), u8::from(parse));
            let c = case(&golden, name, add, parse);
            args.push(format!("ids_{name}_{flags}={}", joined(&c["ids"])));
            args.push(format!(
                "decoded_{name}_{flags}={}",
                c["decoded"].as_str().unwrap()
            ));
            args.push(format!(
                "decoded_skip_special_{name}_{flags}={}",
                c["decoded_skip_special"].as_str().unwrap()
            ));
            if let Some(offsets) = c.get("offsets").filter(|o| !o.is_null()) {
                let flat: Vec<String> = offsets
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|p| [p[0].to_string(), p[1].to_string()])
                    .collect();
                args.push(format!("offsets_{name}_{flags}={}", flat.join(",")));
            }
        }
    }
    for (name, add, parse, flags) in [
        ("special_llama3", true, true, "11"),
        ("paragraph", false, false, "00"),
    ] {
        let c = case(&tiktoken, name, add, parse);
        args.push(format!("tt_ids_{name}_{flags}={}", joined(&c["ids"])));
    }
    args
}

/// The `libsphana_llm.so` cargo built for this test run. `cargo test` builds the cdylib
/// into `<target>/<profile>/deps/` (next to the test binary) and uplifts it to
/// `<target>/<profile>/` only on `cargo build`, so `deps/` is the current one; the
/// profile folder is the fallback.
fn cdylib() -> PathBuf {
    let profile = profile_dir();
    [profile.join("deps"), profile]
        .into_iter()
        .map(|dir| dir.join("libsphana_llm.so"))
        .find(|lib| lib.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no libsphana_llm.so in {0}/deps or {0}: the cdylib crate type is missing?",
                profile_dir().display()
            )
        })
}

#[test]
fn c_program_uses_the_tokenizer_api() {
    let root = common::repo_root();
    let lib = cdylib();
    let lib_dir = lib.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let exe = out_dir.join("tokenizer_smoke");
    let source = root.join("tests/c/tokenizer_smoke.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let compile = Command::new(&cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-g",
            "-o",
        ])
        .arg(&exe)
        .arg("-I")
        .arg(root.join("include"))
        .arg(&source)
        .arg("-L")
        .arg(&lib_dir)
        .arg("-lsphana_llm")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (set CC): {e}"));
    assert!(
        compile.status.success(),
        "compiling {} against include/sphana_llm.h failed:\n{}{}",
        source.display(),
        String::from_utf8_lossy(&compile.stdout),
        String::from_utf8_lossy(&compile.stderr)
    );

    let run = Command::new(&exe)
        // cargo puts `<target>/<profile>/` (maybe a stale libsphana_llm.so) on LD_LIBRARY_PATH,
        // which would beat the RUNPATH pointing at the library this test run built.
        .env_remove("LD_LIBRARY_PATH")
        .args(smoke_args())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}{stderr}");
    assert!(
        run.status.success(),
        "the C smoke test failed ({}):\n{stdout}{stderr}",
        run.status
    );
    // The program must have really run its checks, not exited early with status 0.
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed"))
        .unwrap_or_else(|| panic!("no \"N passed, M failed\" line in:\n{stdout}"));
    let numbers: Vec<usize> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 2, "bad summary line {summary:?}");
    assert_eq!(numbers[1], 0, "{summary}");
    assert!(
        numbers[0] >= 300,
        "only {} checks ran: {summary}",
        numbers[0]
    );
}

/// The `$OUT_DIR/sphana_llm.h` that build.rs wrote for this build: cargo gives the
/// package's OUT_DIR to its integration tests too; without it, the newest
/// `<target>/<profile>/build/sphana-llm-*/out/sphana_llm.h`.
fn generated_header() -> PathBuf {
    if let Some(out_dir) = option_env!("OUT_DIR") {
        return PathBuf::from(out_dir).join("sphana_llm.h");
    }
    let build = profile_dir().join("build");
    let mut found: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(&build)
        .unwrap_or_else(|e| panic!("{}: {e}", build.display()))
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("sphana-llm-"))
        })
        .map(|entry| entry.path().join("out/sphana_llm.h"))
        .filter_map(|path| {
            let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
            Some((modified, path))
        })
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| {
            panic!(
                "no {}/sphana-llm-*/out/sphana_llm.h: build.rs did not run cbindgen",
                build.display()
            )
        })
        .1
}

#[test]
fn committed_header_is_current() {
    let root = common::repo_root();
    let committed_path = root.join("include/sphana_llm.h");
    let generated_path = generated_header();
    let committed = std::fs::read_to_string(&committed_path)
        .unwrap_or_else(|e| panic!("{}: {e}", committed_path.display()));
    let generated = std::fs::read_to_string(&generated_path)
        .unwrap_or_else(|e| panic!("{}: {e}", generated_path.display()));
    assert!(
        generated.contains("sphana_llm_tokenize(") && generated.contains("#define SPHANA_LLM_OK 0"),
        "{} does not look like the sphana-llm header",
        generated_path.display()
    );
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "one file is a prefix of the other".to_owned(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "include/sphana_llm.h differs from the header cbindgen generates from src/ffi \
             ({}; {first}).\nRun `cargo build` (build.rs rewrites include/sphana_llm.h), review \
             the change, and commit include/sphana_llm.h together with the src/ffi change.",
            generated_path.display()
        );
    }

    // The generated header must also be what is committed, so C users of a checkout get it.
    let git = |args: &[&str]| Command::new("git").arg("-C").arg(&root).args(args).output();
    let inside = match git(&["rev-parse", "--is-inside-work-tree"]) {
        Ok(out) => out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "true",
        Err(_) => false, // no git: nothing more to check
    };
    if !inside {
        eprintln!("not a git checkout (or no git): skipping the committed-header check");
        return;
    }
    let tracked = git(&["ls-files", "--error-unmatch", "include/sphana_llm.h"]).unwrap();
    assert!(
        tracked.status.success(),
        "include/sphana_llm.h is not tracked by git: `git add include/sphana_llm.h` and commit it"
    );
    let diff = git(&["diff", "--quiet", "HEAD", "--", "include/sphana_llm.h"]).unwrap();
    if !diff.status.success() {
        let stat = git(&["diff", "--stat", "HEAD", "--", "include/sphana_llm.h"]).unwrap();
        panic!(
            "include/sphana_llm.h was regenerated by build.rs (cbindgen) but the change is not \
             committed:\n{}\nReview it with `git diff include/sphana_llm.h` and commit it with the \
             src/ffi change that caused it.",
            String::from_utf8_lossy(&stat.stdout)
        );
    }
}

/// The C example in README.md compiles and links against the header and the cdylib
/// with `-std=c11 -Wall -Wextra -Werror -pedantic`, so the README cannot drift from the API.
#[test]
fn readme_c_example_compiles() {
    let root = common::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("```c\n").expect("README has a C example") + "```c\n".len();
    let end = start
        + readme[start..]
            .find("```")
            .expect("the C example is closed");
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let source = out_dir.join("readme_example.c");
    std::fs::write(&source, &readme[start..end]).unwrap();
    let lib = cdylib();
    let lib_dir = lib.parent().unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let compile = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o"])
        .arg(out_dir.join("readme_example"))
        .arg("-I")
        .arg(root.join("include"))
        .arg(&source)
        .arg("-L")
        .arg(lib_dir)
        .arg("-lsphana_llm")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        compile.status.success(),
        "the README's C example does not compile:\n{}",
        String::from_utf8_lossy(&compile.stderr)
    );
}

/// The worked example in the header's preamble (between `---- example.c ----` and
/// `---- end of example.c ----`) compiles as strict C11 and runs: it loads SmolLM2, counts
/// the prompt's tokens, streams an answer and reports its statistics. The header itself also
/// compiles, links and runs as C++11.
#[test]
fn header_worked_example_compiles_and_runs() {
    let root = common::repo_root();
    let header = std::fs::read_to_string(root.join("include/sphana_llm.h")).unwrap();
    let start = header
        .find(" * ---- example.c ----\n")
        .expect("the header has a worked example")
        + " * ---- example.c ----\n".len();
    let end = start
        + header[start..]
            .find(" * ---- end of example.c ----")
            .expect("the worked example is closed");
    let source: String = header[start..end]
        .lines()
        .map(|l| {
            let code = l.strip_prefix(" * ").or_else(|| l.strip_prefix(" *"));
            code.unwrap_or_else(|| panic!("example line without the comment prefix: {l:?}"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let c_source = out_dir.join("header_example.c");
    std::fs::write(&c_source, format!("{source}\n")).unwrap();
    let lib = cdylib();
    let lib_dir = lib.parent().unwrap();
    let exe = out_dir.join("header_example");
    let compile = |compiler: &str, args: &[&str], out: &Path| {
        let output = Command::new(compiler)
            .args(args)
            .arg("-o")
            .arg(out)
            .arg("-I")
            .arg(root.join("include"))
            .arg(&c_source)
            .arg("-L")
            .arg(lib_dir)
            .arg("-lsphana_llm")
            .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
            .output()
            .unwrap_or_else(|e| panic!("cannot run the compiler `{compiler}`: {e}"));
        assert!(
            output.status.success(),
            "the header's worked example does not compile with {compiler} {args:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    compile(
        &cc,
        &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"],
        &exe,
    );
    // The header is also valid C++ with C linkage: a C++ program includes it, links and runs.
    let cxx_source = out_dir.join("header_in_cxx.cpp");
    std::fs::write(
        &cxx_source,
        "#include \"sphana_llm.h\"\nint main() { return sphana_llm_abi_version() == SPHANA_LLM_ABI_VERSION ? 0 : 1; }\n",
    )
    .unwrap();
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_owned());
    let cxx_exe = out_dir.join("header_in_cxx");
    let output = Command::new(&cxx)
        .args([
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-o",
        ])
        .arg(&cxx_exe)
        .arg("-I")
        .arg(root.join("include"))
        .arg(&cxx_source)
        .arg("-L")
        .arg(lib_dir)
        .arg("-lsphana_llm")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C++ compiler `{cxx}`: {e}"));
    assert!(
        output.status.success(),
        "the header does not compile as C++11:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = Command::new(&cxx_exe)
        .env_remove("LD_LIBRARY_PATH")
        .status()
        .unwrap();
    assert!(status.success(), "the C++ program failed: {status}");

    let run = Command::new(&exe)
        .env_remove("LD_LIBRARY_PATH")
        .env("ORT_DYLIB_PATH", common::ort_library())
        .arg(common::model_dir("smollm2-135m-instruct"))
        .arg("The capital of France is")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the worked example failed ({}):\n{stdout}{stderr}",
        run.status
    );
    let want_count = sphana_llm::Model::load(
        common::model_dir("smollm2-135m-instruct"),
        &common::load_options(),
    )
    .unwrap()
    .tokenizer()
    .encode(
        "The capital of France is",
        sphana_llm::EncodeOptions {
            add_special: true,
            parse_special: false,
        },
    )
    .unwrap()
    .len();
    assert!(
        stdout.starts_with(&format!("{want_count} prompt tokens\n")),
        "{stdout}"
    );
    // The last line: "<n> tokens, finish reason <r>", at most 32 tokens, ended by EOS or
    // by the length limit.
    let last = stdout.lines().last().unwrap_or_default();
    let (tokens, reason) = last
        .split_once(" tokens, finish reason ")
        .unwrap_or_else(|| panic!("no statistics line: {stdout}"));
    let tokens: usize = tokens.parse().unwrap();
    let reason: i32 = reason.parse().unwrap();
    assert!((1..=32).contains(&tokens), "{stdout}");
    assert!(
        [
            sphana_llm::ffi::SPHANA_LLM_FINISH_EOS,
            sphana_llm::ffi::SPHANA_LLM_FINISH_LENGTH
        ]
        .contains(&reason),
        "{stdout}"
    );
    let answer = &stdout[stdout.find('\n').unwrap() + 1..stdout.len() - last.len()];
    assert!(
        !answer.trim().is_empty(),
        "no streamed answer between the two lines: {stdout}"
    );
}
