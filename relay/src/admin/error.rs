//! The admin API's errors as `{"error": "..."}` with their status, and the reading of
//! request bodies and query parameters into them.

use crate::team::TeamError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use burrow_store::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

/// Largest request body the API reads: its JSON bodies are a few hundred bytes at most.
pub const MAX_BODY: usize = 64 * 1024;

/// An answer other than success.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the input is invalid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: nothing by that name.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 401: no admin token, or a wrong one.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "admin token missing or wrong")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({ "error": self.message }))
    }
}

/// The status a store error answers with.
fn store_status(e: &StoreError) -> StatusCode {
    use StoreError as E;
    match e {
        E::InvalidAccountName { .. }
        | E::InvalidDomain { .. }
        | E::InvalidRegion { .. }
        | E::InvalidNet { .. }
        | E::InvalidAddr { .. }
        | E::InvalidLabel { .. }
        | E::InvalidSecret
        | E::InvalidSshKey { .. } => StatusCode::BAD_REQUEST,
        E::UnknownAccount { .. }
        | E::UnknownToken { .. }
        | E::UnknownReservation { .. }
        | E::UnknownWhitelistEntry { .. }
        | E::UnknownSshKey { .. } => StatusCode::NOT_FOUND,
        E::AccountExists { .. }
        | E::ReservedByOther { .. }
        | E::CoveredByWildcard { .. }
        | E::WouldCover { .. }
        | E::RegionMismatch { .. }
        | E::TokenTaken { .. }
        | E::SshKeyTaken { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = store_status(&e);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            warn!(err = %e, "admin API: store failure");
        }
        Self::new(status, e.to_string())
    }
}

impl From<TeamError> for ApiError {
    fn from(e: TeamError) -> Self {
        match e {
            TeamError::Store(e) => e.into(),
            TeamError::TokenMissing | TeamError::TokenRefused => Self::bad_request(e.to_string()),
            other => Self::new(StatusCode::CONFLICT, other.to_string()),
        }
    }
}

/// What handlers return.
pub type ApiResult = Result<HttpResponse, ApiError>;

/// 200 with `value` as JSON.
pub fn ok(value: impl Serialize) -> ApiResult {
    Ok(HttpResponse::Ok().json(value))
}

/// 201 with `value` as JSON.
pub fn created(value: impl Serialize) -> ApiResult {
    Ok(HttpResponse::Created().json(value))
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes (an empty body reads as `{}`).
pub async fn body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes"),
        )
    };
    // Refused on its announced length, before reading: a client still sending would
    // otherwise be cut off mid-upload and might never see the answer.
    let announced = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let bytes = payload
        .to_bytes_limited(MAX_BODY)
        .await
        .map_err(|_| too_large())?
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// The query parameter `key`, if given.
pub fn query(req: &HttpRequest, key: &str) -> Result<Option<String>, ApiError> {
    let params = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    Ok(params
        .into_inner()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v))
}

/// The query parameter `key`, which the route needs.
pub fn required(req: &HttpRequest, key: &str) -> Result<String, ApiError> {
    query(req, key)?
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter {key:?}")))
}
