//! `sphana-llm`: tokenize, decode, generate, chat and score from the command line, on the same
//! safe Rust API the C ABI wraps.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use sphana_llm::{
    ChatMessage, ChatOptions, Constraint, EncodeOptions, ExecutionProvider, Flow, GenerateParams,
    Generation, LoadOptions, Model, TokenLogprob, Tokenizer, TokenizerFormat, ToolChoice, Tools,
};

#[derive(Parser)]
#[command(
    name = "sphana-llm",
    version,
    about = "Exact LLM tokenizers and text generation over ONNX Runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the token ids of a text (argument or stdin).
    Tokenize {
        #[command(flatten)]
        model: ModelArgs,
        /// Add BOS etc. as the tokenizer's configuration says.
        #[arg(long)]
        add_special: bool,
        /// Recognise special-token text such as "<|eot_id|>".
        #[arg(long)]
        parse_special: bool,
        /// Also print each token's vocabulary string and byte offsets.
        #[arg(long)]
        tokens: bool,
        /// The text (read from stdin when absent).
        text: Option<String>,
    },
    /// Print the text of token ids.
    Decode {
        #[command(flatten)]
        model: ModelArgs,
        /// Keep special tokens in the text.
        #[arg(long)]
        keep_special: bool,
        /// The ids (read from stdin, separated by spaces or commas, when absent).
        ids: Vec<u32>,
    },
    /// Continue a text prompt; the text streams to stdout, figures go to stderr.
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        generation: GenerationArgs,
        /// Recognise special-token text in the prompt (e.g. a hand-written ChatML prompt).
        #[arg(long)]
        parse_special: bool,
        /// Do not add BOS to the prompt.
        #[arg(long)]
        no_bos: bool,
        /// The prompt (read from stdin when absent).
        prompt: Option<String>,
    },
    /// Ask the model one question with its chat template, or chat interactively when no
    /// question is given and stdin is a terminal.
    Chat {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        generation: GenerationArgs,
        /// A system message.
        #[arg(long)]
        system: Option<String>,
        /// Print the rendered prompt to stderr.
        #[arg(long)]
        show_prompt: bool,
        /// Tool definitions (a JSON array, OpenAI/HF shape) the template renders; the calls
        /// in the answer are listed on stderr.
        #[arg(long, value_name = "FILE")]
        tools: Option<PathBuf>,
        /// With --tools: `auto` (the model decides) or `required` (the answer is one call
        /// of one of the tools, its arguments valid for the tool's schema).
        #[arg(long, value_name = "CHOICE", default_value = "auto", value_parser = parse_tool_choice, requires = "tools")]
        tool_choice: ToolChoice,
        /// The question (interactive loop when absent and stdin is a terminal; else stdin).
        question: Option<String>,
    },
    /// Print the log-probability of each token of a continuation after a prompt, as JSON
    /// (the model's own distribution; the sum is the continuation's log-probability).
    Score {
        #[command(flatten)]
        model: ModelArgs,
        /// The prompt (BOS etc. added as the tokenizer's configuration says, unless --no-bos).
        #[arg(long)]
        prompt: String,
        /// The continuation to score (tokenized on its own, nothing added).
        #[arg(long)]
        continuation: String,
        /// Also list the N most likely tokens at each position (at most 20).
        #[arg(long, default_value_t = 0)]
        top: usize,
        /// Do not add BOS to the prompt.
        #[arg(long)]
        no_bos: bool,
    },
    /// Describe a model: tokenizer, special tokens, ONNX inputs/outputs, KV layout, runtime.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(Args)]
