//! The JSON side files a model directory carries next to its tokenizer:
//! `tokenizer_config.json`, `generation_config.json` and `config.json`.
//!
//! Only the fields sphana-llm uses are read; unknown fields are ignored. A file that
//! is present but is not valid JSON of the expected shape is an error, never ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// A token written either as a plain string or as an `AddedToken` object (`{"content": ...}`).
fn token_content(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(map) => map
            .get("content")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// One id or a list of ids (`eos_token_id` is either in HF configs).
fn id_list(value: &Value) -> Option<Vec<u32>> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(|v| vec![v]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_u64().and_then(|v| u32::try_from(v).ok()))
            .collect(),
        _ => None,
    }
}

/// Reads `dir/name` as a JSON object; `Ok(None)` when the file does not exist.
pub(crate) fn read_json_object(path: &Path) -> Result<Option<serde_json::Map<String, Value>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(Error::invalid_model(path, "expected a JSON object")),
        Err(e) => Err(Error::invalid_model(path, format!("invalid JSON: {e}"))),
    }
}

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

/// The generation-relevant part of `generation_config.json` and `config.json`.
#[derive(Debug, Clone, Default)]
pub struct ModelConfig {
    /// EOS ids from `generation_config.json`, else `config.json` (a set: any of them ends
    /// generation), with the file that named them.
    pub eos_token_ids: Option<(Vec<u32>, super::eos::EosSource)>,
    /// Architecture fields from `config.json` (absent when there is no config.json).
    pub architecture: Option<ArchitectureConfig>,
}

/// Fields of HF `config.json` that describe the decoder's shape.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ArchitectureConfig {
    /// `max_position_embeddings`: the context length.
    pub max_position_embeddings: Option<usize>,
    /// `num_hidden_layers`.
    pub num_hidden_layers: Option<usize>,
    /// `num_attention_heads`.
    pub num_attention_heads: Option<usize>,
    /// `num_key_value_heads` (defaults to the attention heads when absent).
    pub num_key_value_heads: Option<usize>,
    /// `head_dim` (defaults to hidden_size / num_attention_heads when absent).
    pub head_dim: Option<usize>,
    /// `hidden_size`.
    pub hidden_size: Option<usize>,
    /// `vocab_size`.
    pub vocab_size: Option<usize>,
    /// `model_type` (e.g. `llama`, `gemma`).
    pub model_type: Option<String>,
}

impl ModelConfig {
    /// Reads `generation_config.json` and `config.json` from `dir`; missing files are fine.
    pub fn read(dir: &Path) -> Result<Self> {
        use super::eos::EosSource;
        let generation_path = dir.join("generation_config.json");
        let generation = read_json_object(&generation_path)?;
        let config_path = dir.join("config.json");
        let config = read_json_object(&config_path)?;
        let eos_of = |map: &Option<serde_json::Map<String, Value>>| {
            map.as_ref()
                .and_then(|m| m.get("eos_token_id"))
                .filter(|v| !v.is_null())
                .and_then(id_list)
                .filter(|v| !v.is_empty())
        };
        let eos_token_ids = eos_of(&generation)
            .map(|ids| (ids, EosSource::GenerationConfig(generation_path.clone())))
            .or_else(|| {
                eos_of(&config).map(|ids| (ids, EosSource::ModelConfig(config_path.clone())))
            });
        let architecture = match config {
            Some(map) => Some(
                serde_json::from_value::<ArchitectureConfig>(Value::Object(map))
                    .map_err(|e| Error::invalid_model(&config_path, e.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            eos_token_ids,
            architecture,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_content_accepts_both_shapes() {
        assert_eq!(
            token_content(&serde_json::json!("<s>")).as_deref(),
            Some("<s>")
        );
        assert_eq!(
            token_content(&serde_json::json!({"content": "</s>", "lstrip": false})).as_deref(),
            Some("</s>")
        );
        assert_eq!(token_content(&serde_json::json!(3)), None);
    }

    #[test]
    fn id_list_accepts_scalar_and_list() {
        assert_eq!(id_list(&serde_json::json!(2)), Some(vec![2]));
        assert_eq!(id_list(&serde_json::json!([1, 8, 9])), Some(vec![1, 8, 9]));
        assert_eq!(id_list(&serde_json::json!([1, -1])), None);
    }
}
