//! The API tokens (created and revoked by the binary's `admin token` commands).

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::auth::Bearer;
use crate::error::{ApiError, ErrorBody};
use crate::views::TokenView;

/// This capability's routes with their documentation.
pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(tokens))
}

/// Every token (admin only; secrets are never shown again).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn tokens(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = state.service.tokens(Some(&who)).await?;
    Ok(Json(tokens.iter().map(TokenView::from).collect()))
}
