//! Reading a case: YAML → typed case → semantic checks, each error pointing at its place.

use std::path::{Path, PathBuf};

use crate::case::{Case, Engine, Policy, RawCase, RouterKind, SimEngineArgs};
use crate::engines::{CommandArgs, EngineArgs};
use crate::error::CaseError;
use crate::locate::line_of;
use crate::name::ConfigName;

/// A case that passed every check, with what it was read from.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    pub case: Case,
    pub config_name: ConfigName,
    /// The case file as given (for messages) and its folder (for relative paths).
    pub path: PathBuf,
}

impl LoadedCase {
    /// The baseline CSV path, resolved against the case file's folder.
    pub fn baseline_path(&self) -> Option<PathBuf> {
        let rel = self.case.perf.baseline.as_ref()?;
        if rel == crate::case::HISTORY_BASELINE {
            return None;
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        Some(dir.join(rel))
    }
}

/// The most values in one of a case's lists (concurrencies, request rates, percentiles): each
/// point is a measurement of its own, so hundreds are a mistake, not a study.
pub const MAX_LIST: usize = 256;

/// The largest case file read. A case is a page of YAML (a few KiB, a sweep a little more); a
/// file a hundred times that is a mistake (or an attack), and is refused before it is read.
pub const MAX_CASE_BYTES: u64 = 256 << 10;

/// The deepest nesting of flow collections (`[...]`, `{...}`) accepted. The YAML parser's time
/// grows with the square of that depth (20k levels took 2.4 s), and no case needs more than a
/// few levels; deeper is refused by a linear scan before the parser sees it.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Reads and checks a case file.
pub fn load_case(path: &Path) -> Result<LoadedCase, CaseError> {
    parse_case(&read_case_text(path)?, path)
}

/// Reads a case file's text, refusing one larger than [`MAX_CASE_BYTES`] before reading more.
pub fn read_case_text(path: &Path) -> Result<String, CaseError> {
    use std::io::Read;
    let cannot = |e: std::io::Error| {
        CaseError::new(path, "", format!("cannot read the case file: {e}"))
            .hint("check the path; `disagg validate FILE` checks a case without running it")
    };
    let mut bytes = Vec::new();
    // Bounded even for files that lie about their size (a FIFO, /dev/zero).
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CASE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_CASE_BYTES {
        return Err(CaseError::new(
            path,
            "",
            format!("the case file is larger than {} KiB", MAX_CASE_BYTES / 1024),
        )
        .hint(
            "a case is a page of YAML; long lists (a sweep, a dataset) belong in files it names",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        CaseError::new(path, "", format!("the case file is not UTF-8: {e}"))
            .hint("save it as UTF-8 text")
    })
}

/// Checks a case given as text; `path` is used in messages and to resolve relative paths.
pub fn parse_case(text: &str, path: &Path) -> Result<LoadedCase, CaseError> {
    let text = check_shape(text, path)?;
    // First pass with untyped engine_args: learn which engine the case is for.
    let raw: RawCase<serde_yaml_ng::Value> = deserialize(text, path)?;
    let mut case: Case = match raw.engine {
        Engine::Sim => deserialize::<RawCase<SimEngineArgs>>(text, path)?
            .map_args(|a| EngineArgs::Sim(Box::new(a))),
        Engine::Command => {
            deserialize::<RawCase<CommandArgs>>(text, path)?.map_args(EngineArgs::Command)
        }
        Engine::Trtllm | Engine::Vllm | Engine::Sglang => {
            deserialize::<RawCase<serde_yaml_ng::Mapping>>(text, path)?
                .map_args(EngineArgs::Options)
        }
    };
    check(&case, text, path)?;
    // The router speaks the engine's dialect unless the case says otherwise (and `check` has
    // refused a dialect the engine cannot speak).
    let native = case.engine.native_dialect().unwrap_or_default();
    case.router.dialect.get_or_insert(native);
    let config_name = match &case.name {
        Some(n) => ConfigName::new(n).map_err(|why| {
            CaseError::new(path, "name", format!("`{n}` cannot be a folder name: {why}"))
                .at_line(line_of(text, "name"))
                .hint("use only letters, digits and . _ + - (no `/`, no `..`), or drop `name` to derive one")
        })?,
        None => ConfigName::derive(&case).map_err(|why| {
            CaseError::new(path, "name", format!("the config name derived from this case {why}"))
                .hint("set `name:` to a folder name of your own (letters, digits and . _ + -, at most 200 characters)")
        })?,
    };
    Ok(LoadedCase {
        case,
        config_name,
        path: path.to_path_buf(),
    })
}

/// What the YAML parser must never see: flow collections nested deeper than
/// [`MAX_FLOW_DEPTH`] (its time is quadratic in that depth), and more than one document (the
/// rest would be ignored). One linear pass; brackets inside quotes and comments do not count.
/// Returns the text to parse: all of it, or what comes before a last `---` that starts no
/// document (an empty one, which the parser would count as a second).
pub fn check_shape<'a>(text: &'a str, path: &Path) -> Result<&'a str, CaseError> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut comment = false;
    let mut line = 1usize;
    let mut prev = b'\n';
    // The last byte on this line that was not a space: a quote opens a scalar only where a
    // scalar can start (`key: '`, `- '`, `['`, `{'`, `, '`), not inside a plain one (`it's`).
    let mut last_sig = b'\n';
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            line += 1;
            comment = false;
            prev = b;
            last_sig = b;
            continue;
        }
        if comment {
            continue;
        }
        match quote {
            Some(b'\'') if b == b'\'' => quote = None,
            Some(b'"') if b == b'"' && prev != b'\\' => quote = None,
            Some(_) => {}
            None => match b {
                b'#' if prev.is_ascii_whitespace() => comment = true,
                b'\'' | b'"'
                    if matches!(prev, b'\n' | b'[' | b'{' | b',')
                        || (matches!(prev, b' ' | b'\t')
                            && matches!(
                                last_sig,
                                b'\n' | b':' | b'-' | b'?' | b',' | b'[' | b'{'
                            )) =>
                {
                    quote = Some(b)
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Err(CaseError::new(
                            path,
                            "",
                            format!("`[`/`{{` nested more than {MAX_FLOW_DEPTH} deep"),
                        )
                        .at_line(Some(line))
                        .hint("a case needs a few levels at most; check for a runaway or generated file"));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b'-' if prev == b'\n'
                    && bytes.get(i..i + 3) == Some(b"---")
                    && bytes.get(i + 3).is_none_or(|c| c.is_ascii_whitespace())
                    && line > 1
                    && text[..i].lines().any(|l| {
                        let l = l.trim();
                        !l.is_empty() && !l.starts_with('#') && l != "---" && !l.starts_with("%")
                    }) =>
                {
                    let rest = &text[i + 3..];
                    let more = rest.lines().any(|l| {
                        let l = l.trim();
                        !l.is_empty() && !l.starts_with('#') && l != "..."
                    });
                    if more {
                        return Err(CaseError::new(path, "", "a second YAML document (after `---`)")
                            .at_line(Some(line))
                            .hint("a case file holds one case; put each case in a file of its own (`disagg run A.yaml B.yaml`)"));
                    }
                    return Ok(&text[..i]);
                }
                _ => {}
            },
        }
        if !b.is_ascii_whitespace() {
            last_sig = b;
        }
        prev = b;
    }
    Ok(text)
}

fn deserialize<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, CaseError> {
    if text.trim().is_empty() {
        return Err(CaseError::new(path, "", "the case file is empty")
            .hint("start from examples/quickstart.yaml"));
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let line = inner.location().map(|l| l.line());
        // Not a mapping at all (a CSV, a list): say what the file is, not quote all of it.
        if key == "." {
            if let Some(rest) = inner.to_string().strip_prefix("invalid type: ") {
                let kind = rest.split([' ', ',']).next().unwrap_or("value");
                let csv = path.extension().is_some_and(|e| e == "csv");
                return CaseError::new(
                    path,
                    "",
                    format!(
                        "this is not a case: its top level is a {kind}, where a case is a \
                         mapping of keys (`model:`, `engine:`, `ctx:`, `gen:`, `benchmark:`, ...)"
                    ),
                )
                .hint(if csv {
                    "a baseline CSV goes in the case's `perf.baseline`; run the case file"
                } else {
                    "start from examples/quickstart.yaml"
                });
            }
        }
        describe(
            path,
            if key == "." { String::new() } else { key },
            &inner.to_string(),
            line,
            text,
        )
    })
}

