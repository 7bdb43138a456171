//! Logits only for the positions that are used. Optimum exports compute the language-model
//! head for every prompt position although generation reads only the last row: for
//! Llama-3.2-1B a fifth of a prefill's work, and a `[1, 4000, 128256]` float32 tensor.
//!
//! At load the decoder graph is rewritten in memory (the user's file is never modified): a
//! `Slice` on the sequence axis, driven by a new scalar int64 input `num_logits_to_keep` (the
//! name HF uses), goes in front of the head, so the head and everything after it (a bias,
//! Gemma's soft-capping, a cast) run on the last `num_logits_to_keep` positions only. Those
//! operations are position-wise, so the kept rows are computed exactly as before:
//!
//! * a float head `MatMul(hidden, W)` gets the sliced hidden states (the same dot products;
//!   a GEMM over fewer rows may round differently in the last bit);
//! * `quantize_dynamic`'s INT8 head `DynamicQuantizeLinear(hidden)` → `MatMulInteger` → `Cast`
//!   → `Mul(scale)` is sliced *after* the quantization, so the activation scale is still the
//!   one of the whole tensor and the kept rows are bit-identical.
//!
//! The head is found structurally from the `logits` output; anything else (a head this
//! does not recognise, a graph where the head's output feeds something more) loads the
//! unmodified graph and says why ([`LogitsPositions::AllPositions`]). A model that already
//! has `num_logits_to_keep` or `logits_to_keep` is used as it is.
//!
//! Memory: the rewritten model references the initializers of an inline model where they
//! are in the original file (ONNX external data: location, offset, length) instead of
//! copying them, and ONNX Runtime reads them from there, so loading needs no second copy of
//! the weights; models that already keep their weights in external files stay so.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::onnx_proto::{fields, put_bytes_field, put_message, put_varint_field, Field};

/// The input a rewritten graph gets: how many trailing positions get logits.
pub const NUM_LOGITS_TO_KEEP: &str = "num_logits_to_keep";

/// Input names exports already use for the same thing.
const NATIVE_INPUTS: [&str; 2] = ["num_logits_to_keep", "logits_to_keep"];

/// How the engine gets the logits of the positions it uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogitsPositions {
    /// The export has the input itself (its name).
    Native(String),
    /// The graph was rewritten at load: the head (a float `MatMul` or `quantize_dynamic`'s
    /// `MatMulInteger`, named here) runs on the kept positions only.
    Rewritten(&'static str),
    /// The graph computes logits for every position: why it could not be rewritten.
    AllPositions(String),
}

impl LogitsPositions {
    /// The name of the input that selects the kept positions, when there is one.
    pub fn input_name(&self) -> Option<&str> {
        match self {
            Self::Native(name) => Some(name),
            Self::Rewritten(_) => Some(NUM_LOGITS_TO_KEEP),
            Self::AllPositions(_) => None,
        }
    }
}

impl std::fmt::Display for LogitsPositions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Native(name) => write!(f, "last positions only (the model's `{name}` input)"),
            Self::Rewritten(head) => write!(
                f,
                "last positions only (graph rewritten at load: `{NUM_LOGITS_TO_KEEP}` slices the input of the {head} head)"
            ),
            Self::AllPositions(why) => write!(f, "every position (graph unchanged: {why})"),
        }
    }
}

/// The outcome of [`rewrite`]: the model bytes to load, if rewritten, and what it does.
pub(crate) struct Rewrite {
    /// The rewritten `ModelProto`; `None`: load the file as it is.
    pub(crate) model: Option<Vec<u8>>,
    /// What the engine gets.
    pub(crate) positions: LogitsPositions,
}

