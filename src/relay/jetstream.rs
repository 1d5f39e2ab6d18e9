//! The broker side of the relay: one NATS connection and its JetStream context. It
//! makes sure the stream exists and holds the relay's subjects, tells where the stream
//! stands (its last sequence and the event id of its last message), and publishes a
//! batch of events in order, each guarded by the stream sequence it must follow.
//!
//! How JetStream behaves here (NATS docs, "JetStream Model Deep Dive", "Headers"):
//! - `Nats-Msg-Id`: a message whose id the stream has seen within its `duplicate_window`
//!   is not stored again; the acknowledgement says `duplicate: true` with the first
//!   copy's sequence.
//! - `Nats-Expected-Last-Sequence: N`: the message is stored only if the stream's last
//!   sequence is `N`, else refused with "wrong last sequence" (error code 10071). The
//!   server checks the message id first, so a duplicate is still acknowledged as one.
//!
//! The relay pipelines a batch: event `i` of a batch is sent expecting `last + i`. If any
//! event is lost on the way (a dropped connection, a timeout), every later event of the
//! batch is refused by that guard, so the stream never holds an event after a gap: it is
//! the outbox's commit order, and the relay resumes right after the stream's last message.

use std::time::Duration;

use async_nats::header::{NATS_EXPECTED_LAST_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::HeaderMap;

use crate::domain::event::Event;
use crate::http::admin_events::event_json;
use crate::relay::config::RelayConfig;

/// The duplicate window of a stream the relay creates. Issue 18 asks for at least two
/// minutes; JetStream's own default is also two minutes. The sequence guard above keeps
/// the stream exact without it; the window is the second line for a republish after a
/// restart whose position could not be read from the stream.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long connecting may take before the attempt counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a JetStream API request or a publish acknowledgement is awaited.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the broker could not be used. The text is what `/readyz` shows as the reason and
/// what the log says (once per cause per minute).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot connect to relay.url {url:?}: {detail}")]
    Connect { url: String, detail: String },
    #[error("JetStream at relay.url is not answering: {detail}")]
    Unavailable { detail: String },
    #[error("JetStream refused: {detail}")]
    Refused { detail: String },
    #[error("stream {stream} exists with subjects {subjects:?}, which do not hold {wanted:?}; use another relay.stream or add the subject to the stream")]
    ForeignStream {
        stream: String,
        subjects: Vec<String>,
        wanted: String,
    },
    #[error("publishing to the stream failed: {detail}")]
    Publish { detail: String },
}

/// Where the stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    /// The stream sequence of its last message (0 when it never held one).
    pub last_sequence: u64,
    /// The `Nats-Msg-Id` (an event id) of that message, when it can still be read.
    pub last_event_id: Option<String>,
    /// Whether the relay created the stream just now (it then starts from the outbox's
    /// beginning).
    pub created: bool,
}

/// The result of publishing a batch: how many of its leading events the stream holds,
/// the stream sequence of the last of them, how many were new, and the error that
/// stopped the rest (if any).
#[derive(Debug)]
pub struct Published {
    pub in_stream: usize,
    pub last_sequence: u64,
    pub newly_stored: u64,
    pub error: Option<BrokerError>,
}

/// A connection to the broker.
pub struct Broker {
    context: jetstream::Context,
    stream: String,
    subject_prefix: String,
    subjects_filter: String,
}

impl Broker {
    /// Connects to `config.url`.
    ///
    /// # Errors
    /// [`BrokerError::Connect`] when the URL does not parse, nothing answers, or what
    /// answers does not speak NATS.
    pub async fn connect(config: &RelayConfig) -> Result<Broker, BrokerError> {
        let connect_error = |detail: String| BrokerError::Connect {
            url: redact_credentials(&config.url, &config.url),
            detail: redact_credentials(&config.url, &detail),
        };
        let client = async_nats::ConnectOptions::new()
            .name("paykeep-relay")
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .connect(config.url.as_str());
        // The client's own timeout covers the TCP connect; this one covers a peer that
        // accepts and then says nothing (not a NATS server).
        let client = tokio::time::timeout(CONNECT_TIMEOUT * 2, client)
            .await
            .map_err(|_| connect_error("no NATS greeting".to_owned()))?
            .map_err(|e| connect_error(e.to_string()))?;
        let context = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .build(client);
        Ok(Broker {
            context,
            stream: config.stream.clone(),
            subject_prefix: config.subject_prefix.clone(),
            subjects_filter: config.subjects_filter(),
        })
    }

