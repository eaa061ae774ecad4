//! Connections: the server's own accept loop (TLS, then HTTP/1.1 or HTTP/2)
//! and its defenses against slow and greedy clients, set by
//! [`ConnectionsConfig`] (the slow-client row of docs/threat-model.md):
//!
//! - a cap on open connections: over it, a new connection is closed at once
//!   and a warning logged at most every [`CAP_WARNING_EVERY`];
//! - a TLS handshake timeout;
//! - an HTTP/1.1 header-read timeout (hyper's own);
//! - a total deadline on reading a request body, answered 408;
//! - an idle timeout: a connection with no request in flight is closed, for
//!   HTTP/2 too and whatever PINGs the client sends. Before its first request
//!   a connection gets the header-read timeout instead, if that is shorter.
//!
//! A request in flight is never cut here: its handler bounds it (a relying
//! party's long poll waits at most 60 s).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use std::convert::Infallible;

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use eid_protocol::wire::ErrorCode;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::config::ConnectionsConfig;
use crate::error::ApiError;

/// Least time between two "connection cap reached" warnings: a flood of
/// refused connections must not flood the log too.
pub const CAP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` over TLS on `listener` until `shutdown` changes, with the
/// default [`ConnectionsConfig`]. Public so test fixtures (a man in the
/// middle, say) serve like the server; `app` is an axum [`Router`](axum::Router)
/// or any service like one.
pub async fn accept_loop<A>(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: A,
    shutdown: watch::Receiver<bool>,
) where
    A: App,
    A::Future: Send + 'static,
{
    accept_loop_with_limits(
        listener,
        acceptor,
        app,
        shutdown,
        &ConnectionsConfig::default(),
    )
    .await;
}

/// What the connections serve: a service answering every request (an axum
/// [`Router`](axum::Router) is one), cloned once per request.
pub trait App:
    tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static
{
}

impl<A> App for A where
    A: tower::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// [`accept_loop`] with these timeouts and this connection cap.
pub async fn accept_loop_with_limits<A>(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: A,
    mut shutdown: watch::Receiver<bool>,
    config: &ConnectionsConfig,
) where
    A: App,
    A::Future: Send + 'static,
{
    let limits = Limits::from(config);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's header-read timeout only runs with a timer. It starts whenever
    // hyper waits for a request head, so it also ends an idle HTTP/1.1
    // keep-alive connection after that long.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut cap_warning = CapWarning::default();

    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over the cap the connection is closed at once rather than left in
        // the listen backlog, where it would still hold a slot.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(tcp);
            cap_warning.refused(limits.max_connections);
            continue;
        };
        // Without TCP_NODELAY the TLS handshake's small writes wait on delayed
        // ACKs and every new connection stalls by about 40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        connections.spawn(serve_connection(
            tcp,
            peer,
            permit,
            acceptor.clone(),
            app.clone(),
            builder.clone(),
            limits,
        ));
    }
    connections.shutdown().await;
}

/// [`ConnectionsConfig`] as durations.
#[derive(Clone, Copy, Debug)]
struct Limits {
    handshake: Duration,
    header_read: Duration,
    body_read: Duration,
    idle: Duration,
    max_connections: usize,
}

impl From<&ConnectionsConfig> for Limits {
    fn from(c: &ConnectionsConfig) -> Self {
        Self {
            handshake: Duration::from_millis(c.tls_handshake_timeout_ms),
            header_read: Duration::from_millis(c.header_read_timeout_ms),
            body_read: Duration::from_millis(c.body_read_timeout_ms),
            idle: Duration::from_millis(c.idle_timeout_ms),
            // A cap of 0 is refused by the configuration; 1 keeps it usable.
            max_connections: c.max_connections.clamp(1, Semaphore::MAX_PERMITS),
        }
    }
}

/// The "connection cap reached" warning, at most once per [`CAP_WARNING_EVERY`].
#[derive(Default)]
struct CapWarning {
    last: Option<Instant>,
    refused_since: u64,
}

impl CapWarning {
    fn refused(&mut self, open: usize) {
        self.refused_since += 1;
        if self.last.is_some_and(|t| t.elapsed() < CAP_WARNING_EVERY) {
            return;
        }
        tracing::warn!(
            refused = self.refused_since,
            "connection cap reached ({open} open): refusing new connections"
        );
        self.last = Some(Instant::now());
        self.refused_since = 0;
    }
}

/// One connection: TLS handshake, then HTTP until the client leaves or the
/// connection has been idle too long. `_permit` holds its place under the cap.
/// Every request carries the client's address as axum's [`ConnectInfo`]
/// (the per-address limit of `api::guard` reads it).
async fn serve_connection<A>(
    tcp: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    acceptor: tokio_rustls::TlsAcceptor,
    app: A,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
) where
    A: App,
    A::Future: Send + 'static,
{
    let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = activity.begin();
            let app = app.clone();
            async move {
                let response = serve_request(app, request, peer, limits.body_read).await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = activity.idle(limits.header_read.min(limits.idle), limits.idle) => {}
    }
    tracing::debug!("closing an idle connection");
    // GOAWAY for HTTP/2, a close for HTTP/1.1; a client that lingers after
    // that is dropped.
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.idle, connection).await;
}

/// Whether a connection has a request in flight, and since when it has none.
struct Activity {
    state: Mutex<ActivityState>,
}

struct ActivityState {
    in_flight: usize,
    idle_since: Instant,
    served_any: bool,
}

/// Marks one request in flight until dropped (when its response is ready or
/// the client gave it up).
struct InFlight(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                served_any: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        // The state stays consistent under a panic (plain counters).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.in_flight += 1;
        state.served_any = true;
        InFlight(self.clone())
    }

    /// Returns once the connection has had no request in flight for `idle`
    /// (`before_first` until its first request). Wakes once per period at
    /// most: it never needs to be told when a request ends.
    async fn idle(&self, before_first: Duration, idle: Duration) {
        loop {
            let wake = {
                let state = self.lock();
                let now = Instant::now();
                if state.in_flight > 0 {
                    now + idle
                } else {
                    let limit = if state.served_any { idle } else { before_first };
                    let due = state.idle_since + limit;
                    if now >= due {
                        return;
                    }
                    due
                }
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// Serves one request: it carries the client's address as axum's
/// [`ConnectInfo`], and its body gets `deadline` in total from the request
/// head; a missed deadline is answered 408 (and, over HTTP/1.1, the
/// connection closed). tower-http's `TimeoutBody` is not used: its timeout is
/// a gap between frames, which a byte every few seconds never hits. Here, once
/// per request, rather than as a router layer on every route.
async fn serve_request<A: App>(
    app: A,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    deadline: Duration,
) -> Response {
    let (mut parts, incoming) = request.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    if incoming.is_end_stream() {
        let request = Request::from_parts(parts, Body::new(incoming));
        return match app.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    }
    let missed = Arc::new(AtomicBool::new(false));
    let http1 = parts.version <= axum::http::Version::HTTP_11;
    let body = DeadlineBody {
        body: incoming,
        deadline: Instant::now() + deadline,
        timer: None,
        missed: missed.clone(),
    };
    let request = Request::from_parts(parts, Body::new(body));
    let response = match app.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if !missed.load(Ordering::Relaxed) {
        return response;
    }
    tracing::debug!("request body not received in time");
    let mut response = ApiError::new(
        ErrorCode::MalformedRequest,
        "request body not received in time",
    )
    .into_response();
    *response.status_mut() = axum::http::StatusCode::REQUEST_TIMEOUT;
    if http1 {
        // The rest of the body may still be on its way: start afresh.
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// A request body that fails once its deadline has passed. The timer is made
/// only when the client first makes the server wait.
struct DeadlineBody {
    body: Incoming,
    deadline: Instant,
    timer: Option<std::pin::Pin<Box<Sleep>>>,
    missed: Arc<AtomicBool>,
}

/// The error a [`DeadlineBody`] ends with.
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time")]
struct BodyDeadlineMissed;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        // Data already here is taken; the deadline is looked at only when the
        // client makes the server wait, so a fast request never arms a timer.
        // A byte now and then does not extend it: it counts from the head.
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(axum::Error::new)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            this.missed.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(BodyDeadlineMissed))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
