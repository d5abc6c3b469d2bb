//! Sweeps: one case file that expands into many points.
//!
//! ```yaml
//! sweep:
//!   ctx.count: [1, 2]            # a key path: sets ctx.count in each point
//!   gen.parallel.tp: [1, 2]
//!   conc: [8, 64]                # a placeholder: fills `{conc}` wherever the case writes it
//!   zip:                         # lists taken together (equal lengths), one axis
//!     - {benchmark.isl: [1024, 8192], benchmark.osl: [1024, 256]}
//! ```
//!
//! The points are the cartesian product of the axes (each named list is one axis, each `zip`
//! group is one axis), the first axis varying slowest. A name with a `.`, or naming a top-level
//! case key, sets that key path (creating mappings on the way); any other name fills its
//! `{name}` placeholders, and must be used at least once. A string that is only `{name}` takes
//! the value with its type (`count: "{n}"` becomes a number); inside a longer string the value is
//! written as text. Each point is then checked as a whole case, exactly as `disagg run` would.
//!
//! Each point's config name is the case's (placeholders filled) or the derived one; when two
//! points would share one, every point's name gets its values as a suffix
//! (`_ctx.count-1_gen.parallel.tp-2`), so each has a folder of its own.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::error::CaseError;
use crate::load::{LoadedCase, parse_case};
use crate::locate::line_of;
use crate::name::ConfigName;

/// The keys a case may have at its top level (a sweep name equal to one sets it).
const TOP_LEVEL: [&str; 13] = [
    "name",
    "model",
    "engine",
    "hardware",
    "ctx",
    "gen",
    "router",
    "benchmark",
    "env",
    "timeouts",
    "perf",
    "setup",
    "slurm",
];

/// What a case file holds: one case, or a sweep of them.
#[derive(Debug, Clone)]
pub enum CaseFile {
    Single(Box<LoadedCase>),
    Sweep(Sweep),
}

/// A sweep file, expanded and checked.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The sweep's own name (its folder): the case's `name` when it has no placeholder, else
    /// the file's stem.
    pub name: ConfigName,
    /// The sweep file.
    pub path: PathBuf,
    /// The names swept, in axis order.
    pub names: Vec<String>,
    pub points: Vec<SweepPoint>,
}

/// One point of a sweep.
#[derive(Debug, Clone)]
pub struct SweepPoint {
    /// 1-based, in expansion order.
    pub index: usize,
    /// (sweep name, value) of this point, in axis order.
    pub values: Vec<(String, Value)>,
    pub case: LoadedCase,
}

impl SweepPoint {
    /// `ctx.count=1 gen.parallel.tp=2`.
    pub fn label(&self) -> String {
        self.values
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar_text(v).unwrap_or_else(|| yaml_inline(v))))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// GPUs of a case's workers: every server's tp·pp·cp.
pub fn gpu_count(case: &crate::Case) -> u32 {
    [&case.ctx, &case.generation]
        .iter()
        .map(|g| g.count * g.parallel.gpus_per_server())
        .sum()
}

/// Reads a case file: a single case, or a sweep expanded into points, every point checked.
/// All the points' errors are returned, not only the first.
pub fn load_file(path: &Path) -> Result<CaseFile, Vec<CaseError>> {
    let text = crate::load::read_case_text(path).map_err(|e| vec![e])?;
    parse_file(&text, path)
}

/// [`load_file`] on text.
pub fn parse_file(text: &str, path: &Path) -> Result<CaseFile, Vec<CaseError>> {
    // Before any YAML parsing: what would make the parser slow or read only part of the file.
    let text = crate::load::check_shape(text, path).map_err(|e| vec![e])?;
    let doc: Option<Mapping> = serde_yaml_ng::from_str(text).ok();
    let has_sweep = doc.as_ref().is_some_and(|m| m.contains_key("sweep"));
    if !has_sweep {
        return parse_case(text, path)
            .map(|c| CaseFile::Single(Box::new(c)))
            .map_err(|e| vec![e]);
    }
    let mut doc = doc.expect("checked above");
    let spec = doc.remove("sweep").expect("checked above");
    expand(text, path, doc, spec).map(CaseFile::Sweep)
}

