//! Chat templates: the model's own Jinja `chat_template`, rendered the way HF
//! `transformers.apply_chat_template` does, and tokenized so that only the template's own
//! special-token text becomes special ids (message contents are always plain text).

use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error as JinjaError, ErrorKind, UndefinedBehavior};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::tokenizer::{EncodeOptions, Tokenizer};
use crate::tools::{ToolCall, ToolCallFormat, Tools};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, ... as the template expects.
    pub role: String,
    /// The message text. Always tokenized as plain text.
    pub content: String,
    /// The tool calls of an assistant message (templates see `message.tool_calls` only when
    /// there are some). Tool results go back as messages with role `tool`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

impl ChatMessage {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: Vec::new(),
        }
    }

    /// An assistant message that calls tools (its content empty).
    pub fn tool_calls(calls: Vec<ToolCall>) -> Self {
        Self {
            role: "assistant".into(),
            content: String::new(),
            tool_calls: calls,
        }
    }
}

/// Extra values the template may read.
#[derive(Debug, Clone, Default)]
pub struct ChatOptions {
    /// `date_string` for templates that print today's date (Llama 3.x); `None` lets the
    /// template call `strftime_now`, i.e. use the current date.
    pub date_string: Option<String>,
}

/// Work budget for one rendering (minijinja fuel): bounds a pathological template.
const RENDER_FUEL: u64 = 50_000_000;

/// A compiled chat template with the tokens it refers to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

fn raise_exception(message: String) -> std::result::Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

/// `tojson` as HF defines it: `json.dumps(value, ensure_ascii=False)` (", " and ": "
/// separators, no HTML escaping), or indented when `indent` is given.
fn tojson(
    value: Value,
    indent: Option<usize>,
    kwargs: Kwargs,
) -> std::result::Result<Value, JinjaError> {
    // `tojson(4)` or `tojson(indent=4)` (Llama 3.x writes the latter).
    let indent = match indent {
        Some(n) => Some(n),
        None => kwargs.get::<Option<usize>>("indent")?,
    };
    kwargs.assert_all_used()?;
    let fail =
        |e: serde_json::Error| JinjaError::new(ErrorKind::InvalidOperation, format!("tojson: {e}"));
    let json = serde_json::to_value(&value).map_err(fail)?;
    let text = match indent {
        Some(n) => {
            let indent = vec![b' '; n];
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(&indent);
            let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
            json.serialize(&mut ser).map_err(fail)?;
            String::from_utf8(out).unwrap_or_default()
        }
        None => {
            let mut out = Vec::new();
            let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonJsonFormatter);
            json.serialize(&mut ser).map_err(fail)?;
            String::from_utf8(out).unwrap_or_default()
        }
    };
    Ok(Value::from_safe_string(text))
}

/// Python `json.dumps`' default separators.
struct PythonJsonFormatter;

impl serde_json::ser::Formatter for PythonJsonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `strftime_now(format)`: the current UTC time formatted with the common strftime codes
/// (%d %m %Y %y %b %B %a %A %H %M %S %j %e %%).
fn strftime_now(format: String) -> std::result::Result<Value, JinjaError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Value::from(strftime(&format, secs)?))
}

fn strftime(format: &str, unix_secs: i64) -> std::result::Result<String, JinjaError> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let day_of_year = days - (civil_days(year, 1, 1)) + 1;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let code = chars.next().unwrap_or('%');
        match code {
            'd' => out.push_str(&format!("{day:02}")),
            'e' => out.push_str(&format!("{day:2}")),
            'm' => out.push_str(&format!("{month:02}")),
            'Y' => out.push_str(&year.to_string()),
            'y' => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            'b' => out.push_str(&MONTHS[month as usize - 1][..3]),
            'B' => out.push_str(MONTHS[month as usize - 1]),
            'a' => out.push_str(&weekday[..3]),
            'A' => out.push_str(weekday),
            'H' => out.push_str(&format!("{:02}", secs / 3600)),
            'M' => out.push_str(&format!("{:02}", secs / 60 % 60)),
            'S' => out.push_str(&format!("{:02}", secs % 60)),
            'j' => out.push_str(&format!("{day_of_year:03}")),
            '%' => out.push('%'),
            other => {
                return Err(JinjaError::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: unsupported format code %{other}"),
                ))
            }
        }
    }
    Ok(out)
}

