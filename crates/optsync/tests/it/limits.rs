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
