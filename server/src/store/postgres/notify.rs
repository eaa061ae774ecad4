//! The replicas' message bus on PostgreSQL `LISTEN`/`NOTIFY`: a wake-up of
//! a request's long-polling waiters, or the eviction of a cache, published
//! by the replica that made the change and delivered to every other one.
//!
//! Publishing never blocks a request: messages queue to a task that sends
//! them (`pg_notify`) on a pooled connection, after the change's commit.
//! The wake-ups queued meanwhile go out together, one per line of one
//! notification (up to `MAX_PAYLOAD` bytes): each `pg_notify` is a
//! transaction of its own, with its commit's WAL flush, so under load one
//! of them carries the wake-ups of many decisions.
//! Each replica listens on a connection of its own; when it is lost, the
//! listener reconnects with a growing pause (logged), and after every
//! (re)connection it resynchronises ([`Handlers::resync`]): a message sent
//! while it was away is lost, so every waiter looks again and every cache
//! empties.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use super::PostgresStore;
use crate::waiters::Publish;

/// The `NOTIFY` channel.
pub const CHANNEL: &str = "eid_cluster";

/// The most bytes of messages one notification carries (PostgreSQL's limit
/// for a payload is 8,000 bytes).
const MAX_PAYLOAD: usize = 7_000;

/// What a replica does with the other replicas' messages.
#[derive(Clone)]
pub struct Handlers {
    /// A peer's message (`wake:<request id>` or `evict:<cache name>`).
    pub deliver: Arc<dyn Fn(&str) + Send + Sync>,
    /// After each (re)connection of the listener.
    pub resync: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handlers")
    }
}

impl PostgresStore {
    /// Starts this replica's publisher and listener (until `shutdown`) and
    /// returns the function that publishes a message to the other replicas.
    pub fn start_bus(&self, handlers: Handlers, shutdown: watch::Receiver<bool>) -> Publish {
        // Tells this replica's own messages apart from its peers'.
        let origin = hex::encode(eid_protocol::crypto::random_array::<8>());
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(publisher(
            self.pool.clone(),
            self.target.clone(),
            origin.clone(),
            rx,
        ));
        tokio::spawn(listener(
            self.config.clone(),
            self.tls.clone(),
            self.target.clone(),
            origin.clone(),
            handlers,
            shutdown,
        ));
        Arc::new(move |message: String| {
            let _ = tx.send(message);
        })
    }
}

/// Joins a message and the ones queued behind it into one payload
/// (`origin|message\nmessage...`), at most [`MAX_PAYLOAD`] bytes of
/// messages; a message that would not fit waits in `next` for the next one.
fn batch(
    origin: &str,
    first: String,
    rx: &mut mpsc::UnboundedReceiver<String>,
    next: &mut Option<String>,
) -> String {
    let mut payload = format!("{origin}|{first}");
    if !batchable(&first) {
        return payload;
    }
    let budget = origin.len() + 1 + MAX_PAYLOAD;
    while let Ok(message) = rx.try_recv() {
        if !batchable(&message) || payload.len() + 1 + message.len() > budget {
            *next = Some(message);
            break;
        }
        payload.push('\n');
        payload.push_str(&message);
    }
    payload
}

/// Whether a message may share a notification: only wake-ups. A replica
/// of a build before batching reads a payload of several messages as one
/// unknown message; for a wake-up, its waiter then answers at its timeout
/// (during a rolling upgrade), but a cache's eviction must not be lost, so
/// evictions (rare) always go alone, as before.
fn batchable(message: &str) -> bool {
    message.starts_with("wake:")
}

/// The messages of a payload (see [`batch`]) sent by another replica than
/// `origin`.
fn messages_of<'a>(payload: &'a str, origin: &str) -> impl Iterator<Item = &'a str> {
    payload
        .split_once('|')
        .filter(|(from, _)| *from != origin)
        .map(|(_, messages)| messages.split('\n'))
        .into_iter()
        .flatten()
        .filter(|m| !m.is_empty())
}