// ONNX field numbers (onnx/onnx.proto3).
const MODEL_GRAPH: u32 = 7;
const MODEL_OPSET_IMPORT: u32 = 8;
const OPSET_DOMAIN: u32 = 1;
const OPSET_VERSION: u32 = 2;
const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
const GRAPH_VALUE_INFO: u32 = 13;
const NODE_INPUT: u32 = 1;
const NODE_OUTPUT: u32 = 2;
const NODE_NAME: u32 = 3;
const NODE_OP_TYPE: u32 = 4;
const NODE_ATTRIBUTE: u32 = 5;
const NODE_DOMAIN: u32 = 7;
const ATTRIBUTE_G: u32 = 6;
const ATTRIBUTE_GRAPHS: u32 = 11;
const TENSOR_DIMS: u32 = 1;
const TENSOR_DATA_TYPE: u32 = 2;
const TENSOR_NAME: u32 = 8;
const TENSOR_RAW_DATA: u32 = 9;
const TENSOR_EXTERNAL_DATA: u32 = 13;
const TENSOR_DATA_LOCATION: u32 = 14;
const TENSOR_INT64: u64 = 7;
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;
const VALUE_INFO_NAME: u32 = 1;
const VALUE_INFO_TYPE: u32 = 2;
const TYPE_TENSOR: u32 = 1;
const TENSOR_TYPE_ELEM: u32 = 1;
const TENSOR_TYPE_SHAPE: u32 = 2;
const SHAPE_DIM: u32 = 1;
const DIM_PARAM: u32 = 2;

/// Inline initializers at least this large are referenced in the original file instead of
/// copied into the rewritten model.
const EXTERNAL_MIN_BYTES: usize = 4096;

/// Names of what the rewrite adds (prefixed so they cannot clash with the export's).
const KEEP_NEG: &str = "sphana_llm/logits_keep/neg";
const KEEP_STARTS: &str = "sphana_llm/logits_keep/starts";
const KEEP_SHAPE: &str = "sphana_llm/logits_keep/shape_1";
const KEEP_ENDS: &str = "sphana_llm/logits_keep/ends";
const KEEP_AXES: &str = "sphana_llm/logits_keep/axes";
const KEEP_ROWS: &str = "sphana_llm/logits_keep/rows";

/// One node of the main graph.
struct Node<'a> {
    raw: &'a [u8],
    fields: Vec<Field<'a>>,
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
    op: &'a str,
    domain: &'a str,
}

impl<'a> Node<'a> {
    fn parse(raw: &'a [u8], body: &'a [u8]) -> Result<Self, String> {
        let fields = fields(body)?;
        let mut node = Node {
            raw,
            fields: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            op: "",
            domain: "",
        };
        for f in &fields {
            let text = || {
                f.text()
                    .ok_or_else(|| "a node field is not text".to_owned())
            };
            match f.number {
                NODE_INPUT => node.inputs.push(text()?),
                NODE_OUTPUT => node.outputs.push(text()?),
                NODE_OP_TYPE => node.op = text()?,
                NODE_DOMAIN => node.domain = text()?,
                _ => {}
            }
        }
        node.fields = fields;
        Ok(node)
    }

    /// An ONNX operator of the default domain named `op`.
    fn is(&self, op: &str) -> bool {
        self.op == op && matches!(self.domain, "" | "ai.onnx")
    }

    /// The node with its input `index` renamed to `name` (every other field unchanged).
    fn with_input(&self, index: usize, name: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + name.len());
        let mut seen = 0;
        for f in &self.fields {
            if f.number == NODE_INPUT {
                if seen == index {
                    put_bytes_field(&mut out, NODE_INPUT, name.as_bytes());
                } else {
                    out.extend_from_slice(f.raw);
                }
                seen += 1;
            } else {
                out.extend_from_slice(f.raw);
            }
        }
        let mut field = Vec::with_capacity(out.len() + 8);
        put_bytes_field(&mut field, GRAPH_NODE, &out);
        field
    }
}

/// Every tensor name a node's subgraphs (`If`/`Loop`/`Scan` bodies) read, recursively.
fn subgraph_reads<'a>(node: &Node<'a>, out: &mut Vec<&'a str>) -> Result<(), String> {
    for attribute in node.fields.iter().filter(|f| f.number == NODE_ATTRIBUTE) {
        let attribute = fields(attribute.bytes().ok_or("an attribute is not a message")?)?;
        for graph in attribute
            .iter()
            .filter(|f| f.number == ATTRIBUTE_G || f.number == ATTRIBUTE_GRAPHS)
        {
            let graph = fields(graph.bytes().ok_or("a subgraph is not a message")?)?;
            for f in graph.iter().filter(|f| f.number == GRAPH_NODE) {
                let body = f.bytes().ok_or("a node is not a message")?;
                let inner = Node::parse(f.raw, body)?;
                out.extend(inner.inputs.iter().copied());
                subgraph_reads(&inner, out)?;
            }
            for f in graph.iter().filter(|f| f.number == GRAPH_OUTPUT) {
                if let Some(name) = value_info_name(f)? {
                    out.push(name);
                }
            }
        }
    }
    Ok(())
}

