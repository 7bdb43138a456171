//! Tool calling: the tool definitions a chat template renders, the tool calls read back
//! from the model's text in the template family's format, and the constraint that makes a
//! required call always name a defined tool with arguments that match its parameter schema.
//!
//! Two families are known, recognised from the chat template's own text:
//!
//! * [`ToolCallFormat::Json`] — Llama 3.1–3.3: the whole reply is one JSON object
//!   `{"name": ..., "parameters": {...}}` (optionally after `<|python_tag|>`);
//! * [`ToolCallFormat::Hermes`] — Qwen 2.5/3, Hermes and templates like them: each call is
//!   `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`, text may surround them.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::generation::{Constraint, Generation};

/// Largest tool list (its JSON text) in bytes.
pub const MAX_TOOLS_BYTES: usize = 256 * 1024;

/// One call of a tool: its name and its arguments (a JSON object).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The tool's (function's) name.
    pub name: String,
    /// The arguments, a JSON object.
    pub arguments: Value,
}

impl ToolCall {
    /// The arguments as compact JSON text.
    pub fn arguments_json(&self) -> String {
        self.arguments.to_string()
    }
}

/// As templates read a call (`transformers`' shape):
/// `{"type": "function", "function": {"name": ..., "arguments": {...}}}`.
impl Serialize for ToolCall {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        struct Function<'a>(&'a ToolCall);
        impl Serialize for Function<'_> {
            fn serialize<S: Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("name", &self.0.name)?;
                map.serialize_entry("arguments", &self.0.arguments)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry("function", &Function(self))?;
        map.end()
    }
}

/// How a chat template's family writes tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolCallFormat {
    /// Llama 3.x: the reply is `{"name": ..., "parameters": {...}}`.
    Json,
    /// Hermes / Qwen: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`.
    Hermes,
}

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";

impl ToolCallFormat {
    /// The family of a chat template, from its text: `None` when it writes no tool calls
    /// the library knows how to read.
    pub fn detect(template: &str) -> Option<Self> {
        if template.contains(HERMES_OPEN) {
            Some(Self::Hermes)
        } else if template.contains("\"parameters\": ") && template.contains("tool_call") {
            Some(Self::Json)
        } else {
            None
        }
    }

    /// The key holding the arguments in this family's calls.
    fn arguments_key(self) -> &'static str {
        match self {
            Self::Json => "parameters",
            Self::Hermes => "arguments",
        }
    }

    /// Reads the tool calls in `text` (a reply of the model) that name one of `tools`.
    /// Returns the calls and the rest of the text (trimmed); text that is not a well-formed
    /// call of a defined tool stays text.
    pub fn parse(self, text: &str, tools: &Tools) -> (Vec<ToolCall>, String) {
        match self {
            Self::Json => {
                let body = text.trim();
                let body = body.strip_prefix(PYTHON_TAG).unwrap_or(body).trim();
                match self.read_call(body, tools) {
                    Some(call) => (vec![call], String::new()),
                    None => (Vec::new(), text.trim().to_owned()),
                }
            }
            Self::Hermes => {
                let mut calls = Vec::new();
                let mut rest = String::new();
                let mut tail = text;
                while let Some(open) = tail.find(HERMES_OPEN) {
                    let after = &tail[open + HERMES_OPEN.len()..];
                    let Some(close) = after.find(HERMES_CLOSE) else {
                        break;
                    };
                    match self.read_call(after[..close].trim(), tools) {
                        Some(call) => {
                            calls.push(call);
                            rest.push_str(&tail[..open]);
                        }
                        // Not a call: the block stays text, tags included.
                        None => rest.push_str(
                            &tail[..open + HERMES_OPEN.len() + close + HERMES_CLOSE.len()],
                        ),
                    }
                    tail = &after[close + HERMES_CLOSE.len()..];
                }
                rest.push_str(tail);
                (calls, rest.trim().to_owned())
            }
        }
    }

    /// One call's JSON: `{"name": <a defined tool>, <arguments key>: {...}}` and nothing
    /// else (the arguments may also be a string holding that object, as some models write).
    fn read_call(self, json: &str, tools: &Tools) -> Option<ToolCall> {
        let Value::Object(mut map) = serde_json::from_str::<Value>(json).ok()? else {
            return None;
        };
        let name = map.remove("name")?.as_str()?.to_owned();
        let arguments = map
            .remove(self.arguments_key())
            .or_else(|| map.remove("arguments"))?;
        if !map.is_empty() || !tools.names().any(|n| n == name) {
            return None;
        }
        let arguments = match arguments {
            Value::Object(_) => arguments,
            Value::String(s) => match serde_json::from_str::<Value>(&s).ok()? {
                v @ Value::Object(_) => v,
                _ => return None,
            },
            _ => return None,
        };
        Some(ToolCall { name, arguments })
    }

    /// A constraint whose every match is one call (this family's text) of one of `tools`
    /// with arguments that match that tool's parameter schema.
    pub fn call_constraint(self, tools: &Tools) -> Constraint {
        let key = self.arguments_key();
        let options = serde_json::json!({
            "item_separator": ", ",
            "key_separator": ": ",
            "whitespace_flexible": false,
        });
        let variants: Vec<Value> = tools
            .functions()
            .map(|(name, parameters)| {
                serde_json::json!({
                    "type": "object",
                    "properties": {
                        "name": {"const": name},
                        key: parameters.map(closed_objects).unwrap_or_else(|| serde_json::json!({"type": "object"})),
                    },
                    "required": ["name", key],
                    "additionalProperties": false,
                })
            })
            .collect();
        let mut schema = serde_json::json!({ "anyOf": variants });
        schema["x-guidance"] = options;
        match self {
            Self::Json => Constraint::JsonSchema(schema.to_string()),
            Self::Hermes => Constraint::Lark(format!(
                "start: \"{HERMES_OPEN}\\n\" call \"\\n{HERMES_CLOSE}\"\ncall: %json {schema}\n"
            )),
        }
    }
}