struct ModelArgs {
    /// Model directory or tokenizer file [env: SPHANA_LLM_MODEL].
    #[arg(short, long, env = "SPHANA_LLM_MODEL")]
    model: PathBuf,
    /// Path of libonnxruntime.so [default: ORT_DYLIB_PATH, then next to the library].
    #[arg(long)]
    ort: Option<PathBuf>,
    /// Force a tokenizer format: json, sentencepiece or tiktoken.
    #[arg(long, value_parser = parse_format)]
    format: Option<TokenizerFormat>,
    /// ONNX file inside the model directory [default: model.onnx, else the only *.onnx].
    #[arg(long)]
    onnx_file: Option<String>,
    /// ONNX Runtime intra-op threads [default: ONNX Runtime's choice].
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Run on CUDA (fails unless --cpu-fallback when CUDA is unavailable).
    #[arg(long)]
    cuda: bool,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: i32,
    /// With --cuda: run on CPU if CUDA cannot be enabled.
    #[arg(long)]
    cpu_fallback: bool,
    /// Tokenizer file or directory to use instead of the model directory's.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// An id that ends generation (repeatable); replaces the EOS set of every file.
    #[arg(long = "eos-id")]
    eos_ids: Vec<u32>,
    /// Context length in tokens, overriding config.json's max_position_embeddings.
    #[arg(long)]
    context_length: Option<usize>,
    /// Load the decoder graph unchanged: logits for every prompt position (by default the
    /// head is rewritten to run on the last position only).
    #[arg(long)]
    all_position_logits: bool,
    /// Longest prompt chunk one prefill run reads (0: the whole prompt in one run).
    #[arg(long, default_value_t = sphana_llm::engine::DEFAULT_PREFILL_CHUNK_TOKENS)]
    prefill_chunk: usize,
    /// Most bytes of KV cache the generations may hold at once [default: no limit].
    #[arg(long)]
    max_kv_bytes: Option<usize>,
    /// Longest a generation waits for room in the KV budget, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    kv_wait_ms: u64,
    /// Bytes of host memory for the prefix cache (0: off).
    #[arg(long, default_value_t = 0)]
    prefix_cache_bytes: usize,
}

#[derive(Args)]
struct GenerationArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Top-k (0 disables).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Top-p (1 disables).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Min-p (0 disables).
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// Repetition penalty (1 disables).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop string (repeatable).
    #[arg(long = "stop")]
    stop_strings: Vec<String>,
    /// Keep generating past EOS.
    #[arg(long)]
    ignore_eos: bool,
    /// Print one JSON object instead of streaming text: the text, finish reason and each
    /// token's log-probability with the N most likely alternatives (0 to 20).
    #[arg(long, value_name = "N")]
    logprobs: Option<usize>,
    /// Speculative decoding by prompt lookup: draft at most N tokens per step (0: off).
    #[arg(long, value_name = "N", default_value_t = sphana_llm::generation::DEFAULT_PROMPT_LOOKUP_TOKENS)]
    prompt_lookup: usize,
    /// Longest n-gram prompt lookup matches.
    #[arg(long, value_name = "N", default_value_t = sphana_llm::generation::prompt_lookup::DEFAULT_PROMPT_LOOKUP_NGRAM)]
    prompt_lookup_ngram: usize,
    /// Constrain the answer to the JSON Schema in FILE (structured output).
    #[arg(long, value_name = "FILE", group = "constraint")]
    json_schema: Option<PathBuf>,
    /// Constrain the answer to match the regular expression RX as a whole.
    #[arg(long, value_name = "RX", group = "constraint")]
    regex: Option<String>,
    /// Constrain the answer to the Lark grammar in FILE (start rule `start`).
    #[arg(long, value_name = "FILE", group = "constraint")]
    grammar: Option<PathBuf>,
    /// Constrain the answer to any JSON object.
    #[arg(long, group = "constraint")]
    json_object: bool,
}

fn parse_tool_choice(s: &str) -> Result<ToolChoice, String> {
    match s {
        "auto" => Ok(ToolChoice::Auto),
        "required" => Ok(ToolChoice::Required),
        other => Err(format!("unknown tool choice {other:?} (auto, required)")),
    }
}

fn parse_format(s: &str) -> Result<TokenizerFormat, String> {
    match s {
        "json" | "hf" | "tokenizer.json" => Ok(TokenizerFormat::HfJson),
        "sentencepiece" | "spm" => Ok(TokenizerFormat::SentencePiece),
        "tiktoken" => Ok(TokenizerFormat::Tiktoken),
        other => Err(format!(
            "unknown format {other:?} (json, sentencepiece, tiktoken)"
        )),
    }
}

impl GenerationArgs {
    /// The constraint the flags ask for (reading its file).
    fn constraint(&self) -> CliResult<Option<Constraint>> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
        };
        Ok(if let Some(path) = &self.json_schema {
            Some(Constraint::JsonSchema(read(path)?))
        } else if let Some(path) = &self.grammar {
            Some(Constraint::Lark(read(path)?))
        } else if let Some(rx) = &self.regex {
            Some(Constraint::Regex(rx.clone()))
        } else if self.json_object {
            Some(Constraint::JsonObject)
        } else {
            None
        })
    }

    fn params(&self) -> CliResult<GenerateParams> {
        Ok(GenerateParams {
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            stop_strings: self.stop_strings.clone(),
            ignore_eos: self.ignore_eos,
            logprobs: self.logprobs.is_some(),
            top_logprobs: self.logprobs.unwrap_or(0),
            prompt_lookup_tokens: self.prompt_lookup,
            prompt_lookup_ngram: self.prompt_lookup_ngram,
            constraint: self.constraint()?,
            ..Default::default()
        })
    }
}

