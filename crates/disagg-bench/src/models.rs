//! The model to ask for when `--model` is not given: the first one the server lists at
//! `GET /v1/models`, as `vllm bench serve` takes it. A default name (the bench's was `sim`) is
//! refused by any real server as an unknown model, or worse, silently served by a router that
//! ignores the field.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::{BenchConfig, BenchError, client};

/// `/v1/models` is metadata, answered at once by a live server; a generation's timeout would
/// hold a dead one for a minute before saying so.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest model list read (a list of a few hundred adapters is well under it).
const MAX_BODY: usize = 4 << 20;

/// The first model id the first `--url` lists at `/v1/models`, sent with the API key as every
/// request is.
pub(crate) async fn first_served_model(cfg: &BenchConfig) -> Result<String, BenchError> {
    let url = format!("{}/v1/models", cfg.url.trim_end_matches('/'));
    let fail = |reason: String| BenchError::Model {
        url: url.clone(),
        reason,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| BenchError::Config(format!("url {url:?} is not a URL: {e}")))?;
    let mut request = http::Request::get(uri);
    if let Some(auth) = client::bearer(cfg.api_key.as_deref()) {
        request = request.header(http::header::AUTHORIZATION, auth);
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .map_err(|e| fail(e.to_string()))?;
    let http = client::build_client(1);
    let exchange = async {
        let resp = http
            .request(request)
            .await
            .map_err(|e| fail(format!("no answer: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(format!("the answer broke off: {e}")))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(fail(format!("HTTP {status}: {}", text.trim())));
        }
        if body.len() > MAX_BODY {
            return Err(fail(format!("an answer of {} bytes", body.len())));
        }
        first_id(&body).map_err(fail)
    };
    match tokio::time::timeout(LOOKUP_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(fail(format!(
            "no answer within {}",
            humantime::format_duration(LOOKUP_TIMEOUT)
        ))),
    }
}

/// OpenAI's list, `{"data": [{"id": ...}, ...]}`: the first entry's id.
fn first_id(body: &[u8]) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON ({e})"))?;
    let first = v
        .get("data")
        .and_then(|d| d.as_array())
        .ok_or("the answer has no `data` list (not OpenAI's model list)")?
        .first()
        .ok_or("the server lists no model")?;
    match first.get("id").and_then(|id| id.as_str()) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err("its first model has no `id`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::first_id;

    #[test]
    fn the_first_listed_id_is_taken() {
        let body = br#"{"object":"list","data":[{"id":"llama","root":"/m/llama"},{"id":"lora1"}]}"#;
        assert_eq!(first_id(body).unwrap(), "llama");
        assert_eq!(
            first_id(br#"{"data":[]}"#).unwrap_err(),
            "the server lists no model"
        );
        assert!(first_id(b"<html>").unwrap_err().contains("not JSON"));
        assert!(
            first_id(br#"{"models":[]}"#)
                .unwrap_err()
                .contains("no `data`")
        );
        assert!(
            first_id(br#"{"data":[{"name":"x"}]}"#)
                .unwrap_err()
                .contains("no `id`")
        );
    }
}