/// Days since 1970-01-01 of a civil date.
fn civil_days(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl ChatTemplate {
    /// Compiles `source` (a Jinja chat template) with HF's environment: trim_blocks,
    /// lstrip_blocks, loop controls, `raise_exception`, `strftime_now`, HF's `tojson`, and
    /// Python string/dict methods.
    pub fn new(source: &str, bos_token: String, eos_token: String) -> Result<Self> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| Error::Internal(format!("jinja syntax: {e}")))?,
        );
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(RENDER_FUEL));
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.to_owned())
            .map_err(|e| Error::InvalidModel {
                path: "chat_template".into(),
                reason: format!("the chat template does not compile: {e}"),
            })?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
        })
    }

    /// Renders `messages` (HF variables: `messages`, `add_generation_prompt`, `bos_token`,
    /// `eos_token`, and `date_string` when given).
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        options: &ChatOptions,
    ) -> Result<String> {
        self.render_with_tools(messages, None, add_generation_prompt, options)
    }

    /// As [`ChatTemplate::render`], with `tools` (their definitions) as the template's
    /// `tools` variable, as `apply_chat_template(messages, tools=...)` passes them.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
        add_generation_prompt: bool,
        options: &ChatOptions,
    ) -> Result<String> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| Error::Internal(format!("chat template missing: {e}")))?;
        let mut ctx = std::collections::BTreeMap::new();
        ctx.insert("messages", Value::from(minijinja::value::Serde(messages)));
        ctx.insert("add_generation_prompt", Value::from(add_generation_prompt));
        ctx.insert("bos_token", Value::from(self.bos_token.clone()));
        ctx.insert("eos_token", Value::from(self.eos_token.clone()));
        if let Some(date) = &options.date_string {
            ctx.insert("date_string", Value::from(date.clone()));
        }
        if let Some(tools) = tools {
            ctx.insert("tools", Value::from(minijinja::value::Serde(tools)));
        }
        template
            .render(Value::from(minijinja::value::Serde(&ctx)))
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "the chat template failed to render these messages: {e:#}"
                ))
            })
    }
}

/// Marks special-token text inside message contents so it survives rendering unparsed:
/// each occurrence becomes `MARK_OPEN index MARK_CLOSE` (private-use characters that no
/// tokenizer treats as special). Literal marker characters in contents are escaped too.
const MARK_OPEN: char = '\u{F0000}';
const MARK_CLOSE: char = '\u{F0001}';

/// Chat rendering and injection-safe tokenization for one tokenizer.
pub struct ChatFormatter {
    template: ChatTemplate,
    /// How the template writes tool calls (`None`: no family the library reads).
    tool_format: Option<ToolCallFormat>,
    /// The template reads a `tools` variable.
    renders_tools: bool,
    tokenizer: Arc<Tokenizer>,
    /// Special-token texts; index `n` and `n + 1` stand for the two marker characters.
    specials: Vec<(u32, String)>,
    matcher: Option<AhoCorasick>,
}