/// One axis: its entries, each a set of assignments made together.
type Axis = Vec<Vec<(String, Value)>>;

fn expand(text: &str, path: &Path, base: Mapping, spec: Value) -> Result<Sweep, Vec<CaseError>> {
    let err = |key: &str, msg: String, hint: &str| {
        vec![
            CaseError::new(path, key, msg)
                .at_line(line_of(text, key))
                .hint(hint),
        ]
    };
    let Value::Mapping(spec) = spec else {
        return Err(err(
            "sweep",
            "must be a mapping of names to lists".into(),
            "e.g. `sweep: {ctx.count: [1, 2], gen.parallel.tp: [1, 2]}`",
        ));
    };
    let list = |key: &str, v: &Value| -> Result<Vec<Value>, Vec<CaseError>> {
        match v {
            Value::Sequence(s) if !s.is_empty() => Ok(s.clone()),
            _ => Err(err(
                &format!("sweep.{key}"),
                "must be a list of one or more values".into(),
                "write a list, e.g. `[1, 2, 4]`",
            )),
        }
    };
    let mut axes: Vec<Axis> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (k, v) in &spec {
        let Some(k) = k.as_str() else {
            return Err(err(
                "sweep",
                format!("the key {} is not a name", yaml_inline(k)),
                "write names or key paths, e.g. `ctx.count`",
            ));
        };
        if k == "zip" {
            let Value::Sequence(groups) = v else {
                return Err(err(
                    "sweep.zip",
                    "must be a list of groups".into(),
                    "e.g. `zip: [{benchmark.isl: [1024, 8192], benchmark.osl: [1024, 256]}]`",
                ));
            };
            for (gi, g) in groups.iter().enumerate() {
                let Value::Mapping(g) = g else {
                    return Err(err(
                        "sweep.zip",
                        format!("group {} is not a mapping of names to lists", gi + 1),
                        "e.g. `- {benchmark.isl: [1024, 8192], benchmark.osl: [1024, 256]}`",
                    ));
                };
                let mut cols: Vec<(String, Vec<Value>)> = Vec::new();
                for (gk, gv) in g {
                    let gk = gk.as_str().unwrap_or_default().to_string();
                    let l = list(&format!("zip.{gk}"), gv)?;
                    cols.push((gk, l));
                }
                let Some(len) = cols.first().map(|c| c.1.len()) else {
                    return Err(err(
                        "sweep.zip",
                        format!("group {} is empty", gi + 1),
                        "remove it",
                    ));
                };
                if let Some((bad, l)) = cols.iter().find(|c| c.1.len() != len) {
                    return Err(err(
                        &format!("sweep.zip.{bad}"),
                        format!(
                            "zip group {}: `{bad}` has {} values but `{}` has {len}",
                            gi + 1,
                            l.len(),
                            cols[0].0
                        ),
                        "lists zipped together are taken value by value, so they need the same length",
                    ));
                }
                axes.push(
                    (0..len)
                        .map(|i| {
                            cols.iter()
                                .map(|(n, l)| (n.clone(), l[i].clone()))
                                .collect()
                        })
                        .collect(),
                );
                names.extend(cols.into_iter().map(|c| c.0));
            }
        } else {
            let l = list(k, v)?;
            axes.push(l.into_iter().map(|x| vec![(k.to_string(), x)]).collect());
            names.push(k.to_string());
        }
    }
    if axes.is_empty() {
        return Err(err(
            "sweep",
            "lists nothing to sweep".into(),
            "e.g. `sweep: {ctx.count: [1, 2]}`, or remove `sweep`",
        ));
    }
    if let Some(dup) = names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
    {
        return Err(err(
            &format!("sweep.{}", dup.1),
            format!("`{}` is swept twice", dup.1),
            "sweep each name once (in a list or in one zip group)",
        ));
    }
    let base_value = Value::Mapping(base.clone());
    for n in &names {
        if !is_key_path(n, &base) && !uses_placeholder(&base_value, n) {
            return Err(err(
                &format!("sweep.{n}"),
                format!("`{n}` is neither a key path nor a `{{{n}}}` placeholder used in the case"),
                "write a key path with dots (e.g. `gen.parallel.tp`), or use `{name}` in the case where the value goes",
            ));
        }
    }

    // The cartesian product, first axis slowest.
    let total: usize = axes.iter().map(Vec::len).product();
    if total > 10_000 {
        return Err(err(
            "sweep",
            format!("expands into {total} points"),
            "split it into smaller sweeps (at most 10000 points)",
        ));
    }
    let mut raw_points = Vec::new();
    let mut errors = Vec::new();
    for n in 0..total {
        let mut rest = n;
        let mut picks = vec![0usize; axes.len()];
        for (a, axis) in axes.iter().enumerate().rev() {
            picks[a] = rest % axis.len();
            rest /= axis.len();
        }
        let values: Vec<(String, Value)> = axes
            .iter()
            .zip(&picks)
            .flat_map(|(axis, &i)| axis[i].clone())
            .collect();
        let label = |values: &[(String, Value)]| {
            values
                .iter()
                .map(|(k, v)| format!("{k}={}", scalar_text(v).unwrap_or_else(|| yaml_inline(v))))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match point_case(text, path, &base, &values) {
            Ok(case) => raw_points.push(SweepPoint {
                index: n + 1,
                values,
                case,
            }),
            Err(e) => errors.push((n + 1, label(&values), e)),
        }
    }
    if !errors.is_empty() {
        return Err(group_point_errors(errors, total));
    }
    name_points(&mut raw_points).map_err(|m| {
        err(
            "sweep",
            m,
            "sweep at least one key that changes the case, or remove the duplicate values",
        )
    })?;
    let name = match base.get("name").and_then(Value::as_str) {
        Some(n) if !n.contains('{') => ConfigName::new(n).ok(),
        _ => None,
    }
    .unwrap_or_else(|| {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into());
        ConfigName::new(&sanitize(&stem)).unwrap_or_else(|_| ConfigName::new("sweep").unwrap())
    });
    Ok(Sweep {
        name,
        path: path.to_path_buf(),
        names,
        points: raw_points,
    })
}

