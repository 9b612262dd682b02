//! The gateway's throttles: per-credential product limits, the per-app tenant limit, and the
//! `x-keap-*` headers every gateway response carries.

use std::collections::HashMap;

use keap::{DailyQuota, Limits, RollingWindow};

use crate::auth::Principal;
use crate::config::Throttle;

/// The counters behind one set of limits.
#[derive(Debug, Clone)]
struct Meter {
    limits: Limits,
    windows: Vec<RollingWindow>,
    daily: Option<DailyQuota>,
}

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Spike,
    Minute,
    Daily,
}

impl Meter {
    fn new(limits: Limits) -> Self {
        Self {
            windows: limits
                .windows
                .iter()
                .map(|w| RollingWindow::new(*w))
                .collect(),
            daily: limits.daily.map(DailyQuota::new),
            limits,
        }
    }

    fn check(&mut self, now: u64) -> Option<Exceeded> {
        if let Some(d) = &mut self.daily
            && d.available(now) == 0
        {
            return Some(Exceeded::Daily);
        }
        let longest = self.limits.throttle_window();
        for w in &mut self.windows {
            if w.available(now) == 0 {
                return Some(if Some(w.limit()) == longest {
                    Exceeded::Minute
                } else {
                    Exceeded::Spike
                });
            }
        }
        None
    }

    fn record(&mut self, now: u64) {
        for w in &mut self.windows {
            w.record(now);
        }
        if let Some(d) = &mut self.daily {
            d.record(now);
        }
    }

    fn throttle_numbers(&mut self, now: u64) -> Option<(u32, u32, u32)> {
        let longest = self.limits.throttle_window()?;
        let w = self.windows.iter_mut().find(|w| w.limit() == longest)?;
        Some((longest.limit, w.available(now), w.used(now)))
    }
}

/// Live numbers for the `x-keap-*` headers.
#[derive(Debug, Clone, Default)]
pub struct ThrottleHeaders {
    pub quota: Option<(u32, u32, u32, u64)>,
    pub throttle: Option<(u32, u32, u32)>,
    pub spike: Option<u32>,
    pub tenant: Option<(u32, u32, u32)>,
}

impl ThrottleHeaders {
    pub fn pairs(&self, tenant_id: &str) -> Vec<(&'static str, String)> {
        let mut h = Vec::with_capacity(16);
        if let Some((limit, avail, used, expiry)) = self.quota {
            h.push(("x-keap-product-quota-limit", limit.to_string()));
            h.push(("x-keap-product-quota-time-unit", "day".into()));
            h.push(("x-keap-product-quota-interval", "1".into()));
            h.push(("x-keap-product-quota-available", avail.to_string()));
            h.push(("x-keap-product-quota-used", used.to_string()));
            h.push(("x-keap-product-quota-expiry-time", expiry.to_string()));
        }
        if let Some((limit, avail, used)) = self.throttle {
            h.push(("x-keap-product-throttle-limit", limit.to_string()));
            h.push(("x-keap-product-throttle-time-unit", "minute".into()));
            h.push(("x-keap-product-throttle-interval", "1".into()));
            h.push(("x-keap-product-throttle-available", avail.to_string()));
            h.push(("x-keap-product-throttle-used", used.to_string()));
        }
        if let Some(spike) = self.spike {
            h.push(("x-keap-product-spike-limit", format!("{spike}ps")));
        }
        if let Some((limit, avail, used)) = self.tenant {
            h.push(("x-keap-tenant-id", tenant_id.to_string()));
            h.push(("x-keap-tenant-throttle-limit", limit.to_string()));
            h.push(("x-keap-tenant-throttle-time-unit", "minute".into()));
            h.push(("x-keap-tenant-throttle-interval", "1".into()));
            h.push(("x-keap-tenant-throttle-available", avail.to_string()));
            h.push(("x-keap-tenant-throttle-used", used.to_string()));
        }
        h
    }
}

#[derive(Debug)]
pub struct Throttles {
    mode: Throttle,
    product: HashMap<String, Meter>,
    tenant: Option<Meter>,
}

impl Throttles {
    pub fn new(mode: Throttle) -> Self {
        let tenant = match &mode {
            Throttle::Off => None,
            Throttle::Real => Some(Meter::new(Limits::tenant())),
            Throttle::Custom { tenant, .. } => tenant.clone().map(Meter::new),
        };
        Self {
            mode,
            product: HashMap::new(),
            tenant,
        }
    }

    fn limits_for(&self, who: &Principal) -> Option<Limits> {
        match (&self.mode, who) {
            (Throttle::Off, _) => None,
            (Throttle::Real, Principal::ApiKey(_)) => Some(Limits::service_account()),
            (Throttle::Real, Principal::OAuthClient(_)) => Some(Limits::oauth_client()),
            (Throttle::Custom { product, .. }, _) => Some(product.clone()),
        }
    }

    /// Counts a call against every limit that applies, or refuses it (a refused call is not
    /// counted). Either way returns the numbers for the response headers.
    pub fn admit(&mut self, who: &Principal, now: u64) -> (Result<(), Exceeded>, ThrottleHeaders) {
        let Some(limits) = self.limits_for(who) else {
            return (Ok(()), ThrottleHeaders::default());
        };
        let meter = self
            .product
            .entry(who.throttle_key())
            .or_insert_with(|| Meter::new(limits));
        let verdict = match meter.check(now) {
            Some(e) => Err(e),
            None => match self.tenant.as_mut().and_then(|t| t.check(now)) {
                // The app's own limit reads as a quota refusal on the wire.
                Some(Exceeded::Daily) => Err(Exceeded::Daily),
                Some(_) => Err(Exceeded::Minute),
                None => Ok(()),
            },
        };
        if verdict.is_ok() {
            meter.record(now);
            if let Some(t) = &mut self.tenant {
                t.record(now);
            }
        }
        let quota = meter.daily.as_mut().map(|d| {
            (
                d.limit(),
                d.available(now),
                d.used(now),
                DailyQuota::expiry_ms(now),
            )
        });
        let headers = ThrottleHeaders {
            quota,
            throttle: meter.throttle_numbers(now),
            spike: meter.limits.spike_window().map(|w| w.limit),
            tenant: self.tenant.as_mut().and_then(|t| t.throttle_numbers(now)),
        };
        (verdict, headers)
    }
}
