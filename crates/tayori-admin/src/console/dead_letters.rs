//! The dead-letter queues' page and its redrive form.

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{ConsoleError, Page, check_csrf, percent_encode, with};
use crate::AdminState;
use crate::api::dead_letter_queue;
use crate::auth::Session;
use crate::error::ApiError;
use crate::views::DeadLettersView;

/// This capability's pages and forms.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/dead-letters", get(dead_letters))
        .route("/console/dead-letters/redrive", post(redrive_dead_letters))
}

#[derive(Debug, Default, Deserialize)]
struct DeadLetterQuery {
    queue: Option<String>,
    message: Option<String>,
}

/// A queue's depth and sample; a queue that cannot be read is said on the page.
async fn dead_letters(
    State(state): State<AdminState>,
    session: Session,
    Query(query): Query<DeadLetterQuery>,
) -> Page {
    let who = &session.principal;
    let result = async {
        let queue = dead_letter_queue(query.queue.as_deref())?;
        let page = state.service.dead_letters(who, queue, 100).await?;
        Ok::<_, ApiError>(DeadLettersView::of(queue, &page))
    }
    .await;
    let queue = query.queue.clone().unwrap_or_else(|| "events".into());
    let shows = match result {
        Ok(view) => json!({ "view": view, "queue": queue }),
        Err(error) => json!({ "error": error.parts().2, "queue": queue }),
    };
    let may_redrive = who.may_act() && who.scope == tayori_app::ports::TenantScope::All;
    let extra = json!({ "may_redrive": may_redrive, "message": query.message });
    Page::framed(&session, "dead-letters", "dead_letters.html", with(shows, extra))
}

#[derive(Debug, Default, Deserialize)]
struct RedriveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    max: String,
}

async fn redrive_dead_letters(
    State(state): State<AdminState>,
    session: Session,
    Form(form): Form<RedriveForm>,
) -> Result<Redirect, ConsoleError> {
    check_csrf(&session, &form.csrf)?;
    let max = form
        .max
        .trim()
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("max: not a number: {:?}", form.max)))?;
    let queue = dead_letter_queue(Some(&form.queue))?;
    let who = &session.principal;
    let done = state.service.redrive_dead_letters(who, queue, max, &form.reason).await?;
    let message = match done.stopped {
        None => format!("{} dead letters moved back to the {} queue.", done.moved, queue.as_str()),
        Some(why) => format!(
            "{} dead letters moved back, then the redrive stopped: {why}. Run it again.",
            done.moved
        ),
    };
    Ok(Redirect::to(&format!(
        "/console/dead-letters?queue={}&message={}",
        queue.as_str(),
        percent_encode(&message)
    )))
}