/// A token's JSON: id, its text on its own (lossy where it is part of a character) and
/// log-probability, and the alternatives.
fn logprob_json(tokenizer: &Tokenizer, t: &TokenLogprob) -> serde_json::Value {
    let text = |id: u32| tokenizer.decode(&[id], false).unwrap_or_default();
    serde_json::json!({
        "id": t.id,
        "text": text(t.id),
        "logprob": t.logprob,
        "top": t.top.iter().map(|a| serde_json::json!({
            "id": a.id,
            "text": text(a.id),
            "logprob": a.logprob,
        })).collect::<Vec<_>>(),
    })
}

/// A generation as JSON (`--logprobs`).
fn generation_json(tokenizer: &Tokenizer, g: &Generation) -> serde_json::Value {
    serde_json::json!({
        "text": g.text,
        "finish_reason": format!("{:?}", g.stats.finish_reason),
        "prompt_tokens": g.stats.prompt_tokens,
        "tokens": g.logprobs.iter().map(|t| logprob_json(tokenizer, t)).collect::<Vec<_>>(),
    })
}

/// Generates, streaming the text to stdout, or (with `--logprobs`) printing one JSON object.
fn generate_and_print(
    model: &Model,
    params: &GenerateParams,
    run: impl FnOnce(&mut dyn FnMut(&str) -> Flow) -> sphana_llm::Result<Generation>,
) -> CliResult<Generation> {
    let result = if params.logprobs {
        let result = run(&mut |_| Flow::Continue).map_err(|e| e.to_string())?;
        println!("{}", generation_json(model.tokenizer(), &result));
        result
    } else {
        let result = run(&mut stream_to_stdout()).map_err(|e| e.to_string())?;
        println!();
        result
    };
    print_stats(&result);
    Ok(result)
}

type CliResult<T> = Result<T, String>;

fn load(args: &ModelArgs) -> CliResult<Model> {
    let options = LoadOptions {
        tokenizer_format: args.format,
        ort_library_path: args.ort.clone(),
        onnx_file_name: args.onnx_file.clone(),
        intra_op_threads: args.threads,
        execution_provider: if args.cuda {
            ExecutionProvider::Cuda
        } else {
            ExecutionProvider::Cpu
        },
        device_id: args.device,
        allow_cpu_fallback: args.cpu_fallback,
        tokenizer_path: args.tokenizer.clone(),
        eos_token_ids: (!args.eos_ids.is_empty()).then(|| args.eos_ids.clone()),
        context_length: args.context_length,
        rewrite_logits: !args.all_position_logits,
        prefill_chunk_tokens: args.prefill_chunk,
        max_kv_cache_bytes: args.max_kv_bytes,
        kv_wait: std::time::Duration::from_millis(args.kv_wait_ms),
        prefix_cache_bytes: args.prefix_cache_bytes,
        ..Default::default()
    };
    let started = Instant::now();
    eprint!("loading {} ... ", args.model.display());
    let model = Model::load(&args.model, &options).map_err(|e| {
        eprintln!("failed");
        e.to_string()
    })?;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(model)
}

/// Only the tokenizer (tokenize and decode need no ONNX model): `--tokenizer`, else the
/// model path's tokenizer file.
fn load_tokenizer(args: &ModelArgs) -> CliResult<Tokenizer> {
    let path = args.tokenizer.as_ref().unwrap_or(&args.model);
    Tokenizer::from_path(path, args.format).map_err(|e| e.to_string())
}

fn read_stdin() -> CliResult<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("reading stdin: {e}"))?;
    Ok(text)
}

fn stream_to_stdout() -> impl FnMut(&str) -> Flow {
    let mut stdout = std::io::stdout();
    move |chunk: &str| {
        if stdout
            .write_all(chunk.as_bytes())
            .and_then(|_| stdout.flush())
            .is_err()
        {
            return Flow::Stop;
        }
        Flow::Continue
    }
}