/// A name that sets a key path rather than filling placeholders.
fn is_key_path(name: &str, base: &Mapping) -> bool {
    name.contains('.') || TOP_LEVEL.contains(&name) || base.contains_key(name)
}

fn uses_placeholder(v: &Value, name: &str) -> bool {
    let needle = format!("{{{name}}}");
    match v {
        Value::String(s) => s.contains(&needle),
        Value::Sequence(s) => s.iter().any(|x| uses_placeholder(x, name)),
        Value::Mapping(m) => m.values().any(|x| uses_placeholder(x, name)),
        Value::Tagged(t) => uses_placeholder(&t.value, name),
        _ => false,
    }
}

/// The case of one point: placeholders filled, key paths set, then checked as a case.
fn point_case(
    text: &str,
    path: &Path,
    base: &Mapping,
    values: &[(String, Value)],
) -> Result<LoadedCase, CaseError> {
    let mut doc = Value::Mapping(base.clone());
    for (name, v) in values {
        if !is_key_path(name, base) {
            fill(&mut doc, name, v).map_err(|m| {
                CaseError::new(path, format!("sweep.{name}"), m)
                    .at_line(line_of(text, &format!("sweep.{name}")))
                    .hint("a placeholder inside a longer string takes a number, a string or a boolean")
            })?;
        }
    }
    for (name, v) in values {
        if is_key_path(name, base) {
            set_path(&mut doc, name, v.clone()).map_err(|m| {
                CaseError::new(path, format!("sweep.{name}"), m)
                    .at_line(line_of(text, &format!("sweep.{name}")))
                    .hint("a key path goes through mappings only, e.g. `gen.parallel.tp`")
            })?;
        }
    }
    let point_text = serde_yaml_ng::to_string(&doc).expect("a YAML value serializes");
    parse_case(&point_text, path).map_err(|mut e| {
        // Lines of the expanded text mean nothing to the user: point at the key in their file;
        // a key the sweep set (`benchmark.isll: [...]`) is on its line in `sweep:`.
        let set_by_sweep = values.iter().map(|(n, _)| n).find(|n| {
            is_key_path(n, base) && (e.key == **n || e.key.starts_with(&format!("{n}.")))
        });
        e.line = match set_by_sweep {
            Some(n) => sweep_key_line(text, n),
            None => line_of(text, &e.key).filter(|_| !e.key.is_empty()),
        };
        e
    })
}

