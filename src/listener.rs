//! The HTTP listener of `serve` and `sandbox` (DESIGN §4 `[server]` limits): hyper's
//! HTTP/1 connection driver under a connection cap, a header-read timeout, an idle timeout,
//! and a file-descriptor budget that keeps sockets from starving the store.
//!
//! - **Cap.** A permit of a semaphore of [`Limits::max_connections`] is taken *before*
//!   `accept`, so beyond the cap new connections wait in the kernel backlog instead of
//!   holding descriptors.
//! - **Descriptors.** [`raise_nofile_limit`] lifts the soft `RLIMIT_NOFILE` to the hard one
//!   at start-up; [`connection_cap`] lowers the cap so [`FD_RESERVE`] descriptors always stay
//!   free for the store (log segments, sled files), outgoing notification and provider
//!   connections and the process itself. A client can then never make a store write fail
//!   with `Too many open files`.
//! - **Timeouts.** Each connection has a watchdog over a [`ConnClock`]: waiting for a
//!   request head (from the connection's start, or from the first byte of a later request)
//!   it allows `header_read_timeout`; between requests `idle_timeout`; while a request is
//!   being handled nothing (the body read has its own deadline in `http::body`). A
//!   connection past its deadline is dropped. hyper 0.14's own header timeout is not used:
//!   it also runs while a keep-alive connection is idle, which would make the idle timeout
//!   the header timeout.
//!
//! Shutdown is a parameter: the accept loop stops when `shutdown` resolves, every
//! connection is asked to finish its request and close, and the returned future resolves
//! once all have.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use warp::hyper::server::conn::Http;
use warp::hyper::service::Service;
use warp::hyper::{Body, Request, Response};

/// Descriptors kept free of client sockets: the store's log segments and sled files (tens),
/// pooled notification and provider connections (`IN_FLIGHT_MAX_PER_CHANNEL` per channel,
/// 64 to the provider), the runtime, logs and headroom.
pub const FD_RESERVE: u64 = 512;

/// The smallest cap [`connection_cap`] gives, however low the file limit.
pub const CONNECTIONS_MIN: usize = 16;

/// After an `accept` error (e.g. `EMFILE` from a descriptor the cap did not foresee), wait
/// this long instead of spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    /// DESIGN §4's defaults.
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_read_timeout: Duration::from_millis(5000),
            idle_timeout: Duration::from_millis(60_000),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit in force
/// after (`None` when it cannot be read).
pub fn raise_nofile_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    Some(limit.rlim_cur)
}

/// The connection cap: `configured`, lowered so that [`FD_RESERVE`] descriptors stay free
/// under a soft file limit of `nofile` (never below [`CONNECTIONS_MIN`]).
pub fn connection_cap(configured: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return configured;
    };
    let room = usize::try_from(nofile.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    configured.min(room).max(CONNECTIONS_MIN)
}

/// Binds `addr` (port 0 picks one).
///
/// # Errors
/// The bind error.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Serves `service` (cloned per connection) on `listener` under `limits` until `shutdown`
/// resolves and every connection has finished.
pub fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    async move {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(operation = "accept", %error, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            let service = service.clone();
            let stop = stop_rx.clone();
            tokio::spawn(async move {
                connection(stream, service, limits, stop).await;
                drop(permit);
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        // Every connection holds a permit until it is done.
        let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
        let _ = permits.acquire_many(all).await;
    }
}

/// Drives one connection until it ends, its watchdog fires, or shutdown finishes it.
async fn connection<S>(
    stream: TcpStream,
    service: S,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let clock = Arc::new(ConnClock::new(limits));
    let io = TimedIo {
        inner: stream,
        clock: Arc::clone(&clock),
    };
    let service = Watched {
        inner: service,
        clock: Arc::clone(&clock),
    };
    let conn = Http::new().http1_only(true).serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let watchdog = watchdog(&clock);
    let mut watchdog = std::pin::pin!(watchdog);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = &mut watchdog => return,
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn => {}
        () = watchdog => {}
    }
}

/// Resolves when the connection's deadline has passed.
async fn watchdog(clock: &ConnClock) {
    loop {
        let notified = clock.changed.notified();
        match clock.deadline() {
            None => notified.await,
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => {
                        if clock.deadline().is_some_and(|d| d <= Instant::now()) {
                            return;
                        }
                    }
                    () = notified => {}
                }
            }
        }
    }
}

/// What a connection is doing, and until when it may.
pub struct ConnClock {
    base: Instant,
    limits: Limits,
    /// One of `WAITING_HEAD`, `HANDLING`, `IDLE`.
    state: AtomicU8,
    /// Milliseconds after `base`; meaningful unless `HANDLING`.
    deadline_ms: AtomicU64,
    changed: Notify,
}

/// Waiting for (the rest of) a request head: `header_read_timeout`.
const WAITING_HEAD: u8 = 0;
/// A request is being handled: no deadline here.
const HANDLING: u8 = 1;
/// Between requests: `idle_timeout`.
const IDLE: u8 = 2;

impl ConnClock {
    fn new(limits: Limits) -> ConnClock {
        let clock = ConnClock {
            base: Instant::now(),
            limits,
            state: AtomicU8::new(WAITING_HEAD),
            deadline_ms: AtomicU64::new(0),
            changed: Notify::new(),
        };
        clock.set_deadline(limits.header_read_timeout);
        clock
    }

    fn set_deadline(&self, after: Duration) {
        let at = self.base.elapsed() + after;
        let ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
        self.deadline_ms.store(ms, Ordering::Release);
    }

    fn deadline(&self) -> Option<Instant> {
        if self.state.load(Ordering::Acquire) == HANDLING {
            return None;
        }
        let ms = self.deadline_ms.load(Ordering::Acquire);
        Some(self.base + Duration::from_millis(ms))
    }

    /// Bytes arrived: on an idle connection, a new head has begun.
    fn bytes_read(&self) {
        if self
            .state
            .compare_exchange(IDLE, WAITING_HEAD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.set_deadline(self.limits.header_read_timeout);
            self.changed.notify_one();
        }
    }

    fn handling(&self) {
        self.state.store(HANDLING, Ordering::Release);
        self.changed.notify_one();
    }

    fn answered(&self) {
        self.set_deadline(self.limits.idle_timeout);
        self.state.store(IDLE, Ordering::Release);
        self.changed.notify_one();
    }
}

/// The connection's socket, telling its clock when bytes arrive.
struct TimedIo {
    inner: TcpStream,
    clock: Arc<ConnClock>,
}

impl AsyncRead for TimedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The service, telling the clock when a request starts and when its answer is ready.
struct Watched<S> {
    inner: S,
    clock: Arc<ConnClock>,
}

impl<S> Service<Request<Body>> for Watched<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.clock.handling();
        let answer = self.inner.call(request);
        let clock = Arc::clone(&self.clock);
        Box::pin(async move {
            let response = answer.await;
            clock.answered();
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        assert_eq!(connection_cap(4096, Some(1024)), 512);
        assert_eq!(connection_cap(4096, Some(1_048_576)), 4096);
        assert_eq!(connection_cap(100, Some(100)), CONNECTIONS_MIN);
        assert_eq!(connection_cap(100, None), 100);
    }
}
