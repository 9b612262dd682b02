//! Throttles: live x-keap-* headers, 429 bodies, rolling windows and the daily quota on an
//! injected clock.

use std::time::Duration;

use keap::{Limits, WindowLimit};
use keap_sim::{KeapSim, SimClock, Throttle};
use serde_json::Value;

use crate::{KEY, http};

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(sim: &KeapSim) -> Answer {
    let r = http()
        .get(format!(
            "{}/crm/rest/v2/contacts?page_size=1",
            sim.base_url()
        ))
        .header("X-Keap-API-Key", KEY)
        .send()
        .await
        .unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.json().await.unwrap_or(Value::Null),
    }
}

fn h(a: &Answer, name: &str) -> String {
    a.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn real_profile_headers_carry_keaps_numbers() {
    let sim = KeapSim::builder()
        .api_key(KEY)
        .throttle(Throttle::Real)
        .start()
        .await
        .unwrap();
    let a = call(&sim).await;
    assert_eq!(a.status, 200);
    assert_eq!(h(&a, "x-keap-product-quota-limit"), "30000");
    assert_eq!(h(&a, "x-keap-product-quota-available"), "29999");
    assert_eq!(h(&a, "x-keap-product-quota-used"), "1");
    assert_eq!(h(&a, "x-keap-product-quota-time-unit"), "day");
    assert_eq!(h(&a, "x-keap-product-throttle-limit"), "240");
    assert_eq!(h(&a, "x-keap-product-throttle-available"), "239");
    assert_eq!(h(&a, "x-keap-product-spike-limit"), "10ps");
    assert_eq!(h(&a, "x-keap-tenant-throttle-limit"), "10000");
    assert_eq!(h(&a, "x-keap-tenant-throttle-available"), "9999");
    assert_eq!(h(&a, "x-keap-tenant-id"), "sim.infusionsoft.com");
    let expiry: u64 = h(&a, "x-keap-product-quota-expiry-time").parse().unwrap();
    assert_eq!(expiry % 86_400_000, 0, "next 00:00 UTC in epoch ms");
    assert!(!h(&a, "x-request-id").is_empty());
    let b = call(&sim).await;
    assert_eq!(h(&b, "x-keap-product-quota-available"), "29998");
}

#[tokio::test]
async fn limits_refuse_with_429_and_recover_as_the_clock_moves() {
    let day = 86_400_000;
    let clock = SimClock::manual(20_000 * day + 3_600_000);
    let sim = KeapSim::builder()
        .api_key(KEY)
        .clock(clock.clone())
        .throttle(Throttle::Custom {
            product: Limits {
                windows: vec![WindowLimit::per_second(3), WindowLimit::per_minute(5)],
                daily: Some(8),
            },
            tenant: None,
        })
        .start()
        .await
        .unwrap();
    for i in 0..3 {
        let a = call(&sim).await;
        assert_eq!(a.status, 200, "call {i}");
        assert_eq!(
            h(&a, "x-keap-product-throttle-available"),
            (4 - i).to_string()
        );
    }
    let spike = call(&sim).await;
    assert_eq!(spike.status, 429);
    assert!(spike.headers.get("retry-after").is_none());
    assert_eq!(
        spike.body["fault"]["detail"]["errorcode"],
        "policies.ratelimit.SpikeArrestViolation"
    );

    clock.advance(Duration::from_secs(1));
    assert_eq!(call(&sim).await.status, 200);
    assert_eq!(call(&sim).await.status, 200);
    let minute = call(&sim).await;
    assert_eq!(minute.status, 429);
    assert_eq!(
        minute.body,
        serde_json::json!({"code": "429", "message": "Quota Exceeded", "status": "Request Throttled", "details": null})
    );
    assert_eq!(h(&minute, "x-keap-product-throttle-available"), "0");

    clock.advance(Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(call(&sim).await.status, 200);
    }
    clock.advance(Duration::from_secs(60));
    let daily = call(&sim).await;
    assert_eq!(daily.status, 429);
    assert_eq!(
        daily.body["fault"]["detail"]["errorcode"],
        "policies.ratelimit.QuotaViolation"
    );
    assert_eq!(h(&daily, "x-keap-product-quota-available"), "0");

    // The daily quota comes back at 00:00 UTC.
    clock.advance(Duration::from_millis(day));
    let next_day = call(&sim).await;
    assert_eq!(next_day.status, 200);
    assert_eq!(h(&next_day, "x-keap-product-quota-available"), "7");
    assert_eq!(sim.stats().throttled, 3);
}

#[tokio::test]
async fn keys_are_throttled_separately_and_the_app_as_a_whole() {
    let clock = SimClock::manual(1_800_000_000_000);
    let sim = KeapSim::builder()
        .api_key(KEY)
        .api_key("KeapAK-second")
        .clock(clock)
        .throttle(Throttle::Custom {
            product: Limits {
                windows: vec![WindowLimit::per_minute(2)],
                daily: None,
            },
            tenant: Some(Limits {
                windows: vec![WindowLimit::per_minute(3)],
                daily: None,
            }),
        })
        .start()
        .await
        .unwrap();
    let get = |key: &'static str| {
        let url = format!("{}/crm/rest/v2/contacts", sim.base_url());
        async move {
            http()
                .get(url)
                .header("X-Keap-API-Key", key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get(KEY).await, 200);
    assert_eq!(get(KEY).await, 200);
    assert_eq!(get(KEY).await, 429, "first key's own limit");
    assert_eq!(get("KeapAK-second").await, 200);
    assert_eq!(get("KeapAK-second").await, 429, "the app's limit of 3");
}
