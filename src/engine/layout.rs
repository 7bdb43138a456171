//! What a decoder ONNX model expects, discovered from the session's inputs and outputs
//! (Optimum's `text-generation-with-past` layout and its variants), with `config.json`
//! as the fallback for dimensions the graph leaves symbolic.

use std::path::Path;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::error::{Error, Result};
use crate::model_config::ArchitectureConfig;

/// Element type of the KV cache tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvDtype {
    /// 32-bit floats.
    Float32,
    /// 16-bit floats.
    Float16,
}

impl KvDtype {
    /// The ONNX element type.
    pub fn element_type(self) -> TensorElementType {
        match self {
            KvDtype::Float32 => TensorElementType::Float32,
            KvDtype::Float16 => TensorElementType::Float16,
        }
    }

    /// A short name ("float32" / "float16").
    pub fn name(self) -> &'static str {
        match self {
            KvDtype::Float32 => "float32",
            KvDtype::Float16 => "float16",
        }
    }

    /// Bytes of one element.
    pub fn size(self) -> usize {
        match self {
            KvDtype::Float32 => 4,
            KvDtype::Float16 => 2,
        }
    }
}

/// The KV cache inputs and outputs of one layer.
#[derive(Debug, Clone)]
pub struct LayerIo {
    /// `past_key_values.{i}.key`.
    pub past_key: String,
    /// `past_key_values.{i}.value`.
    pub past_value: String,
    /// `present.{i}.key`.
    pub present_key: String,
    /// `present.{i}.value`.
    pub present_value: String,
}

/// The decoder's interface.
#[derive(Debug, Clone)]
pub struct DecoderLayout {
    /// The model takes `attention_mask`.
    pub has_attention_mask: bool,
    /// The model takes `position_ids` (Gemma exports since optimum-onnx PR 70 do not).
    pub has_position_ids: bool,
    /// The model takes the merged-export switch `use_cache_branch`.
    pub has_use_cache_branch: bool,
    /// Per-layer KV names; empty when the model has no cache (full recompute each step).
    pub layers: Vec<LayerIo>,
    /// KV heads per layer.
    pub kv_heads: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// KV element type.
    pub kv_dtype: KvDtype,
    /// `logits` element type (float32 or float16).
    pub logits_dtype: TensorElementType,
    /// Logits width when the graph states it.
    pub logits_vocab: Option<usize>,
    /// The scalar int64 input that limits logits to the last positions (fed 1), when the
    /// graph has one (its own, or the one the load-time rewrite added).
    pub logits_to_keep_input: Option<String>,
    /// Inputs other than the above that the engine cannot fill (makes loading fail).
    pub input_names: Vec<String>,
    /// Output names, for `info`.
    pub output_names: Vec<String>,
}

fn tensor_type(value: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match value {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.iter().copied().collect())),
        _ => None,
    }
}