fn print_stats(result: &Generation) {
    let s = &result.stats;
    // The first token comes from the prefill; the decode rate needs at least one more.
    let decode = match s.generated_tokens {
        0 | 1 => "decode -".to_owned(),
        n => format!(
            "decode {:.1} tok/s",
            (n - 1) as f64 / (s.decode_ms / 1e3).max(1e-9)
        ),
    };
    let cached = match s.cached_tokens {
        0 => String::new(),
        n => format!("; {n} prompt tokens from the prefix cache"),
    };
    let constraint = if s.constraint_ms > 0.0 {
        format!("; constraint compiled in {:.1} ms", s.constraint_ms)
    } else {
        String::new()
    };
    let drafts = match s.draft_tokens {
        0 => String::new(),
        n => format!(
            "; {} of {n} drafted tokens accepted",
            s.accepted_draft_tokens
        ),
    };
    eprintln!(
        "[{} prompt tokens, {} generated, finish: {:?}; prefill {:.0} ms ({:.1} tok/s), {decode}{cached}{drafts}{constraint}]",
        s.prompt_tokens,
        s.generated_tokens,
        s.finish_reason,
        s.prefill_ms,
        s.prompt_tokens as f64 / (s.prefill_ms / 1e3).max(1e-9),
    );
}

fn run(cli: Cli) -> CliResult<()> {
    match cli.command {
        Command::Tokenize {
            model,
            add_special,
            parse_special,
            tokens,
            text,
        } => {
            let tokenizer = load_tokenizer(&model)?;
            let text = match text {
                Some(t) => t,
                None => read_stdin()?,
            };
            let options = EncodeOptions {
                add_special,
                parse_special,
            };
            let encoding = tokenizer
                .encode_with_offsets(&text, options)
                .map_err(|e| e.to_string())?;
            if tokens {
                for (id, (start, end)) in encoding.ids.iter().zip(&encoding.offsets) {
                    let token = tokenizer.id_to_token(*id).unwrap_or_default();
                    println!("{id}\t{token:?}\t{start}..{end}\t{:?}", &text[*start..*end]);
                }
            } else {
                let ids: Vec<String> = encoding.ids.iter().map(u32::to_string).collect();
                println!("{}", ids.join(" "));
            }
            eprintln!("[{} tokens, {} bytes]", encoding.ids.len(), text.len());
        }
        Command::Decode {
            model,
            keep_special,
            ids,
        } => {
            let tokenizer = load_tokenizer(&model)?;
            let ids = if ids.is_empty() {
                read_stdin()?
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse::<u32>()
                            .map_err(|_| format!("not a token id: {s:?}"))
                    })
                    .collect::<CliResult<Vec<u32>>>()?
            } else {
                ids
            };
            let text = tokenizer
                .decode(&ids, !keep_special)
                .map_err(|e| e.to_string())?;
            println!("{text}");
        }
        Command::Generate {
            model,
            generation,
            parse_special,
            no_bos,
            prompt,
        } => {
            let model = load(&model)?;
            let prompt = match prompt {
                Some(p) => p,
                None => read_stdin()?,
            };
            let params = GenerateParams {
                parse_special,
                add_special: !no_bos,
                ..generation.params()?
            };
            generate_and_print(&model, &params, |on_text| {
                model.generate(&prompt, &params, on_text)
            })?;
        }
        Command::Chat {
            model,
            generation,
            system,
            show_prompt,
            tools,
            tool_choice,
            question,
        } => {
            let model = load(&model)?;
            let params = generation.params()?;
            let tools = match &tools {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("{}: {e}", path.display()))
                        .and_then(|t| Tools::from_json(&t).map_err(|e| e.to_string()))?,
                ),
                None => None,
            };
            let mut messages: Vec<ChatMessage> = system
                .into_iter()
                .map(|s| ChatMessage::new("system", s))
                .collect();
            let interactive = question.is_none() && std::io::stdin().is_terminal();
            let ask = |messages: &mut Vec<ChatMessage>, question: String| -> CliResult<()> {
                messages.push(ChatMessage::new("user", question));
                if show_prompt {
                    let prompt = model
                        .apply_chat_template_with_tools(
                            messages,
                            tools.as_ref(),
                            true,
                            &ChatOptions::default(),
                        )
                        .map_err(|e| e.to_string())?;
                    eprintln!("{prompt}");
                }
                let mut calls = Vec::new();
                let result = generate_and_print(&model, &params, |on_text| match &tools {
                    Some(tools) => {
                        let reply = model.generate_chat_with_tools(
                            messages,
                            tools,
                            tool_choice,
                            &ChatOptions::default(),
                            &params,
                            on_text,
                        )?;
                        calls = reply.tool_calls;
                        Ok(reply.generation)
                    }
                    None => {
                        model.generate_chat(messages, &ChatOptions::default(), &params, on_text)
                    }
                })?;
                for call in &calls {
                    eprintln!("tool call: {} {}", call.name, call.arguments_json());
                }
                messages.push(ChatMessage::new("assistant", result.text));
                Ok(())
            };
            if interactive {
                eprintln!("(empty line or Ctrl-D to quit)");
                loop {
                    eprint!("> ");
                    let mut line = String::new();
                    if std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|e| e.to_string())?
                        == 0
                        || line.trim().is_empty()
                    {
                        break;
                    }
                    ask(&mut messages, line.trim_end().to_owned())?;
                }
            } else {
                let question = match question {
                    Some(q) => q,
                    None => read_stdin()?.trim_end().to_owned(),
                };
                ask(&mut messages, question)?;
            }
        }
        Command::Score {
            model,
            prompt,
            continuation,
            top,
            no_bos,
        } => {
            let model = load(&model)?;
            let tokenize = |text: &str, add_special: bool| {
                model
                    .tokenize(
                        text,
                        EncodeOptions {
                            add_special,
                            parse_special: false,
                        },
                    )
                    .map_err(|e| e.to_string())
            };
            let prompt_ids = tokenize(&prompt, !no_bos)?;
            let continuation_ids = tokenize(&continuation, false)?;
            let scored = model
                .score(&prompt_ids, &continuation_ids, top)
                .map_err(|e| e.to_string())?;
            let total: f64 = scored.iter().map(|t| f64::from(t.logprob)).sum();
            let json = serde_json::json!({
                "prompt_tokens": prompt_ids.len(),
                "logprob": total,
                "tokens": scored
                    .iter()
                    .map(|t| logprob_json(model.tokenizer(), t))
                    .collect::<Vec<_>>(),
            });
            println!("{json}");
        }
        Command::Info { model } => {
            let model = load(&model)?;
            print_info(&model);
        }
    }
    Ok(())
}

