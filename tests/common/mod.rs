//! Shared helpers for the integration tests: where the fetched assets and goldens live.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder the fetch scripts write to (`SPHANA_LLM_ASSETS` overrides `assets/`).
pub fn assets_dir() -> PathBuf {
    std::env::var_os("SPHANA_LLM_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("assets"))
}

/// A fetched tokenizer directory; panics with the command to run when it is missing.
pub fn tokenizer_dir(name: &str) -> PathBuf {
    let dir = assets_dir().join("tokenizers").join(name);
    assert!(
        dir.is_dir(),
        "{} is missing: run `python3 scripts/setup/fetch_tokenizers.py` first (or `scripts/test.sh`)",
        dir.display()
    );
    dir
}

/// A committed golden JSON file.
pub fn golden(relative: &str) -> serde_json::Value {
    let path = repo_root().join("tests/golden").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A model reference for this machine, checked against its committed golden.
///
/// `scripts/setup/make_tiny_models.py` and `scripts/setup/convert_smollm2.py` write the whole ONNX Runtime
/// Python reference (logits, margins, float16 and INT8 ids: what the CPU's kernels change) to
/// `assets/reference/models/<name>.json` on the machine that runs the tests, and commit only its
/// machine-independent part as `tests/golden/models/<name>.json` (`scripts/setup/model_golden.py`).
/// This returns the reference after checking that it was made on this CPU and that every value
/// of the committed golden is in it unchanged.
pub fn model_reference(name: &str) -> serde_json::Value {
    let path = assets_dir().join(format!("reference/models/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `python3 scripts/setup/make_tiny_models.py` and `python3 scripts/setup/convert_smollm2.py` (or `scripts/setup.sh`)",
            path.display()
        )
    });
    let reference: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let made_on = reference["machine"]["cpu"]["fingerprint"].as_str();
    assert_eq!(
        made_on,
        Some(cpu_fingerprint().as_str()),
        "{} was made on another CPU ({}); run scripts/setup.sh to remake it here",
        path.display(),
        reference["machine"]["cpu"]["model_name"]
    );
    let committed = golden(&format!("models/{name}.json"));
    let mut problems = Vec::new();
    for (key, value) in committed.as_object().expect("golden object") {
        if key != "produced_on" && key != "committed_part" {
            subset_problems(value, &reference[key], &format!("/{key}"), &mut problems);
        }
    }
    assert!(
        problems.is_empty(),
        "tests/golden/models/{name}.json disagrees with this machine's reference {}: {problems:?}",
        path.display()
    );
    reference
}

/// Where `part` is not contained in `whole`: objects key by key, arrays element by element.
fn subset_problems(
    part: &serde_json::Value,
    whole: &serde_json::Value,
    at: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => {
            for (k, v) in p {
                match w.get(k) {
                    Some(wv) => subset_problems(v, wv, &format!("{at}/{k}"), out),
                    None => out.push(format!("{at}/{k}: missing from the reference")),
                }
            }
        }
        (Value::Array(p), Value::Array(w)) if p.len() == w.len() => {
            for (i, (a, b)) in p.iter().zip(w).enumerate() {
                subset_problems(a, b, &format!("{at}[{i}]"), out);
            }
        }
        _ if part == whole => {}
        _ => out.push(format!("{at}: committed {part} != reference {whole}")),
    }
}

/// The CPU's fingerprint as `scripts/setup/model_golden.py` computes it: the first 16 hex digits of
/// sha256("<model name>\n<flags sorted, space-separated>") from `/proc/cpuinfo`.
pub fn cpu_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_owned())
        })
    };
    let model = field("model name").unwrap_or_else(|| "unknown".to_owned());
    let mut flags: Vec<String> = field("flags")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    flags.sort();
    let digest = Sha256::digest(format!("{model}\n{}", flags.join(" ")).as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The named inputs shared by all tokenizer goldens.
pub fn inputs() -> Vec<(String, String)> {
    golden("tokenizers/inputs.json")["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The 1 MiB multilingual text, read as raw bytes (it contains `\r\n`).
pub fn big_text() -> String {
    let path = assets_dir().join("texts/multilingual_1mb.txt");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `python3 scripts/setup/fetch_tokenizers.py`",
            path.display()
        )
    });
    String::from_utf8(bytes).expect("big text is UTF-8")
}

/// Ids as JSON numbers → u32.
pub fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .expect("id array")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect()
}

/// The ONNX Runtime library the generation tests use: `ORT_DYLIB_PATH`, else the 1.23.2
/// copy fetched by `scripts/setup/fetch_onnxruntime.py`.
pub fn ort_library() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(path);
    }
    let path = assets_dir().join("onnxruntime/1.23.2/libonnxruntime.so");
    assert!(
        path.is_file(),
        "{} is missing: run `python3 scripts/setup/fetch_onnxruntime.py` (or `scripts/test.sh`)",
        path.display()
    );
    path
}

/// Load options pointing at the test ONNX Runtime.
pub fn load_options() -> sphana_llm::LoadOptions {
    sphana_llm::LoadOptions {
        ort_library_path: Some(ort_library()),
        ..Default::default()
    }
}

/// A built test model directory (`tiny-llama/fp32`, `smollm2-135m-instruct`, ...).
pub fn model_dir(name: &str) -> PathBuf {
    let dir = assets_dir().join("models").join(name);
    assert!(
        dir.is_dir(),
        "{} is missing: run `python3 scripts/setup/make_tiny_models.py` and `python3 scripts/setup/convert_smollm2.py` (or `scripts/test.sh`)",
        dir.display()
    );
    dir
}

/// A temporary tokenizer directory for SmolLM2: its `tokenizer.json` and
/// `tokenizer_config.json`, with the chat template of the tokenizer directory `template_of`
/// (under assets, e.g. `tokenizers/qwen3-chat`: a template with tools, which SmolLM2's own
/// lacks). `tag` keeps concurrent tests apart; the caller removes the directory.
pub fn smollm2_with_template(template_of: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sphana-llm-template-{}-{tag}-{}-{:?}",
        template_of.replace('/', "-"),
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let model_dir = model_dir("smollm2-135m-instruct");
    std::fs::copy(model_dir.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let read = |path: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mut config = read(model_dir.join("tokenizer_config.json"));
    let other = read(assets_dir().join(template_of).join("tokenizer_config.json"));
    config["chat_template"] = other["chat_template"].clone();
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    dir
}

/// The independent validator's verdicts (`scripts/goldens/check_structured.py`: Python `json`,
/// `re`, `lark`, `jsonschema`) on `items` (`{"kind", "constraint", "text"}` objects, plus
/// `"format"` for tool calls): one error message per item, empty when it validates.
pub fn check_structured(items: &[serde_json::Value]) -> Vec<String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("python3")
        .arg(repo_root().join("scripts/goldens/check_structured.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 scripts/goldens/check_structured.py");
    serde_json::to_writer(child.stdin.take().unwrap(), items).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "check_structured.py failed");
    let verdicts: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdicts.len(), items.len());
    verdicts
        .iter()
        .map(|v| {
            if v["ok"] == true {
                String::new()
            } else {
                v["error"].as_str().unwrap_or("no verdict").to_owned()
            }
        })
        .collect()
}
