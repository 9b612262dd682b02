//! Opt-out path learning: which API last opted an address out for an app, as a job learns
//! it. A job's steps share it by reference (one task, no lock); what it learns is recorded on
//! the tenant, where every worker's next job for the app reads it.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::store::OptOutApi;

/// The app's working opt-out path, as known to one job.
#[derive(Debug)]
pub struct LearnedPath(AtomicU8);

const UNKNOWN: u8 = 0;
const REST: u8 = 1;
const XML_RPC: u8 = 2;

fn code(api: Option<OptOutApi>) -> u8 {
    match api {
        None => UNKNOWN,
        Some(OptOutApi::Rest) => REST,
        Some(OptOutApi::XmlRpc) => XML_RPC,
    }
}

impl LearnedPath {
    /// Starts from what the tenant's row says.
    pub fn new(known: Option<OptOutApi>) -> Self {
        Self(AtomicU8::new(code(known)))
    }

    pub fn get(&self) -> Option<OptOutApi> {
        match self.0.load(Ordering::Relaxed) {
            REST => Some(OptOutApi::Rest),
            XML_RPC => Some(OptOutApi::XmlRpc),
            _ => None,
        }
    }

    /// Records a path that just worked; true when it differs from what was known.
    pub fn learn(&self, api: OptOutApi) -> bool {
        self.0.swap(code(Some(api)), Ordering::Relaxed) != code(Some(api))
    }

    /// The write paths to try, in order, for a tenant on `auto`: the path last learned first
    /// (so an app whose Keap ignores the PATCH does not pay for it each time).
    pub fn auto_order(&self) -> Vec<keap::Api> {
        use keap::Api;
        match self.get() {
            Some(OptOutApi::XmlRpc) => vec![Api::XmlRpc, Api::Rest],
            _ => vec![Api::Rest, Api::XmlRpc],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_changes_the_order() {
        let p = LearnedPath::new(None);
        assert_eq!(p.get(), None);
        assert_eq!(p.auto_order()[0], keap::Api::Rest);
        assert!(p.learn(OptOutApi::XmlRpc));
        assert!(!p.learn(OptOutApi::XmlRpc), "known already");
        assert_eq!(p.auto_order(), vec![keap::Api::XmlRpc, keap::Api::Rest]);
        assert_eq!(
            LearnedPath::new(Some(OptOutApi::Rest)).get(),
            Some(OptOutApi::Rest)
        );
    }
}
