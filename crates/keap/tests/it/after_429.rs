//! What one 429 costs a credential, on a fixed clock: the pause Keap asks for or the
//! backoff, and only the window Keap's answer shows exhausted treated as full, never a
//! large minute stalled for a whole minute by one refusal.

use std::time::Duration;

use keap::{Clock, Error, Limits, Pacer, PacingConfig, WindowLimit};
use reqwest::header::HeaderMap;

const T0: u64 = 1_796_083_200_000;

fn pacer(windows: Vec<WindowLimit>, clock: &Clock) -> Pacer {
    Pacer::with_clock(
        PacingConfig::new(Limits {
            windows,
            daily: None,
        }),
        clock.clone(),
    )
}

/// How long the pacer makes the next call wait now (zero when it is admitted).
async fn wait_now(p: &Pacer) -> Duration {
    match p.acquire().await {
        Ok(()) => Duration::ZERO,
        Err(Error::Throttled { retry_after, .. }) => retry_after,
        Err(e) => panic!("unexpected {e:?}"),
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

#[tokio::test]
async fn one_429_on_a_large_minute_costs_the_backoff_not_the_minute() {
    let clock = Clock::manual(T0);
    let p = pacer(vec![WindowLimit::per_minute(100_000)], &clock);
    p.acquire().await.unwrap();
    let none = headers(&[("x-keap-product-throttle-available", "99998")]);
    p.observe(&none);
    let pause = p.throttled(&none);
    assert!(pause <= Duration::from_secs(1), "first backoff: {pause:?}");
    clock.advance(pause);
    assert_eq!(
        wait_now(&p).await,
        Duration::ZERO,
        "admitted after the pause"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_to_the_second() {
    let clock = Clock::manual(T0);
    let p = pacer(vec![WindowLimit::per_minute(100_000)], &clock);
    let pause = p.throttled(&headers(&[("retry-after", "5")]));
    assert_eq!(pause, Duration::from_secs(5));
    clock.advance(Duration::from_millis(4_999));
    assert_eq!(wait_now(&p).await, Duration::from_millis(1));
    clock.advance(Duration::from_millis(1));
    assert_eq!(wait_now(&p).await, Duration::ZERO);
}

#[tokio::test]
async fn a_spike_429_fills_the_spike_window_and_a_spent_minute_the_minute() {
    let clock = Clock::manual(T0);
    let key = vec![WindowLimit::per_second(10), WindowLimit::per_minute(240)];
    // The minute has room by Keap's count: the spike window was the one exhausted.
    let spike = pacer(key.clone(), &clock);
    let room = headers(&[("x-keap-product-throttle-available", "200")]);
    spike.observe(&room);
    let pause = spike.throttled(&room);
    clock.advance(pause.max(Duration::from_millis(1_100)));
    assert_eq!(wait_now(&spike).await, Duration::ZERO, "a second later");

    // Keap says the minute is spent: the minute waits.
    let spent = pacer(key, &clock);
    let empty = headers(&[("x-keap-product-throttle-available", "0")]);
    spent.observe(&empty);
    spent.throttled(&empty);
    clock.advance(Duration::from_secs(2));
    assert!(wait_now(&spent).await > Duration::from_secs(50));
}
