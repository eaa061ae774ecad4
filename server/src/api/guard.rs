//! What stands in front of the handlers against web pages of other sites and
//! floods from one address (the browser rows of docs/threat-model.md):
//!
//! - [`require_json`]: a body is read only when it is declared
//!   `application/json`, else 415 `unsupported_media_type`. Browsers send a
//!   form or `text/plain` to another site without a CORS preflight; they
//!   send `application/json` only after one, which this server never grants.
//!   Called by the body extractors (`RawBody`, so `ApiJson` and
//!   `DeviceSigned` too), so every endpoint that reads a body checks it.
//! - [`same_origin`]: on the public endpoints a browser can reach (portal,
//!   activation, enrolment), a request whose `Origin` is neither the
//!   server's own nor a configured one is refused, 403 `origin_refused`.
//!   Requests without `Origin` (apps, CLI, service providers) pass.
//! - [`per_address`]: the endpoints that need no credentials share one token
//!   bucket per client address, 429 `rate_limited` with `Retry-After`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use eid_protocol::wire::ErrorCode;
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::AppState;
use crate::config::{Config, PerAddressConfig};
use crate::error::ApiError;

/// Puts the guards in front of the endpoints that need no credentials: the
/// per-address limit in front of `reads` and `posts` (one budget per address
/// for both), and behind it the origin check in front of `posts`, the ones a
/// browser can post to. The limit comes first so that refused requests count
/// too.
pub(crate) fn guarded(
    reads: Router<AppState>,
    posts: Router<AppState>,
    config: &Config,
) -> (Router<AppState>, Router<AppState>) {
    let posts = posts.route_layer(middleware::from_fn_with_state(
        AllowedOrigins::new(config),
        same_origin,
    ));
    match PerAddressLimiter::new(&config.floods.per_address) {
        Some(limiter) => (
            reads.route_layer(middleware::from_fn_with_state(limiter.clone(), per_address)),
            posts.route_layer(middleware::from_fn_with_state(limiter, per_address)),
        ),
        None => (reads, posts),
    }
}

// ------------------------------------------------------------ content type

/// Refuses a body not declared `application/json` (415). Parameters are
/// allowed, except a charset other than UTF-8 (the body is read as UTF-8).
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if declared.is_some_and(is_json) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the body must be sent as Content-Type: application/json",
        ))
    }
}

/// `application/json`, any case, with optional parameters; a `charset`
/// parameter must say UTF-8.
fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    })
}

// ------------------------------------------------------------------ origin

/// A web origin: scheme, host and port, compared as browsers do (scheme and
/// host without regard to case, the scheme's default port when none is
/// written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebOrigin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl WebOrigin {
    /// Parses `scheme://host[:port]` (one trailing `/` tolerated, for
    /// configuration files); `None` for anything else, `null` included.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !valid_scheme {
            return None;
        }
        Self::with_authority(scheme, rest.strip_suffix('/').unwrap_or(rest))
    }

    /// The origin of `scheme` and `authority` (`host[:port]`, IPv6 hosts in
    /// brackets).
    fn with_authority(scheme: &str, authority: &str) -> Option<Self> {
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (inside, after) = bracketed.split_once(']')?;
                inside.parse::<Ipv6Addr>().ok()?;
                (&authority[..inside.len() + 2], after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let valid_host = !host.is_empty()
            && (host.starts_with('[')
                || host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        if !valid_host {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let port = match port {
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(digits.parse().ok()?)
            }
            Some(_) => return None,
            None => None,
        };
        let default_port = match scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        };
        Some(Self {
            host: host.to_ascii_lowercase(),
            port: port.or(default_port),
            scheme,
        })
    }

    /// The server's own origin for this request: `https://` and the host the
    /// client called (HTTP/2 `:authority`, else the `Host` header). The server
    /// speaks only TLS, so a page of another site reaching it through DNS
    /// tricks fails the certificate check before any request.
    fn of_request(request: &Request) -> Option<Self> {
        let authority = match request.uri().authority() {
            Some(a) => a.as_str(),
            None => request.headers().get(header::HOST)?.to_str().ok()?,
        };
        Self::with_authority("https", authority)
    }
}

/// The origins, besides the server's own, whose pages may call the public
/// endpoints (`allowed_origins`, checked when the configuration is loaded).
#[derive(Clone)]
struct AllowedOrigins(Arc<Vec<WebOrigin>>);

impl AllowedOrigins {
    fn new(config: &Config) -> Self {
        Self(Arc::new(
            config
                .allowed_origins
                .iter()
                .filter_map(|o| WebOrigin::parse(o))
                .collect(),
        ))
    }
}

