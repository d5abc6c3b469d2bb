//! TensorRT-LLM's disaggregated-serving shapes (PROTOCOLS.md §1).

use serde::{Deserialize, Serialize};

/// Which half of a disaggregated request a server is asked to do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    ContextOnly,
    GenerationOnly,
    ContextAndGeneration,
}

/// `disaggregated_params`, sent by the router and echoed by the context server in `choices[0]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DisaggregatedParams {
    pub request_type: RequestType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_gen_tokens: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_request_id: Option<u64>,
    #[serde(default)]
    pub encoded_opaque_state: Option<String>,
    #[serde(default)]
    pub draft_tokens: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disagg_request_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_dp_rank: Option<u32>,
}

impl DisaggregatedParams {
    /// What a router sends to a context server.
    pub fn context_only() -> Self {
        Self {
            request_type: RequestType::ContextOnly,
            first_gen_tokens: None,
            ctx_request_id: None,
            encoded_opaque_state: None,
            draft_tokens: None,
            disagg_request_id: None,
            ctx_dp_rank: None,
        }
    }
}

/// Whether a worker whose `/version` says `v` takes `disaggregated_params.disagg_request_id`:
/// TensorRT-LLM 1.3 and newer do (their own disaggregated server sends it); older ones declare
/// no such field and refuse unknown ones. TensorRT-LLM answers `{"version": "1.3.0rc5"}`; the
/// sim, which names its own engine, says which TensorRT-LLM it plays as `tensorrt_llm`.
pub fn takes_disagg_ids(v: &serde_json::Value) -> bool {
    let version = match (v.get("tensorrt_llm"), v.get("engine")) {
        (Some(t), _) => t.as_str(),
        (None, Some(_)) => None,
        (None, None) => v.get("version").and_then(serde_json::Value::as_str),
    };
    let Some(version) = version else {
        return false;
    };
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let mut number = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (number(), number()) {
        (Some(major), Some(minor)) => (major, minor) >= (1, 3),
        _ => false,
    }
}

/// TensorRT-LLM keeps worker-local request ids below 2^40 and global (`disagg_request_id`) ones
/// in [2^40, 2^63), so the two never collide on a worker (`llmapi/disagg_utils.py`).
pub const MIN_DISAGG_REQUEST_ID: u64 = 1 << 40;

/// Router policy names as `server_config.yaml` spells them (in any case: TensorRT-LLM's
/// `create_router` lowers the name).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RouterType {
    #[default]
    RoundRobin,
    LoadBalancing,
    KvCacheAware,
}

impl<'de> Deserialize<'de> for RouterType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match name.to_ascii_lowercase().as_str() {
            "round_robin" => Ok(Self::RoundRobin),
            "load_balancing" => Ok(Self::LoadBalancing),
            "kv_cache_aware" => Ok(Self::KvCacheAware),
            _ => Err(serde::de::Error::custom(format!(
                "unsupported router type `{name}`; the types are round_robin, load_balancing \
                 and kv_cache_aware"
            ))),
        }
    }
}

/// `router:` inside a server group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct GroupRouter {
    #[serde(rename = "type", default)]
    pub kind: RouterType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_tokens: Option<bool>,
    /// The router's other arguments (`tokens_per_block`, `max_batch_size` ...): TensorRT-LLM
    /// passes them to its router class, which ignores those it has no use for; kept so that
    /// whoever reads the file can say which it ignores.
    #[serde(
        flatten,
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// `context_servers:` / `generation_servers:`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerGroup {
    /// TensorRT-LLM's `extract_ctx_gen_cfgs` takes 1 when the config leaves it out.
    #[serde(default = "one")]
    pub num_instances: usize,
    pub urls: Vec<String>,
    #[serde(default)]
    pub router: GroupRouter,
}

fn one() -> usize {
    1
}

