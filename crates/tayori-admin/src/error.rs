//! One error answer for the API: 4xx say what to fix, 5xx say only what happened (the cause is
//! logged).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tayori_app::AdminError;
use tracing::error;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `unauthenticated`, `not_found`, `forbidden`, `bad_request`, `unavailable` or `internal`.
    pub error: &'static str,
    /// What to fix, for 4xx; a fixed sentence for 5xx.
    pub message: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError(pub AdminError);

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        Self(error)
    }
}

impl ApiError {
    /// A 400 with this message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self(AdminError::Invalid(message.into()))
    }

    /// The status, machine-readable code and message.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match &self.0 {
            AdminError::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, "unauthenticated", self.0.to_string())
            }
            AdminError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            AdminError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            AdminError::Invalid(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            AdminError::Unavailable(cause) => {
                error!(error = %cause, "admin request failed: a dependency is unavailable");
                let message = "temporarily unavailable; try again".to_owned();
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            AdminError::Unexpected(cause) => {
                error!(error = format!("{cause:#}"), "admin request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".to_owned())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, message) = self.parts();
        let mut response = (status, Json(ErrorBody { error, message })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
