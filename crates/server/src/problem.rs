//! Errors as `application/problem+json` (RFC 9457) with a stable `type`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Every error a handler can answer with. `kind` is the stable machine-readable
/// part of the problem type: `urn:kiemtra:problem:<kind>`.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadMessage(String),
    #[error("{0}")]
    UnsupportedVersion(String),
    #[error("authentication required: send Authorization: Bearer <device token>")]
    Unauthenticated,
    #[error("the device token is not valid")]
    BadCredentials,
    #[error("this device has been revoked")]
    Revoked,
    #[error("enrollment code refused: {0}")]
    Enrollment(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the file is larger than the {0} bytes this server takes")]
    FileTooLarge(u64),
    #[error("the request body did not arrive within {0} seconds")]
    Timeout(u64),
    /// The request conflicts with what the server holds (kind, detail).
    #[error("{1}")]
    Conflict(&'static str, String),
    /// Well formed but not acceptable (kind, detail).
    #[error("{1}")]
    Unprocessable(&'static str, String),
    #[error("expected Content-Type {0}")]
    UnsupportedMediaType(&'static str),
    /// The path exists, not with this method; the methods it takes (sent
    /// as `Allow`).
    #[error("this path takes {0} only")]
    MethodNotAllowed(&'static str),
    /// Every byte the server buffers at once is taken, or every sync place
    /// and the queue before them: try again after the given seconds (sent
    /// as `Retry-After`).
    #[error("the server is busy; try again in {0} seconds")]
    Busy(u64),
    #[error("internal error: {0}")]
    Internal(String),
}

/// An error as sent: `application/problem+json` (RFC 9457).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(crate) struct Body<'a> {
    /// `urn:kiemtra:problem:<kind>`, stable and machine-readable.
    #[serde(rename = "type")]
    kind: String,
    /// A short English summary of the kind of problem.
    title: &'a str,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong with this request.
    detail: String,
}

impl Problem {
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::BadRequest(_) => "bad-request",
            Problem::BadMessage(_) => "bad-message",
            Problem::UnsupportedVersion(_) => "unsupported-version",
            Problem::Unauthenticated => "unauthenticated",
            Problem::BadCredentials => "bad-credentials",
            Problem::Revoked => "device-revoked",
            Problem::Enrollment(_) => "enrollment-refused",
            Problem::NotFound(_) => "not-found",
            Problem::Forbidden(_) => "forbidden",
            Problem::TooLarge(_) | Problem::FileTooLarge(_) => "too-large",
            Problem::Timeout(_) => "request-timeout",
            Problem::Conflict(kind, _) | Problem::Unprocessable(kind, _) => kind,
            Problem::UnsupportedMediaType(_) => "unsupported-media-type",
            Problem::MethodNotAllowed(_) => "method-not-allowed",
            Problem::Busy(_) => "busy",
            Problem::Internal(_) => "internal",
        }
    }
    fn title(&self) -> &'static str {
        match self {
            Problem::BadRequest(_) => "Bad request",
            Problem::BadMessage(_) => "Malformed sync message",
            Problem::UnsupportedVersion(_) => "Unsupported protocol version",
            Problem::Unauthenticated => "Authentication required",
            Problem::BadCredentials => "Invalid credentials",
            Problem::Revoked => "Device revoked",
            Problem::Enrollment(_) => "Enrollment refused",
            Problem::NotFound(_) => "Not found",
            Problem::Forbidden(_) => "Forbidden",
            Problem::TooLarge(_) | Problem::FileTooLarge(_) => "Request too large",
            Problem::Timeout(_) => "Request timeout",
            Problem::Conflict(..) => "Conflict with what the server holds",
            Problem::Unprocessable(..) => "Not acceptable as sent",
            Problem::UnsupportedMediaType(_) => "Unsupported media type",
            Problem::MethodNotAllowed(_) => "Method not allowed",
            Problem::Busy(_) => "Server busy",
            Problem::Internal(_) => "Internal error",
        }
    }
}

/// A store error, classified once ([`kiemtra_store::Error::class`]): a
/// database failure or damaged stored data is the server's (answered as
/// internal, logged with its cause, retried by clients); the others say
/// what was wrong with the request.
impl From<kiemtra_store::Error> for Problem {
    fn from(e: kiemtra_store::Error) -> Self {
        use kiemtra_store::ErrorClass;
        match e.class() {
            ErrorClass::Server | ErrorClass::Damaged => Problem::internal(&e),
            ErrorClass::NotFound => Problem::NotFound(e.to_string()),
            ErrorClass::Refused => Problem::Forbidden(e.to_string()),
            ErrorClass::Invalid => Problem::BadRequest(e.to_string()),
        }
    }
}

impl Problem {
    /// A failure on the server's side, logged with its cause and answered
    /// without it (for the sync route, where any store error left after
    /// the per-visit answers is the server's).
    pub fn internal(e: &kiemtra_store::Error) -> Self {
        Problem::Internal(e.to_string())
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        match self {
            Problem::BadRequest(_) | Problem::BadMessage(_) | Problem::UnsupportedVersion(_) => {
                StatusCode::BAD_REQUEST
            }
            Problem::Unauthenticated | Problem::BadCredentials | Problem::Revoked => {
                StatusCode::UNAUTHORIZED
            }
            Problem::Enrollment(_) => StatusCode::FORBIDDEN,
            Problem::NotFound(_) => StatusCode::NOT_FOUND,
            Problem::Forbidden(_) => StatusCode::FORBIDDEN,
            Problem::TooLarge(_) | Problem::FileTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Problem::Conflict(..) => StatusCode::CONFLICT,
            Problem::Unprocessable(..) => StatusCode::UNPROCESSABLE_ENTITY,
            Problem::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Problem::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Problem::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Problem::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // An internal failure is logged with its cause and answered
        // without it: the database's words are not the client's business.
        let detail = match self {
            Problem::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "the server could not complete the request; nothing of it was kept; retry later"
                    .to_owned()
            }
            other => other.to_string(),
        };
        let body = Body {
            kind: format!("urn:kiemtra:problem:{}", self.kind()),
            title: self.title(),
            status: status.as_u16(),
            detail,
        };
        let mut resp = HttpResponse::build(status);
        resp.content_type("application/problem+json");
        if matches!(
            self,
            Problem::Unauthenticated | Problem::BadCredentials | Problem::Revoked
        ) {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Problem::Busy(secs) = self {
            resp.insert_header(("Retry-After", secs.to_string()));
        }
        if let Problem::MethodNotAllowed(allow) = self {
            resp.insert_header(("Allow", *allow));
        }
        resp.json(body)
    }
}
