//! How the soft phone's and the service provider's calls reach the server.
//!
//! [`SoftPhone`](crate::SoftPhone) and [`ProviderClient`](crate::ProviderClient)
//! describe each call as a [`Call`] (method, path, headers, JSON body) and
//! hand it to a [`Transport`]. The [`Endpoint`] (reqwest, pinned) is the
//! transport of the `eid` CLI and the tests; the load generator plugs in
//! [`Http2Connection`](crate::Http2Connection), one bare HTTP/2 connection
//! with the same pinned TLS, which costs less CPU per request. The requests
//! on the wire carry the same bodies and the same application headers either
//! way.

use std::future::Future;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::{ApiFailure, Endpoint};

/// One API call, as the clients describe it.
#[derive(Debug)]
pub struct Call<'a> {
    /// `GET` or `POST`.
    pub method: Method,
    /// The path and query, from `/`.
    pub path: &'a str,
    /// The `authorization` header's value (a service provider's
    /// `Bearer …`, marked sensitive), if any.
    pub authorization: Option<&'a HeaderValue>,
    /// Further headers (lower-case names), sent as given.
    pub headers: &'a [(&'static str, &'a str)],
    /// The body, sent as given with `content-type: {content_type}`.
    pub body: Option<Vec<u8>>,
    /// The body's type: `application/json` but for forms.
    pub content_type: &'static str,
}

/// A JSON body's type.
const JSON: &str = "application/json";
/// A form's type (as reqwest's `form` sends it).
const FORM: &str = "application/x-www-form-urlencoded";

impl<'a> Call<'a> {
    /// A `GET` of `path`.
    pub fn get(path: &'a str) -> Self {
        Self {
            method: Method::GET,
            path,
            authorization: None,
            headers: &[],
            body: None,
            content_type: JSON,
        }
    }

    /// A `POST` of `body` (JSON bytes) to `path`.
    pub fn post(path: &'a str, body: Vec<u8>) -> Self {
        Self {
            method: Method::POST,
            path,
            authorization: None,
            headers: &[],
            body: Some(body),
            content_type: JSON,
        }
    }

    /// A `POST` of a form (`application/x-www-form-urlencoded` bytes) to `path`.
    pub fn form(path: &'a str, body: String) -> Self {
        Self {
            method: Method::POST,
            path,
            authorization: None,
            headers: &[],
            body: Some(body.into_bytes()),
            content_type: FORM,
        }
    }

    /// With further headers.
    pub fn with_headers(mut self, headers: &'a [(&'static str, &'a str)]) -> Self {
        self.headers = headers;
        self
    }

    /// With an `authorization` header.
    pub fn authorized(mut self, value: &'a HeaderValue) -> Self {
        self.authorization = Some(value);
        self
    }
}

/// What the server answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header's value, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends a [`Call`] and reads the whole answer.
pub trait Transport {
    /// Sends `call` and returns the status and the body; a failure below
    /// HTTP is an error, any HTTP status is an [`Answer`].
    fn call(&self, call: Call<'_>) -> impl Future<Output = Result<Answer, ApiFailure>> + Send;
}

impl<T: Transport + Sync + ?Sized> Transport for &T {
    fn call(&self, call: Call<'_>) -> impl Future<Output = Result<Answer, ApiFailure>> + Send {
        (**self).call(call)
    }
}

impl<T: Transport + Send + Sync + ?Sized> Transport for std::sync::Arc<T> {
    fn call(&self, call: Call<'_>) -> impl Future<Output = Result<Answer, ApiFailure>> + Send {
        (**self).call(call)
    }
}

/// The `authorization` value `Bearer {token}`, marked sensitive (as
/// reqwest's `bearer_auth` makes it); `None` for a token that a header
/// cannot carry.
pub fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The reqwest client: the request is the one the clients built with
/// reqwest before (`url`, `bearer_auth`, `json`, `header`).
impl Transport for Endpoint {
    fn call(&self, call: Call<'_>) -> impl Future<Output = Result<Answer, ApiFailure>> + Send {
        let mut req = self.client.request(call.method, self.url(call.path));
        if let Some(value) = call.authorization {
            req = req.header(AUTHORIZATION, value.clone());
        }
        if call.body.is_some() {
            req = req.header(CONTENT_TYPE, call.content_type);
        }
        for (name, value) in call.headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = call.body {
            req = req.body(body);
        }
        async move {
            let response = req.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok(Answer {
                status,
                headers,
                body,
            })
        }
    }
}
