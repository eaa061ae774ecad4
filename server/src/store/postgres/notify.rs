//! The replicas' message bus on PostgreSQL `LISTEN`/`NOTIFY`: a wake-up of
//! a request's long-polling waiters, or the eviction of a cache, published
//! by the replica that made the change and delivered to every other one.
//!
//! Publishing never blocks a request: messages queue to a task that sends
//! them (`pg_notify`) on a pooled connection, after the change's commit.
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
        tokio::spawn(publisher(self.pool.clone(), self.target.clone(), rx));
        tokio::spawn(listener(
            self.config.clone(),
            self.tls.clone(),
            self.target.clone(),
            origin.clone(),
            handlers,
            shutdown,
        ));
        Arc::new(move |message: String| {
            let _ = tx.send(format!("{origin}|{message}"));
        })
    }
}

/// Sends the queued messages, in order, until the sending side is gone.
async fn publisher(
    pool: deadpool_postgres::Pool,
    target: super::DatabaseTarget,
    mut rx: mpsc::UnboundedReceiver<String>,
) {
    while let Some(payload) = rx.recv().await {
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let st = client
                .prepare_cached("SELECT pg_notify($1, $2)")
                .await
                .map_err(|e| e.to_string())?;
            client
                .execute(&st, &[&CHANNEL, &payload])
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = sent {
            // The peers resynchronise when their own link comes back; a
            // waiter that missed this wake reads its status at its timeout.
            tracing::warn!(database = %target, error = %e, "could not tell the other replicas");
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
                    if let Some((from, message)) = payload.split_once('|')
                        && from != origin
                    {
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
