//! Reading the JSON side files of a model directory (`tokenizer_config.json`,
//! `generation_config.json`, `config.json`): a missing file is `None`, a file that is present
//! but is not a JSON object is an error, never ignored; and the two value shapes HF uses for
//! tokens and ids.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// A token written either as a plain string or as an `AddedToken` object (`{"content": ...}`).
pub(crate) fn token_content(value: &Value) -> Option<String> {
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
pub(crate) fn id_list(value: &Value) -> Option<Vec<u32>> {
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
