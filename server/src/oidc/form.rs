//! The OAuth side of the client-facing endpoints (PAR, token, userinfo):
//! form bodies read strictly and errors answered the OAuth way (RFC 6749
//! section 5.2: `{"error", "error_description"}`, `Cache-Control:
//! no-store`), not as the `/v1` API's `ErrorBody`, because the clients are
//! standard OAuth libraries that read only those members.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The largest form body the OAuth endpoints read. The longest legitimate
/// one is a PAR with a 400-character reference text (base64url of up to
/// 1,600 UTF-8 bytes), `state` and `nonce` of 512 bytes each and an RS256
/// client assertion of an 8192-bit key: well under 16 KiB.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// An OAuth error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The OAuth error code.
    pub error: &'static str,
    /// A short explanation for the client's developer; never a secret, an
    /// assertion or user data.
    pub description: String,
    /// The `WWW-Authenticate` header, if one belongs to the answer.
    pub www_authenticate: Option<&'static str>,
}

/// The JSON body of an OAuth error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`,
    /// `unsupported_grant_type`, `unsupported_response_type`,
    /// `invalid_scope`, `request_not_supported`, `invalid_token` or
    /// `server_error`.
    error: String,
    /// What was wrong, for the client's developer.
    error_description: String,
}

impl OAuthError {
    /// 400 with `error`.
    pub fn bad_request(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            www_authenticate: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::bad_request("invalid_request", description)
    }

    /// 400 `invalid_grant`.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::bad_request("invalid_grant", description)
    }

    /// 500 `server_error` (the store failed; the details go to the log).
    pub fn server_error() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "internal error".into(),
            www_authenticate: None,
        }
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store failed in an OAuth endpoint");
        Self::server_error()
    }
}

impl From<crate::error::ApiError> for OAuthError {
    // Only the issuer's derivation from the Host fails this way.
    fn from(e: crate::error::ApiError) -> Self {
        Self::invalid_request(e.message)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(OAuthErrorBody {
                error: self.error.to_owned(),
                error_description: self.description,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// A form body (`application/x-www-form-urlencoded`) read strictly: UTF-8
/// after percent-decoding, every parameter at most once (RFC 6749 section
/// 3.1), at most [`MAX_FORM_BYTES`]. A parameter sent without a value
/// counts as absent (same section).
#[derive(Default)]
pub struct OAuthForm(Vec<(String, String)>);

impl std::fmt::Debug for OAuthForm {
    // Values include secrets (assertions, codes, verifiers): names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl OAuthForm {
    /// Parses a form body.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let name = form_decode(name).ok_or_else(|| {
                OAuthError::invalid_request("the form is not UTF-8 after percent-decoding")
            })?;
            let value = form_decode(value).ok_or_else(|| {
                OAuthError::invalid_request(format!("{name}: not UTF-8 after percent-decoding"))
            })?;
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "{name}: a parameter may be sent only once"
                )));
            }
            pairs.push((name, value));
        }
        Ok(Self(pairs))
    }

    /// The value of `name`, if sent with a value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Whether `name` was sent (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

/// One `application/x-www-form-urlencoded` name or value: `+` is a space,
/// then percent-decoding; `None` when the bytes are not UTF-8.
pub fn form_decode(raw: &[u8]) -> Option<String> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).ok()
}

/// Whether the body is declared as a form (parameters allowed; a charset
/// other than UTF-8 is refused, as the body is read as UTF-8).
fn is_form(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        && parts.all(|p| match p.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
                v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            _ => true,
        })
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !declared.is_some_and(is_form) {
            return Err(OAuthError::invalid_request(
                "the body must be sent as Content-Type: application/x-www-form-urlencoded",
            ));
        }
        let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| OAuthError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                ..OAuthError::invalid_request(format!(
                    "the form body is larger than {MAX_FORM_BYTES} bytes"
                ))
            })?;
        Self::parse(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_decoded_with_plus_as_space_and_percent_escapes() {
        let form = OAuthForm::parse(b"scope=openid+profile&state=a%26b&empty=&bare").unwrap();
        assert_eq!(form.get("scope"), Some("openid profile"));
        assert_eq!(form.get("state"), Some("a&b"));
        assert_eq!(form.get("empty"), None);
        assert!(form.has("empty"));
        assert_eq!(form.get("bare"), None);
        assert_eq!(form.get("missing"), None);
    }

    #[test]
    fn a_parameter_sent_twice_or_bytes_that_are_not_utf8_are_refused() {
        let twice = OAuthForm::parse(b"code=a&code=b").unwrap_err();
        assert_eq!(twice.error, "invalid_request");
        assert_eq!(twice.description, "code: a parameter may be sent only once");
        // Also when one of the two is empty.
        assert!(OAuthForm::parse(b"code=&code=b").is_err());
        assert!(OAuthForm::parse(b"state=%FF").is_err());
        assert!(OAuthForm::parse(b"%C3%28=x").is_err());
    }

    #[test]
    fn only_a_utf8_form_content_type_is_read() {
        assert!(is_form("application/x-www-form-urlencoded"));
        assert!(is_form("Application/X-WWW-Form-Urlencoded; charset=UTF-8"));
        assert!(!is_form(
            "application/x-www-form-urlencoded; charset=latin1"
        ));
        assert!(!is_form("application/json"));
        assert!(!is_form("multipart/form-data"));
    }
}
