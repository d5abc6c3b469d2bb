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