/// Refuses a request whose `Origin` header names another site (403
/// `origin_refused`); one without `Origin` passes.
async fn same_origin(
    State(allowed): State<AllowedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return next.run(request).await;
    };
    let origin = origin.to_str().ok().and_then(WebOrigin::parse);
    let permitted = origin.is_some_and(|o| {
        WebOrigin::of_request(&request).as_ref() == Some(&o) || allowed.0.contains(&o)
    });
    if permitted {
        next.run(request).await
    } else {
        tracing::debug!("request from another site's page refused");
        ApiError::new(
            ErrorCode::OriginRefused,
            "requests from this web origin are not accepted",
        )
        .into_response()
    }
}

// ---------------------------------------------------------- per address

/// How often the limiter forgets the addresses whose buckets are full again.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// One token bucket per client address for the endpoints that need no
/// credentials (`floods.per_address`).
struct PerAddressLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    last_forget: Mutex<Instant>,
}

impl PerAddressLimiter {
    /// The limiter, or `None` when the limit is off (`per_minute` 0).
    fn new(config: &PerAddressConfig) -> Option<Arc<Self>> {
        let per_minute = NonZeroU32::new(config.per_minute)?;
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Some(Arc::new(Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            last_forget: Mutex::new(Instant::now()),
        }))
    }

    /// `Ok` when `peer` may go on, else how long it must wait.
    fn check(&self, peer: IpAddr) -> Result<(), Duration> {
        self.forget_idle();
        self.limiter
            .check_key(&address_key(peer))
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Drops the buckets that are full again (an address that stopped
    /// calling), at most once per [`FORGET_EVERY`], so a scan over many
    /// addresses does not grow the map without end.
    fn forget_idle(&self) {
        let Ok(mut last) = self.last_forget.try_lock() else {
            return;
        };
        if last.elapsed() < FORGET_EVERY {
            return;
        }
        *last = Instant::now();
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The source of a request, for the limits counted per source
/// ([`super::sources`]): the client address as [`address_key`] groups it.
/// A request served without `ConnectInfo` (not through the accept loop)
/// counts as one shared source, like the per-address bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source(pub(crate) IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(Source(address_key(peer)))
    }
}

/// The key of a client address: an IPv4 address (also when it arrives mapped
/// into IPv6), or an IPv6 /64 network, since one host usually has a whole /64
/// and could otherwise take a fresh bucket per request.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

/// Counts the request against its client address; over the limit answers
/// 429 `rate_limited` with `Retry-After` (whole seconds, at least 1). The
/// address is the `ConnectInfo` the accept loop sets on every request; a
/// request served without it (not through the accept loop) shares one bucket.
async fn per_address(
    State(limiter): State<Arc<PerAddressLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    match limiter.check(peer) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let secs = secs.max(1);
            tracing::debug!(retry_after_secs = secs, "per-address limit reached");
            let mut response = ApiError::new(
                ErrorCode::RateLimited,
                format!("too many calls from this address; retry after {secs} s"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_recognised_with_parameters_and_in_any_case() {
        for yes in [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON;CHARSET=\"UTF-8\"",
            " application/json ; foo=bar",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in [
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/json-patch+json",
            "application/json; charset=utf-16",
            "text/plain; application/json",
        ] {
            assert!(!is_json(no), "{no}");
        }
    }

    #[test]
    fn origins_compare_as_browsers_do() {
        let o = |s: &str| WebOrigin::parse(s);
        assert_eq!(o("https://eid.example"), o("HTTPS://EID.example:443"));
        assert_eq!(o("https://eid.example/"), o("https://eid.example"));
        assert_ne!(o("https://eid.example"), o("http://eid.example"));
        assert_ne!(o("https://eid.example"), o("https://eid.example:8443"));
        assert!(o("https://[::1]:8443").is_some());
        assert_eq!(
            WebOrigin::with_authority("https", "127.0.0.1:8443"),
            o("https://127.0.0.1:8443")
        );
        for bad in [
            "null",
            "*",
            "eid.example",
            "https://",
            "https://eid.example/path",
            "https://user@eid.example",
            "https://eid.example:",
            "https://eid.example:99999",
            "https://[not-ipv6]:1",
            "1http://eid.example",
        ] {
            assert_eq!(o(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_bucket_refills_and_tells_how_long_to_wait() {
        let limiter = PerAddressLimiter::new(&PerAddressConfig {
            per_minute: 60,
            burst: 2,
        })
        .unwrap();
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limiter.check(me).is_ok());
        assert!(limiter.check(me).is_ok());
        let wait = limiter.check(me).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.check("192.0.2.2".parse().unwrap()).is_ok());
        assert!(PerAddressLimiter::new(&PerAddressConfig::off()).is_none());
    }
}