/// Turns serde's message into one that says what was expected and how to fix it.
fn describe(path: &Path, mut key: String, raw: &str, line: Option<usize>, text: &str) -> CaseError {
    let msg = core_message(raw);
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let options = backticked(expected);
        let parent = key
            .rsplit_once('.')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        let place = if parent.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in `{parent}`")
        };
        let mut e = CaseError::new(path, key.clone(), format!("unknown key `{field}` {place}"))
            .at_line(line);
        let known = if options.is_empty() {
            "none".to_string()
        } else {
            options.join(", ")
        };
        // An environment block written where it does not go: its place is under `env:`.
        let env_of = match (parent.as_str(), field) {
            ("", "worker" | "server" | "worker_unset") => Some(format!("env.{field}")),
            ("benchmark", "env") => Some("env.benchmark".to_string()),
            ("router", "env") => Some("env.server".to_string()),
            _ => None,
        };
        e = match closest(field, &options) {
            _ if env_of.is_some() => e.hint(format!(
                "environment variables go under the top-level `env:`: move it to `{}` \
                 (docs/case.md, `env`)",
                env_of.as_deref().unwrap_or_default()
            )),
            // YAML 1.1's merge key, which the YAML parser reads as a plain key.
            _ if field == "<<" => e.hint(
                "YAML merge keys (`<<: *anchor`) are not supported: write the keys out, or \
                 vary a case with a sweep (docs/case.md)",
            ),
            Some(s) => e.hint(format!("did you mean `{s}`? known keys: {known}")),
            None => e.hint(format!("remove it; known keys: {known}")),
        };
        return e;
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        key = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        let parent_line = key.rsplit_once('.').and_then(|(p, _)| line_of(text, p));
        return CaseError::new(
            path,
            key.clone(),
            format!("required key `{field}` is missing"),
        )
        .at_line(parent_line.or(line))
        .hint(format!(
            "add `{key}`; examples/quickstart.yaml shows every key"
        ));
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (got, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let options = backticked(expected);
        let mut e = CaseError::new(
            path,
            key,
            format!("`{got}` is not one of: {}", options.join(", ")),
        )
        .at_line(line);
        if let Some(s) = closest(got, &options) {
            e = e.hint(format!("did you mean `{s}`?"));
        } else {
            e = e.hint(format!("use one of: {}", options.join(", ")));
        }
        return e;
    }
    // `request: 60`: YAML's number reaches the duration parser as the string "60", which the
    // message would call a string; it is a number without a unit.
    if let Some(n) = msg
        .strip_prefix("invalid value: string \"")
        .and_then(|r| r.split_once('"'))
        .filter(|(n, rest)| {
            rest.contains("expected a duration")
                && !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .map(|(n, _)| n)
    {
        return CaseError::new(
            path,
            key,
            format!("`{n}` has no unit, so it is no duration"),
        )
        .at_line(line)
        .hint(format!("write `{n}s` for seconds (or `{n}m`, `{n}ms`)"));
    }
    if msg.starts_with("invalid type")
        || msg.starts_with("invalid value")
        || msg.starts_with("invalid length")
    {
        let hint = expected_hint(&msg, &key);
        return CaseError::new(path, key, msg).at_line(line).hint(hint);
    }
    if msg.contains("did not match any variant") {
        return CaseError::new(path, key, "this value has the wrong type").at_line(line).hint(
            "env values are strings, numbers or booleans (a number is set as its value: quote one whose spelling matters, such as '0x10'); `setup` is a command string or a list of arguments",
        );
    }
    // At the top level `duplicate field `k``; in a nested mapping `parent: duplicate field `k``.
    let duplicate = msg
        .strip_prefix("duplicate field `")
        .map(|rest| ("", rest))
        .or_else(|| msg.split_once(": duplicate field `"));
    if let Some((parent, rest)) = duplicate {
        // Said at the second time the key is written, which is the one to remove.
        let field = rest.split('`').next().unwrap_or(rest);
        let full = if parent.is_empty() {
            field.to_string()
        } else {
            format!("{parent}.{field}")
        };
        let again = text
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                l.trim_start()
                    .strip_prefix(field)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
            })
            .map(|(i, _)| i + 1)
            .nth(1);
        return CaseError::new(
            path,
            full,
            format!("`{field}` is given twice; a key may appear once in its mapping"),
        )
        .at_line(again.or(line))
        .hint(format!("keep one `{field}:` and remove the other"));
    }
    // An unclosed `{` or `[` is noticed only where the parser gives up, a line or more later,
    // and no key there is to blame.
    if msg.contains("while parsing a flow mapping") || msg.contains("while parsing a flow sequence")
    {
        return CaseError::new(path, "", format!("not valid YAML for a case: {msg}"))
            .at_line(line)
            .hint(
                "a `{` or `[` opened on this line or one before it is not closed (or a `,` is \
                 missing between its items)",
            );
    }
    // A tab where YAML wants spaces: the parser's words never say "tab".
    let tab_there = line
        .and_then(|l| text.lines().nth(l.saturating_sub(1)))
        .is_some_and(|l| l.contains('\t'));
    CaseError::new(path, key, format!("not valid YAML for a case: {msg}"))
        .at_line(line)
        .hint(if tab_there {
            "that line holds a tab: YAML indents with spaces only; replace the tab with spaces"
        } else {
            "check indentation and brackets near that line"
        })
}

