//! `tokenizer_config.json`: special tokens and chat formatting. (`generation_config.json`
//! and `config.json` describe the model: [`crate::model_config`].)
//!
//! Only the fields sphana-llm uses are read; unknown fields are ignored. A file that
//! is present but is not valid JSON of the expected shape is an error, never ignored.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::side_files::{read_json_object, token_content};

/// What `tokenizer_config.json` says about special tokens and chat formatting.
#[derive(Debug, Clone, Default)]
pub struct TokenizerConfig {
    /// `bos_token`: `None` when the key is absent, `Some(None)` when it is `null`
    /// (the tokenizer deliberately has no BOS, as Qwen's).
    pub bos_token: Option<Option<String>>,
    /// `eos_token` text, if given.
    pub eos_token: Option<String>,
    /// `add_bos_token`, if given.
    pub add_bos_token: Option<bool>,
    /// `add_eos_token`, if given.
    pub add_eos_token: Option<bool>,
    /// The default Jinja `chat_template`, if given (a named list picks `"default"`).
    pub chat_template: Option<String>,
    /// Where it was read from.
    pub path: Option<PathBuf>,
}

impl TokenizerConfig {
    /// Reads `tokenizer_config.json` from `dir` (a missing file gives the empty default);
    /// a `chat_template.jinja` file next to it takes precedence over its `chat_template`.
    pub fn read(dir: &Path) -> Result<Self> {
        let mut config = Self::read_json(dir)?;
        let jinja = dir.join("chat_template.jinja");
        match std::fs::read(&jinja) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| Error::invalid_model(&jinja, "chat template is not UTF-8"))?;
                config.chat_template = Some(text);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&jinja, e)),
        }
        Ok(config)
    }

    fn read_json(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer_config.json");
        let Some(map) = read_json_object(&path)? else {
            return Ok(Self::default());
        };
        let bool_field = |key: &str| -> Result<Option<bool>> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(Error::invalid_model(
                    &path,
                    format!("`{key}` must be a boolean"),
                )),
            }
        };
        let chat_template = match map.get("chat_template") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(items)) => items
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .or_else(|| items.first())
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            Some(_) => {
                return Err(Error::invalid_model(
                    &path,
                    "`chat_template` must be a string or a list",
                ))
            }
        };
        Ok(Self {
            bos_token: map.get("bos_token").map(token_content),
            eos_token: map.get("eos_token").and_then(token_content),
            add_bos_token: bool_field("add_bos_token")?,
            add_eos_token: bool_field("add_eos_token")?,
            chat_template,
            path: Some(path),
        })
    }
}