impl DecoderLayout {
    /// Reads the layout of `session`; `file` names the model in errors; `logits_to_keep_input`
    /// is the input that limits logits to the last positions, when there is one.
    pub fn discover(
        session: &Session,
        file: &Path,
        config: Option<&ArchitectureConfig>,
        logits_to_keep_input: Option<&str>,
    ) -> Result<Self> {
        let bad = |why: String| Error::invalid_model(file, why);
        let inputs: Vec<(String, ValueType)> = session
            .inputs()
            .iter()
            .map(|o| (o.name().to_owned(), o.dtype().clone()))
            .collect();
        let outputs: Vec<(String, ValueType)> = session
            .outputs()
            .iter()
            .map(|o| (o.name().to_owned(), o.dtype().clone()))
            .collect();
        let input = |name: &str| inputs.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        let output = |name: &str| outputs.iter().find(|(n, _)| n == name).map(|(_, t)| t);

        let int64_input = |name: &str, required: bool| -> Result<bool> {
            match input(name).map(tensor_type) {
                None if required => Err(bad(format!(
                    "the ONNX model has no `{name}` input, so it is not a decoder in the Optimum layout (inputs: {})",
                    inputs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                ))),
                None => Ok(false),
                Some(Some((TensorElementType::Int64, _))) => Ok(true),
                Some(other) => Err(bad(format!("input `{name}` must be an int64 tensor, found {other:?}"))),
            }
        };
        int64_input("input_ids", true)?;
        let has_attention_mask = int64_input("attention_mask", false)?;
        let has_position_ids = int64_input("position_ids", false)?;
        let has_use_cache_branch = match input("use_cache_branch").map(tensor_type) {
            None => false,
            Some(Some((TensorElementType::Bool, _))) => true,
            Some(other) => {
                return Err(bad(format!(
                    "input `use_cache_branch` must be bool, found {other:?}"
                )))
            }
        };

        let (logits_dtype, logits_shape) =
            output("logits").and_then(tensor_type).ok_or_else(|| {
                bad("the ONNX model has no `logits` tensor output, so it is not a decoder".into())
            })?;
        if !matches!(
            logits_dtype,
            TensorElementType::Float32 | TensorElementType::Float16
        ) {
            return Err(bad(format!(
                "`logits` must be float32 or float16, found {logits_dtype:?}"
            )));
        }
        if logits_shape.len() != 3 {
            return Err(bad(format!(
                "`logits` must have 3 dimensions, found {}",
                logits_shape.len()
            )));
        }
        let logits_vocab = usize::try_from(logits_shape[2]).ok().filter(|&v| v > 0);

        let mut layers = Vec::new();
        let mut kv_shape: Option<(TensorElementType, Vec<i64>)> = None;
        loop {
            let i = layers.len();
            let names = LayerIo {
                past_key: format!("past_key_values.{i}.key"),
                past_value: format!("past_key_values.{i}.value"),
                present_key: format!("present.{i}.key"),
                present_value: format!("present.{i}.value"),
            };
            let Some(past_key) = input(&names.past_key) else {
                break;
            };
            for (name, value) in [
                (&names.past_key, Some(past_key)),
                (&names.past_value, input(&names.past_value)),
                (&names.present_key, output(&names.present_key)),
                (&names.present_value, output(&names.present_value)),
            ] {
                let (ty, shape) = value.and_then(tensor_type).ok_or_else(|| {
                    bad(format!("layer {i}: `{name}` is missing or not a tensor"))
                })?;
                if shape.len() != 4 {
                    return Err(bad(format!(
                        "`{name}` must have 4 dimensions [batch, kv_heads, seq, head_dim]"
                    )));
                }
                match &kv_shape {
                    None => kv_shape = Some((ty, shape)),
                    Some((t0, s0)) if *t0 != ty || s0[1] != shape[1] || s0[3] != shape[3] => {
                        return Err(bad(format!(
                            "`{name}` differs in type or shape from the other KV tensors"
                        )))
                    }
                    Some(_) => {}
                }
            }
            layers.push(names);
        }
        if layers.is_empty()
            && inputs
                .iter()
                .any(|(n, _)| n.starts_with("past_key_values."))
        {
            return Err(bad(
                "KV inputs do not start at `past_key_values.0.key`".into()
            ));
        }
        let known = |n: &str| {
            matches!(
                n,
                "input_ids" | "attention_mask" | "position_ids" | "use_cache_branch"
            ) || Some(n) == logits_to_keep_input
                || layers.iter().any(|l| l.past_key == n || l.past_value == n)
        };
        if let Some((name, _)) = inputs.iter().find(|(n, _)| !known(n)) {
            return Err(bad(format!(
                "the ONNX model has an input `{name}` this engine cannot fill"
            )));
        }

        let (kv_dtype, kv_heads, head_dim) = match kv_shape {
            None => (KvDtype::Float32, 0, 0),
            Some((ty, shape)) => {
                let dtype = match ty {
                    TensorElementType::Float32 => KvDtype::Float32,
                    TensorElementType::Float16 => KvDtype::Float16,
                    other => {
                        return Err(bad(format!(
                            "KV cache type {other:?} is not supported (float32, float16)"
                        )))
                    }
                };
                let from_config_heads =
                    config.and_then(|c| c.num_key_value_heads.or(c.num_attention_heads));
                let from_config_dim = config.and_then(|c| {
                    c.head_dim.or_else(|| {
                        Some(c.hidden_size? / c.num_attention_heads.filter(|&h| h > 0)?)
                    })
                });
                let dim = |graph: i64, fallback: Option<usize>, what: &str| -> Result<usize> {
                    usize::try_from(graph)
                        .ok()
                        .filter(|&v| v > 0)
                        .or(fallback)
                        .ok_or_else(|| {
                            bad(format!(
                                "the graph leaves {what} symbolic and config.json does not give it"
                            ))
                        })
                };
                (
                    dtype,
                    dim(shape[1], from_config_heads, "the KV head count")?,
                    dim(shape[3], from_config_dim, "the head size")?,
                )
            }
        };
        Ok(Self {
            has_attention_mask,
            has_position_ids,
            has_use_cache_branch,
            layers,
            kv_heads,
            head_dim,
            kv_dtype,
            logits_dtype,
            logits_vocab,
            logits_to_keep_input: logits_to_keep_input.map(str::to_owned),
            input_names: inputs.into_iter().map(|(n, _)| n).collect(),
            output_names: outputs.into_iter().map(|(n, _)| n).collect(),
        })
    }

    /// True when the model carries a KV cache between steps.
    pub fn has_kv_cache(&self) -> bool {
        !self.layers.is_empty()
    }
}