    /// Makes sure the stream exists and holds `{subject_prefix}.>` (creating it with a
    /// [`DUPLICATE_WINDOW`] when missing), and reads where it stands.
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`] when JetStream does not answer,
    /// [`BrokerError::ForeignStream`] when the stream exists with other subjects,
    /// [`BrokerError::Refused`] for any other error the server answers.
    pub async fn position(&self) -> Result<StreamPosition, BrokerError> {
        let (stream, created) = match self.context.get_stream(&self.stream).await {
            Ok(stream) => (stream, false),
            Err(e) => match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(api)
                    if api.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    (self.create_stream().await?, true)
                }
                jetstream::context::GetStreamErrorKind::JetStream(api) => {
                    return Err(BrokerError::Refused {
                        detail: api.to_string(),
                    })
                }
                _ => {
                    return Err(BrokerError::Unavailable {
                        detail: e.to_string(),
                    })
                }
            },
        };
        let info = stream.cached_info();
        if !info
            .config
            .subjects
            .iter()
            .any(|s| covers(s, &self.subjects_filter))
        {
            return Err(BrokerError::ForeignStream {
                stream: self.stream.clone(),
                subjects: info.config.subjects.clone(),
                wanted: self.subjects_filter.clone(),
            });
        }
        let last_sequence = info.state.last_sequence;
        let last_event_id = if last_sequence == 0 {
            None
        } else {
            // The last message may be gone (purged, aged out): then the position is the
            // sequence alone and the duplicate window is the guard.
            stream
                .get_raw_message(last_sequence)
                .await
                .ok()
                .and_then(|m| {
                    m.headers
                        .get(NATS_MESSAGE_ID)
                        .map(|v| v.as_str().to_owned())
                })
        };
        Ok(StreamPosition {
            last_sequence,
            last_event_id,
            created,
        })
    }

    async fn create_stream(&self) -> Result<jetstream::stream::Stream, BrokerError> {
        let config = StreamConfig {
            name: self.stream.clone(),
            subjects: vec![self.subjects_filter.clone()],
            duplicate_window: DUPLICATE_WINDOW,
            storage: StorageType::File,
            ..Default::default()
        };
        self.context
            .create_stream(config)
            .await
            .map_err(|e| BrokerError::Refused {
                detail: format!("creating stream {}: {e}", self.stream),
            })
    }

    /// Publishes `events` (ascending outbox sequences) in order, pipelined, the first
    /// expecting the stream to end at `last_sequence`; waits for every acknowledgement.
    /// Stops at the first error: the events after it are not in the stream.
    pub async fn publish(&self, events: &[(u64, Event)], last_sequence: u64) -> Published {
        let mut pending: Vec<PublishAckFuture> = Vec::with_capacity(events.len());
        let mut error = None;
        for (i, (seq, event)) in events.iter().enumerate() {
            let expected = last_sequence + i as u64;
            match self.send(*seq, event, expected).await {
                Ok(ack) => pending.push(ack),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let mut published = Published {
            in_stream: 0,
            last_sequence,
            newly_stored: 0,
            error: None,
        };
        for ack in pending {
            match ack.await {
                Ok(ack) => {
                    published.in_stream += 1;
                    published.last_sequence = ack.sequence;
                    if !ack.duplicate {
                        published.newly_stored += 1;
                    }
                }
                Err(e) => {
                    published.error = Some(BrokerError::Publish {
                        detail: e.to_string(),
                    });
                    return published;
                }
            }
        }
        published.error = error;
        published
    }

    async fn send(
        &self,
        seq: u64,
        event: &Event,
        expected_last_sequence: u64,
    ) -> Result<PublishAckFuture, BrokerError> {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, event.id.as_str());
        // 0 means "no check" to the server: the first message of an empty stream.
        if expected_last_sequence > 0 {
            headers.insert(
                NATS_EXPECTED_LAST_SEQUENCE,
                expected_last_sequence.to_string().as_str(),
            );
        }
        let body = event_json(seq, event).to_string();
        self.context
            .send_publish(
                subject(&self.subject_prefix, &event.kind),
                PublishMessage::build()
                    .payload(body.into())
                    .headers(headers),
            )
            .await
            .map_err(|e| BrokerError::Publish {
                detail: e.to_string(),
            })
    }
}

/// `text` with the user name and password of `url` (`nats://user:pass@host`) replaced by
/// `***`: the reason is shown in `/readyz` and the log, where no secret may appear.
pub fn redact_credentials(url: &str, text: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return text.to_owned();
    };
    let mut out = text.to_owned();
    for secret in [parsed.password().unwrap_or(""), parsed.username()] {
        if !secret.is_empty() {
            out = out.replace(secret, "***");
        }
    }
    out
}

/// The subject of an event of type `kind`: `{prefix}.{kind}`.
pub fn subject(prefix: &str, kind: &str) -> String {
    format!("{prefix}.{kind}")
}

/// Whether the stream subject `filter` holds every subject `wanted` holds (both may end in
/// `>`; `*` matches one token). NATS docs, "Subject-Based Messaging", wildcards.
pub fn covers(filter: &str, wanted: &str) -> bool {
    let mut f = filter.split('.');
    let mut w = wanted.split('.');
    loop {
        match (f.next(), w.next()) {
            (Some(">"), Some(_)) => return true,
            (Some(a), Some(b)) if a == b || (a == "*" && b != ">") => continue,
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{covers, redact_credentials};

    #[test]
    fn credentials_in_the_url_never_reach_the_reason() {
        let url = "nats://relay:s3cret@127.0.0.1:4222";
        let reason = redact_credentials(url, &format!("cannot connect to {url}: refused"));
        assert_eq!(
            reason,
            "cannot connect to nats://***:***@127.0.0.1:4222: refused"
        );
        assert_eq!(redact_credentials("not a url", "as is"), "as is");
    }

    #[test]
    fn covers_follows_the_nats_wildcards() {
        assert!(covers("paykeep.events.>", "paykeep.events.>"));
        assert!(covers("paykeep.>", "paykeep.events.>"));
        assert!(covers(">", "paykeep.events.>"));
        assert!(covers("*.events.>", "paykeep.events.>"));
        assert!(!covers("paykeep.events.*", "paykeep.events.>"));
        assert!(!covers("paykeep.events.payment.>", "paykeep.events.>"));
        assert!(!covers("orders.>", "paykeep.events.>"));
        assert!(!covers("paykeep.events", "paykeep.events.>"));
    }
}
