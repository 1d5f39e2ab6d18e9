//! A real `nats-server -js` for the relay tests (issue 18): on a free loopback port with
//! its store in a temporary directory, killed with SIGKILL and restarted on the same
//! port and store; and a JetStream consumer that reads the whole stream back.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures::StreamExt;
use serde_json::Value;

/// `nats-server` as Debian installs it (`.ci/run` does); else from `PATH`.
fn nats_server_binary() -> PathBuf {
    let debian = PathBuf::from("/usr/sbin/nats-server");
    if debian.exists() {
        return debian;
    }
    PathBuf::from("nats-server")
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running `nats-server -js`.
pub struct NatsServer {
    pub port: u16,
    /// JetStream on or off (`-js`): off is a broker that answers JetStream requests with
    /// errors.
    pub jetstream: bool,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `nats-server -js` on a free port with a fresh store directory.
    pub fn start() -> NatsServer {
        Self::start_on(free_port(), true)
    }

    /// Starts it on `port`, with or without JetStream.
    pub fn start_on(port: u16, jetstream: bool) -> NatsServer {
        let mut server = NatsServer {
            port,
            jetstream,
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        server.spawn();
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut command = Command::new(nats_server_binary());
        command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.jetstream {
            command.arg("-js").arg("-sd").arg(self.dir.path());
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("nats-server must be installed for the relay tests (apt-get install nats-server; .ci/run does): {e}")
        });
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// A JetStream context on it.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(self.url()).await.expect("connect");
        async_nats::jetstream::new(client)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One message of the stream as a consumer sees it.
#[derive(Debug, Clone)]
pub struct StreamedEvent {
    pub stream_sequence: u64,
    pub subject: String,
    /// `Nats-Msg-Id`.
    pub message_id: String,
    pub body: Value,
    /// When the stream stored it, in ms since the epoch.
    pub stored_at_ms: i64,
}

/// Every message of `stream`, in stream order, read by a fresh ephemeral pull consumer
/// from the beginning.
pub async fn read_stream(js: &async_nats::jetstream::Context, stream: &str) -> Vec<StreamedEvent> {
    let stream = js.get_stream(stream).await.expect("the stream exists");
    let total = stream.cached_info().state.messages as usize;
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut out = Vec::with_capacity(total);
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < total {
        assert!(Instant::now() < deadline, "read {} of {total}", out.len());
        let mut batch = consumer
            .batch()
            .max_messages(1000)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .expect("batch");
        while let Some(message) = batch.next().await {
            let message = message.expect("message");
            let info = message.info().expect("info");
            let message_id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_else(|| {
                    panic!("every message has a Nats-Msg-Id: {:?}", message.headers)
                });
            out.push(StreamedEvent {
                stream_sequence: info.stream_sequence,
                subject: message.subject.to_string(),
                message_id,
                body: serde_json::from_slice(&message.payload).expect("a JSON body"),
                stored_at_ms: (info.published.unix_timestamp_nanos() / 1_000_000) as i64,
            });
        }
    }
    out
}
