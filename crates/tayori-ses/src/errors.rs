//! Maps what the SDK returns for `SendEmail` to the [`SendError`] variants the use case branches
//! on. The one question every branch answers: could SES have accepted this email? The table is
//! in `docs/configuration.md` ("SES sender"); keep the two in step.

use std::error::Error as StdError;
use std::time::Duration;

use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use tayori_app::ports::{PauseScope, SendError};

/// Maps a failed `SendEmail`. `transmitted` says whether the SDK got as far as handing the
/// request to its HTTP client (see `TransmitWatch`): before that, nothing can have reached SES.
pub(crate) fn classify(
    error: &SdkError<SendEmailError, HttpResponse>,
    transmitted: bool,
) -> SendError {
    match error {
        SdkError::ServiceError(context) => {
            let response = context.raw();
            service_error(context.err(), response.status().as_u16(), retry_after(response))
        }
        SdkError::ResponseError(context) => {
            // An answer came but could not be read (a body that is not SES's JSON, a stream
            // that stalled). Its status still says what happened.
            let status = context.raw().status().as_u16();
            let reason = format!(
                "SES answered HTTP {status} with a response that could not be read: {}",
                chain(error)
            );
            if (200..300).contains(&status) {
                // Accepted, as far as the status goes, but without a message id we can trust.
                SendError::Ambiguous { reason }
            } else {
                by_status(status, None, reason, None)
            }
        }
        SdkError::DispatchFailure(failure) => {
            let reason = chain(error);
            if !transmitted || failure.is_user() {
                // Credentials, endpoint, signing or a request the HTTP client refused.
                SendError::Unavailable { reason: format!("the request was not sent: {reason}") }
            } else if failure.as_connector_error().is_some_and(|error| failed_to_connect(error)) {
                SendError::Unavailable { reason: format!("could not connect to SES: {reason}") }
            } else {
                SendError::Ambiguous {
                    reason: format!(
                        "the connection to SES failed after the request was sent: {reason}"
                    ),
                }
            }
        }
        SdkError::TimeoutError(_) => {
            let reason = chain(error);
            if transmitted {
                SendError::Ambiguous {
                    reason: format!("no answer from SES within the call timeout: {reason}"),
                }
            } else {
                // Ran out while resolving credentials or the endpoint: nothing left.
                SendError::Unavailable {
                    reason: format!("timed out before the request was sent: {reason}"),
                }
            }
        }
        // Building the request failed: nothing was sent. Not this email's fault (every input is
        // valid by construction), so a retry is the honest answer.
        SdkError::ConstructionFailure(_) => SendError::Unavailable {
            reason: format!("the SendEmail request could not be built: {}", chain(error)),
        },
        _ => SendError::Ambiguous { reason: format!("unexpected SDK error: {}", chain(error)) },
    }
}

/// The errors SES names for `SendEmail`, then anything else by its code and HTTP status.
fn service_error(error: &SendEmailError, status: u16, retry_after: Option<Duration>) -> SendError {
    let reason = describe(error);
    match error {
        SendEmailError::TooManyRequestsException(_) | SendEmailError::LimitExceededException(_) => {
            SendError::Throttled { reason, retry_after }
        }
        // A pause on the configuration set, the SES tenant or the identity, which belong to one
        // tenant. SES answers the same for a pause of the whole account; calling that a tenant
        // pause costs one refused email per tenant, while the reverse would stop every tenant
        // for one tenant's pause.
        SendEmailError::SendingPausedException(_) => {
            SendError::Paused { reason, scope: PauseScope::Tenant }
        }
        SendEmailError::AccountSuspendedException(_) => {
            SendError::Paused { reason, scope: PauseScope::Account }
        }
        SendEmailError::MessageRejected(_)
        | SendEmailError::MailFromDomainNotVerifiedException(_)
        | SendEmailError::NotFoundException(_)
        | SendEmailError::BadRequestException(_) => SendError::Rejected { reason },
        other => by_status(status, other.code(), reason, retry_after),
    }
}

/// Errors SES does not name for `SendEmail`: generic AWS codes, then the status class.
pub(crate) fn by_status(
    status: u16,
    code: Option<&str>,
    reason: String,
    retry_after: Option<Duration>,
) -> SendError {
    const THROTTLING_CODES: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
    ];
    if status == 429 || code.is_some_and(|code| THROTTLING_CODES.contains(&code)) {
        return SendError::Throttled { reason, retry_after };
    }
    match status {
        // Refused before any processing: credentials, signature, clock skew, permissions, or a
        // request that timed out on the way in. A setting to fix, not this email's fault:
        // retried, and `failed` after the use case's attempts if nobody fixes it.
        401 | 403 | 408 => {
            SendError::Unavailable { reason: format!("SES refused the call: {reason}") }
        }
        // SES says it is not handling requests now: nothing was accepted.
        503 => SendError::Unavailable { reason },
        // Anything else the service refused is about this request.
        400..=499 => SendError::Rejected { reason },
        // 500 InternalFailure, 502, 504 and the rest: the request arrived and SES (or a proxy in
        // front of it) failed while or after handling it. It may have accepted the email, so
        // this is the "result unknown" case, decided by the delivery policy (`resend_unknown`).
        _ => SendError::Ambiguous { reason: format!("SES failed with HTTP {status}: {reason}") },
    }
}

/// `Code: message`, as SES words it.
fn describe(error: &SendEmailError) -> String {
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => chain(error).to_string(),
    }
}

/// The `Retry-After` header in seconds, when SES (or a proxy) sends one.
fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let seconds: u64 = response.headers().get("retry-after")?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(3600)))
}

/// The error and its causes, as one line: `dispatch failure: io error: client error (Connect):
/// tcp connect error: Connection refused (os error 111)`.
pub(crate) fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        // Some layers repeat their source's words; say them once.
        if !text.is_empty() && !parts.last().is_some_and(|last| last.ends_with(&text)) {
            parts.push(text);
        }
        next = error.source();
    }
    parts.join(": ")
}

/// True when the HTTP client failed while opening the connection (DNS, TCP connect, TLS, or the
/// connect timeout), before any byte of the request was written.
fn failed_to_connect(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(client_error) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            return client_error.is_connect();
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(status: u16, code: Option<&str>) -> SendError {
        by_status(status, code, "why".to_owned(), None)
    }

    #[test]
    fn unnamed_errors_follow_the_status() {
        assert!(matches!(map(429, None), SendError::Throttled { .. }));
        assert!(matches!(map(400, Some("ThrottlingException")), SendError::Throttled { .. }));
        assert!(matches!(map(403, Some("AccessDeniedException")), SendError::Unavailable { .. }));
        assert!(matches!(map(403, Some("ExpiredTokenException")), SendError::Unavailable { .. }));
        assert!(matches!(map(400, Some("ValidationException")), SendError::Rejected { .. }));
        assert!(matches!(map(503, Some("ServiceUnavailable")), SendError::Unavailable { .. }));
        for status in [500, 502, 504, 599] {
            assert!(matches!(map(status, Some("InternalFailure")), SendError::Ambiguous { .. }));
        }
    }

    #[test]
    fn the_retry_after_hint_is_kept_for_throttling() {
        let hint = Some(Duration::from_secs(7));
        let error = by_status(429, None, "slow down".to_owned(), hint);
        assert!(matches!(error, SendError::Throttled { retry_after, .. } if retry_after == hint));
    }
}
