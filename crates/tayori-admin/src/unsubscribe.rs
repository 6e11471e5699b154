//! The public one-click unsubscribe endpoint (RFC 8058): `POST /unsubscribe/{token}` with the
//! body `List-Unsubscribe=One-Click`, urlencoded or `multipart/form-data`, unsubscribes at once
//! (what mail clients send); `GET /unsubscribe/{token}` shows a small page with a button that
//! posts the same. No admin token: the sealed token is the authorization.
//!
//! The token is checked first, before any rate limit, so junk spends nobody's quota: a tampered
//! or expired token answers 400 and changes nothing, and only its sender's small allowance of
//! invalid tokens runs out (429 to that client alone). A valid token then passes three limits
//! (429 beyond any): per client address, per recipient, and in all. The client's address is the
//! connection's, or, behind trusted proxies, the `X-Forwarded-For` entry the nearest trusted
//! proxy saw ([`UnsubscribeLimits::trusted_proxy_hops`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
pub use governor::Quota;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, RateLimiter};
use tayori_app::{UnsubscribeError, UnsubscribeService};
use tayori_domain::UnsubscribeClaim;

/// The endpoint's rate limits and how it finds the client's address.
#[derive(Debug, Clone)]
pub struct UnsubscribeLimits {
    /// Requests with valid tokens, all clients together.
    pub overall: Quota,
    /// Requests with valid tokens from one client address.
    pub per_client: Quota,
    /// Requests with valid tokens for one recipient (tenant and address).
    pub per_recipient: Quota,
    /// Requests with invalid tokens from one client address (they answer 400 until this is
    /// spent, then 429 to that client only).
    pub invalid_per_client: Quota,
    /// Proxies in front that append to `X-Forwarded-For` (0: the header is ignored and the
    /// connection's peer is the client; 1: the last entry, added by the one load balancer).
    pub trusted_proxy_hops: usize,
}

/// Keyed limiters forget clients that have been quiet once they hold this many.
const FORGET_AT: usize = 10_000;

#[derive(Clone)]
struct UnsubscribeState {
    service: Arc<UnsubscribeService>,
    overall: Arc<DefaultDirectRateLimiter>,
    per_client: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    per_recipient: Arc<DefaultKeyedRateLimiter<(String, String)>>,
    invalid_per_client: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxy_hops: usize,
}

/// `GET` and `POST /unsubscribe/{token}`, within `limits`.
pub fn unsubscribe_router(service: Arc<UnsubscribeService>, limits: UnsubscribeLimits) -> Router {
    let state = UnsubscribeState {
        service,
        overall: Arc::new(RateLimiter::direct(limits.overall)),
        per_client: Arc::new(RateLimiter::keyed(limits.per_client)),
        per_recipient: Arc::new(RateLimiter::keyed(limits.per_recipient)),
        invalid_per_client: Arc::new(RateLimiter::keyed(limits.invalid_per_client)),
        trusted_proxy_hops: limits.trusted_proxy_hops,
    };
    Router::new().route("/unsubscribe/{token}", get(confirm_page).post(one_click)).with_state(state)
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body style=\"font-family: sans-serif; max-width: 32rem; \
         margin: 3rem auto\"><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    (status, Html(html)).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn rate_limited() -> Response {
    page(StatusCode::TOO_MANY_REQUESTS, "Too many requests", "<p>Please try again in a moment.</p>")
}

fn invalid() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Invalid or expired link",
        "<p>This unsubscribe link is not valid or has expired. Use the link of a more recent \
         email.</p>",
    )
}

fn unavailable(error: &UnsubscribeError) -> Response {
    tracing::warn!(error = %error, "unsubscribe could not be recorded");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<p>We could not record your request just now. Please try again later.</p>",
    )
}

fn not_one_click() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Invalid request",
        "<p>The request must carry List-Unsubscribe=One-Click.</p>",
    )
}

/// The client's address: the peer, or the `X-Forwarded-For` entry `hops` from its end.
fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>, hops: usize) -> IpAddr {
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |peer| peer.ip());
    if hops == 0 {
        return peer;
    }
    // Every X-Forwarded-For line, in order: proxies append to the end.
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    // Entries left of the trusted ones are the client's to write: not believed.
    match entries.len().checked_sub(hops).and_then(|at| entries.get(at)) {
        Some(entry) => entry.parse().unwrap_or(peer),
        None => peer,
    }
}