fn value_info_name<'a>(f: &Field<'a>) -> Result<Option<&'a str>, String> {
    let info = fields(f.bytes().ok_or("a value info is not a message")?)?;
    Ok(info
        .iter()
        .find(|x| x.number == VALUE_INFO_NAME)
        .and_then(Field::text))
}

/// Where the head is and what the slice goes in front of.
struct Head {
    /// Index (in `nodes`) of the node whose input 0 becomes the sliced tensor.
    node: usize,
    /// The tensor that is sliced.
    sliced: String,
    /// Tensors whose sequence dimension the rewrite changes (their `value_info` is dropped).
    changed: Vec<String>,
    /// `MatMul` or `MatMulInteger`.
    kind: &'static str,
}

/// The graph facts the head search needs.
struct Graph<'a> {
    nodes: Vec<Node<'a>>,
    producer: HashMap<&'a str, usize>,
    readers: HashMap<&'a str, usize>,
    constant: HashSet<&'a str>,
}

impl<'a> Graph<'a> {
    fn node_of(&self, tensor: &str) -> Option<&Node<'a>> {
        self.producer.get(tensor).map(|&i| &self.nodes[i])
    }

    fn is_constant(&self, tensor: &str) -> bool {
        self.constant.contains(tensor)
    }

    /// Read by exactly one node (or one graph output) and nothing else.
    fn read_once(&self, tensor: &str) -> bool {
        self.readers.get(tensor) == Some(&1)
    }

    /// The head behind `logits`: walks back over position-wise operations with constant
    /// operands to a float `MatMul` or `quantize_dynamic`'s `MatMulInteger` chain.
    fn find_head(&self) -> Result<Head, String> {
        let mut tensor: &str = "logits";
        let mut changed = vec![tensor.to_owned()];
        for _ in 0..64 {
            if !self.read_once(tensor) {
                return Err(format!("`{tensor}` is read by more than the logits output"));
            }
            let index = *self
                .producer
                .get(tensor)
                .ok_or_else(|| format!("`{tensor}` has no producing node"))?;
            let node = &self.nodes[index];
            let input = |i: usize| node.inputs.get(i).copied().unwrap_or("");
            let next = match node.op {
                _ if node.is("MatMul") => {
                    if !self.is_constant(input(1)) {
                        return Err("the head `MatMul` has a non-constant weight".into());
                    }
                    return Ok(Head {
                        node: index,
                        sliced: input(0).to_owned(),
                        changed,
                        kind: "MatMul",
                    });
                }
                _ if node.is("Cast") || node.is("Identity") || node.is("Tanh") => input(0),
                _ if node.is("Div") || node.is("Sub") => {
                    if !self.is_constant(input(1)) {
                        return Err(format!(
                            "a `{}` after the head has a non-constant operand",
                            node.op
                        ));
                    }
                    input(0)
                }
                _ if node.is("Mul") || node.is("Add") => {
                    if self.is_constant(input(1)) {
                        input(0)
                    } else if self.is_constant(input(0)) {
                        input(1)
                    } else if node.is("Mul") {
                        return self.int8_head(index, changed);
                    } else {
                        return Err("an `Add` after the head has no constant operand".into());
                    }
                }
                op => {
                    return Err(format!(
                        "`logits` comes from a `{op}` this rewrite does not know"
                    ))
                }
            };
            tensor = next;
            changed.push(tensor.to_owned());
        }
        Err("no head within 64 nodes of `logits`".into())
    }

    /// `Mul(Cast(MatMulInteger(q, W, zp, W_zp)), Mul(scale, W_scale))` where `q, scale, zp` =
    /// `DynamicQuantizeLinear(hidden)`: slices `q` in front of `MatMulInteger`.
    fn int8_head(&self, mul: usize, mut changed: Vec<String>) -> Result<Head, String> {
        let not_int8 = || {
            "the head is neither a `MatMul` nor quantize_dynamic's `MatMulInteger` chain".to_owned()
        };
        let node = &self.nodes[mul];
        for (cast_side, scale_side) in [(0, 1), (1, 0)] {
            let (Some(&cast_out), Some(&scale)) =
                (node.inputs.get(cast_side), node.inputs.get(scale_side))
            else {
                return Err(not_int8());
            };
            let Some(cast) = self.node_of(cast_out).filter(|n| n.is("Cast")) else {
                continue;
            };
            let Some(&integer_out) = cast.inputs.first() else {
                continue;
            };
            let Some(&matmul_index) = self.producer.get(integer_out) else {
                continue;
            };
            let matmul = &self.nodes[matmul_index];
            if !matmul.is("MatMulInteger") || matmul.inputs.len() < 3 {
                continue;
            }
            let Some(quantize) = self
                .node_of(matmul.inputs[0])
                .filter(|n| n.is("DynamicQuantizeLinear"))
            else {
                continue;
            };
            if quantize.outputs.len() != 3
                || quantize.outputs[0] != matmul.inputs[0]
                || matmul.inputs[2] != quantize.outputs[2]
                || !self.is_constant(matmul.inputs[1])
                || matmul
                    .inputs
                    .get(3)
                    .is_some_and(|zp| !zp.is_empty() && !self.is_constant(zp))
            {
                continue;
            }
            let scale_ok = self.node_of(scale).is_some_and(|s| {
                s.is("Mul")
                    && s.inputs.len() == 2
                    && ((s.inputs[0] == quantize.outputs[1] && self.is_constant(s.inputs[1]))
                        || (s.inputs[1] == quantize.outputs[1] && self.is_constant(s.inputs[0])))
            });
            if !scale_ok {
                continue;
            }
            for t in [cast_out, integer_out, matmul.inputs[0]] {
                if !self.read_once(t) {
                    return Err(format!(
                        "`{t}` of the INT8 head is read by more than the head"
                    ));
                }
            }
            changed.push(cast_out.to_owned());
            changed.push(integer_out.to_owned());
            return Ok(Head {
                node: matmul_index,
                sliced: matmul.inputs[0].to_owned(),
                changed,
                kind: "MatMulInteger",
            });
        }
        Err(not_int8())
    }
}

