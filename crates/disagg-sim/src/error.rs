//! The one place where failures become HTTP responses: OpenAI-style JSON error bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use disagg_proto::ApiError;

/// An [`ApiError`] that axum can return. (A local newtype, because both the trait and the wire
/// type live in other crates.)
#[derive(Debug)]
pub(crate) struct HttpError(pub(crate) ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0.body())).into_response()
    }
}

/// A refusal on its way to the client: an [`ApiError`] in the body shape of whoever refuses.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) api: ApiError,
    pub(crate) shape: Shape,
}

/// How a refusal's body looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The sim's own: `{"error": {"message", "type", "code"}}`.
    Sim,
    /// vLLM's OpenAI envelope, `param` included (null when absent):
    /// `{"error": {"message", "type", "param", "code"}}`.
    Envelope { param: Option<&'static str> },
    /// TensorRT-LLM's and SGLang's `ErrorResponse`, not wrapped:
    /// `{"object": "error", "message", "type", "param": null, "code"}` (SGLang's
    /// `OpenAIServingBase.create_error_response`).
    Flat,
    /// SGLang, a streamed request refused by what its tokenizer manager checks (the context
    /// length, the sampling parameters): the stream has begun (HTTP 200), so the refusal is its
    /// one event, `data: {"error": <the flat body>}`, then `data: [DONE]`
    /// (`create_streaming_error_response`).
    InStream,
}

impl Refusal {
    /// A refusal in an engine's own shape.
    pub(crate) fn shaped(api: ApiError, shape: Shape) -> Self {
        Self { api, shape }
    }

    pub(crate) fn body(&self) -> serde_json::Value {
        let e = &self.api;
        match self.shape {
            Shape::Sim => e.body(),
            Shape::Envelope { param } => serde_json::json!({
                "error": {"message": e.message, "type": e.kind, "param": param, "code": e.status}
            }),
            Shape::Flat => serde_json::json!({
                "object": "error", "message": e.message, "type": e.kind, "param": null,
                "code": e.status
            }),
            Shape::InStream => serde_json::json!({"error": {
                "object": "error", "message": e.message, "type": e.kind, "param": null,
                "code": e.status
            }}),
        }
    }

    /// The refusal as SGLang gives it on a stream it has begun: [`Shape::InStream`].
    pub(crate) fn streamed(self) -> Self {
        let mut api = self.api;
        if api.kind == "invalid_request_error" {
            api.kind = "BadRequestError".into();
        }
        Self {
            api,
            shape: Shape::InStream,
        }
    }
}

impl Refusal {
    /// A request refused as invalid (400), in the OpenAI layer's words of the dialect's engine:
    /// type `BadRequestError` in all three (their `create_error_response`), flat in
    /// TensorRT-LLM's and SGLang's `ErrorResponse`, in the `error` envelope in vLLM's. A
    /// refusal already in an engine's shape, and any other status, is kept.
    pub(crate) fn in_engines_shape(self, dialect: crate::Dialect) -> Self {
        if self.shape != Shape::Sim
            || self.api.status != 400
            || self.api.kind != "invalid_request_error"
        {
            return self;
        }
        let mut api = self.api;
        api.kind = "BadRequestError".into();
        let shape = match dialect {
            crate::Dialect::Trtllm | crate::Dialect::Sglang => Shape::Flat,
            crate::Dialect::Vllm => Shape::Envelope { param: None },
        };
        Self { api, shape }
    }
}

impl Refusal {
    /// A refusal of SGLang's native `/generate`, in the `error` envelope its `http_server`
    /// answers there, whatever shape the check that refused it gave.
    pub(crate) fn in_generate_shape(self) -> Self {
        Self {
            shape: Shape::Sim,
            ..self
        }
    }
}

impl From<ApiError> for Refusal {
    fn from(api: ApiError) -> Self {
        Self {
            api,
            shape: Shape::Sim,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if self.shape == Shape::InStream {
            let events = format!("data: {}\n\ndata: [DONE]\n\n", self.body());
            return (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
                events,
            )
                .into_response();
        }
        let status =
            StatusCode::from_u16(self.api.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
    }
}