fn print_info(model: &Model) {
    let t = model.tokenizer();
    println!("path:              {}", model.path().display());
    println!(
        "tokenizer:         {} ({}){}",
        t.format().name(),
        t.source().display(),
        if t.has_fast_path() {
            ", byte-level BPE fast path"
        } else {
            ""
        }
    );
    println!("vocabulary:        {}", t.vocab_size());
    let name = |id: u32| t.id_to_token(id).unwrap_or_default();
    match t.bos_id() {
        Some(id) => println!("bos:               {id} {}", name(id)),
        None => println!("bos:               none"),
    }
    let eos: Vec<String> = t
        .eos_ids()
        .iter()
        .map(|&id| format!("{id} {}", name(id)))
        .collect();
    println!(
        "eos:               {}",
        if eos.is_empty() {
            "none".into()
        } else {
            eos.join(", ")
        }
    );
    println!("eos from:          {}", t.eos_source());
    let specials = t.special_tokens();
    let shown: Vec<&str> = specials.iter().take(12).map(|(_, s)| s.as_str()).collect();
    println!(
        "special tokens:    {} ({}{})",
        specials.len(),
        shown.join(" "),
        if specials.len() > shown.len() {
            " ..."
        } else {
            ""
        }
    );
    println!(
        "chat template:     {}",
        if t.chat_template().is_some() {
            "yes"
        } else {
            "no"
        }
    );
    let Some(engine) = model.engine() else {
        println!("onnx model:        none (tokenizer-only)");
        return;
    };
    let layout = engine.layout();
    println!("onnx model:        {}", engine.model_file().display());
    println!("inputs:            {}", layout.input_names.join(", "));
    println!("outputs:           {}", layout.output_names.join(", "));
    if layout.has_kv_cache() {
        println!(
            "kv cache:          {} layers x {} heads x {} dims, {}",
            layout.layers.len(),
            layout.kv_heads,
            layout.head_dim,
            layout.kv_dtype.name()
        );
    } else {
        println!("kv cache:          none (full recompute each step)");
    }
    println!(
        "logits:            {:?} x {}",
        layout.logits_dtype,
        layout.logits_vocab.map_or("?".into(), |v| v.to_string())
    );
    println!("logits for:        {}", engine.logits_positions());
    match (engine.context_length(), model.options().context_length) {
        (Some(c), Some(_)) => println!("context length:    {c} (the context_length load option)"),
        (Some(c), None) => println!("context length:    {c} (config.json max_position_embeddings)"),
        (None, _) => println!(
            "context length:    unknown (no config.json; only --max-new-tokens limits a generation; set --context-length)"
        ),
    }
    println!(
        "onnx runtime:      {} ({}), {:?}, {} session(s)",
        engine.runtime().version,
        engine.runtime().library_path.display(),
        engine.provider(),
        engine.session_count()
    );
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