/// `server_config.yaml` for `trtllm-serve disaggregated -c` (and for `disagg router --config`).
/// Unknown top-level keys are kept: TensorRT-LLM passes them on to both server groups.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerConfig {
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// 8000 when absent, as `trtllm-serve disaggregated` takes it.
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The key the server signs protected hand-off fields with (see [`crate::auth`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_request_auth_key: Option<String>,
    pub context_servers: ServerGroup,
    pub generation_servers: ServerGroup,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

fn default_hostname() -> String {
    "localhost".to_string()
}

fn default_port() -> u16 {
    8000
}

/// A `server_config.yaml` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    #[error("not valid server_config YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A required key missing, and one spelt a letter or two off it there instead.
    #[error("not valid server_config YAML: {source}; it has `{found}`: did you mean `{wanted}`?")]
    Misspelt {
        source: serde_yaml_ng::Error,
        found: String,
        wanted: String,
    },
    #[error("{group}.num_instances is {num} but {group}.urls has {urls} entries; they must match")]
    CountMismatch {
        group: &'static str,
        num: usize,
        urls: usize,
    },
    #[error("{group}.urls is empty; list at least one host:port")]
    Empty { group: &'static str },
    #[error(
        "{group}.urls lists {url} twice; list each server once (as trtllm-serve disaggregated \
         refuses a duplicated server)"
    )]
    Duplicate { group: &'static str, url: String },
}

/// A "missing field" error, with the file's own key that is a near miss of the missing one
/// (`context_server` for `context_servers`): unknown keys are kept (TensorRT-LLM passes them
/// on), so the typo itself is no error, and "missing field" alone did not say where it was.
fn misspelt(text: &str, e: serde_yaml_ng::Error) -> ServerConfigError {
    let message = e.to_string();
    let Some(wanted) = message
        .split_once("missing field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(w, _)| w.to_string())
    else {
        return ServerConfigError::Yaml(e);
    };
    let keys: Vec<String> = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(serde_yaml_ng::Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let near = keys
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(&k, &wanted), k))
        .filter(|(d, k)| *d > 0 && *d <= 2.max(wanted.len() / 4) && *d < k.len())
        .min_by_key(|(d, _)| *d);
    match near {
        Some((_, found)) => ServerConfigError::Misspelt {
            source: e,
            found,
            wanted,
        },
        None => ServerConfigError::Yaml(e),
    }
}

impl ServerConfig {
    pub fn from_yaml(text: &str) -> Result<Self, ServerConfigError> {
        let cfg: Self = serde_yaml_ng::from_str(text).map_err(|e| misspelt(text, e))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// A top-level key not modelled here, as its YAML text (`-1`, `generation_first`).
    pub fn other_text(&self, key: &str) -> Option<String> {
        self.other.get(key).map(|v| {
            serde_yaml_ng::to_string(v)
                .unwrap_or_default()
                .trim()
                .to_string()
        })
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("server config serializes")
    }

    fn check(&self) -> Result<(), ServerConfigError> {
        for (group, g) in [
            ("context_servers", &self.context_servers),
            ("generation_servers", &self.generation_servers),
        ] {
            if g.urls.is_empty() {
                return Err(ServerConfigError::Empty { group });
            }
            if g.num_instances != g.urls.len() {
                return Err(ServerConfigError::CountMismatch {
                    group,
                    num: g.num_instances,
                    urls: g.urls.len(),
                });
            }
            if let Some((_, url)) = g
                .urls
                .iter()
                .enumerate()
                .find(|(i, u)| g.urls[..*i].contains(u))
            {
                return Err(ServerConfigError::Duplicate {
                    group,
                    url: url.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `port` defaults to 8000, as trtllm-serve takes it; a server listed twice is refused.
    #[test]
    fn port_defaults_and_duplicates_are_refused() {
        let groups = |ctx: &str| {
            format!(
                "context_servers: {{num_instances: 2, urls: [{ctx}]}}\n\
                 generation_servers: {{num_instances: 1, urls: [\"g:2\"]}}\n"
            )
        };
        let cfg = ServerConfig::from_yaml(&groups("\"a:1\", \"b:1\"")).unwrap();
        assert_eq!(cfg.port, 8000);
        let e = ServerConfig::from_yaml(&groups("\"a:1\", \"a:1\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("context_servers.urls lists a:1 twice"), "{e}");
    }

    #[test]
    fn reads_the_documented_format() {
        let text = r#"
hostname: node-a
port: 8000
backend: pytorch
context_servers: {num_instances: 1, urls: ["node-b:34567"], router: {type: round_robin}}
generation_servers: {num_instances: 1, urls: ["node-c:45678"], router: {type: load_balancing, use_tokens: false}}
"#;
        let cfg = ServerConfig::from_yaml(text).unwrap();
        assert_eq!(cfg.hostname, "node-a");
        assert_eq!(
            cfg.generation_servers.router.kind,
            RouterType::LoadBalancing
        );
        assert_eq!(cfg.generation_servers.router.use_tokens, Some(false));
        let again = ServerConfig::from_yaml(&cfg.to_yaml()).unwrap();
        assert_eq!(again, cfg);
    }

    #[test]
    fn count_mismatch_is_an_error() {
        let text = "port: 1\ncontext_servers: {num_instances: 2, urls: [a:1]}\ngeneration_servers: {num_instances: 1, urls: [b:1]}\n";
        let err = ServerConfig::from_yaml(text).unwrap_err().to_string();
        assert!(err.contains("context_servers.num_instances is 2"), "{err}");
    }

    /// A required key spelt a letter off is named beside "missing field"; one missing with no
    /// near miss says only that.
    #[test]
    fn a_misspelt_group_is_named_with_the_key_it_misses() {
        let text = "context_server: {urls: [a:1]}\ngeneration_servers: {urls: [b:1]}\n";
        let err = ServerConfig::from_yaml(text).unwrap_err().to_string();
        assert!(
            err.contains("missing field `context_servers`")
                && err.ends_with("it has `context_server`: did you mean `context_servers`?"),
            "{err}"
        );
        let err = ServerConfig::from_yaml("generation_servers: {urls: [b:1]}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing field `context_servers`") && !err.contains("did you mean"),
            "{err}"
        );
    }

    #[test]
    fn disaggregated_params_omit_absent_newer_fields() {
        let p = DisaggregatedParams::context_only();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"request_type": "context_only", "encoded_opaque_state": null, "draft_tokens": null})
        );
    }

    #[test]
    fn tensorrt_llm_1_3_and_newer_take_disagg_request_ids() {
        for (v, takes) in [
            (serde_json::json!({"version": "1.3.0rc5"}), true),
            (serde_json::json!({"version": "1.3.0"}), true),
            (serde_json::json!({"version": "1.4.0rc4"}), true),
            (serde_json::json!({"version": "2.0.0"}), true),
            (serde_json::json!({"version": "1.2.0"}), false),
            (serde_json::json!({"version": "1.0.0"}), false),
            (serde_json::json!({"version": "0.21.0"}), false),
            (serde_json::json!({"version": "1"}), false),
            (serde_json::json!({"version": 13}), false),
            (serde_json::json!({}), false),
            (
                serde_json::json!({"version": "9.9.9", "engine": "other"}),
                false,
            ),
            (
                serde_json::json!({"version": "0.1.0", "engine": "disagg-sim", "tensorrt_llm": "1.3.0"}),
                true,
            ),
            (
                serde_json::json!({"version": "0.1.0", "engine": "disagg-sim", "tensorrt_llm": "1.0.0"}),
                false,
            ),
        ] {
            assert_eq!(takes_disagg_ids(&v), takes, "{v}");
        }
    }
}