/// The line of `name:` (a dotted key path, written whole) inside the file's `sweep:` section.
fn sweep_key_line(text: &str, name: &str) -> Option<usize> {
    let sweep = line_of(text, "sweep")?;
    text.lines()
        .enumerate()
        .skip(sweep - 1)
        .find(|(_, l)| {
            let l = l.trim_start().trim_start_matches(['{', '-', ' ']);
            [name.to_string(), format!("\"{name}\""), format!("'{name}'")]
                .iter()
                .any(|k| l.starts_with(&format!("{k}:")) || l.contains(&format!(" {k}:")))
        })
        .map(|(i, _)| i + 1)
        .or(Some(sweep))
}

/// Replaces `{name}` in every string of `v`.
fn fill(v: &mut Value, name: &str, with: &Value) -> Result<(), String> {
    let needle = format!("{{{name}}}");
    match v {
        Value::String(s) if *s == needle => {
            *v = with.clone();
            Ok(())
        }
        Value::String(s) if s.contains(&needle) => {
            let text = scalar_text(with).ok_or_else(|| {
                format!(
                    "`{{{name}}}` is inside the string \"{s}\", but its value {} is not a scalar",
                    yaml_inline(with)
                )
            })?;
            *s = s.replace(&needle, &text);
            Ok(())
        }
        Value::Sequence(seq) => seq.iter_mut().try_for_each(|x| fill(x, name, with)),
        Value::Mapping(m) => m.values_mut().try_for_each(|x| fill(x, name, with)),
        Value::Tagged(t) => fill(&mut t.value, name, with),
        _ => Ok(()),
    }
}

/// Sets `a.b.c` in `doc`, creating mappings on the way.
fn set_path(doc: &mut Value, key: &str, value: Value) -> Result<(), String> {
    let mut cur = doc;
    let segs: Vec<&str> = key.split('.').collect();
    for (i, seg) in segs.iter().enumerate() {
        if seg.is_empty() {
            return Err(format!("`{key}` has an empty segment"));
        }
        let Value::Mapping(m) = cur else {
            return Err(format!(
                "`{}` is not a mapping, so `{key}` cannot be set",
                segs[..i].join(".")
            ));
        };
        let k = Value::String(seg.to_string());
        if i + 1 == segs.len() {
            m.insert(k, value);
            return Ok(());
        }
        if !m.contains_key(&k) || m.get(&k).is_some_and(Value::is_null) {
            m.insert(k.clone(), Value::Mapping(Mapping::new()));
        }
        cur = m.get_mut(&k).expect("inserted above");
    }
    Ok(())
}