/// The token's claim, or `Err` with the answer to an invalid one (400, or 429 once the client's
/// allowance of invalid tokens is spent); checked before any quota is spent.
fn checked(
    state: &UnsubscribeState,
    token: &str,
    client: IpAddr,
) -> Result<UnsubscribeClaim, fn() -> Response> {
    match state.service.check(token) {
        Ok(claim) => Ok(claim),
        Err(_) => {
            let spent = state.invalid_per_client.check_key(&client).is_err();
            forget_quiet(&state.invalid_per_client);
            Err(if spent { rate_limited } else { invalid })
        }
    }
}

/// A valid token's request passes the client's, the recipient's and the overall quota.
fn admitted(state: &UnsubscribeState, claim: &UnsubscribeClaim, client: IpAddr) -> bool {
    let recipient = (claim.tenant.as_str().to_owned(), claim.address.as_str().to_owned());
    let admitted = state.per_client.check_key(&client).is_ok()
        && state.per_recipient.check_key(&recipient).is_ok()
        && state.overall.check().is_ok();
    forget_quiet(&state.per_client);
    forget_quiet(&state.per_recipient);
    admitted
}

/// Keeps a keyed limiter's memory bounded: clients whose allowance is full again are dropped.
fn forget_quiet<K: std::hash::Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>) {
    if limiter.len() > FORGET_AT {
        limiter.retain_recent();
    }
}

fn peer(request: &Request) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| *peer)
}

async fn confirm_page(
    State(state): State<UnsubscribeState>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    let client = client_address(request.headers(), peer(&request), state.trusted_proxy_hops);
    let claim = match checked(&state, &token, client) {
        Ok(claim) => claim,
        Err(answer) => return answer(),
    };
    if !admitted(&state, &claim, client) {
        return rate_limited();
    }
    // The address is shown masked: the link may have been forwarded.
    let body = format!(
        "<p>Stop these emails from <strong>{tenant}</strong> to {address}? Important notices \
         about your account are still sent.</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" \
         value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>",
        tenant = escape(claim.tenant.as_str()),
        address = escape(&claim.address.masked()),
    );
    page(StatusCode::OK, "Unsubscribe", &body)
}

/// Whether the body says `List-Unsubscribe=One-Click`, urlencoded or multipart.
async fn says_one_click(request: Request) -> bool {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().starts_with("multipart/form-data"));
    if multipart {
        let Ok(mut fields) = Multipart::from_request(request, &()).await else { return false };
        while let Ok(Some(field)) = fields.next_field().await {
            if field.name() == Some("List-Unsubscribe") {
                return field.text().await.is_ok_and(|value| value == "One-Click");
            }
        }
        return false;
    }
    match Form::<HashMap<String, String>>::from_request(request, &()).await {
        Ok(Form(form)) => form.get("List-Unsubscribe").map(String::as_str) == Some("One-Click"),
        Err(_) => false,
    }
}

async fn one_click(
    State(state): State<UnsubscribeState>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    let client = client_address(request.headers(), peer(&request), state.trusted_proxy_hops);
    let claim = match checked(&state, &token, client) {
        Ok(claim) => claim,
        Err(answer) => return answer(),
    };
    if !admitted(&state, &claim, client) {
        return rate_limited();
    }
    if !says_one_click(request).await {
        return not_one_click();
    }
    match state.service.unsubscribe(&token).await {
        Ok(_) => page(
            StatusCode::OK,
            "Unsubscribed",
            "<p>You will not receive these emails any more.</p>",
        ),
        Err(UnsubscribeError::Invalid(_)) => invalid(),
        Err(error @ UnsubscribeError::Store(_)) => unavailable(&error),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_client_is_the_peer_unless_proxies_are_trusted() {
        let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap_or_else(|_| unreachable!());
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7"));
        headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.2"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|_| unreachable!());
        assert_eq!(client_address(&headers, Some(peer), 0), ip("10.0.0.9"));
        assert_eq!(client_address(&headers, Some(peer), 1), ip("198.51.100.2"));
        assert_eq!(client_address(&headers, Some(peer), 2), ip("203.0.113.7"));
        // More trusted hops than entries: the header was not written by them all.
        assert_eq!(client_address(&headers, Some(peer), 4), ip("10.0.0.9"));
        assert_eq!(client_address(&HeaderMap::new(), Some(peer), 1), ip("10.0.0.9"));
    }
}