/// A chat reply generated with tools ([`crate::Model::generate_chat_with_tools`]).
#[derive(Debug, Clone)]
pub struct ToolChatReply {
    /// The generation: its whole text (calls included), ids and figures.
    pub generation: Generation,
    /// The calls read from the text, in order (empty when the model answered in text).
    pub tool_calls: Vec<ToolCall>,
    /// The text without the calls, trimmed.
    pub content: String,
}

/// A parameter schema for a constrained call: every object schema that names its
/// `properties` and says nothing about others gets `"additionalProperties": false`, so the
/// model cannot pad a call with invented keys until it runs out of tokens. What it writes
/// still validates against the schema as given (a subset of what that allows). Schemas
/// under `allOf` are left open (closing each part would forbid the others' keys).
fn closed_objects(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in map {
        let v = match k.as_str() {
            "properties" | "$defs" | "definitions" => match v {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), closed_objects(s)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" | "additionalItems" => closed_objects(v),
            "anyOf" | "oneOf" | "prefixItems" => match v {
                Value::Array(items) => Value::Array(items.iter().map(closed_objects).collect()),
                other => other.clone(),
            },
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    let open = [
        "additionalProperties",
        "patternProperties",
        "unevaluatedProperties",
    ]
    .iter()
    .all(|k| !out.contains_key(*k));
    if out.contains_key("properties") && open {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// Whether the model may answer in text or must call a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides; calls it writes are read from its reply.
    #[default]
    Auto,
    /// The reply is one call of one of the tools, constrained so that it always parses and
    /// its arguments match the tool's parameter schema (object schemas that name their
    /// `properties` and say nothing of others get only those: see `closed_objects`).
    Required,
}

/// A validated list of tool definitions, as `transformers`' `apply_chat_template(tools=...)`
/// takes them: each `{"type": "function", "function": {"name", "description",
/// "parameters"}}` (or the bare function object). Templates receive the list unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Tools {
    definitions: Vec<Value>,
}

impl Tools {
    /// Reads a JSON array of tool definitions. [`Error::InvalidArgument`] names what is
    /// wrong: not JSON, not an array of objects, a tool without a name, a repeated name,
    /// `parameters` that is not an object, more than [`MAX_TOOLS_BYTES`].
    pub fn from_json(text: &str) -> Result<Self> {
        if text.len() > MAX_TOOLS_BYTES {
            return Err(Error::InvalidArgument(format!(
                "the tool list is {} bytes; at most {MAX_TOOLS_BYTES} bytes are accepted",
                text.len()
            )));
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Error::InvalidArgument(format!(
                "the tool list is not valid JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        Self::from_value(value)
    }

    /// As [`Tools::from_json`], from a parsed value.
    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Array(definitions) = value else {
            return Err(Error::InvalidArgument(
                "the tool list must be a JSON array of tool definitions".into(),
            ));
        };
        if definitions.is_empty() {
            return Err(Error::InvalidArgument("the tool list is empty".into()));
        }
        let tools = Self { definitions };
        let mut seen = std::collections::HashSet::new();
        for (i, d) in tools.definitions.iter().enumerate() {
            let f = function_of(d).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "tools[{i}] is not a tool definition: expected {{\"type\": \"function\", \"function\": {{\"name\": ..., \"parameters\": {{...}}}}}}"
                ))
            })?;
            let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "tools[{i}] has no function name"
                )));
            }
            if name.contains('\0') {
                return Err(Error::InvalidArgument(format!(
                    "tools[{i}]: the name {name:?} contains a NUL character"
                )));
            }
            if !seen.insert(name) {
                return Err(Error::InvalidArgument(format!(
                    "tools[{i}]: the name {name:?} is used by an earlier tool"
                )));
            }
            if let Some(p) = f.get("parameters") {
                if !p.is_object() {
                    return Err(Error::InvalidArgument(format!(
                        "tools[{i}] ({name}): parameters must be a JSON Schema object"
                    )));
                }
            }
        }
        Ok(tools)
    }

    /// The definitions as given.
    pub fn definitions(&self) -> &[Value] {
        &self.definitions
    }

    /// The tools' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions().map(|(name, _)| name)
    }

    /// Each tool's name and parameter schema.
    fn functions(&self) -> impl Iterator<Item = (&str, Option<&Value>)> {
        self.definitions.iter().filter_map(|d| {
            let f = function_of(d)?;
            Some((f.get("name")?.as_str()?, f.get("parameters")))
        })
    }
}