impl ChatFormatter {
    /// Compiles the tokenizer's chat template; `Error::Unsupported` when it has none.
    pub fn new(tokenizer: Arc<Tokenizer>) -> Result<Self> {
        let source = tokenizer.chat_template().ok_or_else(|| {
            Error::Unsupported(
                "the model has no chat template (tokenizer_config.json `chat_template` or chat_template.jinja); use plain generation".into(),
            )
        })?;
        let token_text = |configured: Option<&str>, id: Option<u32>| -> String {
            configured
                .map(str::to_owned)
                .or_else(|| id.and_then(|id| tokenizer.id_to_token(id)))
                .unwrap_or_default()
        };
        let bos = token_text(tokenizer.bos_token_text(), tokenizer.bos_id());
        let eos = token_text(
            tokenizer.eos_token_text(),
            tokenizer.eos_ids().first().copied(),
        );
        let template = ChatTemplate::new(source, bos, eos)?;
        let tool_format = ToolCallFormat::detect(source);
        let renders_tools = source.contains("tools");
        let specials: Vec<(u32, String)> = tokenizer
            .special_tokens()
            .iter()
            .filter(|(_, t)| !t.is_empty())
            .cloned()
            .collect();
        let matcher = if specials.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(specials.iter().map(|(_, t)| t.as_str()))
                    .map_err(|e| Error::Internal(format!("special-token matcher: {e}")))?,
            )
        };
        Ok(Self {
            template,
            tool_format,
            renders_tools,
            tokenizer,
            specials,
            matcher,
        })
    }

    /// The rendered prompt text, with `tools` when given (see [`ChatFormatter::with_tools`]).
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Tools>,
        add_generation_prompt: bool,
        options: &ChatOptions,
    ) -> Result<String> {
        let messages = self.with_tools(messages, tools)?;
        self.template.render_with_tools(
            &messages,
            tools.map(Tools::definitions),
            add_generation_prompt,
            options,
        )
    }

    /// How this template's family writes tool calls: `Error::Unsupported` when it renders
    /// no tools or its call format is not one the library reads.
    pub fn tool_format(&self) -> Result<ToolCallFormat> {
        self.tool_format.filter(|_| self.renders_tools).ok_or_else(|| {
            Error::Unsupported(
                "this model's chat template does not write tool calls in a format the library reads (Llama 3.x JSON or <tool_call> blocks)".into(),
            )
        })
    }

    /// With `tools`: checks that the template renders tools, and reads back an assistant
    /// message given as the text of its calls (what a reply returned: its content is only
    /// calls of these tools in the template's format) as those calls, so that the template
    /// renders them as it renders calls. Without `tools` the messages are unchanged.
    fn with_tools<'m>(
        &self,
        messages: &'m [ChatMessage],
        tools: Option<&Tools>,
    ) -> Result<std::borrow::Cow<'m, [ChatMessage]>> {
        let Some(tools) = tools else {
            return Ok(std::borrow::Cow::Borrowed(messages));
        };
        if !self.renders_tools {
            return Err(Error::Unsupported(
                "this model's chat template does not render tools".into(),
            ));
        }
        let Some(format) = self.tool_format else {
            return Ok(std::borrow::Cow::Borrowed(messages));
        };
        Ok(std::borrow::Cow::Owned(
            messages
                .iter()
                .map(|m| {
                    if m.role != "assistant" || !m.tool_calls.is_empty() {
                        return m.clone();
                    }
                    match format.parse(&m.content, tools) {
                        (calls, rest) if !calls.is_empty() && rest.is_empty() => {
                            ChatMessage::tool_calls(calls)
                        }
                        _ => m.clone(),
                    }
                })
                .collect(),
        ))
    }

    /// Escapes special-token text in every string of a JSON value (tool definitions and
    /// call arguments reach the template as data, like message contents).
    fn escape_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match value {
            J::String(s) => J::String(self.escape(s)),
            J::Array(items) => J::Array(items.iter().map(|v| self.escape_json(v)).collect()),
            J::Object(map) => J::Object(
                map.iter()
                    .map(|(k, v)| (self.escape(k), self.escape_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn escape(&self, content: &str) -> String {
        let n = self.specials.len();
        let mut out = String::with_capacity(content.len());
        let mut last = 0;
        let mark = |out: &mut String, index: usize| {
            out.push(MARK_OPEN);
            out.push_str(&index.to_string());
            out.push(MARK_CLOSE);
        };
        if let Some(matcher) = &self.matcher {
            for m in matcher.find_iter(content) {
                escape_markers(&content[last..m.start()], n, &mut out, mark);
                mark(&mut out, m.pattern().as_usize());
                last = m.end();
            }
        }
        escape_markers(&content[last..], n, &mut out, mark);
        out
    }

    fn unescape(&self, text: &str) -> String {
        let n = self.specials.len();
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find(MARK_OPEN) {
            out.push_str(&rest[..open]);
            let after = &rest[open + MARK_OPEN.len_utf8()..];
            let Some(close) = after.find(MARK_CLOSE) else {
                out.push_str(&rest[open..]);
                return out;
            };
            match after[..close].parse::<usize>() {
                Ok(i) if i < n => out.push_str(&self.specials[i].1),
                Ok(i) if i == n => out.push(MARK_OPEN),
                Ok(i) if i == n + 1 => out.push(MARK_CLOSE),
                _ => out.push_str(
                    &rest[open..open + MARK_OPEN.len_utf8() + close + MARK_CLOSE.len_utf8()],
                ),
            }
            rest = &after[close + MARK_CLOSE.len_utf8()..];
        }
        out.push_str(rest);
        out
    }

    /// Renders `messages` (with `tools` when given) and tokenizes the result: special-token
    /// text written by the template becomes special ids; text that came from message
    /// contents, tool definitions or call arguments never does. Returns the rendered text
    /// and its ids (nothing else is added: templates write BOS).
    pub fn encode(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Tools>,
        add_generation_prompt: bool,
        options: &ChatOptions,
    ) -> Result<(String, Vec<u32>)> {
        let messages = self.with_tools(messages, tools)?;
        let escaped: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage {
                role: m.role.clone(),
                content: self.escape(&m.content),
                tool_calls: m
                    .tool_calls
                    .iter()
                    .map(|c| ToolCall {
                        name: self.escape(&c.name),
                        arguments: self.escape_json(&c.arguments),
                    })
                    .collect(),
            })
            .collect();
        let escaped_tools: Option<Vec<serde_json::Value>> = tools.map(|t| {
            t.definitions()
                .iter()
                .map(|d| self.escape_json(d))
                .collect()
        });
        let rendered = self.template.render_with_tools(
            &escaped,
            escaped_tools.as_deref(),
            add_generation_prompt,
            options,
        )?;
        let plain = EncodeOptions {
            add_special: false,
            parse_special: false,
        };
        let mut ids = Vec::new();
        let mut text = String::with_capacity(rendered.len());
        let segment = |part: &str, ids: &mut Vec<u32>, text: &mut String| -> Result<()> {
            if part.is_empty() {
                return Ok(());
            }
            let original = self.unescape(part);
            ids.extend(self.tokenizer.encode(&original, plain)?);
            text.push_str(&original);
            Ok(())
        };
        let mut last = 0;
        if let Some(matcher) = &self.matcher {
            for m in matcher.find_iter(&rendered) {
                segment(&rendered[last..m.start()], &mut ids, &mut text)?;
                let (id, token) = &self.specials[m.pattern().as_usize()];
                ids.push(*id);
                text.push_str(token);
                last = m.end();
            }
        }
        segment(&rendered[last..], &mut ids, &mut text)?;
        Ok((text, ids))
    }
}

fn escape_markers(text: &str, n: usize, out: &mut String, mark: impl Fn(&mut String, usize)) {
    for c in text.chars() {
        match c {
            MARK_OPEN => mark(out, n),
            MARK_CLOSE => mark(out, n + 1),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_matches_known_dates() {
        // 2024-07-26 14:34:56 UTC is 1722004496 (checked with Python time.strftime).
        assert_eq!(strftime("%d %b %Y", 1_722_004_496).unwrap(), "26 Jul 2024");
        assert_eq!(
            strftime("%A %B %e %H:%M:%S %j %y %%", 1_722_004_496).unwrap(),
            "Friday July 26 14:34:56 208 24 %"
        );
        assert_eq!(strftime("%d %m %Y", 0).unwrap(), "01 01 1970");
        assert_eq!(strftime("%d %b %Y", 951_782_400).unwrap(), "29 Feb 2000");
        assert!(strftime("%Q", 0).is_err());
    }

    #[test]
    fn tojson_uses_python_separators_without_html_escaping() {
        let v = Value::from(minijinja::value::Serde(
            serde_json::json!({"a": [1, "<b>"], "c": null}),
        ));
        assert_eq!(
            tojson(
                v,
                None,
                Kwargs::from_iter(std::iter::empty::<(&str, Value)>())
            )
            .unwrap()
            .to_string(),
            r#"{"a": [1, "<b>"], "c": null}"#
        );
    }

    #[test]
    fn hf_environment_features() {
        let t = ChatTemplate::new(
            "{%- for m in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{{ m.role|upper }}:{{ m.content.strip() }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}",
            "<s>".into(),
            "</s>".into(),
        )
        .unwrap();
        let out = t
            .render(
                &[
                    ChatMessage::new("user", "  hi  "),
                    ChatMessage::new("system", "x"),
                ],
                true,
                &ChatOptions::default(),
            )
            .unwrap();
        assert_eq!(out, "<s>USER:hi\nSYSTEM:x\nA:");
        let t = ChatTemplate::new(
            "{{ raise_exception('no system role') }}",
            String::new(),
            String::new(),
        )
        .unwrap();
        let err = t.render(&[], false, &ChatOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
        assert!(ChatTemplate::new("{% for %}", String::new(), String::new()).is_err());
    }
}