/// Rewrites `model` (the bytes of `file_name`) so the head runs on the last
/// `num_logits_to_keep` positions. Never fails: a graph it cannot rewrite, or cannot read,
/// is loaded unchanged and the reason returned.
pub(crate) fn rewrite(model: &[u8], file_name: &str) -> Rewrite {
    match try_rewrite(model, file_name) {
        Ok(rewrite) => rewrite,
        Err(why) => Rewrite {
            model: None,
            positions: LogitsPositions::AllPositions(why),
        },
    }
}

fn try_rewrite(model: &[u8], file_name: &str) -> Result<Rewrite, String> {
    let top = fields(model)?;
    let graphs: Vec<&Field<'_>> = top.iter().filter(|f| f.number == MODEL_GRAPH).collect();
    let [graph_field] = graphs[..] else {
        return Err("the model does not have exactly one graph".into());
    };
    let opset = top
        .iter()
        .filter(|f| f.number == MODEL_OPSET_IMPORT)
        .filter_map(|f| {
            let entry = fields(f.bytes()?).ok()?;
            let domain = entry
                .iter()
                .find(|x| x.number == OPSET_DOMAIN)
                .and_then(Field::text)
                .unwrap_or("");
            let version = entry.iter().find(|x| x.number == OPSET_VERSION)?.varint()?;
            matches!(domain, "" | "ai.onnx").then_some(version)
        })
        .max()
        .unwrap_or(0);
    if opset < 13 {
        return Err(format!("opset {opset} (the rewrite needs 13 or later)"));
    }
    let graph_bytes = graph_field.bytes().ok_or("the graph is not a message")?;
    let graph = fields(graph_bytes)?;

    // Names of the graph's inputs, outputs and initializers.
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut constant: HashSet<&str> = HashSet::new();
    for f in &graph {
        match f.number {
            GRAPH_INPUT => inputs.extend(value_info_name(f)?),
            GRAPH_OUTPUT => outputs.extend(value_info_name(f)?),
            GRAPH_INITIALIZER => {
                let tensor = fields(f.bytes().ok_or("an initializer is not a message")?)?;
                if let Some(name) = tensor
                    .iter()
                    .find(|x| x.number == TENSOR_NAME)
                    .and_then(Field::text)
                {
                    constant.insert(name);
                }
            }
            _ => {}
        }
    }
    if let Some(native) = NATIVE_INPUTS.iter().find(|n| inputs.contains(n)) {
        return Ok(Rewrite {
            model: None,
            positions: LogitsPositions::Native((*native).to_owned()),
        });
    }
    if !outputs.contains(&"logits") {
        return Err("the graph has no `logits` output".into());
    }
    // An initializer that is also a graph input can be fed: not a constant.
    for name in &inputs {
        constant.remove(name);
    }

    let mut nodes = Vec::new();
    for f in graph.iter().filter(|f| f.number == GRAPH_NODE) {
        nodes.push(Node::parse(
            f.raw,
            f.bytes().ok_or("a node is not a message")?,
        )?);
    }
    let mut producer = HashMap::new();
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for &out in &node.outputs {
            producer.insert(out, i);
        }
        for &input in node.inputs.iter().filter(|n| !n.is_empty()) {
            *readers.entry(input).or_default() += 1;
        }
        let mut inner = Vec::new();
        subgraph_reads(node, &mut inner)?;
        for name in inner {
            *readers.entry(name).or_default() += 1;
        }
    }
    for &out in &outputs {
        *readers.entry(out).or_default() += 1;
    }
    // Constants: initializers, `Constant` nodes and what is computed from constants only.
    loop {
        let before = constant.len();
        for node in &nodes {
            // Control flow and random numbers are never folded.
            let folds = !node.op.starts_with("Random")
                && !node.is("If")
                && !node.is("Loop")
                && !node.is("Scan");
            let from_constants = node.is("Constant")
                || (folds
                    && node.inputs.iter().any(|i| !i.is_empty())
                    && node
                        .inputs
                        .iter()
                        .all(|i| i.is_empty() || constant.contains(i)));
            if from_constants {
                constant.extend(node.outputs.iter().copied());
            }
        }
        if constant.len() == before {
            break;
        }
    }
    for name in [
        KEEP_NEG,
        KEEP_STARTS,
        KEEP_SHAPE,
        KEEP_ENDS,
        KEEP_AXES,
        KEEP_ROWS,
        NUM_LOGITS_TO_KEEP,
    ] {
        if producer.contains_key(name) || constant.contains(name) || inputs.contains(&name) {
            return Err(format!("the graph already has a tensor named `{name}`"));
        }
    }
    let facts = Graph {
        nodes,
        producer,
        readers,
        constant,
    };
    let head = facts.find_head()?;

    // The new graph: every field in its order, the slice in front of the head, the head
    // reading the sliced tensor, the new input, constants and output shape.
    let mut out_graph = Vec::with_capacity(graph_bytes.len().min(64 << 20));
    let mut node_index = 0;
    for f in &graph {
        match f.number {
            GRAPH_NODE => {
                if node_index == head.node {
                    write_slice_nodes(&mut out_graph, &head.sliced);
                    out_graph.extend(facts.nodes[node_index].with_input(0, KEEP_ROWS));
                } else {
                    out_graph.extend_from_slice(f.raw);
                }
                node_index += 1;
            }
            GRAPH_INITIALIZER => write_initializer(&mut out_graph, f, model, file_name)?,
            GRAPH_OUTPUT if value_info_name(f)? == Some("logits") => {
                write_logits_output(&mut out_graph, f)?;
            }
            GRAPH_VALUE_INFO
                if value_info_name(f)?.is_some_and(|n| head.changed.iter().any(|c| c == n)) => {}
            _ => out_graph.extend_from_slice(f.raw),
        }
    }
    for (name, value) in [(KEEP_SHAPE, 1i64), (KEEP_ENDS, i64::MAX), (KEEP_AXES, 1)] {
        put_message(&mut out_graph, GRAPH_INITIALIZER, |t| {
            put_varint_field(t, TENSOR_DIMS, 1);
            put_varint_field(t, TENSOR_DATA_TYPE, TENSOR_INT64);
            put_bytes_field(t, TENSOR_NAME, name.as_bytes());
            put_bytes_field(t, TENSOR_RAW_DATA, &value.to_le_bytes());
        });
    }
    put_message(&mut out_graph, GRAPH_INPUT, |v| {
        put_bytes_field(v, VALUE_INFO_NAME, NUM_LOGITS_TO_KEEP.as_bytes());
        put_message(v, VALUE_INFO_TYPE, |t| {
            put_message(t, TYPE_TENSOR, |tt| {
                put_varint_field(tt, TENSOR_TYPE_ELEM, TENSOR_INT64);
                // An empty shape: a scalar.
                put_message(tt, TENSOR_TYPE_SHAPE, |_| {});
            });
        });
    });

    let mut out = Vec::with_capacity(out_graph.len() + 4096);
    for f in &top {
        if f.number == MODEL_GRAPH {
            put_bytes_field(&mut out, MODEL_GRAPH, &out_graph);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    Ok(Rewrite {
        model: Some(out),
        positions: LogitsPositions::Rewritten(head.kind),
    })
}

/// `starts = Reshape(Neg(num_logits_to_keep), [1])`, `rows = Slice(sliced, starts,
/// [INT64_MAX], [1])`: the last `num_logits_to_keep` positions (all of them when it is 0 or
/// larger than the sequence).
fn write_slice_nodes(out: &mut Vec<u8>, sliced: &str) {
    let node = |out: &mut Vec<u8>, op: &str, inputs: &[&str], output: &str| {
        put_message(out, GRAPH_NODE, |n| {
            for input in inputs {
                put_bytes_field(n, NODE_INPUT, input.as_bytes());
            }
            put_bytes_field(n, NODE_OUTPUT, output.as_bytes());
            put_bytes_field(n, NODE_NAME, output.as_bytes());
            put_bytes_field(n, NODE_OP_TYPE, op.as_bytes());
        });
    };
    node(out, "Neg", &[NUM_LOGITS_TO_KEEP], KEEP_NEG);
    node(out, "Reshape", &[KEEP_NEG, KEEP_SHAPE], KEEP_STARTS);
    node(
        out,
        "Slice",
        &[sliced, KEEP_STARTS, KEEP_ENDS, KEEP_AXES],
        KEEP_ROWS,
    );
}

/// Copies an initializer; a large inline one becomes a reference to its bytes in the
/// original file (`location` = the file, `offset`, `length`).
fn write_initializer(
    out: &mut Vec<u8>,
    f: &Field<'_>,
    model: &[u8],
    file_name: &str,
) -> Result<(), String> {
    let tensor = fields(f.bytes().ok_or("an initializer is not a message")?)?;
    let raw = tensor
        .iter()
        .find(|x| x.number == TENSOR_RAW_DATA)
        .and_then(Field::bytes);
    let external = tensor
        .iter()
        .any(|x| x.number == TENSOR_DATA_LOCATION && x.varint() == Some(1));
    match raw {
        Some(bytes) if bytes.len() >= EXTERNAL_MIN_BYTES && !external => {
            // The raw bytes are a subslice of `model`: their offset in the file.
            let offset = bytes.as_ptr() as usize - model.as_ptr() as usize;
            put_message(out, GRAPH_INITIALIZER, |t| {
                for x in tensor.iter().filter(|x| x.number != TENSOR_RAW_DATA) {
                    t.extend_from_slice(x.raw);
                }
                for (key, value) in [
                    ("location", file_name.to_owned()),
                    ("offset", offset.to_string()),
                    ("length", bytes.len().to_string()),
                ] {
                    put_message(t, TENSOR_EXTERNAL_DATA, |e| {
                        put_bytes_field(e, ENTRY_KEY, key.as_bytes());
                        put_bytes_field(e, ENTRY_VALUE, value.as_bytes());
                    });
                }
                put_varint_field(t, TENSOR_DATA_LOCATION, 1);
            });
        }
        _ => out.extend_from_slice(f.raw),
    }
    Ok(())
}

/// The `logits` output with its sequence dimension renamed to `logits_positions` (element
/// type, batch and vocabulary dimensions as declared).
fn write_logits_output(out: &mut Vec<u8>, f: &Field<'_>) -> Result<(), String> {
    let info = fields(f.bytes().ok_or("the logits output is not a message")?)?;
    let bad = || "the `logits` output has no tensor type".to_owned();
    let ty = info
        .iter()
        .find(|x| x.number == VALUE_INFO_TYPE)
        .and_then(Field::bytes)
        .ok_or_else(bad)?;
    let ty = fields(ty)?;
    let tensor = ty
        .iter()
        .find(|x| x.number == TYPE_TENSOR)
        .and_then(Field::bytes)
        .ok_or_else(bad)?;
    let tensor = fields(tensor)?;
    let elem = tensor
        .iter()
        .find(|x| x.number == TENSOR_TYPE_ELEM)
        .and_then(Field::varint)
        .ok_or_else(bad)?;
    let dims: Vec<Field<'_>> = match tensor
        .iter()
        .find(|x| x.number == TENSOR_TYPE_SHAPE)
        .and_then(Field::bytes)
    {
        Some(shape) => fields(shape)?
            .into_iter()
            .filter(|d| d.number == SHAPE_DIM)
            .collect(),
        None => Vec::new(),
    };
    if dims.len() != 3 {
        return Err(format!(
            "`logits` is declared with {} dimensions, not 3",
            dims.len()
        ));
    }
    put_message(out, GRAPH_OUTPUT, |v| {
        put_bytes_field(v, VALUE_INFO_NAME, b"logits");
        put_message(v, VALUE_INFO_TYPE, |t| {
            put_message(t, TYPE_TENSOR, |tt| {
                put_varint_field(tt, TENSOR_TYPE_ELEM, elem);
                put_message(tt, TENSOR_TYPE_SHAPE, |s| {
                    s.extend_from_slice(dims[0].raw);
                    put_message(s, SHAPE_DIM, |d| {
                        put_bytes_field(d, DIM_PARAM, b"logits_positions")
                    });
                    s.extend_from_slice(dims[2].raw);
                });
            });
        });
    });
    Ok(())
}

/// Reads `file` and rewrites it (see [`rewrite`]); a file that cannot be read is loaded by
/// ONNX Runtime as usual, which reports the problem.
pub(crate) fn rewrite_file(file: &Path) -> Rewrite {
    let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
        return rewrite_failed("the file name is not UTF-8");
    };
    match std::fs::read(file) {
        Ok(bytes) => rewrite(&bytes, name),
        Err(e) => rewrite_failed(&format!("cannot read the file: {e}")),
    }
}

