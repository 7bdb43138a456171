//! The eligibility check of a `tokenizer.json`: the fast path is used only for files that
//! are provably the same tokenizer as tiktoken over their vocabulary with Llama 3's split.

use rustc_hash::FxHashMap;

use super::{FastBpe, Ranks};
use crate::tokenizer::byte_level::char_to_byte_map;

/// The parts of a `tokenizer.json` that decide whether the fast path is exact for it.
#[derive(serde::Deserialize)]
struct JsonShape {
    normalizer: serde_json::Value,
    pre_tokenizer: serde_json::Value,
    post_processor: serde_json::Value,
    #[serde(default)]
    added_tokens: Vec<JsonAddedToken>,
    model: JsonModel,
}

#[derive(serde::Deserialize)]
struct JsonAddedToken {
    id: u32,
    content: String,
    special: bool,
    #[serde(default)]
    single_word: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
}

#[derive(serde::Deserialize)]
struct JsonModel {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ignore_merges: bool,
    #[serde(default)]
    byte_fallback: bool,
    #[serde(default)]
    dropout: Option<f64>,
    #[serde(default)]
    continuing_subword_prefix: Option<String>,
    #[serde(default)]
    end_of_word_suffix: Option<String>,
    vocab: FxHashMap<String, u32>,
    merges: Vec<JsonMerge>,
}

/// One merge, written either as `"a b"` or as `["a", "b"]`; kept as (left, right).
struct JsonMerge(String, String);

impl<'de> serde::Deserialize<'de> for JsonMerge {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = JsonMerge;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a merge as \"a b\" or [\"a\", \"b\"]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<JsonMerge, E> {
                let (l, r) = v
                    .split_once(' ')
                    .ok_or_else(|| E::custom("merge without a space"))?;
                Ok(JsonMerge(l.to_owned(), r.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<JsonMerge, A::Error> {
                let l: String = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                let r: String = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(1, &self))?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(3, &self));
                }
                Ok(JsonMerge(l, r))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The BOS id of a `TemplateProcessing` whose single-sequence template is `[BOS] $A` or
/// `$A`: `Some(Some(id))`, `Some(None)`, or `None` for anything else.
fn template_bos(processor: &serde_json::Value, added: &[JsonAddedToken]) -> Option<Option<u32>> {
    let single = processor.get("single")?.as_array()?;
    match single.as_slice() {
        [seq] if seq.get("Sequence").is_some() => Some(None),
        [special, seq] if seq.get("Sequence").is_some() => {
            let name = special.get("SpecialToken")?.get("id")?.as_str()?;
            let ids = processor
                .get("special_tokens")?
                .get(name)?
                .get("ids")?
                .as_array()?;
            match ids.as_slice() {
                [id] => {
                    let id = u32::try_from(id.as_u64()?).ok()?;
                    added.iter().any(|t| t.id == id).then_some(Some(id))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Builds the fast encoder for a `tokenizer.json` when — and only when — it is provably
/// the same tokenizer as tiktoken over its vocabulary with Llama 3's split pattern:
/// no normalizer, the Llama 3 split + byte-level pre-tokenizer, `ignore_merges`, a merge
/// list that holds exactly every split of every token into two tokens in the order of the
/// joined token's id, only special added tokens, and a `[BOS] $A` template. `None` otherwise.
pub(crate) fn for_tokenizer_json(bytes: &[u8]) -> Option<FastBpe> {
    let shape: JsonShape = serde_json::from_slice(bytes).ok()?;
    let model = &shape.model;
    if model.kind != "BPE"
        || !model.ignore_merges
        || model.byte_fallback
        || model.dropout.is_some()
        || model.continuing_subword_prefix.is_some()
        || model.end_of_word_suffix.is_some()
        || !shape.normalizer.is_null()
    {
        return None;
    }
    let expected_pre = serde_json::json!([
        {"type": "Split", "pattern": {"Regex": crate::tokenizer::byte_level::LLAMA3_SPLIT_PATTERN}, "behavior": "Isolated", "invert": false},
    ]);
    let pre = shape.pre_tokenizer.get("pretokenizers")?.as_array()?;
    let [split, byte_level] = pre.as_slice() else {
        return None;
    };
    if *split != expected_pre[0]
        || byte_level.get("type")? != "ByteLevel"
        || byte_level.get("add_prefix_space")? != false
        || byte_level.get("use_regex")? != false
    {
        return None;
    }
    let template = match shape.post_processor.get("type")?.as_str()? {
        "TemplateProcessing" => &shape.post_processor,
        "Sequence" => {
            let processors = shape.post_processor.get("processors")?.as_array()?;
            let [byte_level, template] = processors.as_slice() else {
                return None;
            };
            if byte_level.get("type")? != "ByteLevel" || byte_level.get("trim_offsets")? != false {
                return None;
            }
            template
        }
        _ => return None,
    };
    if template.get("type")? != "TemplateProcessing" {
        return None;
    }
    let bos = template_bos(template, &shape.added_tokens)?;
    if shape
        .added_tokens
        .iter()
        .any(|t| !t.special || t.single_word || t.lstrip || t.rstrip)
    {
        return None;
    }

    // In byte-level vocabularies every byte is one char, so char splits are byte splits
    // and the checks can run on the vocabulary strings without decoding them.
    let vocab = &model.vocab;
    // The merges must be every two-token split of every token, ordered by the joined id.
    let mut expected = 0usize;
    for token in vocab.keys() {
        expected += token
            .char_indices()
            .skip(1)
            .filter(|&(k, _)| vocab.contains_key(&token[..k]) && vocab.contains_key(&token[k..]))
            .count();
    }
    if expected != model.merges.len() {
        return None;
    }
    let mut seen = rustc_hash::FxHashSet::default();
    let mut last_id = 0u32;
    let mut joined = String::new();
    for JsonMerge(left, right) in &model.merges {
        if !vocab.contains_key(left.as_str()) || !vocab.contains_key(right.as_str()) {
            return None;
        }
        joined.clear();
        joined.push_str(left);
        joined.push_str(right);
        let id = *vocab.get(joined.as_str())?;
        if id < last_id || !seen.insert((id, left.len())) {
            return None;
        }
        last_id = id;
    }
    let to_byte = char_to_byte_map();
    let mut ranks: Ranks = FxHashMap::with_capacity_and_hasher(vocab.len(), Default::default());
    for (token, &id) in vocab {
        let bytes: Option<Vec<u8>> = token.chars().map(|c| to_byte.get(&c).copied()).collect();
        ranks.insert(bytes?, id);
    }
    if ranks.len() != vocab.len() {
        return None;
    }
    let specials: Vec<(String, u32)> = shape
        .added_tokens
        .iter()
        .map(|t| (t.content.clone(), t.id))
        .collect();
    FastBpe::new(ranks, &specials, bos).ok()
}