/// Gives every point a distinct config name: when two would share one, all get their values as a
/// suffix.
/// The points' errors, one per distinct error: the same mistake in the base case fails every
/// point alike, and is said once, with the points it fails (a 1,000-point sweep would say it
/// a thousand times).
fn group_point_errors(errors: Vec<(usize, String, CaseError)>, total: usize) -> Vec<CaseError> {
    let mut groups: Vec<(CaseError, Vec<(usize, String)>)> = Vec::new();
    for (n, label, e) in errors {
        let same = |g: &CaseError| {
            (&g.key, g.line, &g.message, &g.hint) == (&e.key, e.line, &e.message, &e.hint)
        };
        match groups.iter_mut().find(|(g, _)| same(g)) {
            Some((_, points)) => points.push((n, label)),
            None => groups.push((e, vec![(n, label)])),
        }
    }
    const SHOWN: usize = 4;
    groups
        .into_iter()
        .map(|(mut e, points)| {
            let context = match points.as_slice() {
                [(n, label)] => format!("sweep point {n} ({label})"),
                _ if points.len() == total && total > 1 => {
                    format!("every sweep point (all {total})")
                }
                _ => {
                    let mut shown: Vec<String> = points
                        .iter()
                        .take(SHOWN)
                        .map(|(n, label)| format!("{n} ({label})"))
                        .collect();
                    if points.len() > SHOWN {
                        shown.push(format!("and {} more", points.len() - SHOWN));
                    }
                    format!("sweep points {}", shown.join(", "))
                }
            };
            e.message = format!("{context}: {}", e.message);
            e
        })
        .collect()
}

fn name_points(points: &mut [SweepPoint]) -> Result<(), String> {
    let clash = |points: &[SweepPoint]| -> Option<(usize, usize)> {
        for (i, p) in points.iter().enumerate() {
            if let Some(j) = points[..i]
                .iter()
                .position(|q| q.case.config_name == p.case.config_name)
            {
                return Some((j, i));
            }
        }
        None
    };
    if clash(points).is_none() {
        return Ok(());
    }
    for p in points.iter_mut() {
        let mut name = p.case.config_name.as_str().to_string();
        for (k, v) in &p.values {
            let v = scalar_text(v).unwrap_or_else(|| yaml_inline(v));
            name.push_str(&format!("_{}-{}", sanitize(k), sanitize(&v)));
        }
        let name = ConfigName::new(&name).map_err(|why| {
            format!(
                "point {}: the name `{name}` cannot be a folder name: {why}",
                p.index
            )
        })?;
        p.case.case.name = Some(name.to_string());
        p.case.config_name = name;
    }
    match clash(points) {
        Some((a, b)) => Err(format!(
            "points {} and {} are the same case ({})",
            points[a].index, points[b].index, points[b].case.config_name
        )),
        None => Ok(()),
    }
}

/// Keeps `[A-Za-z0-9._+-]`, turns anything else into `-`, and never leaves `..`.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("..") {
        out = out.replace("..", ".");
    }
    out
}

/// A sweep value as JSON (`sweep.json`, `plan --json`). JSON has no infinity: a non-finite
/// number becomes the string `"inf"` (`"-inf"`, `"nan"`), as `results.json` writes an infinite
/// request rate, where serde would write `null`.
pub fn json_value(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_nan() => J::String("nan".into()),
            Some(f) if f.is_infinite() => J::String(if f > 0.0 { "inf" } else { "-inf" }.into()),
            _ => serde_json::to_value(n).unwrap_or(J::Null),
        },
        Value::Sequence(items) => J::Array(items.iter().map(json_value).collect()),
        Value::Mapping(m) => J::Object(
            m.iter()
                .map(|(k, v)| {
                    let k = scalar_text(k).unwrap_or_else(|| yaml_inline(k));
                    (k, json_value(v))
                })
                .collect(),
        ),
        Value::Tagged(t) => json_value(&t.value),
        other => serde_json::to_value(other).unwrap_or(J::Null),
    }
}

/// A scalar as text (`1`, `0.5`, `true`, `abc`); `None` for mappings and lists.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        _ => None,
    }
}