/// Sends the queued messages, in order, until the sending side is gone.
async fn publisher(
    pool: deadpool_postgres::Pool,
    target: super::DatabaseTarget,
    origin: String,
    rx: mpsc::UnboundedReceiver<String>,
) {
    publish(&origin, rx, &target, RESEND_FIRST_PAUSE, |payload| {
        let pool = pool.clone();
        async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let st = client
                .prepare_cached("SELECT pg_notify($1, $2)")
                .await
                .map_err(|e| e.to_string())?;
            client
                .execute(&st, &[&CHANNEL, &payload])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
}

/// The pause before an eviction that could not be sent is sent again; it
/// doubles with each failure up to [`RESEND_MAX_PAUSE`].
const RESEND_FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two tries of one eviction.
const RESEND_MAX_PAUSE: Duration = Duration::from_secs(5);

/// [`publisher`]'s loop, with the sending of one payload given as `send`:
/// the queued messages are batched and sent in order until the sending
/// side is gone. A wake-up that cannot be sent is dropped (its waiter reads
/// the status at its timeout). An eviction is sent again, after a pause
/// that grows from `first_pause`, until it goes out: a peer whose own link
/// stayed up never resynchronises, so an eviction lost here (a pool busy
/// past its wait, a connection broken mid-send) left that peer serving the
/// evicted fact for as long as it ran: a revoked or rotated-out API key
/// still accepted there, a changed user ID still naming its old owner.
async fn publish<S, F>(
    origin: &str,
    mut rx: mpsc::UnboundedReceiver<String>,
    target: &(dyn std::fmt::Display + Sync),
    first_pause: Duration,
    mut send: S,
) where
    S: FnMut(String) -> F,
    F: std::future::Future<Output = Result<(), String>>,
{
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(message) => message,
            None => match rx.recv().await {
                Some(message) => message,
                None => return,
            },
        };
        // Only an eviction goes alone (see `batchable`).
        let eviction = !batchable(&first);
        let payload = batch(origin, first, &mut rx, &mut next);
        let mut pause = first_pause;
        while let Err(e) = send(payload.clone()).await {
            if !eviction {
                // A waiter that missed this wake reads its status at its
                // timeout.
                tracing::warn!(database = %target, error = %e, "could not tell the other replicas");
                break;
            }
            tracing::warn!(database = %target, error = %e,
                "could not tell the other replicas of a cache eviction; trying again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RESEND_MAX_PAUSE);
        }
    }
}

/// Listens until `shutdown`, reconnecting with a growing pause.
async fn listener(
    config: tokio_postgres::Config,
    tls: Option<rustls::ClientConfig>,
    target: super::DatabaseTarget,
    origin: String,
    handlers: Handlers,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        let ended = match &tls {
            None => {
                listen_once(
                    &config,
                    tokio_postgres::NoTls,
                    &origin,
                    &handlers,
                    &mut shutdown,
                )
                .await
            }
            Some(tls) => {
                let make = tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone());
                listen_once(&config, make, &origin, &handlers, &mut shutdown).await
            }
        };
        match ended {
            Ok(Ended::Shutdown) => return,
            Ok(Ended::Lost) => {
                tracing::warn!(database = %target, "lost the link to the other replicas; reconnecting");
                pause = Duration::from_millis(100);
            }
            Err(e) => {
                tracing::warn!(database = %target, error = %e, "cannot listen to the other replicas; retrying");
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Why a listening connection ended.
enum Ended {
    Shutdown,
    Lost,
}

async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    origin: &str,
    handlers: &Handlers,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Ended, tokio_postgres::Error>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    // Drives the connection and passes its notifications on; ends with it.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // From here on nothing is missed; what came before may have been.
    (handlers.resync)();
    let ended = loop {
        tokio::select! {
            message = rx.recv() => match message {
                Some(payload) => {
                    for message in messages_of(&payload, origin) {
                        (handlers.deliver)(message);
                    }
                }
                None => break Ended::Lost,
            },
            _ = shutdown.changed() => break Ended::Shutdown,
        }
    };
    drop(client);
    driver.abort();
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_messages_go_out_together_and_read_back_one_by_one() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..3 {
            tx.send(format!("wake:{i}")).unwrap();
        }
        tx.send("evict:x".to_owned()).unwrap();
        tx.send("wake:3".to_owned()).unwrap();
        let mut next = None;
        let payload = batch("me", "wake:a".to_owned(), &mut rx, &mut next);
        assert_eq!(payload, "me|wake:a\nwake:0\nwake:1\nwake:2");
        let got: Vec<_> = messages_of(&payload, "peer").collect();
        assert_eq!(got, ["wake:a", "wake:0", "wake:1", "wake:2"]);
        // A replica's own messages are not delivered back to it.
        assert_eq!(messages_of(&payload, "me").count(), 0);
        // An eviction goes alone, as before batching.
        let evict = batch("me", next.take().unwrap(), &mut rx, &mut next);
        assert_eq!(evict, "me|evict:x");
        assert!(next.is_none());
        let last = batch("me", rx.try_recv().unwrap(), &mut rx, &mut next);
        assert_eq!(last, "me|wake:3");
    }

    /// A send that fails (a pool busy past its wait, a broken connection)
    /// loses a wake-up, whose waiter answers at its timeout, but not an
    /// eviction: a peer whose link stayed up never empties its cache
    /// otherwise, and would keep accepting a revoked API key.
    #[tokio::test]
    async fn an_eviction_that_could_not_be_sent_is_sent_again_and_a_wake_up_is_not() {
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send("wake:a".to_owned()).unwrap();
        tx.send("evict:service_providers".to_owned()).unwrap();
        tx.send("wake:b".to_owned()).unwrap();
        drop(tx);
        let tries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&tries);
        // The first two tries of every payload fail.
        let send = move |payload: String| {
            let mut tries = seen.lock().unwrap();
            tries.push(payload.clone());
            let failed = tries.iter().filter(|p| **p == payload).count() <= 2;
            std::future::ready(if failed {
                Err("pool timed out".to_owned())
            } else {
                Ok(())
            })
        };
        tokio::time::timeout(
            Duration::from_secs(10),
            publish("me", rx, &"test", Duration::from_millis(1), send),
        )
        .await
        .expect("the publisher ends when the sending side is gone");
        assert_eq!(
            *tries.lock().unwrap(),
            [
                "me|wake:a",
                "me|evict:service_providers",
                "me|evict:service_providers",
                "me|evict:service_providers",
                "me|wake:b",
            ]
        );
    }

    #[test]
    fn a_payload_stays_under_postgresql_limit() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let message = format!("wake:{}", "ab".repeat(16));
        for _ in 0..1_000 {
            tx.send(message.clone()).unwrap();
        }
        let mut next = None;
        let mut sent = 0;
        let mut first = message.clone();
        loop {
            let payload = batch("0123456789abcdef", first, &mut rx, &mut next);
            assert!(payload.len() < 8_000);
            sent += messages_of(&payload, "other").count();
            match next.take() {
                Some(m) => first = m,
                None => break,
            }
        }
        assert_eq!(sent, 1_001);
    }
}