/// Strips serde_yaml's `path: ` prefix and ` at line L column C` suffix.
fn core_message(raw: &str) -> String {
    let mut msg = raw.to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    for marker in [
        "unknown field",
        "missing field",
        "unknown variant",
        "invalid type",
        "invalid value",
        "invalid length",
    ] {
        if let Some(i) = msg.find(marker) {
            return msg[i..].to_string();
        }
    }
    msg
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// [`closest`] among fixed names.
pub(crate) fn closest_known(word: &str, options: &[&str]) -> Option<String> {
    let owned: Vec<String> = options.iter().map(|o| o.to_string()).collect();
    closest(word, &owned)
}

fn closest(word: &str, options: &[String]) -> Option<String> {
    options
        .iter()
        .map(|o| (strsim::damerau_levenshtein(word, o), o))
        .filter(|(d, o)| *d <= 2.max(o.len() / 4) && *d < o.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o.clone())
}

fn expected_hint(msg: &str, key: &str) -> String {
    let expected = msg.rsplit_once("expected ").map(|(_, e)| e).unwrap_or("");
    // A list's example in the key's own terms.
    let list_example = match key.rsplit('.').next().unwrap_or("") {
        "extra_args" => "[\"--exclusive\", \"--mem=0\"]",
        "mounts" => "[\"/lustre:/lustre\"]",
        "argv" => "[my-server, --port, \"{port}\"]",
        "metrics" => "[TOKEN_THROUGHPUT]",
        "percentiles" => "[90, 99.9]",
        _ => "[1, 8]",
    };
    if expected.contains("u32") || expected.contains("u64") || expected.contains("i64") {
        "write a whole number, e.g. `8`".into()
    } else if expected.contains("f64") {
        "write a number, e.g. `0.2`".into()
    } else if expected.contains("bool") {
        "write `true` or `false`".into()
    } else if expected.contains("sequence") {
        format!("write a list, e.g. `{list_example}`")
    } else if expected.contains("duration") || msg.contains("time unit") || msg.contains("unit") {
        "write a duration with a unit, e.g. `30s`, `10m`, `5ms`, `20us`".into()
    } else if expected.contains("struct") || expected.contains("map") {
        // A mapping's example in the key's own terms.
        let example = match key {
            "perf" => "{baseline: history}",
            "router" => "{replicas: 2}",
            "timeouts" => "{benchmark: 10m}",
            "model" => "{name: llama-3.1-8b}",
            "benchmark" => "{isl: 1024, osl: 128, concurrency: [8]}",
            k if k.ends_with("parallel") => "{tp: 1}",
            k if k == "ctx" || k == "gen" => "{count: 1}",
            _ => "{key: value}",
        };
        format!("write a mapping of keys, e.g. `{example}`")
    } else if expected.contains("string") {
        "write a string".into()
    } else {
        format!("expected {expected}")
    }
}

/// Semantic checks the types cannot express.
fn check(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let err = |key: &str, msg: String, hint: &str| {
        Err(CaseError::new(path, key, msg)
            .at_line(line_of(text, key))
            .hint(hint))
    };
    for (group, g) in [("ctx", &case.ctx), ("gen", &case.generation)] {
        if g.count == 0 {
            return err(
                &format!("{group}.count"),
                "must be at least 1".into(),
                "set `count: 1` or more",
            );
        }
        let p = g.parallel;
        for (k, v) in [("tp", p.tp), ("pp", p.pp), ("ep", p.ep), ("cp", p.cp)] {
            if v == 0 {
                return err(
                    &format!("{group}.parallel.{k}"),
                    "must be at least 1".into(),
                    "use 1 for no parallelism",
                );
            }
        }
        if p.cp > 1 && matches!(case.engine, Engine::Vllm | Engine::Sglang) {
            return err(
                &format!("{group}.parallel.cp"),
                format!(
                    "cp: {} is TensorRT-LLM's context parallelism (tp×pp×cp ranks per server); \
                     disagg launches no such mode of {}",
                    p.cp,
                    case.engine.as_str()
                ),
                "leave `cp` out (1); give the engine's own context-parallel flags in `engine_args` if it has them",
            );
        }
    }
    if case.hardware.gpus_per_node == 0 {
        return err(
            "hardware.gpus_per_node",
            "must be at least 1".into(),
            "e.g. `gpus_per_node: 8`",
        );
    }
    let b = &case.benchmark;
    if b.isl == 0 || b.osl == 0 {
        let k = if b.isl == 0 {
            "benchmark.isl"
        } else {
            "benchmark.osl"
        };
        return err(
            k,
            "must be at least 1 token".into(),
            "e.g. `isl: 1024`, `osl: 128`",
        );
    }
    for (key, n) in [
        (
            "benchmark.concurrency",
            b.concurrency.as_ref().map_or(0, Vec::len),
        ),
        (
            "benchmark.request_rate",
            b.request_rate.as_ref().map_or(0, Vec::len),
        ),
        ("benchmark.percentiles", b.percentiles.len()),
    ] {
        if n > MAX_LIST {
            return err(
                key,
                format!("lists {n} values; at most {MAX_LIST}"),
                "a run measures each point in turn; split a longer study into several cases",
            );
        }
    }
    let concurrency = b.concurrency();
    if concurrency.is_empty() || concurrency.contains(&0) {
        return err(
            "benchmark.concurrency",
            "must list one or more concurrencies, each at least 1".into(),
            "e.g. `concurrency: [1, 8]`",
        );
    }
    // Each point has its own files, perf case name and JUnit testcase.
    if let Some(c) = repeated(&concurrency) {
        return err(
            "benchmark.concurrency",
            format!("lists concurrency {c} twice"),
            "list each concurrency once; to measure one longer, raise `rounds`",
        );
    }
    if let Some(rates) = &b.request_rate {
        if let Some(r) = repeated(rates) {
            return err(
                "benchmark.request_rate",
                format!("lists request rate {r} twice"),
                "list each rate once; to measure one longer, raise `num_prompts`",
            );
        }
        if b.concurrency.is_some() {
            return err(
                "benchmark.request_rate",
                "`request_rate` (open loop) and `concurrency` (closed loop) cannot both be set"
                    .into(),
                "drop `concurrency`, and cap the open loop with `max_concurrency` if needed",
            );
        }
        if rates.is_empty() || rates.iter().any(|r| r.is_nan() || *r <= 0.0) {
            return err(
                "benchmark.request_rate",
                "must list one or more rates above 0 (requests/s)".into(),
                "e.g. `request_rate: [10, 50, .inf]`",
            );
        }
        if b.num_prompts.is_none() {
            return err(
                "benchmark.num_prompts",
                "the open loop (`request_rate`) needs `num_prompts`".into(),
                "e.g. `num_prompts: 200`",
            );
        }
    }
    if b.num_prompts == Some(0) {
        return err(
            "benchmark.num_prompts",
            "must be at least 1".into(),
            "e.g. `num_prompts: 200`",
        );
    }
    if b.max_concurrency == Some(0) {
        return err(
            "benchmark.max_concurrency",
            "must be at least 1".into(),
            "drop it for no cap",
        );
    }
    if let (Some(n), None) = (b.max_concurrency, &b.request_rate) {
        return err(
            "benchmark.max_concurrency",
            "caps the open loop (`request_rate`); this case runs the closed loop, which would \
             ignore it"
                .into(),
            &format!("for {n} requests in flight, write `concurrency: [{n}]`"),
        );
    }
    if !(b.burstiness > 0.0 && b.burstiness.is_finite()) {
        return err(
            "benchmark.burstiness",
            format!("{} must be a finite number above 0", b.burstiness),
            "1 is Poisson; lower is burstier, higher more evenly spaced (e.g. 1000)",
        );
    }
    if let Some(t) = b.temperature.filter(|t| !(t.is_finite() && *t >= 0.0)) {
        return err(
            "benchmark.temperature",
            format!("{t} is not a temperature"),
            "0 or more (0 is greedy, the default), or `null` to send none",
        );
    }
    if !(0.0..=1.0).contains(&b.max_failure_rate) {
        return err(
            "benchmark.max_failure_rate",
            format!("{} is outside [0, 1]", b.max_failure_rate),
            "a share of requests, e.g. `0.01` for 1%",
        );
    }
    let sglang = case
        .router
        .dialect
        .or(case.engine.native_dialect())
        .unwrap_or_default()
        == crate::case::Dialect::Sglang;
    match b.endpoint.as_str() {
        "/v1/completions" | "/v1/chat/completions" => {}
        "/generate" if sglang => {}
        "/generate" => {
            return err(
                "benchmark.endpoint",
                "`/generate` is SGLang's native endpoint; this case's router speaks another \
                 dialect"
                    .into(),
                "use `/v1/completions` or `/v1/chat/completions`, or `router.dialect: sglang`",
            );
        }
        _ => {
            return err(
                "benchmark.endpoint",
                format!("`{}` is not a served endpoint", b.endpoint),
                "use `/v1/completions` or `/v1/chat/completions` (or SGLang's `/generate`)",
            );
        }
    }
    if let Some(sp) = b.shared_prefix {
        if sp.groups == 0 {
            return err(
                "benchmark.shared_prefix.groups",
                "must be at least 1".into(),
                "e.g. `{groups: 4, prefix_len: 512}`",
            );
        }
    }
    for (key, file) in [
        ("benchmark.dataset", &b.dataset),
        ("benchmark.tokenizer", &b.tokenizer),
    ] {
        if let Some(f) = file {
            let p = path.parent().unwrap_or(Path::new(".")).join(f);
            if !p.is_file() {
                return err(
                    key,
                    format!("{} is not a file", p.display()),
                    "paths are relative to the case file",
                );
            }
        }
    }
    if let Some(h) = &case.perf.history {
        if case.perf.baseline.as_deref() != Some(crate::case::HISTORY_BASELINE) {
            return err(
                "perf.history",
                "`perf.history` is set, but `perf.baseline` is not `history`".into(),
                "set `perf.baseline: history` to gate on the results store, or drop `perf.history`",
            );
        }
        if h.runs == 0 {
            return err(
                "perf.history.runs",
                "runs 0 takes no earlier run into the baseline".into(),
                "e.g. `{runs: 10, min_runs: 3}`: the baseline is the last 10 passed runs, gating from the 3rd",
            );
        }
        if h.window.is_zero() {
            return err(
                "perf.history.window",
                "a window of 0s holds no earlier run: the gate would never gate".into(),
                "e.g. `window: 30d` (the default): the baseline is the last runs recorded within it",
            );
        }
        if h.min_runs == 0 || h.min_runs > h.runs {
            return err(
                "perf.history.min_runs",
                format!(
                    "min_runs {} must be at least 1 and at most runs {}",
                    h.min_runs, h.runs
                ),
                "e.g. `{runs: 10, min_runs: 3}`",
            );
        }
        if !(h.threshold.is_finite() && h.threshold >= 0.0) {
            return err(
                "perf.history.threshold",
                format!("{} is not a fraction of at least 0", h.threshold),
                "e.g. `threshold: 0.05` for 5%",
            );
        }
        // A band of 100% lets a throughput fall to nothing without a regression: a gate that
        // cannot fail (and `threshold: 5` meant as 5% is read as 500%).
        if h.threshold >= 1.0 {
            return err(
                "perf.history.threshold",
                format!(
                    "{} is a band of {}%: a throughput could fall to nothing and still pass",
                    h.threshold,
                    h.threshold * 100.0
                ),
                "give a fraction below 1: `threshold: 0.05` is 5%",
            );
        }
        if !(h.noise.is_finite() && h.noise >= 0.0) {
            return err(
                "perf.history.noise",
                format!("{} is not a number of standard deviations", h.noise),
                "e.g. `noise: 3`",
            );
        }
    }
    if let Some(d) = b.duration {
        if d >= case.timeouts.benchmark {
            return err(
                "benchmark.duration",
                format!(
                    "{} is not shorter than timeouts.benchmark ({})",
                    humantime::format_duration(d),
                    humantime::format_duration(case.timeouts.benchmark)
                ),
                "the benchmark deadline must leave room for every point",
            );
        }
    }
    if b.rounds == 0 {
        return err(
            "benchmark.rounds",
            "must be at least 1".into(),
            "prompts per point = concurrency × rounds",
        );
    }
    if !(0.0..1.0).contains(&b.range_ratio) {
        return err(
            "benchmark.range_ratio",
            format!("{} is outside [0, 1)", b.range_ratio),
            "lengths are uniform in [L·(1−r), L·(1+r)]; 0 means exact",
        );
    }
    if let Some(p) = b.percentiles.iter().find(|p| !(**p > 0.0 && **p < 100.0)) {
        return err(
            "benchmark.percentiles",
            format!("{p} is not in (0, 100)"),
            "e.g. `percentiles: [50, 90]`",
        );
    }
    for (key, vars) in [
        ("env.worker", &case.env.worker),
        ("env.server", &case.env.server),
        ("env.benchmark", &case.env.benchmark),
        ("ctx.env", &case.ctx.env),
        ("gen.env", &case.generation.env),
    ] {
        if let Some(bad) = vars.keys().find(|k| !valid_env_name(k)) {
            return err(
                key,
                format!("`{bad}` is not a valid environment variable name"),
                "use letters, digits and `_`, not starting with a digit",
            );
        }
        // A newline would split the `export` line of a Slurm script and the plan's listing.
        if let Some((k, _)) = vars
            .iter()
            .find(|(_, v)| v.as_string().contains(['\n', '\r', '\0']))
        {
            return err(
                &format!("{key}.{k}"),
                format!("the value of `{k}` holds a newline (or a NUL)"),
                "environment values are one line; pass multi-line settings through a file the engine reads",
            );
        }
    }
    if let Some(bad) = case.env.worker_unset.iter().find(|k| !valid_env_name(k)) {
        return err(
            "env.worker_unset",
            format!("`{bad}` is not a valid environment variable name"),
            "list names only (letters, digits and `_`, not starting with a digit), no `=VALUE`",
        );
    }
    // Set and removed at once: the worker would get it set (the set wins), which is rarely what
    // the one who listed it to remove meant. UCX_TLS, removed by default, may be set.
    for (key, vars) in [
        ("env.worker", &case.env.worker),
        ("ctx.env", &case.ctx.env),
        ("gen.env", &case.generation.env),
    ] {
        if let Some(k) = case
            .env
            .worker_unset
            .iter()
            .find(|k| vars.contains_key(*k) && k.as_str() != "UCX_TLS")
        {
            return err(
                "env.worker_unset",
                format!("`{k}` is both set ({key}) and removed (env.worker_unset) for the workers"),
                "keep it in one of the two: set wins, so the removal does nothing",
            );
        }
    }
    check_gpu_pool(case, text, path)?;
    check_deadlines(case, text, path)?;
    check_spans(case, text, path)?;
    check_engine_args(case, text, path)?;
    check_router(case, text, path)?;
    check_dialect_needs(case, text, path)?;
    check_addresses(case, text, path)?;
    check_slurm(case, text, path)?;
    check_setup(case, text, path)?;
    check_fill_gate(case, text, path)?;
    // Last: it reads the dialect, which check_router has vetted.
    crate::fit::check(case, text, path)
}

/// A case's own `CUDA_VISIBLE_DEVICES` for the workers names the node's GPUs they may use: the
/// plan's GPU k on a node is its k-th. It must name at least as many as the plan uses on a
/// node, each once; it was overwritten by the plan's own, silently, whatever it said.
fn check_gpu_pool(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    const CVD: &str = "CUDA_VISIBLE_DEVICES";
    let placed = crate::plan::place_workers(case);
    for (group, env) in [("ctx", &case.ctx.env), ("gen", &case.generation.env)] {
        // The group's own wins over env.worker's, as in the plan.
        let (key, value) = match (env.get(CVD), case.env.worker.get(CVD)) {
            (Some(v), _) => (format!("{group}.env.{CVD}"), v),
            (None, Some(v)) => (format!("env.worker.{CVD}"), v),
            (None, None) => continue,
        };
        let mut vars = std::collections::BTreeMap::new();
        vars.insert(CVD.to_string(), value.as_string());
        let pool = crate::plan::gpu_pool(&vars).unwrap_or_default();
        let at = line_of(text, &key);
        let err =
            |msg: String, hint: &str| Err(CaseError::new(path, &key, msg).at_line(at).hint(hint));
        if let Some(g) = repeated(&pool) {
            return err(
                format!("`{}` names GPU {g} twice", value.as_string()),
                "name each GPU once",
            );
        }
        let need = placed
            .iter()
            .filter(|(r, _)| r.is_ctx() == (group == "ctx"))
            .flat_map(|(_, slots)| slots.iter().map(|s| s.index + 1))
            .max()
            .unwrap_or(0);
        if (pool.len() as u32) < need {
            return err(
                format!(
                    "`{}` names {} GPU(s), but the plan gives the {group} servers GPUs 0 to {} \
                     of a node (hardware.gpus_per_node {}, each server's parallel sizes): it \
                     names the GPUs the workers may use, the plan's GPU k being its k-th",
                    value.as_string(),
                    pool.len(),
                    need - 1,
                    case.hardware.gpus_per_node
                ),
                "name at least as many GPUs as the workers use on a node, or remove it to use GPUs 0 up",
            );
        }
    }
    Ok(())
}

/// The first value `values` lists a second time.
fn repeated<T: PartialEq>(values: &[T]) -> Option<&T> {
    values
        .iter()
        .enumerate()
        .find_map(|(i, v)| values[..i].contains(v).then_some(v))
}

/// A server larger than a node spans nodes: trtllm and an MPI command run one rank per GPU
/// there; vLLM and SGLang one process per node, joined through their own `--nnodes`, which
/// split the server's GPUs evenly over its nodes. An engine that runs as one process (the sim, a
/// command of one rank) lives on one node and would get that node's GPUs only.
fn check_spans(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let per_node = case.hardware.gpus_per_node;
    for (group, g) in [("ctx", &case.ctx), ("gen", &case.generation)] {
        let gpus = g.parallel.gpus_per_server();
        if gpus <= per_node {
            continue;
        }
        let nodes = gpus.div_ceil(per_node);
        let engine = case.engine.as_str();
        let key = format!("{group}.parallel");
        let refuse = |what: String, fix: String| {
            Err(CaseError::new(
                path,
                key.clone(),
                format!(
                    "tp×pp×cp is {gpus} GPUs per server, more than hardware.gpus_per_node \
                     ({per_node}), so each {group} server would span {nodes} nodes; but {what}"
                ),
            )
            .at_line(line_of(text, &key))
            .hint(fix))
        };
        if matches!(case.engine, Engine::Vllm | Engine::Sglang) {
            if gpus % per_node != 0 {
                return refuse(
                    format!(
                        "{engine} splits a server's GPUs evenly over its nodes (`--nnodes`), and \
                         {gpus} is not a multiple of {per_node}"
                    ),
                    format!(
                        "make tp×pp×cp a multiple of {per_node} (whole nodes), or keep it within \
                         {per_node}"
                    ),
                );
            }
            let p = g.parallel;
            if case.engine == Engine::Vllm && p.attention_dp && p.tp % nodes != 0 {
                return refuse(
                    format!(
                        "vLLM spreads its data-parallel ranks (parallel.attention_dp: tp {}) \
                         evenly over the {nodes} nodes, and {} is not a multiple of {nodes}",
                        p.tp, p.tp
                    ),
                    format!("make tp a multiple of {nodes}, or pp a divisor of {per_node}"),
                );
            }
            // vLLM across nodes runs its multiprocessing backend on every node; Ray's needs a
            // Ray cluster, which disagg does not start.
            if let (Engine::Vllm, EngineArgs::Options(m)) = (case.engine, &g.engine_args) {
                let ray = m.iter().find_map(|(k, v)| {
                    let k = k.as_str()?.replace('-', "_");
                    (k == "distributed_executor_backend" && v.as_str() != Some("mp"))
                        .then(|| crate::engines::flags::scalar(v))
                });
                if let Some(backend) = ray {
                    let key = format!("{group}.engine_args.distributed_executor_backend");
                    return Err(CaseError::new(
                        path,
                        key.clone(),
                        format!(
                            "a vLLM server spanning {nodes} nodes runs vLLM's multiprocessing \
                             backend on each (--nnodes), not `{backend}`: disagg starts no Ray \
                             cluster"
                        ),
                    )
                    .at_line(line_of(text, &key))
                    .hint("remove `distributed_executor_backend`, or set it to `mp`"));
                }
            }
            continue;
        }
        let ranks = crate::engines::ranks(case.engine, &g.engine_args, g.parallel, per_node);
        if ranks == gpus {
            continue;
        }
        let what = if ranks == 1 {
            format!(
                "a `{engine}` server is one process, which runs on one node and would get that \
                 node's {per_node} GPUs only"
            )
        } else {
            format!("its {ranks} ranks do not run one per GPU, as a server spanning nodes must")
        };
        let fix = match case.engine {
            Engine::Command => format!(
                "if the command is an MPI program running one rank per GPU, set \
                 `{group}.engine_args.ranks: {gpus}`; else keep tp×pp×cp within {per_node}"
            ),
            _ => format!(
                "keep tp×pp×cp within {per_node}, or raise hardware.gpus_per_node if a node has \
                 that many"
            ),
        };
        return refuse(
            what,
            format!(
                "{fix}; or run more servers of fewer GPUs (`{group}.count`). Engines that span \
                 nodes: trtllm and a command whose `ranks` equal tp×pp×cp (one rank per GPU), \
                 vllm and sglang (one process per node, whole nodes)"
            ),
        );
    }
    Ok(())
}

/// On several nodes, every worker must publish an address the other nodes can reach: a loopback
/// one would send the router (on the first node) to itself.
fn check_addresses(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let placed = crate::plan::place_workers(case);
    let nodes = crate::plan::span(&placed) + case.slurm.front_nodes;
    if nodes < 2 {
        return Ok(());
    }
    for (group, g, is_ctx) in [("ctx", &case.ctx, true), ("gen", &case.generation, false)] {
        let EngineArgs::Command(c) = &g.engine_args else {
            continue;
        };
        // `host: 127.0.0.1`, or the argv binding one itself (`--host 127.0.0.1`,
        // `--host=localhost`) instead of `{host}`.
        let in_argv = c.argv.iter().enumerate().find_map(|(i, a)| {
            // The item holding the address: `--host=ADDR` itself, or the one after `--host`.
            let (at, value) = match a.split_once('=') {
                Some(("--host", v)) => (i, v),
                _ if a == "--host" => (i + 1, c.argv.get(i + 1)?.as_str()),
                _ => return None,
            };
            crate::plan::is_loopback(value).then_some((at, value))
        });
        let (host, key) = match (
            c.host.as_deref().filter(|h| crate::plan::is_loopback(h)),
            in_argv,
        ) {
            (Some(h), _) => (h, format!("{group}.engine_args.host")),
            (None, Some((i, h))) => (h, format!("{group}.engine_args.argv[{i}]")),
            (None, None) => continue,
        };
        let workers: Vec<String> = placed
            .iter()
            .filter(|(r, _)| r.is_ctx() == is_ctx)
            .map(|(r, gpus)| {
                let mut on: Vec<u32> = gpus.iter().map(|s| s.node).collect();
                on.dedup();
                let on: Vec<String> = on.iter().map(|n| n.to_string()).collect();
                format!("{r} (node {})", on.join(", "))
            })
            .collect();
        return Err(CaseError::new(
            path,
            key.clone(),
            format!(
                "{} would bind and publish the loopback address `{host}`, but with hardware.gpus_per_node {} the workers span {} nodes{}, and a router on another node cannot reach a loopback address",
                workers.join(", "),
                case.hardware.gpus_per_node,
                crate::plan::span(&placed),
                match case.slurm.front_nodes {
                    0 => String::new(),
                    n => format!(" and the routers {n} more (slurm.front_nodes)"),
                }
            ),
        )
        .at_line(line_of(text, &key))
        .hint(if key.ends_with(".host") {
            "remove `host`: on several nodes a worker binds 0.0.0.0 and publishes its node's hostname (also `{hostname}` in the argv)"
        } else {
            "write `{host}` in the argv instead: on several nodes it is 0.0.0.0, and the worker publishes its node's hostname (also `{hostname}` in the argv)"
        }));
    }
    Ok(())
}

/// `router.kind: engine` is TensorRT-LLM's own router; `kind: command` needs its `argv`.
fn check_router(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let r = &case.router;
    let err = |k: &str, msg: &str, hint: &str| {
        Err(CaseError::new(path, k, msg)
            .at_line(line_of(text, k))
            .hint(hint))
    };
    if let (Some(d), Some(native)) = (r.dialect, case.engine.native_dialect()) {
        if d != native {
            return err(
                "router.dialect",
                &format!(
                    "`engine: {}` speaks only the {} dialect, so a `{}` router cannot talk to it",
                    case.engine.as_str(),
                    native.as_str(),
                    d.as_str()
                ),
                &format!(
                    "drop `router.dialect` (it follows the engine) or set `dialect: {}`",
                    native.as_str()
                ),
            );
        }
    }
    if let Some(key) = &r.internal_request_auth_key {
        if r.dialect() != crate::case::Dialect::Trtllm {
            return err(
                "router.internal_request_auth_key",
                &format!(
                    "only TensorRT-LLM's dialect signs hand-offs; the {} dialect has no such key",
                    r.dialect().as_str()
                ),
                "remove the key, or use the trtllm dialect",
            );
        }
        if key.trim().is_empty() {
            return err(
                "router.internal_request_auth_key",
                "the key is empty",
                "give a secret string (e.g. from `openssl rand -hex 32`), or remove the key",
            );
        }
    }
    if r.replicas == 0 || r.replicas > crate::case::MAX_ROUTER_REPLICAS {
        return err(
            "router.replicas",
            &format!(
                "{} router replicas: a run has 1 to {}",
                r.replicas,
                crate::case::MAX_ROUTER_REPLICAS
            ),
            "leave it out for one router, or give the number of router processes to spread the \
             load over",
        );
    }
    // TensorRT-LLM's gen-only benchmark without a context phase is its disaggregated server's
    // and its generation workers' (they then fetch no KV): another router still sends every
    // request through a context server, whose KV nobody fetches, so real context workers fill
    // up and stall (the sim would not notice).
    let gen_only = [
        ("env.server", &case.env.server),
        ("env.worker", &case.env.worker),
        ("gen.env", &case.generation.env),
    ]
    .into_iter()
    .find(|(_, env)| {
        env.get(GEN_ONLY_VAR)
            .is_some_and(|v| v.as_string().trim() == "1")
    });
    if let (Some((key, _)), false) = (gen_only, r.kind == RouterKind::Engine) {
        return err(
            &format!("{key}.{GEN_ONLY_VAR}"),
            &format!(
                "{GEN_ONLY_VAR}=1 is TensorRT-LLM's gen-only benchmark without a context phase, \
                 which only its own disaggregated server (`router.kind: engine`) runs: this \
                 case's `kind: {}` router sends every request through a context server, whose \
                 KV cache the generation workers would then never fetch (real context workers \
                 fill up and stall)",
                if r.kind == RouterKind::Builtin {
                    "builtin"
                } else {
                    "command"
                }
            ),
            "set `router: {kind: engine}` (with `engine: trtllm`), or remove the variable to \
             measure with the context phase",
        );
    }
    match (r.kind, &r.argv) {
        (RouterKind::Engine, _) if case.engine != Engine::Trtllm => err(
            "router.kind",
            "`kind: engine` runs `trtllm-serve disaggregated`, so it needs `engine: trtllm`",
            "use `kind: builtin`, or `kind: command` with an `argv`",
        ),
        (RouterKind::Command, None) => err(
            "router.argv",
            "`kind: command` needs the router's `argv`",
            "e.g. `argv: [my-router, -c, \"{server_config}\"]`",
        ),
        (RouterKind::Command, Some(a)) if a.is_empty() => err(
            "router.argv",
            "the router command is empty",
            "e.g. `argv: [my-router, -c, \"{server_config}\"]`",
        ),
        (RouterKind::Command, Some(a)) => match unknown_placeholder(a, ROUTER_PLACEHOLDERS) {
            Some((i, found, hint)) => Err(CaseError::new(
                path,
                format!("router.argv[{i}]"),
                format!("`{{{found}}}` is not a placeholder `disagg` fills in a router command, so the router would get it as written"),
            )
            .at_line(line_of(text, "router.argv"))
            .hint(hint)),
            None => Ok(()),
        },
        (RouterKind::Builtin | RouterKind::Engine, Some(_)) => err(
            "router.argv",
            "`argv` is only for `kind: command`",
            "remove it, or set `kind: command`",
        ),
        (RouterKind::Engine, _) => check_engine_router_policy(case, text, path),
        _ => Ok(()),
    }
}

/// TensorRT-LLM's switch for its gen-only benchmark without a context phase.
const GEN_ONLY_VAR: &str = "TRTLLM_DISAGG_BENCHMARK_GEN_ONLY";

/// TensorRT-LLM's router counts tokens only of context requests given as completions
/// (`get_request_num_tokens` in tensorrt_llm/serve/router.py raises a ValueError for a
/// generation-only request and for a chat request), so `least_tokens` there fails every
/// request it routes.
fn check_engine_router_policy(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let r = &case.router;
    let key = |own: &Option<Policy>, name: &str| {
        if own.is_some() {
            format!("router.{name}")
        } else {
            "router.policy".to_string()
        }
    };
    let refuse = |k: String, msg: &str, hint: &str| {
        Err(CaseError::new(path, k.clone(), msg)
            .at_line(line_of(text, &k))
            .hint(hint))
    };
    if r.gen_policy() == Policy::LeastTokens {
        return refuse(
            key(&r.gen_policy, "gen_policy"),
            "`least_tokens` for the generation servers: TensorRT-LLM's router (`kind: engine`) \
             cannot count a generation-only request's tokens and fails every request with \
             \"LoadBalancing router with tokens doesn't support generation_only requests\"",
            "set `gen_policy: least_requests` (and keep `ctx_policy: least_tokens` if you want it \
             for the context servers), or use `kind: builtin`",
        );
    }
    if r.ctx_policy() == Policy::LeastTokens && case.benchmark.endpoint.contains("chat") {
        return refuse(
            key(&r.ctx_policy, "ctx_policy"),
            "`least_tokens` for the context servers with a chat endpoint: TensorRT-LLM's router \
             (`kind: engine`) counts tokens only of completions requests and fails every chat \
             request with \"LoadBalancing router with tokens doesn't support \
             ChatCompletionRequest yet\"",
            "use `least_requests`, the `/v1/completions` endpoint, or `kind: builtin`",
        );
    }
    Ok(())
}

/// What `disagg` fills in a `command` engine's argv (docs/case.md).
const WORKER_PLACEHOLDERS: &[&str] = &[
    "port",
    "host",
    "bootstrap_port",
    "side_channel_port",
    "publish_host",
    "hostname",
    "gpus",
    "role",
    "model",
    "served_model",
    "disagg",
    "dist_init_host",
    "dist_init_port",
];

/// What `disagg` fills in a `command` router's argv.
const ROUTER_PLACEHOLDERS: &[&str] = &["server_config", "disagg", "host", "port"];

/// The first `{name}` in `argv` (lower-case letters, digits and `_` between braces: JSON such
/// as `{"kv_role": ...}` is no placeholder) that is not one of `known`: its index, the name,
/// and a hint (the near one, or the list).
fn unknown_placeholder(argv: &[String], known: &[&str]) -> Option<(usize, String, String)> {
    for (i, a) in argv.iter().enumerate() {
        let mut rest = a.as_str();
        while let Some(open) = rest.find('{') {
            rest = &rest[open + 1..];
            let name: &str = &rest[..rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len())];
            if name.is_empty() || !rest[name.len()..].starts_with('}') || known.contains(&name) {
                continue;
            }
            // The rendezvous pair is the plan's own, for the engines it knows; not advertised.
            let list = known
                .iter()
                .filter(|k| !k.starts_with("dist_init"))
                .map(|k| format!("`{{{k}}}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let hint = match closest_known(name, known) {
                Some(near) => format!("did you mean `{{{near}}}`? (the placeholders: {list})"),
                None => format!("the placeholders: {list}"),
            };
            return Some((i, name.to_string(), hint));
        }
    }
    None
}

/// What the engine args' types cannot say: a command engine needs an argv that takes `{port}`;
/// trtllm's options must not contradict the group's `parallel`.
fn check_engine_args(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    for (group, g) in [("ctx", &case.ctx), ("gen", &case.generation)] {
        let key = format!("{group}.engine_args");
        let err = |k: String, msg: String, hint: &str| {
            Err(CaseError::new(path, k.clone(), msg)
                .at_line(line_of(text, &k))
                .hint(hint))
        };
        match &g.engine_args {
            EngineArgs::Command(c) => {
                if c.argv.is_empty() {
                    return err(
                        format!("{key}.argv"),
                        "the command is empty".into(),
                        "e.g. `argv: [my-server, --port, \"{port}\"]`",
                    );
                }
                if let Some((i, found, hint)) = unknown_placeholder(&c.argv, WORKER_PLACEHOLDERS) {
                    return err(
                        format!("{key}.argv[{i}]"),
                        format!(
                            "`{{{found}}}` is not a placeholder `disagg` fills in an engine \
                             command, so the engine would get it as written"
                        ),
                        &hint,
                    );
                }
                if !c.argv.iter().any(|a| a.contains("{port}")) {
                    return err(
                        format!("{key}.argv"),
                        "the command never takes `{port}`, so its /health cannot be found".into(),
                        "pass the port the role picks, e.g. `--port, \"{port}\"`",
                    );
                }
            }
            EngineArgs::Options(m) if matches!(case.engine, Engine::Vllm | Engine::Sglang) => {
                let owned = if case.engine == Engine::Vllm {
                    crate::engines::vllm::OWNED
                } else {
                    crate::engines::sglang::OWNED
                };
                // Flags are `--` + the key with `_` as `-`, so both spellings are one flag.
                let mut seen: Vec<String> = Vec::new();
                for (k, _) in m {
                    let Some(k) = k.as_str() else { continue };
                    let flag = k.replace('-', "_");
                    if let Some(first) = seen.iter().find(|s| s.replace('-', "_") == flag) {
                        return err(
                            format!("{key}.{k}"),
                            format!(
                                "`{k}` and `{first}` are the same flag (--{}): the engine would \
                                 take the last one",
                                flag.replace('_', "-")
                            ),
                            "keep one of them",
                        );
                    }
                    seen.push(k.to_string());
                    if let Some((_, why)) = owned.iter().find(|(o, _)| *o == flag) {
                        return err(
                            format!("{key}.{k}"),
                            format!(
                                "`{k}` is set by disagg for every {} worker",
                                case.engine.as_str()
                            ),
                            &format!("remove it: {why}"),
                        );
                    }
                }
                if case.engine == Engine::Sglang
                    && case.hardware.cache_transceiver.is_some()
                    && m.contains_key("disaggregation_transfer_backend")
                {
                    return err(
                        format!("{key}.disaggregation_transfer_backend"),
                        "the transfer backend is set twice: here and in hardware.cache_transceiver"
                            .into(),
                        "set it once, in `hardware.cache_transceiver` (NIXL), which every engine gets",
                    );
                }
            }
            EngineArgs::Options(m) if case.engine == Engine::Trtllm => {
                // A key no release takes, but one letter or two from one that every server
                // would refuse ("LLM got invalid argument"): a typo, refused before any
                // allocation. Farther from every known key, it may be newer than the list:
                // `validate` notes it (see `crate::plan::engine_arg_notes`).
                for k in m.keys().filter_map(|k| k.as_str()) {
                    if disagg_proto::llm_args::LLM_ARGS.contains(&k) {
                        continue;
                    }
                    if let Some(near) = closest_known(k, disagg_proto::llm_args::LLM_ARGS) {
                        return err(
                            format!("{key}.{k}"),
                            format!(
                                "`{k}` is not an argument of any TensorRT-LLM release (up to \
                                 1.4): trtllm-serve would refuse it at start (\"LLM got invalid \
                                 argument\")"
                            ),
                            &format!("did you mean `{near}`?"),
                        );
                    }
                }
                // The same inside the sections whose settings refuse a key they lack (from
                // 1.0 on: "Extra inputs are not permitted").
                for (section, k, known) in disagg_proto::llm_args::unknown_nested_keys(m) {
                    if let Some(near) = closest_known(k, known) {
                        return err(
                            format!("{key}.{section}.{k}"),
                            format!(
                                "`{k}` is not a key of TensorRT-LLM's `{section}` in any \
                                 release (up to 1.4): trtllm-serve would refuse it at start \
                                 (\"Extra inputs are not permitted\")"
                            ),
                            &format!("did you mean `{near}`?"),
                        );
                    }
                }
                let p = g.parallel;
                for (k, want) in [
                    ("tensor_parallel_size", p.tp),
                    ("pipeline_parallel_size", p.pp),
                    ("moe_expert_parallel_size", p.ep),
                    ("context_parallel_size", p.cp),
                ] {
                    if let Some(v) = m.get(k).and_then(|v| v.as_u64()) {
                        if v != u64::from(want) {
                            return err(
                                format!("{key}.{k}"),
                                format!("{k}: {v} contradicts {group}.parallel ({want})"),
                                "set the parallelism once, in `parallel:`; it is written into the engine's config",
                            );
                        }
                    }
                }
                // TensorRT-LLM's Mapping: the MoE layers split tp into moe_tp × ep (× the MoE
                // cluster size, in later releases), and it refuses at start any other split.
                if p.ep > 1 && p.tp % p.ep != 0 {
                    return Err(CaseError::new(
                        path,
                        format!("{group}.parallel.ep"),
                        format!(
                            "ep {} does not split tp {}: TensorRT-LLM refuses it at start \
                             (\"tp_size must equal to moe_tp_size * moe_ep_size\")",
                            p.ep, p.tp
                        ),
                    )
                    .at_line(line_of(text, &format!("{group}.parallel")))
                    .hint("make ep a divisor of tp (with attention DP, ep = tp is usual)"));
                }
            }
            _ => {}
        }
    }
    if case.engine == Engine::Trtllm {
        check_trtllm_backends(case, text, path)?;
    }
    if case.engine == Engine::Vllm {
        check_vllm_connectors(case, text, path)?;
    }
    Ok(())
}

/// The KV connector of each vLLM group (its `kv_transfer_config`, else NixlConnector): a
/// prefill and a decode on two connectors cannot hand KV over, and our router speaks the
/// kv_transfer_params hand-off (NixlConnector's), which P2pNcclConnector does not use: it finds
/// its peers in a request id of its own form, and refuses every request without one.
fn check_vllm_connectors(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let connector = |args: &EngineArgs| match args {
        EngineArgs::Options(m) => {
            let (_, c) = crate::engines::vllm::kv_transfer_config(m, None);
            Some((c, m.contains_key("kv_transfer_config")))
        }
        _ => None,
    };
    let (Some((ctx, ctx_own)), Some((gen_, gen_own))) = (
        connector(&case.ctx.engine_args),
        connector(&case.generation.engine_args),
    ) else {
        return Ok(());
    };
    let name = |c: &Option<String>| c.clone().unwrap_or_else(|| "an unnamed connector".into());
    if ctx != gen_ {
        let group = if gen_own || !ctx_own { "gen" } else { "ctx" };
        let key = format!("{group}.engine_args.kv_transfer_config");
        return Err(CaseError::new(
            path,
            key.clone(),
            format!(
                "the prefill servers run {} and the decode servers {}: they cannot hand KV over",
                name(&ctx),
                name(&gen_)
            ),
        )
        .at_line(line_of(text, &key))
        .hint("give both groups the same kv_connector (without kv_transfer_config, both run NixlConnector)"));
    }
    if case.router.kind == crate::case::RouterKind::Builtin
        && ctx.as_deref() == Some("P2pNcclConnector")
    {
        let group = if ctx_own { "ctx" } else { "gen" };
        let key = format!("{group}.engine_args.kv_transfer_config");
        return Err(CaseError::new(
            path,
            key.clone(),
            "P2pNcclConnector finds its peers in a request id of its own form \
             (`___prefill_addr_H:P___decode_addr_H:P_<id>`), which disagg's router does not \
             write: vLLM would refuse every request (\"does not contain hostname and port\")",
        )
        .at_line(line_of(text, &key))
        .hint("use NixlConnector (the default without kv_transfer_config), or a router that speaks P2pNcclConnector as `router: {kind: command, argv: [...]}`"));
    }
    Ok(())
}

/// The KV transfer backend each TensorRT-LLM group runs (its `cache_transceiver_config.backend`,
/// else `hardware.cache_transceiver`, else UCX, TensorRT-LLM's default): context and generation
/// servers on two backends cannot hand KV over, which shows only at the first request.
fn check_trtllm_backends(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let hardware = match case.hardware.cache_transceiver.unwrap_or_default() {
        crate::case::CacheTransceiver::Ucx => "UCX",
        crate::case::CacheTransceiver::Nixl => "NIXL",
    };
    let backend = |args: &EngineArgs| -> (String, bool) {
        let own = match args {
            EngineArgs::Options(m) => m
                .get("cache_transceiver_config")
                .and_then(|c| c.get("backend"))
                .and_then(|b| b.as_str())
                .map(str::to_ascii_uppercase),
            _ => None,
        };
        match own {
            Some(b) => (b, true),
            None => (hardware.to_string(), false),
        }
    };
    let ((ctx, ctx_own), (gen_, gen_own)) = (
        backend(&case.ctx.engine_args),
        backend(&case.generation.engine_args),
    );
    // DEFAULT is the backend the release picks (UCX before 1.2, NIXL since, unless a
    // TRTLLM_USE_*_KVCACHE variable picks another): beside a named one, which it is is unknown
    // here, so only two named backends are compared.
    if ctx == gen_ || ctx == "DEFAULT" || gen_ == "DEFAULT" {
        return Ok(());
    }
    let group = if gen_own || !ctx_own { "gen" } else { "ctx" };
    let key = format!("{group}.engine_args.cache_transceiver_config.backend");
    Err(CaseError::new(
        path,
        key.clone(),
        format!(
            "the context servers transfer KV over {ctx} and the generation servers over {gen_}: \
             they cannot hand KV over"
        ),
    )
    .at_line(line_of(text, &key))
    .hint("set the backend once, in `hardware.cache_transceiver`, or the same in both groups"))
}

/// What the dialect needs of the engine: SGLang's decode pulls KV through the prefill's
/// bootstrap port, so a `command` prefill in that dialect must be given one; SGLang has no UCX
/// transfer backend.
fn check_dialect_needs(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let err = |key: &str, msg: &str, hint: &str| {
        Err(CaseError::new(path, key, msg)
            .at_line(line_of(text, key))
            .hint(hint))
    };
    if let EngineArgs::Command(c) = &case.ctx.engine_args {
        if case.router.dialect() == crate::case::Dialect::Sglang
            && !c.argv.iter().any(|a| a.contains("{bootstrap_port}"))
        {
            return err(
                "ctx.engine_args.argv",
                "in the sglang dialect a prefill server needs a bootstrap port, and this command never takes `{bootstrap_port}`",
                "pass the port the role picks, e.g. `--disaggregation-bootstrap-port, \"{bootstrap_port}\"`; the router is told it",
            );
        }
    }
    if case.engine == Engine::Sglang
        && case.hardware.cache_transceiver == Some(crate::case::CacheTransceiver::Ucx)
    {
        return err(
            "hardware.cache_transceiver",
            "SGLang has no UCX transfer backend",
            "use `NIXL` (SGLang's nixl backend, which moves KV over UCX), or drop the key for SGLang's default (mooncake)",
        );
    }
    Ok(())
}

/// `setup`: a command to run, not an empty one (which fails the run once it starts, as a
/// failed test rather than a bad case, after a Slurm allocation).
fn check_setup(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let empty = match &case.setup {
        Some(crate::case::Setup::Shell(s)) => s.trim().is_empty(),
        Some(crate::case::Setup::Argv(a)) => a.first().is_none_or(|p| p.trim().is_empty()),
        None => false,
    };
    if !empty {
        return Ok(());
    }
    Err(CaseError::new(path, "setup", "the setup command is empty")
        .at_line(line_of(text, "setup"))
        .hint(
            "give a command (`setup: \"pip install ...\"` or a list of arguments), or drop the key",
        ))
}

/// The `slurm:` section: header values sbatch can read back literally, a parseable time limit
/// that the job deadline fits in, and an MPI type that is a plain word.
fn check_slurm(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let s = &case.slurm;
    let err = |key: &str, msg: String, hint: &str| {
        Err(CaseError::new(path, key, msg)
            .at_line(line_of(text, key))
            .hint(hint))
    };
    let mut header: Vec<(&str, &str)> = Vec::new();
    for (k, v) in [
        ("slurm.partition", &s.partition),
        ("slurm.account", &s.account),
        ("slurm.time", &s.time),
        ("slurm.job_name", &s.job_name),
    ] {
        if let Some(v) = v {
            header.push((k, v));
        }
    }
    header.extend(
        s.extra_args
            .iter()
            .map(|a| ("slurm.extra_args", a.as_str())),
    );
    for (k, v) in header {
        if let Some(why) = crate::slurm::header_value_problem(v) {
            return err(
                k,
                format!("{v:?} {why}, so it cannot go into a #SBATCH line"),
                "write it on one line, without backslashes",
            );
        }
    }
    if let Some(i) = s.extra_args.iter().position(|a| !a.starts_with('-')) {
        let a = &s.extra_args[i];
        // `["--mem", "0"]`: an option and its value as two items.
        let hint = match i.checked_sub(1).map(|p| s.extra_args[p].as_str()) {
            Some(opt) if opt.starts_with("--") && !opt.contains('=') => {
                format!("write the option and its value as one item: `\"{opt}={a}\"`")
            }
            Some(opt) if opt.starts_with('-') && !opt.contains('=') => {
                format!("write the option and its value as one item: `\"{opt}{a}\"`")
            }
            _ => "give each option as one item, e.g. `[\"--exclusive\", \"--gres=gpu:8\"]`"
                .to_string(),
        };
        return err(
            "slurm.extra_args",
            format!("`{a}` is not an sbatch option"),
            &hint,
        );
    }
    // An item with a space is one option to sbatch (`#SBATCH '--time 00:10:00'`), which it
    // refuses as unrecognized: what the first word names is said first.
    let first_word = |a: &str| a.split_whitespace().next().unwrap_or("").to_string();
    // Every such item at once: fixed one by one, each run of `validate` would find the next.
    let owned: Vec<(&String, String, &str)> = s
        .extra_args
        .iter()
        .filter_map(|a| owned_sbatch_option(&first_word(a)).map(|(w, f)| (a, w, f)))
        .collect();
    if let Some((a, why, fix)) = owned.first() {
        let more: String = owned[1..]
            .iter()
            .map(|(a, why, _)| format!("; `{a}` {why}"))
            .collect();
        return err("slurm.extra_args", format!("`{a}` {why}{more}"), fix);
    }
    if let Some(a) = s
        .extra_args
        .iter()
        .find(|a| a.trim().contains(char::is_whitespace))
    {
        let words: Vec<&str> = a.split_whitespace().collect();
        // Several options in one item (`"--exclusive --mem=0"`): one item each.
        let hint = if words.iter().skip(1).all(|w| w.starts_with('-')) {
            let items: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
            format!(
                "give each option as an item of its own: `[{}]`",
                items.join(", ")
            )
        } else {
            let fixed = match a.trim().split_once(char::is_whitespace) {
                Some((opt, value)) if opt.starts_with("--") => {
                    format!("`\"{opt}={}\"`", value.trim())
                }
                Some((opt, value)) => format!("`\"{opt}{}\"`", value.trim()),
                None => format!("`{a}`"),
            };
            format!("write the option and its value as one word, e.g. {fixed}; one item per option")
        };
        return err(
            "slurm.extra_args",
            format!(
                "`{a}` holds a space: each item is one #SBATCH option, which sbatch would refuse \
                 as unrecognized"
            ),
            &hint,
        );
    }
    // A GPU gres of the case's own replaces the header's: fewer GPUs per node than the plan
    // puts on one fails the first step that asks for more, after the job waited in the queue.
    // So does `--gpus-per-node=N`, another spelling of it, and `--gpus=N` (`-GN`) for the job
    // as a whole, which Slurm spreads over its nodes.
    if s.gpu_gres {
        // `[type:]N`: the count.
        let count = |v: &str| v.rsplit(':').next()?.parse::<u32>().ok();
        let asked = s.extra_args.iter().find_map(|a| {
            if let Some(g) = a.strip_prefix("--gres=") {
                return g.split(',').find_map(|r| {
                    let n = count(r.strip_prefix("gpu:")?)?;
                    Some((a.as_str(), n, false))
                });
            }
            let n = count(a.strip_prefix("--gpus-per-node=")?)?;
            Some((a.as_str(), n, false))
        });
        let job_wide = s.extra_args.iter().find_map(|a| {
            let v = a
                .strip_prefix("--gpus=")
                .or_else(|| a.strip_prefix("-G="))
                .or_else(|| a.strip_prefix("-G"))?;
            Some((a.as_str(), count(v)?, true))
        });
        if let Some((a, n, whole_job)) = asked.or(job_wide) {
            let mut per_node: std::collections::BTreeMap<u32, u32> = Default::default();
            for (_, slots) in crate::plan::place_workers(case) {
                for slot in slots {
                    *per_node.entry(slot.node).or_default() += 1;
                }
            }
            if whole_job {
                let need: u32 = per_node.values().sum();
                if n < need {
                    return err(
                        "slurm.extra_args",
                        format!(
                            "`{a}` asks for {n} GPU(s) for the whole job, but its workers use \
                             {need}: the first step asking for more than the job holds fails"
                        ),
                        "drop it (the header asks for `--gres=gpu:<hardware.gpus_per_node>` \
                         on each node)",
                    );
                }
            }
            let need = per_node.values().copied().max().unwrap_or(0);
            if !whole_job && n < need {
                return err(
                    "slurm.extra_args",
                    format!(
                        "`{a}` asks for {n} GPU(s) per node, but the plan puts {need} on a node \
                         (hardware.gpus_per_node {}): the first step asking for more fails",
                        case.hardware.gpus_per_node
                    ),
                    "drop it (the header asks for `--gres=gpu:<hardware.gpus_per_node>`), or \
                     set `hardware.gpus_per_node` to what the nodes give",
                );
            }
        }
    }
    // `--segment=N` (TensorRT-LLM's GB200 configs ask for the job's node count, which an
    // import writes as a number): Slurm places the job's nodes in segments of N, and refuses a
    // job whose node count is not a multiple of it, after the case was edited to another size.
    if let Some((a, n)) = s.extra_args.iter().find_map(|a| {
        let n = a.strip_prefix("--segment=")?.parse::<u32>().ok()?;
        Some((a.as_str(), n))
    }) {
        let nodes = crate::plan::span(&crate::plan::place_workers(case)) + s.front_nodes;
        if n == 0 || nodes % n != 0 {
            return err(
                "slurm.extra_args",
                format!(
                    "`{a}` asks Slurm to place the job's nodes in segments of {n}, but the job \
                     has {nodes} node(s) (the workers' and slurm.front_nodes): Slurm refuses it"
                ),
                &format!(
                    "make it `--segment={nodes}` (the whole job in one segment, as TensorRT-LLM \
                     asks), or drop it"
                ),
            );
        }
    }
    if s.extra_args.iter().any(|a| a == "--requeue") {
        return err(
            "slurm.extra_args",
            "`--requeue` would run the job again after a node loss or preemption, in the same \
             run folder (named by the job id) and over its first try's reports"
                .into(),
            "drop it: a run Slurm ends fails with its reason, and `disagg run` (with `--resume` \
             for a sweep) runs it again in a new folder",
        );
    }
    if let Some(t) = &s.time {
        let limit = match crate::slurm::parse_time(t) {
            Ok(d) => d,
            Err(why) => return err("slurm.time", why, "e.g. `time: \"02:00:00\"`"),
        };
        if case.timeouts.job >= limit {
            return err(
                "slurm.time",
                format!(
                    "the Slurm time limit ({}{}) must be longer than timeouts.job ({})",
                    humantime::format_duration(limit),
                    // Slurm counts whole minutes: `3:59` is 4 minutes to it.
                    if t.contains(':') && crate::slurm::parse_time_exact(t) != Some(limit) {
                        format!(": `{t}`, which Slurm rounds up to whole minutes")
                    } else {
                        String::new()
                    },
                    humantime::format_duration(case.timeouts.job)
                ),
                "deadlines must nest: benchmark < job < Slurm time limit; lengthen `slurm.time` or shorten `timeouts.job`",
            );
        }
    }
    if let Some(m) = &s.mpi {
        if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return err(
                "slurm.mpi",
                format!("`{m}` is not an MPI plugin name"),
                "e.g. `mpi: pmix` (see `srun --mpi=list`)",
            );
        }
        // Slurm's plugins: a name a letter off one is a typo srun refuses at the first worker
        // step, after the allocation. Others may be a site's own: `srun --mpi=list` knows.
        const PLUGINS: &[&str] = &[
            "none",
            "pmi2",
            "pmix",
            "pmix_v2",
            "pmix_v3",
            "pmix_v4",
            "pmix_v5",
            "cray_shasta",
            "openmpi",
        ];
        if !PLUGINS.contains(&m.as_str()) {
            if let Some(near) = closest_known(m, PLUGINS) {
                return err(
                    "slurm.mpi",
                    format!("`{m}` is no Slurm MPI plugin: srun would refuse the worker steps"),
                    &format!("did you mean `{near}`? (`srun --mpi=list` lists this cluster's)"),
                );
            }
        }
    }
    let routers = case.router.replicas.max(1);
    if s.front_nodes > routers {
        return err(
            "slurm.front_nodes",
            format!(
                "{} front nodes for {routers} router(s): the nodes past the routers' would sit idle",
                s.front_nodes
            ),
            "at most one front node per router replica (router.replicas)",
        );
    }
    let (b_dataset, b_tokenizer) = (&case.benchmark.dataset, &case.benchmark.tokenizer);
    if let Some(c) = &s.container {
        if c.image.trim().is_empty() {
            return err(
                "slurm.container.image",
                "must name an image".into(),
                "e.g. `image: nvcr.io#nvidia/pytorch:24.05-py3` (enroot's form: `REGISTRY#IMAGE:TAG`)",
            );
        }
        if let Some(m) = c.mounts.iter().find(|m| m.contains(',') || m.is_empty()) {
            return err(
                "slurm.container.mounts",
                format!("`{m}` must be one non-empty mount without commas"),
                "give each mount as its own item, e.g. `[\"/lustre:/lustre\"]`",
            );
        }
        // pyxis reads a mount as SRC[:DST[:FLAGS]].
        if let Some(m) = c.mounts.iter().find(|m| {
            let fields: Vec<&str> = m.split(':').collect();
            fields.len() > 3 || fields.iter().any(|f| f.is_empty())
        }) {
            return err(
                "slurm.container.mounts",
                format!(
                    "`{m}` is not a mount: pyxis reads `SRC[:DST[:FLAGS]]`, three `:`-separated fields at most, none empty"
                ),
                "e.g. `/lustre:/lustre` or `/data:/data:ro`",
            );
        }
        // What the container steps read is mounted at the same path (docs/slurm.md); a path
        // that `--container-mounts` cannot express is refused here, naming it.
        for (key, p) in [
            ("model.path", &case.model.path),
            ("benchmark.dataset", b_dataset),
            ("benchmark.tokenizer", b_tokenizer),
        ] {
            if let Some(p) = p.as_deref().filter(|p| p.contains(',') || p.contains(':')) {
                return err(
                    key,
                    format!(
                        "`{p}` cannot be mounted into the container: `--container-mounts` separates mounts with `,` and its fields with `:`"
                    ),
                    "use a path without `,` and `:`",
                );
            }
        }
    }
    Ok(())
}

