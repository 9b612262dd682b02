//! The domain rules: which addresses must be opted out, and why. Pure: no HTTP, no SQL.
//!
//! - A **stop source** is an address in a stop status (`Manual`, `Admin`, `ListUnsubscribe`,
//!   `Feedback`, `Spam`) that optsync did not write itself, or an address a sending provider
//!   reported as unsubscribed or complaining.
//! - Every address of a contact holding a stop source is a **target**; a target that is not
//!   already in a stop or terminal status is opted out.
//! - optsync's own writes are never sources: without that rule one shared address
//!   (`office@acme.example` on two contacts) would carry one person's opt-out onto a
//!   colleague's other addresses, and from there onward.
//! - Address-only statuses (bounces, `System`, `Invalid`, `Deactivated`, `Lockdown`,
//!   `NonMarketable`, unengaged) are never sources.
//! - A hard bounce opts out that address only. Nothing ever opts an address in.

use keap::{EmailAddress, EmailStatus};

pub mod fast;

/// What optsync knows of its own past writes to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnWrite {
    /// optsync opted this address out and Keap then reported this status.
    Wrote(EmailStatus),
    /// optsync was about to write when it stopped (crash between intent and result): the
    /// status the address holds now is taken to be optsync's doing.
    Intended,
}

/// One address of a contact as the worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressView {
    pub email: EmailAddress,
    pub status: EmailStatus,
    pub own_write: Option<OwnWrite>,
}

impl AddressView {
    /// The status is optsync's own doing (so it says nothing about the person's wishes).
    pub fn written_by_us(&self) -> bool {
        match self.own_write {
            Some(OwnWrite::Wrote(s)) => s == self.status,
            Some(OwnWrite::Intended) => true,
            None => false,
        }
    }

    /// The person behind this address asked to stop.
    pub fn is_stop_source(&self) -> bool {
        self.status.is_stop() && !self.written_by_us()
    }
}

/// What happened that makes the worker look at a contact.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signals {
    /// Addresses a provider reported as unsubscribed or complaining (stop sources whatever
    /// Keap says of them).
    pub stops: Vec<EmailAddress>,
    /// Addresses a provider reported as hard-bounced.
    pub hard_bounces: Vec<EmailAddress>,
}

/// Why an address is opted out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Another address of the contact (or this one) is a stop source.
    Propagation { source: EmailAddress },
    /// A provider reported a hard bounce for this address.
    Bounce,
}

/// The decision for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    OptOut(Reason),
    /// Already in a stop status: nothing to write.
    AlreadyStopped,
    /// In a terminal status (hard bounce, invalid, system, deactivated): nothing to write.
    Terminal,
    /// Not a target: no stop source on this contact, no bounce for this address.
    NotTargeted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The contact's stop sources (empty: nobody asked to stop).
    pub sources: Vec<EmailAddress>,
    /// One action per address, in the order given.
    pub actions: Vec<(EmailAddress, Action)>,
}

impl Decision {
    pub fn writes(&self) -> impl Iterator<Item = (&EmailAddress, &Reason)> {
        self.actions.iter().filter_map(|(e, a)| match a {
            Action::OptOut(r) => Some((e, r)),
            _ => None,
        })
    }
}

/// An address in this status no longer needs anything from optsync.
pub fn is_settled(status: EmailStatus) -> bool {
    status.is_stop() || status.is_terminal()
}