/// A value on one line, as compact JSON writes it (points are named from it), except that a
/// non-finite number is YAML's `.inf`: through JSON, which has none, a rate of `.inf` was
/// shown, and named its point, as `null`.
fn yaml_inline(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_else(|_| "?".into()),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(yaml_inline).collect();
            format!("[{}]", items.join(","))
        }
        Value::Mapping(m) => {
            let pairs: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", yaml_inline(k), yaml_inline(v)))
                .collect();
            format!("{{{}}}", pairs.join(","))
        }
        Value::Number(n) if n.as_f64().is_some_and(|f| f.is_finite()) => {
            serde_json::to_string(v).unwrap_or_else(|_| n.to_string())
        }
        Value::Tagged(t) => format!("{} {}", t.tag, yaml_inline(&t.value)),
        scalar => scalar_text(scalar).unwrap_or_else(|| "?".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_show_as_compact_json_but_infinity_as_yaml_writes_it() {
        let v = |yaml: &str| yaml_inline(&serde_yaml_ng::from_str::<Value>(yaml).unwrap());
        assert_eq!(v("[1, 2.5, .inf, -.inf]"), "[1,2.5,.inf,-.inf]");
        let j = |yaml: &str| json_value(&serde_yaml_ng::from_str::<Value>(yaml).unwrap());
        assert_eq!(
            j("[1, 2.5, .inf, -.inf]"),
            serde_json::json!([1, 2.5, "inf", "-inf"])
        );
        assert_eq!(
            j("{a: [x], b: null}"),
            serde_json::json!({"a": ["x"], "b": null})
        );
        assert_eq!(
            v("{a: 1, b: [x, 'y z'], c: null, d: true}"),
            r#"{"a":1,"b":["x","y z"],"c":null,"d":true}"#
        );
    }

    const BASE: &str = "model: {name: m}\nengine: sim\nctx: {count: 1, engine_args: {}}\ngen: {count: 1, engine_args: {}}\nbenchmark: {isl: 64, osl: 8, concurrency: [1]}\n";

    fn sweep(extra: &str) -> Result<Sweep, Vec<CaseError>> {
        match parse_file(&format!("{BASE}{extra}"), Path::new("s.yaml"))? {
            CaseFile::Sweep(s) => Ok(s),
            CaseFile::Single(_) => panic!("not a sweep"),
        }
    }

    #[test]
    fn a_case_without_sweep_is_single() {
        assert!(matches!(
            parse_file(BASE, Path::new("c.yaml")).unwrap(),
            CaseFile::Single(_)
        ));
    }

    #[test]
    fn key_paths_expand_into_the_cartesian_product_first_axis_slowest() {
        let s = sweep("sweep: {ctx.count: [1, 2], gen.parallel.tp: [1, 2]}\n").unwrap();
        let got: Vec<(u32, u32, u32)> = s
            .points
            .iter()
            .map(|p| {
                (
                    p.case.case.ctx.count,
                    p.case.case.generation.parallel.tp,
                    gpu_count(&p.case.case),
                )
            })
            .collect();
        assert_eq!(got, [(1, 1, 2), (1, 2, 3), (2, 1, 3), (2, 2, 4)]);
        assert_eq!(s.name.as_str(), "s");
        assert_eq!(s.points[3].label(), "ctx.count=2 gen.parallel.tp=2");
        // Derived names already differ (ctx count, gen tp), so no suffix.
        let names: Vec<&str> = s
            .points
            .iter()
            .map(|p| p.case.config_name.as_str())
            .collect();
        assert!(
            names[0].contains("ctx1") && names[3].contains("ctx2"),
            "{names:?}"
        );
        assert!(!names[0].contains("ctx.count-"), "{names:?}");
    }

    #[test]
    fn placeholders_take_the_value_typed_or_as_text_and_zip_groups_go_together() {
        let s = sweep(
            "name: \"demo_{n}_{o}\"\nsweep:\n  n: [1, 2]\n  zip:\n    - {benchmark.isl: [128, 256], o: [16, 32]}\n",
        )
        .unwrap();
        assert_eq!(s.points.len(), 4);
        let p = &s.points[1];
        assert_eq!(p.case.config_name.as_str(), "demo_1_32");
        assert_eq!(p.case.case.benchmark.isl, 256);
        // The sweep's own name comes from the file, since `name` has a placeholder.
        assert_eq!(s.name.as_str(), "s");

        let typed = match parse_file(
            "model: {name: m}\nctx: {count: \"{n}\", engine_args: {}}\ngen: {count: 1, engine_args: {}}\nbenchmark: {isl: 64, osl: 8}\nsweep: {n: [3]}\n",
            Path::new("t.yaml"),
        )
        .unwrap()
        {
            CaseFile::Sweep(s) => s,
            _ => unreachable!(),
        };
        assert_eq!(typed.points[0].case.case.ctx.count, 3);
    }

    #[test]
    fn points_sharing_a_name_get_their_values_as_a_suffix() {
        let s = sweep("name: fixed\nsweep: {ctx.count: [1, 2]}\n").unwrap();
        let names: Vec<&str> = s
            .points
            .iter()
            .map(|p| p.case.config_name.as_str())
            .collect();
        assert_eq!(names, ["fixed_ctx.count-1", "fixed_ctx.count-2"]);
        assert_eq!(s.name.as_str(), "fixed");
        assert_eq!(
            s.points[0].case.case.name.as_deref(),
            Some("fixed_ctx.count-1")
        );
    }

    #[test]
    fn every_bad_point_is_reported_with_its_values_and_the_key() {
        // One mistake the points share is said once, with the points; another apart.
        let errs = sweep("sweep: {ctx.count: [0, 1, 0, -1]}\n").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        let e = errs[0].to_string();
        assert!(
            e.contains("sweep points 1 (ctx.count=0), 3 (ctx.count=0): must be at least 1"),
            "{e}"
        );
        assert!(e.contains("key `ctx.count`"), "{e}");
        assert!(
            errs[1].to_string().contains("sweep point 4 (ctx.count=-1)"),
            "{errs:?}"
        );
        // The base's mistake fails every point: said once.
        let errs = sweep("seed: x\nsweep: {ctx.count: [1, 2, 3, 4, 5, 6]}\n").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].to_string().contains("every sweep point (all 6)"),
            "{errs:?}"
        );
        let errs = sweep("sweep: {ctx.count: [0, 0, 0, 0, 0, 0, 1]}\n").unwrap_err();
        assert!(
            errs[0].to_string().contains("4 (ctx.count=0), and 2 more:"),
            "{errs:?}"
        );
    }

    #[test]
    fn mistakes_in_the_sweep_section_name_the_key() {
        let unused = sweep("sweep: {conc: [1]}\n").unwrap_err();
        assert!(
            unused[0]
                .to_string()
                .contains("`conc` is neither a key path nor a `{conc}` placeholder"),
            "{unused:?}"
        );
        let not_list = sweep("sweep: {ctx.count: 2}\n").unwrap_err();
        assert_eq!(not_list[0].key, "sweep.ctx.count");
        let uneven =
            sweep("sweep: {zip: [{benchmark.isl: [1, 2], benchmark.osl: [1]}]}\n").unwrap_err();
        assert!(uneven[0].message.contains("has 1 values but"), "{uneven:?}");
        let typo = sweep("sweep: {gen.paralel.tp: [1, 2]}\n").unwrap_err();
        assert!(typo[0].to_string().contains("paralel"), "{typo:?}");
        let same = sweep("sweep: {ctx.count: [1, 1]}\n").unwrap_err();
        assert!(same[0].message.contains("same case"), "{same:?}");
        // A point's error about a key the sweep set points at that key's line in `sweep:`.
        let at = sweep("sweep:\n  ctx.count: [1]\n  benchmark.isll: [1, 2]\n").unwrap_err();
        assert_eq!(
            (at[0].key.as_str(), at[0].line),
            ("benchmark.isll", Some(8)),
            "{at:?}"
        );
        let at = sweep("sweep:\n  ctx.count: [0, 1]\n").unwrap_err();
        assert_eq!(
            (at[0].key.as_str(), at[0].line),
            ("ctx.count", Some(7)),
            "{at:?}"
        );
    }
}