/// sbatch options the job header already sets, or that break how `disagg` submits and
/// supervises the job: as `slurm.extra_args` they would come after (and override) its own lines,
/// or stop the run from working, with no word at submission. Each with why and the fix.
const OWNED_SBATCH_OPTIONS: &[(&str, Option<char>, &str, &str)] = &[
    (
        "time",
        Some('t'),
        "overrides the job's time limit, which `slurm.time` sets and `validate` checks against \
         timeouts.job",
        "use `slurm.time` instead",
    ),
    (
        "partition",
        Some('p'),
        "overrides the header's partition",
        "use `slurm.partition` instead",
    ),
    (
        "account",
        Some('A'),
        "overrides the header's account",
        "use `slurm.account` instead",
    ),
    (
        "job-name",
        Some('J'),
        "overrides the header's job name",
        "use `slurm.job_name` instead",
    ),
    (
        "nodes",
        Some('N'),
        "overrides the node count the plan needs (from ctx/gen counts and tp, \
         `slurm.gpus_per_node`, `slurm.front_nodes`)",
        "drop it; `disagg plan --launcher slurm` shows the nodes the plan takes",
    ),
    (
        "ntasks-per-node",
        None,
        "overrides the job's one task per GPU, the shape the worker steps take",
        "drop it; for CPUs per task use `--cpus-per-task=N`",
    ),
    (
        "ntasks",
        Some('n'),
        "overrides the job's one task per GPU, the shape the worker steps take",
        "drop it; for CPUs per task use `--cpus-per-task=N`",
    ),
    (
        "output",
        Some('o'),
        "moves the job's log out of the run folder (slurm-<job id>.log), where the reports point",
        "drop it: the log is kept in the run folder",
    ),
    (
        "error",
        Some('e'),
        "splits the job's log out of the run folder (slurm-<job id>.log), where the reports point",
        "drop it: the log is kept in the run folder",
    ),
    (
        "export",
        None,
        "overrides the header's `--export=ALL,...`: without ALL the job steps lose PATH and the \
         engines are not found",
        "drop it; give variables in the case's `env` (or the environment of `disagg run`)",
    ),
    (
        "array",
        Some('a'),
        "makes an array of jobs sharing one run folder",
        "drop it; for several runs use a sweep (`disagg run --sweep`)",
    ),
    (
        "wrap",
        None,
        "replaces the batch script disagg writes",
        "drop it; put commands in the case's `setup`",
    ),
    (
        "wait",
        Some('W'),
        "makes sbatch return only when the job ends, and `disagg run` releases the job (it is \
         submitted held) only after sbatch returns: the two would wait for each other",
        "drop it: `disagg run` waits for the job itself (`--no-wait` to return at once)",
    ),
    (
        "test-only",
        None,
        "submits no job",
        "drop it; `disagg plan --launcher slurm` shows the script without submitting",
    ),
    (
        "signal",
        None,
        "has Slurm signal the job before its time limit; no process of the run (nor an engine) \
         takes that signal, so it ends the job early with no reason in the reports",
        "drop it: disagg ends the run itself at timeouts.job, which `validate` keeps below \
         slurm.time, and writes every report",
    ),
];