/// The function object of a definition: `d["function"]` for `{"type": "function", ...}`,
/// else `d` itself when it has a name.
fn function_of(d: &Value) -> Option<&serde_json::Map<String, Value>> {
    let map = d.as_object()?;
    match map.get("function") {
        Some(f) => f.as_object(),
        None if map.contains_key("name") => Some(map),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Tools {
        Tools::from_json(
            r#"[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}},
                {"name": "now"}]"#,
        )
        .unwrap()
    }

    #[test]
    fn definitions_are_checked() {
        assert_eq!(tools().names().collect::<Vec<_>>(), ["get_weather", "now"]);
        for (bad, needle) in [
            ("{", "not valid JSON"),
            ("{}", "JSON array"),
            ("[]", "empty"),
            ("[1]", "tools[0] is not a tool definition"),
            (
                r#"[{"type": "function", "function": {}}]"#,
                "no function name",
            ),
            (r#"[{"name": "a"}, {"name": "a"}]"#, "earlier tool"),
            (r#"[{"name": "a", "parameters": 3}]"#, "parameters must be"),
            (r#"[{"name": "a\u0000b"}]"#, "NUL"),
        ] {
            let e = Tools::from_json(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        let big = format!("[{}]", " ".repeat(MAX_TOOLS_BYTES));
        assert!(Tools::from_json(&big).is_err());
    }

    #[test]
    fn hermes_calls_are_read_and_other_text_kept() {
        let t = tools();
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"now\", \"arguments\": \"{}\"}\n</tool_call>";
        let (calls, rest) = ToolCallFormat::Hermes.parse(text, &t);
        assert_eq!(rest, "Let me check.");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments_json(), r#"{"location":"Paris"}"#);
        assert_eq!(calls[1].arguments, serde_json::json!({}));
        // An unknown tool, broken JSON or an unclosed block stays text.
        for text in [
            "<tool_call>\n{\"name\": \"launch\", \"arguments\": {}}\n</tool_call>",
            "<tool_call>\n{\"name\": \"now\", \"arguments\": {}\n</tool_call>",
            "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}",
        ] {
            let (calls, rest) = ToolCallFormat::Hermes.parse(text, &t);
            assert!(calls.is_empty(), "{text}");
            assert_eq!(rest, text.trim());
        }
    }

    #[test]
    fn json_calls_are_the_whole_reply() {
        let t = tools();
        let (calls, rest) = ToolCallFormat::Json.parse(
            " <|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Oslo\"}}\n",
            &t,
        );
        assert_eq!(rest, "");
        assert_eq!(calls[0].arguments["location"], "Oslo");
        for text in [
            "The weather is fine.",
            "{\"name\": \"get_weather\", \"parameters\": {}, \"extra\": 1}",
            "{\"name\": \"get_weather\", \"parameters\": [1]}",
        ] {
            let (calls, rest) = ToolCallFormat::Json.parse(text, &t);
            assert!(calls.is_empty(), "{text}");
            assert_eq!(rest, text);
        }
    }

    #[test]
    fn call_schemas_close_objects_that_name_their_properties() {
        let closed = closed_objects(&serde_json::json!({
            "type": "object",
            "properties": {"a": {"type": "object", "properties": {"b": {}}}, "c": {"type": "array", "items": {"properties": {"d": {}}}}},
            "$defs": {"e": {"properties": {}, "additionalProperties": true}},
            "allOf": [{"properties": {"f": {}}}],
        }));
        assert_eq!(closed["additionalProperties"], false);
        assert_eq!(closed["properties"]["a"]["additionalProperties"], false);
        assert_eq!(
            closed["properties"]["c"]["items"]["additionalProperties"],
            false
        );
        assert_eq!(closed["$defs"]["e"]["additionalProperties"], true);
        assert!(closed["allOf"][0].get("additionalProperties").is_none());
        assert_eq!(
            closed_objects(&serde_json::json!({"type": "object"})),
            serde_json::json!({"type": "object"})
        );
    }

    #[test]
    fn formats_are_recognised_from_the_template() {
        assert_eq!(
            ToolCallFormat::detect("{{- '<tool_call>\\n{\"name\": \"' }}"),
            Some(ToolCallFormat::Hermes)
        );
        assert_eq!(
            ToolCallFormat::detect(
                "{%- set tool_call = message.tool_calls[0].function %}{{- '\"parameters\": ' }}"
            ),
            Some(ToolCallFormat::Json)
        );
        assert_eq!(ToolCallFormat::detect("{{ messages }}"), None);
    }
}
