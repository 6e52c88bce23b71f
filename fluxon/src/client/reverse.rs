//! The client's side of reverse requests: handlers registered by name, run concurrently as tasks,
//! and a queue for programs that answer on a thread of their own (a GUI's main loop).

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use super::CallError;
use crate::routing::BoxFuture;
use crate::wire::{self, Envelope, ErrorCode, ErrorReply, Outbox};

/// A handler's answer: reply bytes, or an error code and message.
type Answer = Result<Vec<u8>, (ErrorCode, String)>;

/// A handler with its types erased.
trait Handler: Send + Sync {
    fn handle(&self, payload: Bytes) -> BoxFuture<Answer>;
}

struct Typed<F, P, R> {
    handler: F,
    _types: PhantomData<fn(P) -> R>,
}

impl<F, P, R, Fut> Handler for Typed<F, P, R>
where
    F: Fn(P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    P: DeserializeOwned + Send + 'static,
    R: Serialize + 'static,
{
    fn handle(&self, payload: Bytes) -> BoxFuture<Answer> {
        let payload: P = match wire::decode(&payload) {
            Ok(payload) => payload,
            Err(err) => {
                let message = format!(
                    "payload does not decode as `{}`: {err}",
                    std::any::type_name::<P>()
                );
                return Box::pin(std::future::ready(Err((ErrorCode::BadPayload, message))));
            }
        };
        let run = (self.handler)(payload);
        Box::pin(async move {
            match AssertUnwindSafe(run).catch_unwind().await {
                Ok(reply) => wire::encode(&reply).map_err(|e| (ErrorCode::Internal, e.to_string())),
                Err(panic) => Err((
                    ErrorCode::Panicked,
                    crate::panic::panic_text(panic.as_ref()),
                )),
            }
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The handlers and the queue of one client.
#[derive(Default)]
pub(super) struct Handlers {
    named: RwLock<HashMap<String, Arc<dyn Handler>>>,
    queue: Mutex<Option<mpsc::Sender<Incoming>>>,
}

impl Handlers {
    pub fn on<P, R, F, Fut>(&self, name: String, handler: F)
    where
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        P: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
    {
        let handler: Arc<dyn Handler> = Arc::new(Typed {
            handler,
            _types: PhantomData,
        });
        self.named
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name, handler);
    }

    pub fn queue(&self, capacity: usize) -> mpsc::Receiver<Incoming> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        *lock(&self.queue) = Some(tx);
        rx
    }

    /// Answers (or queues) one reverse request that arrived on the link writing to `outbox`.
    pub fn dispatch(&self, id: u64, name: &str, payload: Bytes, outbox: &Arc<Outbox>) {
        let handler = self
            .named
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
            .cloned();
        if let Some(handler) = handler {
            let outbox = Arc::clone(outbox);
            let answer = handler.handle(payload);
            tokio::spawn(async move {
                answer_with(&outbox, id, answer.await).await;
            });
            return;
        }
        let incoming = Incoming {
            id,
            name: name.to_owned(),
            payload,
            outbox: Some(Arc::clone(outbox)),
        };
        let no_handler = format!("this client has no handler named `{name}`");
        let Some(queue) = lock(&self.queue).clone() else {
            tracing::warn!(%name, "reverse request with no handler on this client");
            incoming.reject_now(ErrorCode::NoHandler, &no_handler);
            return;
        };
        match queue.try_send(incoming) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(incoming)) => {
                incoming.reject_now(
                    ErrorCode::Internal,
                    "the client's queue of reverse requests is full",
                );
            }
            Err(mpsc::error::TrySendError::Closed(incoming)) => {
                tracing::warn!(%name, "reverse request with no handler, and its queue is gone");
                incoming.reject_now(ErrorCode::NoHandler, &no_handler);
            }
        }
    }
}

async fn answer_with(outbox: &Outbox, id: u64, answer: Answer) {
    let sent = match &answer {
        Ok(bytes) => {
            outbox
                .send(&Envelope::ReverseReply {
                    id,
                    result: Ok(bytes),
                })
                .await
        }
        Err((code, message)) => {
            outbox
                .send(&Envelope::ReverseReply {
                    id,
                    result: Err(ErrorReply::new(*code, message)),
                })
                .await
        }
    };
    if sent.is_err() {
        tracing::debug!(
            id,
            "the reply to a reverse request could not be sent (connection gone or reply too large)"
        );
    }
}

/// A reverse request taken from the queue: read its payload, then answer it (once). Dropped
/// without an answer, it answers the server with an error.
pub struct Incoming {
    id: u64,
    name: String,
    payload: Bytes,
    outbox: Option<Arc<Outbox>>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("name", &self.name)
            .field("payload_bytes", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// The handler name the server asked for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The payload, decoded.
    pub fn payload<P: DeserializeOwned>(&self) -> Result<P, CallError> {
        wire::from_bytes_exact(&self.payload).map_err(|source| CallError::Decode {
            expected: std::any::type_name::<P>(),
            source,
        })
    }

    /// Answers with `reply`.
    ///
    /// # Errors
    /// `Encode` when the reply does not serialize, `Closed` if it was already answered,
    /// `Disconnected` when the connection went away.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropped while it waits for room in the queue, the request stays
    /// unanswered and the server's call times out.
    pub async fn reply<R: Serialize + ?Sized>(mut self, reply: &R) -> Result<(), CallError> {
        let outbox = self.outbox.take().ok_or(CallError::Closed)?;
        let bytes = wire::to_vec(reply).map_err(CallError::Encode)?;
        outbox
            .send(&Envelope::ReverseReply {
                id: self.id,
                result: Ok(&bytes),
            })
            .await
            .map_err(|_| CallError::Disconnected)
    }

    /// Answers with an error the server sees as a client-side failure.
    ///
    /// # Errors
    /// As [`reply`](Self::reply).
    ///
    /// # Cancel safety
    /// As [`reply`](Self::reply).
    pub async fn reject(mut self, message: &str) -> Result<(), CallError> {
        let outbox = self.outbox.take().ok_or(CallError::Closed)?;
        outbox
            .send(&Envelope::ReverseReply {
                id: self.id,
                result: Err(ErrorReply::new(ErrorCode::ViewFailed, message)),
            })
            .await
            .map_err(|_| CallError::Disconnected)
    }

    fn reject_now(mut self, code: ErrorCode, message: &str) {
        if let Some(outbox) = self.outbox.take() {
            let _ = outbox.try_send(&Envelope::ReverseReply {
                id: self.id,
                result: Err(ErrorReply::new(code, message)),
            });
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(outbox) = self.outbox.take() {
            let _ = outbox.try_send(&Envelope::ReverseReply {
                id: self.id,
                result: Err(ErrorReply::new(
                    ErrorCode::NoHandler,
                    "the client dropped this request without answering it",
                )),
            });
        }
    }
}

/// Reverse requests that have no handler, as they arrive: `while let Some(r) = q.next().await`.
#[derive(Debug)]
pub struct ReverseRequests {
    pub(super) rx: mpsc::Receiver<Incoming>,
}

impl ReverseRequests {
    /// The next reverse request; `None` once the client is closed (or another queue replaced
    /// this one).
    ///
    /// # Cancel safety
    /// Cancel safe: a request not yet taken stays in the queue.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }
}

impl futures_util::Stream for ReverseRequests {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        self.rx.poll_recv(cx)
    }
}