/// Why `arg` (one `slurm.extra_args` item) may not be given, and the fix, when it names one of
/// [`OWNED_SBATCH_OPTIONS`]: `--name`, `--name=V`, `-c`, `-cV` or `-c V`.
fn owned_sbatch_option(arg: &str) -> Option<(String, &'static str)> {
    OWNED_SBATCH_OPTIONS
        .iter()
        .find(|(long, short, _, _)| {
            let long_form = arg
                .strip_prefix("--")
                .and_then(|rest| rest.strip_prefix(long))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('='));
            let short_form = short.is_some_and(|c| {
                !arg.starts_with("--") && arg.strip_prefix('-').is_some_and(|r| r.starts_with(c))
            });
            long_form || short_form
        })
        .map(|(_, _, why, fix)| (why.to_string(), *fix))
}

fn valid_env_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// TensorRT-LLM's gen-only fill gate (`TLLM_BENCHMARK_REQ_QUEUES_SIZE` on the GEN workers):
/// each GEN worker starts no generation until that many requests are in. A closed-loop point
/// or warm-up that never has that many in flight on each GEN worker would wait for ever.
fn check_fill_gate(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    const VAR: &str = crate::plan::FILL_GATE_VAR;
    let (key, value) = match (case.generation.env.get(VAR), case.env.worker.get(VAR)) {
        (Some(v), _) => (format!("gen.env.{VAR}"), v),
        (None, Some(v)) => (format!("env.worker.{VAR}"), v),
        (None, None) => return Ok(()),
    };
    let Ok(need) = value.as_string().trim().parse::<u64>() else {
        return Err(CaseError::new(
            path,
            &key,
            format!("`{}` is not a whole number", value.as_string()),
        )
        .at_line(line_of(text, &key))
        .hint("TensorRT-LLM reads it as an integer: the requests each GEN worker waits for"));
    };
    let b = &case.benchmark;
    if need <= 1 || b.request_rate.is_some() {
        return Ok(());
    }
    let gens = u64::from(case.generation.count.max(1));
    let first = u64::from(b.concurrency().first().copied().unwrap_or(1));
    let warmup = u64::from(b.warmup);
    let short = |what: String, most: u64| {
        Err(CaseError::new(
            path,
            &key,
            format!(
                "each GEN worker holds generation until {need} requests are in, but {what}: it \
                 would wait for ever"
            ),
        )
        .at_line(line_of(text, &key))
        .hint(format!(
            "set it to at most {most} (per GEN worker), or send more at once; TensorRT-LLM's \
             gen-only launcher sets it to the concurrency capped at one GEN server's \
             max_batch_size (times its tp with attention DP)"
        )))
    };
    if first / gens < need {
        return short(
            format!(
                "the first point sends at most {first} at a time, {} to each of {gens} GEN \
                 worker(s)",
                first / gens
            ),
            first / gens,
        );
    }
    if warmup > 0 && warmup.min(first) / gens < need {
        return short(
            format!(
                "the {warmup} warm-up request(s) before it reach {} GEN worker(s) {} at most",
                gens,
                warmup.min(first) / gens
            ),
            warmup.min(first) / gens,
        );
    }
    Ok(())
}