/// Decides what to do with one contact's addresses.
pub fn decide(addresses: &[AddressView], signals: &Signals) -> Decision {
    let named = |e: &EmailAddress| signals.stops.iter().any(|s| s.key() == e.key());
    let mut sources: Vec<EmailAddress> = addresses
        .iter()
        .filter(|a| a.is_stop_source() || named(&a.email))
        .map(|a| a.email.clone())
        .collect();
    sources.dedup_by(|a, b| a.key() == b.key());
    let actions = addresses
        .iter()
        .map(|a| {
            let bounced = signals
                .hard_bounces
                .iter()
                .any(|b| b.key() == a.email.key());
            let action = if a.status.is_stop() {
                Action::AlreadyStopped
            } else if a.status.is_terminal() {
                Action::Terminal
            } else if let Some(source) = sources.first() {
                Action::OptOut(Reason::Propagation {
                    source: source.clone(),
                })
            } else if bounced {
                Action::OptOut(Reason::Bounce)
            } else {
                Action::NotTargeted
            };
            (a.email.clone(), action)
        })
        .collect();
    Decision { sources, actions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EmailStatus::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn view(e: &str, status: EmailStatus, own: Option<OwnWrite>) -> AddressView {
        AddressView {
            email: addr(e),
            status,
            own_write: own,
        }
    }

    #[test]
    fn an_unsubscribe_on_one_address_opts_out_the_others() {
        let d = decide(
            &[
                view("a@x.example", Manual, None),
                view("b@relay.example", SingleOptIn, None),
                view("c@x.example", NonMarketable, None),
                view("d@x.example", HardBounce, None),
            ],
            &Signals::default(),
        );
        assert_eq!(d.sources, vec![addr("a@x.example")]);
        let src = Reason::Propagation {
            source: addr("a@x.example"),
        };
        assert_eq!(
            d.actions.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(),
            vec![
                Action::AlreadyStopped,
                Action::OptOut(src.clone()),
                Action::OptOut(src),
                Action::Terminal
            ]
        );
    }

    #[test]
    fn address_only_statuses_are_never_sources() {
        for st in [
            HardBounce,
            Bounce,
            Invalid,
            System,
            Deactivated,
            Lockdown,
            NonMarketable,
            UnengagedMarketable,
            UnengagedNonMarketable,
        ] {
            let d = decide(
                &[
                    view("a@x.example", st, None),
                    view("b@x.example", SingleOptIn, None),
                ],
                &Signals::default(),
            );
            assert!(d.sources.is_empty(), "{st}");
            assert_eq!(d.writes().count(), 0, "{st}");
        }
    }

    #[test]
    fn our_own_writes_are_not_sources_but_the_persons_later_opt_out_is() {
        let ours = [
            view("shared@x.example", Admin, Some(OwnWrite::Wrote(Admin))),
            view("colleague@x.example", SingleOptIn, None),
        ];
        assert_eq!(decide(&ours, &Signals::default()).writes().count(), 0);
        let intended = [
            view("shared@x.example", Admin, Some(OwnWrite::Intended)),
            view("colleague@x.example", SingleOptIn, None),
        ];
        assert_eq!(decide(&intended, &Signals::default()).writes().count(), 0);
        // The person clicked unsubscribe on it since: a different stop status than ours.
        let theirs = [
            view("shared@x.example", Manual, Some(OwnWrite::Wrote(Admin))),
            view("colleague@x.example", SingleOptIn, None),
        ];
        assert_eq!(decide(&theirs, &Signals::default()).writes().count(), 1);
    }

    #[test]
    fn provider_stops_are_sources_and_bounces_touch_one_address() {
        let addrs = [
            view("a@x.example", SingleOptIn, None),
            view("b@x.example", Confirmed, None),
        ];
        let d = decide(
            &addrs,
            &Signals {
                stops: vec![addr("B@X.example")],
                ..Signals::default()
            },
        );
        assert_eq!(d.writes().count(), 2);
        let d = decide(
            &addrs,
            &Signals {
                hard_bounces: vec![addr("b@x.example")],
                ..Signals::default()
            },
        );
        let w: Vec<_> = d.writes().collect();
        assert_eq!(w, vec![(&addr("b@x.example"), &Reason::Bounce)]);
    }

    mod properties {
        //! Any sequence of events on a small world with shared addresses, then the worker run
        //! on every contact until nothing changes: the invariants of the rules hold.

        use std::collections::{HashMap, HashSet};

        use proptest::prelude::*;

        use super::super::*;

        const ADDRESSES: usize = 6;

        #[derive(Debug, Clone)]
        enum Ev {
            /// The person behind an address asks to stop, through Keap (status set by Keap).
            PersonStops(usize, EmailStatus),
            /// A provider reports an unsubscribe or complaint for the address.
            ProviderStop(usize),
            HardBounce(usize),
            /// Deliverability bookkeeping Keap does on its own.
            AddressOnly(usize, EmailStatus),
            /// The worker looks at one contact.
            Work(usize),
        }

        struct World {
            contacts: Vec<Vec<usize>>,
            status: Vec<EmailStatus>,
            ledger: HashMap<usize, EmailStatus>,
            person_sources: HashSet<usize>,
            provider_stops: HashSet<usize>,
            bounced: HashSet<usize>,
            writes: Vec<(usize, EmailStatus, EmailStatus)>,
        }

        fn email(i: usize) -> EmailAddress {
            EmailAddress::parse(&format!("a{i}@x.example")).unwrap()
        }

        impl World {
            /// One worker pass over a contact; returns the number of writes.
            fn work(&mut self, c: usize) -> usize {
                let views: Vec<AddressView> = self.contacts[c]
                    .iter()
                    .map(|&i| AddressView {
                        email: email(i),
                        status: self.status[i],
                        own_write: self.ledger.get(&i).map(|s| OwnWrite::Wrote(*s)),
                    })
                    .collect();
                let signals = Signals {
                    stops: self.contacts[c]
                        .iter()
                        .filter(|i| self.provider_stops.contains(i))
                        .map(|&i| email(i))
                        .collect(),
                    hard_bounces: self.contacts[c]
                        .iter()
                        .filter(|i| self.bounced.contains(i))
                        .map(|&i| email(i))
                        .collect(),
                };
                let d = decide(&views, &signals);
                let mut n = 0;
                for (e, _) in d.writes() {
                    let i = (0..ADDRESSES).find(|&i| email(i) == *e).unwrap();
                    let before = self.status[i];
                    // Keap's API opt-out writes Admin.
                    self.status[i] = EmailStatus::Admin;
                    self.ledger.insert(i, EmailStatus::Admin);
                    self.writes.push((i, before, EmailStatus::Admin));
                    n += 1;
                }
                n
            }

            fn settle(&mut self) -> usize {
                let mut total = 0;
                loop {
                    let n: usize = (0..self.contacts.len()).map(|c| self.work(c)).sum();
                    total += n;
                    if n == 0 {
                        return total;
                    }
                }
            }
        }

        fn status() -> impl Strategy<Value = EmailStatus> {
            proptest::sample::select(EmailStatus::ALL.to_vec())
        }

        fn event(contacts: usize) -> impl Strategy<Value = Ev> {
            let stop = proptest::sample::select(vec![
                EmailStatus::Manual,
                EmailStatus::Admin,
                EmailStatus::ListUnsubscribe,
                EmailStatus::Feedback,
                EmailStatus::Spam,
            ]);
            let address_only = proptest::sample::select(vec![
                EmailStatus::HardBounce,
                EmailStatus::Bounce,
                EmailStatus::UnengagedNonMarketable,
                EmailStatus::NonMarketable,
                EmailStatus::System,
                EmailStatus::Lockdown,
            ]);
            prop_oneof![
                (0..ADDRESSES, stop).prop_map(|(a, s)| Ev::PersonStops(a, s)),
                (0..ADDRESSES).prop_map(Ev::ProviderStop),
                (0..ADDRESSES).prop_map(Ev::HardBounce),
                (0..ADDRESSES, address_only).prop_map(|(a, s)| Ev::AddressOnly(a, s)),
                (0..contacts).prop_map(Ev::Work),
            ]
        }

        fn world() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<EmailStatus>, Vec<Ev>)> {
            (1usize..5)
                .prop_flat_map(|n| {
                    (
                        proptest::collection::vec(
                            proptest::collection::btree_set(0..ADDRESSES, 1..=3),
                            n,
                        ),
                        proptest::collection::vec(status(), ADDRESSES),
                        proptest::collection::vec(event(n), 0..20),
                    )
                })
                .prop_map(|(c, s, e)| {
                    (
                        c.into_iter().map(|set| set.into_iter().collect()).collect(),
                        s,
                        e,
                    )
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            #[test]
            fn invariants_hold_after_any_sequence((contacts, initial, events) in world()) {
                let mut w = World {
                    contacts,
                    status: initial.clone(),
                    ledger: HashMap::new(),
                    person_sources: (0..ADDRESSES).filter(|&i| initial[i].is_stop()).collect(),
                    provider_stops: HashSet::new(),
                    bounced: HashSet::new(),
                    writes: Vec::new(),
                };
                for ev in events {
                    match ev {
                        Ev::PersonStops(a, s) => {
                            w.status[a] = s;
                            w.ledger.remove(&a);
                            w.person_sources.insert(a);
                        }
                        Ev::ProviderStop(a) => {
                            w.provider_stops.insert(a);
                        }
                        Ev::HardBounce(a) => {
                            w.bounced.insert(a);
                        }
                        Ev::AddressOnly(a, s) => {
                            // Keap never turns an opt-out back into something else on its own.
                            if !w.status[a].is_stop() {
                                w.status[a] = s;
                            }
                        }
                        Ev::Work(c) => {
                            w.work(c);
                        }
                    }
                }
                w.settle();

                let genuine: HashSet<usize> = w.person_sources.union(&w.provider_stops).copied().collect();
                for c in &w.contacts {
                    if c.iter().any(|a| genuine.contains(a)) {
                        // Every target of a stop source ends in a stop or terminal status.
                        for &a in c {
                            prop_assert!(is_settled(w.status[a]), "address {a} left {:?}", w.status[a]);
                        }
                    }
                }
                for &(a, before, after) in &w.writes {
                    // Nobody is ever opted in, and nothing settled is written again.
                    prop_assert!(!after.is_marketable());
                    prop_assert!(!is_settled(before));
                    // Each write is justified by a genuine source on a contact holding the
                    // address, or by a bounce of that very address: neither address-only
                    // statuses nor optsync's own writes ever act as sources.
                    let justified = w.bounced.contains(&a)
                        || w.contacts.iter().any(|c| c.contains(&a) && c.iter().any(|s| genuine.contains(s)));
                    prop_assert!(justified, "write to {a} has no genuine source");
                }
                // A rerun changes nothing.
                prop_assert_eq!(w.settle(), 0);
            }
        }
    }
}
