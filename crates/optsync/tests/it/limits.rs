//! Server limits: a client that trickles its headers (slow loris) is cut off after the
//! header timeout, while everyone else is answered as usual.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Db, Options, TestApp, on_both_backends};

async fn slow_loris_connections_are_closed_and_others_served(db: Db) {
    let t = TestApp::spawn_with(
        db,
        Options {
            header_timeout: Some(Duration::from_secs(1)),
            ..Options::default()
        },
    )
    .await;
    let addr = t.base.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let mut lorises = Vec::new();
    for _ in 0..50 {
        let addr = addr.clone();
        lorises.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(b"POST /process_optout.php?app=acme HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            // One header byte every 200 ms, never finishing: until the server hangs up.
            let opened = Instant::now();
            let mut buf = [0u8; 256];
            loop {
                if s.write_all(b"X").await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => break, // an error answer, then the close
                    Err(_) => {}
                }
                assert!(opened.elapsed() < Duration::from_secs(10), "never cut off");
            }
            opened.elapsed()
        }));
    }
    // Meanwhile real posts are answered promptly.
    let (id, _) = t.contact("lou", 2);
    for _ in 0..5 {
        let t0 = Instant::now();
        assert_eq!(t.post(&[("contactId", &id.to_string())]).await.0, 200);
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for l in lorises {
        let held = l.await.unwrap();
        assert!(
            held < Duration::from_secs(3),
            "a slow client held a socket {held:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}
on_both_backends!(slow_loris_connections_are_closed_and_others_served);

/// Opens a connection from `from` (a loopback address of its own) and sends a Keap post's
/// headers announcing a body it never sends.
async fn slow_body(from: &str, addr: std::net::SocketAddr) -> Option<TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = sock.connect(addr).await.ok()?;
    s.write_all(
        b"POST /process_optout.php?app=acme&auth=x HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ncontactId=",
    )
    .await
    .ok()?;
    Some(s)
}

/// Whether the server has closed (or answered) `s` within `wait`.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 512];
    tokio::time::timeout(wait, s.read(&mut buf)).await.is_ok()
}

/// One client holding 200 connections with bodies that never come cannot take every slot:
/// it gets its own share, and another client's post is answered within a second.
async fn one_client_cannot_hold_every_connection(db: Db) {
    let t = TestApp::spawn_with(
        db,
        Options {
            settings: |s| {
                s.max_connections = 150;
                s.max_connections_per_client = 64;
                s.keap_body_timeout = Duration::from_secs(3);
            },
            ..Options::default()
        },
    )
    .await;
    let addr: std::net::SocketAddr = t.base.trim_start_matches("http://").parse().unwrap();
    let mut slow = Vec::new();
    for _ in 0..200 {
        slow.extend(slow_body("127.0.0.2", addr).await);
    }
    let opened = Instant::now();
    // Let the server take (or refuse) them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (id, _) = t.contact("kit", 2);
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.3".parse().unwrap()))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let r = other
        .post(&t.post_url)
        .form(&[("contactId", id.to_string())])
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("answered within a second");
    assert_eq!(r.status(), 200);
    assert!(t0.elapsed() < Duration::from_secs(1));
    // The slow client keeps exactly its share open (not closed at once), the rest closed.
    let mut held = Vec::new();
    for mut s in slow {
        if !closed_within(&mut s, Duration::from_millis(5)).await {
            held.push(s);
        }
    }
    assert_eq!(held.len(), 64, "the per-client cap, no more and no less");
    // Its bodies never come: the body timeout answers them, not sooner than it says.
    let mut answered = Vec::new();
    for s in &mut held {
        assert!(closed_within(s, Duration::from_secs(5)).await, "answered");
        answered.push(opened.elapsed());
    }
    let (first, last) = (answered[0], answered[answered.len() - 1]);
    assert!(first >= Duration::from_millis(2_500), "{first:?}");
    assert!(last < Duration::from_secs(6), "{last:?}");
}
on_both_backends!(one_client_cannot_hold_every_connection);