/// The shortest `timeouts.unresponsive`: two probes' worth (they run once a second).
const MIN_UNRESPONSIVE: std::time::Duration = std::time::Duration::from_secs(2);

/// The hierarchy of ARCHITECTURE.md: worker startup < job; request < benchmark;
/// benchmark < job; and since the benchmark starts only after the workers are up,
/// worker_startup + benchmark ≤ job.
fn check_deadlines(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    let t = &case.timeouts;
    let h = humantime::format_duration;
    let fail = |key: &str, msg: String| {
        Err(CaseError::new(path, key, msg)
            .at_line(line_of(text, key))
            .hint("deadlines must nest: request < benchmark, worker_startup + benchmark ≤ job"))
    };
    for (k, v) in [
        ("timeouts.worker_startup", t.worker_startup),
        ("timeouts.request", t.request),
        ("timeouts.benchmark", t.benchmark),
        ("timeouts.job", t.job),
    ] {
        if v.is_zero() {
            return fail(k, "must be longer than 0s".into());
        }
    }
    // Each pair must nest: (the key blamed, its value, the deadline it must fit in).
    for (key, inner, outer_name, outer) in [
        ("timeouts.request", t.request, "benchmark", t.benchmark),
        ("timeouts.benchmark", t.benchmark, "job", t.job),
        ("timeouts.worker_startup", t.worker_startup, "job", t.job),
    ] {
        if inner >= outer {
            let name = key.trim_start_matches("timeouts.");
            return fail(
                key,
                format!(
                    "{name} ({}) must be shorter than {outer_name} ({})",
                    h(inner),
                    h(outer)
                ),
            );
        }
    }
    if t.unresponsive < MIN_UNRESPONSIVE {
        return Err(CaseError::new(
            path,
            "timeouts.unresponsive",
            format!(
                "unresponsive ({}) is shorter than {}: roles are probed once a second, so a busy but healthy role could be taken for a hung one",
                h(t.unresponsive),
                h(MIN_UNRESPONSIVE)
            ),
        )
        .at_line(line_of(text, "timeouts.unresponsive"))
        .hint("give it at least 2s; the default is 10s"));
    }
    if let Some(stall) = t.stall.filter(|d| !d.is_zero() && *d < MIN_UNRESPONSIVE) {
        return Err(CaseError::new(
            path,
            "timeouts.stall",
            format!(
                "stall ({}) is shorter than {}: the router's census is read once a second, so a busy but healthy worker could be taken for a hung one",
                h(stall),
                h(MIN_UNRESPONSIVE)
            ),
        )
        .at_line(line_of(text, "timeouts.stall"))
        .hint("give it at least 2s, or 0s to turn it off; unset, it is 5m when the benchmark streams"));
    }
    if t.worker_startup + t.benchmark > t.job {
        return fail(
            "timeouts.job",
            format!(
                "job ({}) is shorter than worker_startup + benchmark ({} + {}): the job deadline would cut a benchmark that is still within its own",
                h(t.job),
                h(t.worker_startup),
                h(t.benchmark)
            ),
        );
    }
    Ok(())
}
