//! Who is asking: a bearer token on the API, the session cookie on the console.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use sha2::{Digest, Sha256};
use tayori_app::{AdminError, Principal};

use crate::AdminState;
use crate::error::ApiError;

/// The console's session cookie: an opaque random session id (never the token), HttpOnly and
/// SameSite=Strict, so page scripts cannot read it and other sites cannot send it.
pub const SESSION_COOKIE: &str = "tayori_session";

/// A request with a valid bearer token (`Authorization: Bearer tyr_...`).
pub struct Bearer(pub Principal);

impl FromRequestParts<AdminState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError(AdminError::Unauthenticated))?;
        Ok(Bearer(state.service.authenticate(secret.trim()).await?))
    }
}

/// A console request with a valid session, and the CSRF token its forms must carry.
pub struct Session {
    /// Who is signed in.
    pub principal: Principal,
    /// What every form posts back as `csrf`.
    pub csrf: String,
    /// The session id from the cookie (for sign-out).
    pub id: String,
}

/// The console's answer to a request without a valid session.
pub enum NoSession {
    /// Go and sign in.
    SignIn,
    /// The database is away (or another failure): say so.
    Failed(ApiError),
}

impl FromRequestParts<AdminState> for Session {
    type Rejection = NoSession;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let id = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()).ok_or(NoSession::SignIn)?;
        match state.sessions.resume(&id).await {
            Ok(principal) => {
                let session = Session { principal, csrf: csrf_token(&id), id };
                // An error page answered after this is drawn inside the signed-in frame.
                if let Some(frame) = parts.extensions.get::<crate::console::Frame>() {
                    frame.fill(&session);
                }
                Ok(session)
            }
            Err(AdminError::Unauthenticated) => Err(NoSession::SignIn),
            Err(other) => Err(NoSession::Failed(ApiError(other))),
        }
    }
}

/// The CSRF token of a session: derived from its random id, so it differs between sessions (of
/// one token too), is unknown to other sites, and dies with the session. The database keeps only
/// the id's plain SHA-256, from which this cannot be computed.
pub fn csrf_token(session_id: &str) -> String {
    hex::encode(Sha256::digest(format!("tayori-console-csrf\0{session_id}").as_bytes()))
}

/// The peer address of the connection, when the server records it (`tayori admin serve` does;
/// a router called in-process does not).
pub struct ClientAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{}", addr.ip()),
            None => f.write_str("unknown"),
        }
    }
}
