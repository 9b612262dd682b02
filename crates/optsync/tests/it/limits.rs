//! Server limits: a client that trickles its headers (slow loris) is cut off after the
//! header timeout while everyone else is answered; a request still unfinished after
//! `OPTSYNC_REQUEST_TIMEOUT_SECS` is cut off; at most `OPTSYNC_MAX_CONNECTIONS` connections
//! are open at once. Real time is the point of these limits, so the bounds are generous
//! above and, below, as long as the limit itself: a server that closed at once would fail.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Db, Options, TestApp, on_both_backends};

/// Far above any of the limits below; only a server that never cuts off reaches it.
const NEVER: Duration = Duration::from_secs(20);

/// Writes one byte every 200 ms until the server answers or hangs up; returns how long the
/// connection was held and what the server sent.
async fn trickle(s: &mut TcpStream, byte: &[u8]) -> (Duration, String) {
    let opened = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        if s.write_all(byte).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
        assert!(opened.elapsed() < NEVER, "never cut off");
    }
    (opened.elapsed(), String::from_utf8_lossy(&got).into_owned())
}

async fn slow_loris_connections_are_closed_and_others_served(db: Db) {
    let header_timeout = Duration::from_secs(2);
    let t = TestApp::spawn_with(
        db,
        Options {
            header_timeout: Some(header_timeout),
            ..Options::default()
        },
    )
    .await;
    let addr = t.base.trim_start_matches("http://").to_string();
    let (opened, mut all_open) = tokio::sync::mpsc::channel(50);
    let mut lorises = Vec::new();
    for _ in 0..50 {
        let (addr, opened) = (addr.clone(), opened.clone());
        lorises.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(b"POST /process_optout.php?app=acme HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            opened.send(()).await.unwrap();
            // One header byte every 200 ms, never finishing: until the server hangs up.
            let (held, _) = trickle(&mut s, b"X").await;
            (held, Instant::now())
        }));
    }
    for _ in 0..50 {
        all_open.recv().await.unwrap();
    }
    // Meanwhile real posts are answered, before any loris is cut off.
    let (id, _) = t.contact("lou", 2);
    for _ in 0..5 {
        assert_eq!(t.post(&[("contactId", &id.to_string())]).await.0, 200);
    }
    let posts_done = Instant::now();
    for l in lorises {
        let (held, cut_at) = l.await.unwrap();
        assert!(
            held >= header_timeout - Duration::from_millis(250),
            "a slow client was cut off after {held:?}, before the header timeout"
        );
        assert!(
            held < header_timeout * 4,
            "a slow client held a socket {held:?}"
        );
        assert!(
            cut_at > posts_done,
            "the posts were answered while the slow clients were still connected"
        );
    }
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

/// `OPTSYNC_REQUEST_TIMEOUT_SECS` (30 s by default): a request whose body never finishes is
/// answered 408 once the timeout has passed, not before.
async fn every_request_gets_the_request_timeout(db: Db) {
    let defaults = optsync::config::Settings::for_dir(std::path::Path::new("."), None);
    assert_eq!(defaults.request_timeout, Duration::from_secs(30));
    let timeout = Duration::from_secs(2);
    let t = TestApp::spawn_with(
        db,
        Options {
            header_timeout: Some(Duration::from_secs(60)),
            settings: |s| {
                s.request_timeout = Duration::from_secs(2);
                // The Keap post's own body deadline would answer first.
                s.keap_body_timeout = Duration::from_secs(60);
            },
            ..Options::default()
        },
    )
    .await;
    let addr = t.base.trim_start_matches("http://").to_string();
    let query = t.post_url.split_once('?').unwrap().1.to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /process_optout.php?{query} HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ncontactId=1"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (held, answer) = trickle(&mut s, b"1").await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "cut off with 408: {answer:?}"
    );
    assert!(
        held >= timeout - Duration::from_millis(250),
        "cut off after {held:?}, before the request timeout"
    );
    assert!(held < timeout * 4, "held {held:?}");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM events").await,
        0,
        "nothing stored"
    );
}
on_both_backends!(every_request_gets_the_request_timeout);

/// `OPTSYNC_MAX_CONNECTIONS`: with that many connections open, the next is closed without
/// an answer; once one of them closes, a new connection is served.
async fn at_most_max_connections_are_open_at_once(db: Db) {
    let max = 3;
    let t = TestApp::spawn_with(
        db,
        Options {
            header_timeout: Some(Duration::from_secs(60)),
            settings: |s| s.max_connections = 3,
            ..Options::default()
        },
    )
    .await;
    let addr = t.base.trim_start_matches("http://").to_string();
    // A keep-alive request answered on a connection proves the server holds it open.
    async fn healthz(s: &mut TcpStream) -> String {
        if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .is_err()
        {
            return String::new();
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(NEVER, s.read(&mut buf)).await {
            Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Ok(Err(_)) => String::new(),
            Err(_) => panic!("neither answered nor closed"),
        }
    }
    let mut held = Vec::new();
    for _ in 0..max {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let answer = healthz(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        held.push(s);
    }
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(
        healthz(&mut extra).await,
        "",
        "one connection over the cap is closed unanswered"
    );
    drop(held.pop());
    // The freed slot is returned when the server notices the close: try until it has.
    let deadline = Instant::now() + NEVER;
    loop {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        if healthz(&mut s).await.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
on_both_backends!(at_most_max_connections_are_open_at_once);