fn rewrite_failed(why: &str) -> Rewrite {
    Rewrite {
        model: None,
        positions: LogitsPositions::AllPositions(why.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model of `nodes` (op, inputs, outputs) with `inputs`, `initializers` and the graph
    /// output `logits` (rank 3), at `opset`.
    fn model(
        opset: u64,
        inputs: &[&str],
        initializers: &[&str],
        nodes: &[(&str, &[&str], &[&str])],
    ) -> Vec<u8> {
        let mut graph = Vec::new();
        for (op, ins, outs) in nodes {
            put_message(&mut graph, GRAPH_NODE, |n| {
                for i in *ins {
                    put_bytes_field(n, NODE_INPUT, i.as_bytes());
                }
                for o in *outs {
                    put_bytes_field(n, NODE_OUTPUT, o.as_bytes());
                }
                put_bytes_field(n, NODE_OP_TYPE, op.as_bytes());
            });
        }
        for name in initializers {
            put_message(&mut graph, GRAPH_INITIALIZER, |t| {
                put_varint_field(t, TENSOR_DATA_TYPE, 1);
                put_bytes_field(t, TENSOR_NAME, name.as_bytes());
                put_bytes_field(t, TENSOR_RAW_DATA, &[0u8; 16]);
            });
        }
        let value_info = |g: &mut Vec<u8>, field: u32, name: &str, rank: usize| {
            put_message(g, field, |v| {
                put_bytes_field(v, VALUE_INFO_NAME, name.as_bytes());
                put_message(v, VALUE_INFO_TYPE, |t| {
                    put_message(t, TYPE_TENSOR, |tt| {
                        put_varint_field(tt, TENSOR_TYPE_ELEM, 1);
                        put_message(tt, TENSOR_TYPE_SHAPE, |s| {
                            for _ in 0..rank {
                                put_message(s, SHAPE_DIM, |d| put_bytes_field(d, DIM_PARAM, b"n"));
                            }
                        });
                    });
                });
            });
        };
        for name in inputs {
            value_info(&mut graph, GRAPH_INPUT, name, 3);
        }
        value_info(&mut graph, GRAPH_OUTPUT, "logits", 3);
        let mut out = Vec::new();
        put_message(&mut out, MODEL_OPSET_IMPORT, |o| {
            put_varint_field(o, OPSET_VERSION, opset)
        });
        put_bytes_field(&mut out, MODEL_GRAPH, &graph);
        out
    }

    fn positions(bytes: &[u8]) -> LogitsPositions {
        rewrite(bytes, "model.onnx").positions
    }

    #[test]
    fn a_float_head_behind_soft_capping_is_rewritten() {
        let m = model(
            17,
            &["hidden"],
            &["w", "cap"],
            &[
                ("MatMul", &["hidden", "w"], &["h"]),
                ("Div", &["h", "cap"], &["d"]),
                ("Tanh", &["d"], &["t"]),
                ("Mul", &["t", "cap"], &["logits"]),
            ],
        );
        let r = rewrite(&m, "model.onnx");
        assert_eq!(r.positions, LogitsPositions::Rewritten("MatMul"));
        // The rewritten model reads back, with the slice in front of the head.
        let rewritten = r.model.unwrap();
        let top = fields(&rewritten).unwrap();
        let graph = fields(
            top.iter()
                .find(|f| f.number == MODEL_GRAPH)
                .unwrap()
                .bytes()
                .unwrap(),
        )
        .unwrap();
        let ops: Vec<String> = graph
            .iter()
            .filter(|f| f.number == GRAPH_NODE)
            .map(|f| {
                Node::parse(f.raw, f.bytes().unwrap())
                    .unwrap()
                    .op
                    .to_owned()
            })
            .collect();
        assert_eq!(
            ops,
            ["Neg", "Reshape", "Slice", "MatMul", "Div", "Tanh", "Mul"]
        );
        let head = graph
            .iter()
            .filter(|f| f.number == GRAPH_NODE)
            .map(|f| Node::parse(f.raw, f.bytes().unwrap()).unwrap())
            .find(|n| n.op == "MatMul")
            .unwrap();
        assert_eq!(head.inputs, [KEEP_ROWS, "w"]);
        assert!(graph
            .iter()
            .filter(|f| f.number == GRAPH_INPUT)
            .any(|f| value_info_name(f).unwrap() == Some(NUM_LOGITS_TO_KEEP)));
    }

    #[test]
    fn what_is_not_a_known_head_is_left_alone_with_the_reason() {
        let why = |bytes: &[u8]| match positions(bytes) {
            LogitsPositions::AllPositions(why) => why,
            other => panic!("rewritten: {other}"),
        };
        let softmax = model(
            17,
            &["hidden"],
            &[],
            &[("Softmax", &["hidden"], &["logits"])],
        );
        assert!(why(&softmax).contains("`Softmax`"), "{}", why(&softmax));
        let data_weight = model(
            17,
            &["hidden", "w"],
            &[],
            &[("MatMul", &["hidden", "w"], &["logits"])],
        );
        assert!(
            why(&data_weight).contains("non-constant weight"),
            "{}",
            why(&data_weight)
        );
        let old = model(
            11,
            &["hidden"],
            &["w"],
            &[("MatMul", &["hidden", "w"], &["logits"])],
        );
        assert!(why(&old).contains("opset 11"), "{}", why(&old));
        // The head's output also feeds another node: slicing would change it.
        let shared = model(
            17,
            &["hidden"],
            &["w", "b"],
            &[
                ("MatMul", &["hidden", "w"], &["h"]),
                ("Add", &["h", "b"], &["logits"]),
                ("Identity", &["h"], &["other"]),
            ],
        );
        assert!(why(&shared).contains("read by more"), "{}", why(&shared));
        assert!(
            why(b"\x0a\x05ab").contains("past the end"),
            "{}",
            why(b"\x0a\x05ab")
        );
    }

    #[test]
    fn a_model_with_its_own_input_is_used_as_it_is() {
        let m = model(
            17,
            &["hidden", "logits_to_keep"],
            &["w"],
            &[("MatMul", &["hidden", "w"], &["logits"])],
        );
        let r = rewrite(&m, "model.onnx");
        assert!(r.model.is_none());
        assert_eq!(
            r.positions,
            LogitsPositions::Native("logits_to_keep".into())
        );
    }
}
