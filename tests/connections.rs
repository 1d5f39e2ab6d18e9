//! Connection limits and timeouts (DESIGN §4 `[server]`, issue 13): a client sending its
//! head one byte at a time is closed after the header timeout, an idle keep-alive
//! connection after the idle timeout; and under `prlimit --nofile=1024`, 1,000 idle
//! connections neither stop new clients nor make the store fail: creates keep succeeding and
//! `/readyz` stays 200.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{order, MERCHANT_KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; how long that took (fails past `within`).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        let read = tokio::time::timeout(within, stream.read(&mut buffer))
            .await
            .expect("the server closed the connection in time");
        match read {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_idle_connections_are_closed() {
    let svc = common::start(|c| {
        c.server.header_read_timeout = Duration::from_millis(1000);
        c.server.idle_timeout = Duration::from_millis(2000);
    })
    .await;
    let addr = svc.base.trim_start_matches("http://").to_owned();
    // One byte a second (well, every 300 ms): closed at the header timeout, unanswered.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let started = Instant::now();
    let mut closed = false;
    for byte in head.iter().take(20) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buffer = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(300), slow.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => panic!("answered a partial head: {:?}", &buffer[..n]),
            Err(_) => {}
        }
    }
    assert!(
        closed,
        "a slow head was still open after {:?}",
        started.elapsed()
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Silent from the start: the header timeout too.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(3)).await;
    assert!(took >= Duration::from_millis(900), "{took:?}");
    // After an answer, the idle timeout (longer than the header timeout).
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    kept.write_all(head).await.unwrap();
    let mut buffer = [0u8; 4096];
    let n = kept.read(&mut buffer).await.unwrap();
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
    let took = closed_within(&mut kept, Duration::from_secs(4)).await;
    assert!(took >= Duration::from_millis(1800), "{took:?}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_under_a_1024_file_limit_stop_nothing() {
    let (_dir, data_dir) = common::temp_data_dir();
    let mut command = Command::new("prlimit");
    command
        .arg("--nofile=1024:1024")
        .arg(env!("CARGO_BIN_EXE_paykeep"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env("RUST_LOG", "warn")
        .env("PAYKEEP_SERVER__HEADER_READ_TIMEOUT_MS", "2000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let (child, addr) = common::spawn_listening(command);
    let _binary = common::Binary {
        child,
        addr,
        base: format!("http://{addr}"),
    };
    let base = format!("http://{addr}");
    // A client already connected before the flood, kept alive across it.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let first = common::create_at(&client, &base, MERCHANT_KEY, None, &order("o-before")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    // The flood: 1,000 connections that send nothing.
    let mut idle = Vec::new();
    for _ in 0..1000 {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => idle.push(stream),
            // Past the backlog the kernel stops completing handshakes: also an attacker
            // that holds nothing of ours.
            _ => break,
        }
    }
    assert!(idle.len() >= 500, "only {} connections opened", idle.len());
    // Creates on the connection opened before keep succeeding.
    for i in 0..20 {
        let answer = common::create_at(
            &client,
            &base,
            MERCHANT_KEY,
            None,
            &order(&format!("o-{i}")),
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    }
    // A new client is answered (after the idle ones' header timeout at worst), and the
    // store never failed.
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let started = Instant::now();
    let health = fresh.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(10));
    let created =
        common::create_at(&fresh, &base, MERCHANT_KEY, None, &order("o-new-client")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let ready = fresh.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    drop(idle);
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_is_408_after_the_body_timeout() {
    let svc = common::start(|c| c.server.body_read_timeout = Duration::from_millis(500)).await;
    let addr = svc.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/payments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MERCHANT_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"order_no\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buffer))
        .await
        .expect("answered in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&buffer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(450));
    svc.shutdown().await;
}
