//! The model's own configuration: `generation_config.json` (the EOS set) and `config.json`
//! (the EOS set, the context length, and the decoder's shape where the ONNX graph leaves it
//! symbolic). Read from the model directory, and from a tokenizer's directory for its EOS set.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::side_files::{id_list, read_json_object};
use crate::tokenizer::eos::EosSource;

/// The generation-relevant part of `generation_config.json` and `config.json`.
#[derive(Debug, Clone, Default)]
pub struct ModelConfig {
    /// EOS ids from `generation_config.json`, else `config.json` (a set: any of them ends
    /// generation), with the file that named them.
    pub eos_token_ids: Option<(Vec<u32>, EosSource)>,
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
