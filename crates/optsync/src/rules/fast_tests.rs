//! The fast path's decisions: examples, and a world in which Keap's post names a contact
//! whose person stopped on any one of its addresses.

use std::collections::HashMap;

use keap::{EmailAddress, EmailField, EmailStatus};
use proptest::prelude::*;

use super::*;
use crate::rules::{AddressView, Signals, decide, is_settled};

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn two() -> Vec<(EmailField, EmailAddress)> {
    vec![
        (EmailField::Email1, addr("ann@x.example")),
        (EmailField::Email2, addr("ann@relay.example")),
    ]
}

fn known<'a>(posted: &'a [(EmailField, EmailAddress)], own: &'a [Option<OwnWrite>]) -> Known<'a> {
    Known {
        posted,
        own,
        source_field: EmailField::Email1,
        written: Some(EmailStatus::Admin),
        index_agrees: true,
    }
}

#[test]
fn the_other_address_is_written_when_everything_is_known() {
    let posted = two();
    let own = [None, None];
    assert_eq!(
        plan(&known(&posted, &own)),
        Plan::Write {
            source: addr("ann@x.example"),
            targets: vec![addr("ann@relay.example")],
            expect: EmailStatus::Admin,
        }
    );
    let relay = Known {
        source_field: EmailField::Email2,
        ..known(&posted, &own)
    };
    assert!(
        matches!(plan(&relay), Plan::Write { source, targets, .. } if source == addr("ann@relay.example") && targets == vec![addr("ann@x.example")])
    );
}

#[test]
fn anything_unknown_reads_first() {
    let posted = two();
    let own = [None, None];
    let base = known(&posted, &own);
    let read_first = |k: Known| matches!(plan(&k), Plan::ReadFirst(_));
    assert!(read_first(Known {
        posted: &[],
        ..base.clone()
    }));
    assert!(read_first(Known {
        index_agrees: false,
        ..base.clone()
    }));
    assert!(read_first(Known {
        written: None,
        ..base.clone()
    }));
    for w in [
        EmailStatus::Manual,
        EmailStatus::Spam,
        EmailStatus::HardBounce,
    ] {
        assert!(
            read_first(Known {
                written: Some(w),
                ..base.clone()
            }),
            "{w}"
        );
    }
    assert!(read_first(Known {
        own: &[None, Some(OwnWrite::Intended)],
        ..base.clone()
    }));
    assert!(read_first(Known {
        source_field: EmailField::Email3,
        ..base.clone()
    }));
    let one = [(EmailField::Email1, addr("solo@x.example"))];
    assert!(read_first(Known {
        posted: &one,
        own: &[None],
        ..base
    }));
}

#[test]
fn only_the_expected_stop_is_taken_as_written() {
    use EmailStatus::*;
    assert_eq!(judge(Some(Admin), Admin), Verdict::Written(Admin));
    for answer in [Some(Manual), Some(SingleOptIn), Some(HardBounce), None] {
        assert_eq!(judge(answer, Admin), Verdict::Surprise, "{answer:?}");
    }
}

// ---------------------------------------------------------------- the world

/// Keap's REST write: a stop or terminal status stays (the API never overwrites an
/// opt-out); anything else becomes `w`. Answers the status after, or nothing when the app
/// ignores the write (then nothing changes).
fn patch(status: &mut EmailStatus, w: EmailStatus, ignored: bool) -> Option<EmailStatus> {
    if !ignored && !is_settled(*status) {
        *status = w;
    }
    Some(*status)
}

#[derive(Debug, Clone)]
struct Case {
    /// Each posted address's status before the person stopped.
    before: Vec<EmailStatus>,
    /// Which address the person stopped, and with which of the post's statuses.
    stopped: usize,
    stop: EmailStatus,
    hint: EmailField,
    written: EmailStatus,
    /// Keap ignores REST writes (answers the status unchanged).
    ignored: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let status = proptest::sample::select(EmailStatus::ALL.to_vec());
    (1usize..=3)
        .prop_flat_map(move |n| {
            (
                proptest::collection::vec(status.clone(), n),
                0..n,
                proptest::sample::select(POST_STOPS.to_vec()),
                proptest::sample::select(EmailField::ALL.to_vec()),
                proptest::sample::select(EmailStatus::ALL.to_vec()),
                any::<bool>(),
            )
        })
        .prop_map(|(before, stopped, stop, hint, written, ignored)| Case {
            before,
            stopped,
            stop,
            hint,
            written,
            ignored,
        })
}

/// What a job did in the world: Keap's statuses after, the addresses it wrote and what its
/// ledger says it wrote.
struct Ran {
    status: Vec<EmailStatus>,
    writes: Vec<usize>,
    ledger: HashMap<usize, EmailStatus>,
    fast: bool,
}

/// One job for the post: the fast path where it plans to, then (on a surprise, or when it
/// reads first) the rules on the contact as Keap has it, knowing the ledger.
fn run(c: &Case) -> Ran {
    let emails: Vec<EmailAddress> = (0..c.before.len())
        .map(|i| addr(&format!("a{i}@x.example")))
        .collect();
    let posted: Vec<(EmailField, EmailAddress)> =
        EmailField::ALL.into_iter().zip(emails.clone()).collect();
    let mut status = c.before.clone();
    status[c.stopped] = c.stop;
    let index = |e: &EmailAddress| emails.iter().position(|x| x == e).unwrap();
    let mut ran = Ran {
        status,
        writes: Vec::new(),
        ledger: HashMap::new(),
        fast: false,
    };
    let own = vec![None; emails.len()];
    let k = Known {
        posted: &posted,
        own: &own,
        source_field: c.hint,
        written: Some(c.written),
        index_agrees: true,
    };
    let mut surprised = true;
    if let Plan::Write {
        targets, expect, ..
    } = plan(&k)
    {
        ran.fast = true;
        surprised = false;
        for t in &targets {
            let i = index(t);
            ran.writes.push(i);
            let answer = patch(&mut ran.status[i], c.written, c.ignored);
            match judge(answer, expect) {
                Verdict::Written(s) => {
                    ran.ledger.insert(i, s);
                }
                // The answer is not our write: the intent is withdrawn, nothing recorded.
                Verdict::Surprise => {
                    surprised = true;
                    break;
                }
            }
        }
    }
    if surprised {
        read_first(&emails, c, &mut ran);
    }
    ran
}

fn read_first(emails: &[EmailAddress], c: &Case, ran: &mut Ran) {
    let views: Vec<AddressView> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| AddressView {
            email: e.clone(),
            status: ran.status[i],
            own_write: ran.ledger.get(&i).map(|s| OwnWrite::Wrote(*s)),
        })
        .collect();
    let d = decide(&views, &Signals::default());
    for (e, _) in d.writes() {
        let i = emails.iter().position(|x| x == e).unwrap();
        ran.writes.push(i);
        // The read-first path verifies by reading back and falls back to XML-RPC where the
        // PATCH does not leave a stop: some path settles the address (`Admin`).
        let w = if !c.ignored && is_settled(c.written) {
            c.written
        } else {
            EmailStatus::Admin
        };
        patch(&mut ran.status[i], w, false);
        if is_settled(ran.status[i]) {
            ran.ledger.insert(i, ran.status[i]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Whatever address the person stopped and whatever the app's write does: every address
    /// of the contact ends settled when a write path works, the person's stop is never taken
    /// for optsync's own write, nothing is opted in, and nothing outside the post is written.
    #[test]
    fn a_post_ends_with_every_address_settled(c in case()) {
        let ran = run(&c);
        for (i, s) in ran.status.iter().enumerate() {
            prop_assert!(is_settled(*s), "address {i} left {s:?}: {c:?}");
        }
        prop_assert!(!ran.ledger.contains_key(&c.stopped), "the person's stop taken for ours: {c:?}");
        prop_assert_eq!(ran.status[c.stopped], c.stop, "the person's stop was overwritten");
        for (i, s) in ran.status.iter().enumerate() {
            prop_assert!(!is_settled(c.before[i]) || is_settled(*s), "address {i} un-stopped");
        }
        prop_assert!(ran.writes.iter().all(|&i| i < c.before.len()));
    }

    /// The fast path's plan writes every posted address but the presumed source, only those,
    /// each once, and expects a stop the post never fires for.
    #[test]
    fn a_plan_writes_every_other_posted_address(c in case()) {
        let emails: Vec<EmailAddress> = (0..c.before.len())
            .map(|i| addr(&format!("a{i}@x.example")))
            .collect();
        let posted: Vec<(EmailField, EmailAddress)> =
            EmailField::ALL.into_iter().zip(emails.clone()).collect();
        let own = vec![None; emails.len()];
        let k = Known { posted: &posted, own: &own, source_field: c.hint, written: Some(c.written), index_agrees: true };
        if let Plan::Write { source, targets, expect } = plan(&k) {
            prop_assert!(expect.is_stop() && !POST_STOPS.contains(&expect));
            prop_assert!(!targets.contains(&source));
            let mut want: Vec<&EmailAddress> = emails.iter().filter(|e| **e != source).collect();
            want.sort();
            let mut got: Vec<&EmailAddress> = targets.iter().collect();
            got.sort();
            prop_assert_eq!(got, want);
        }
    }

    /// Any answer but the expected stop is a surprise; a write is never recorded as
    /// anything but a stop.
    #[test]
    fn only_the_expected_stop_is_ever_recorded(
        answer in proptest::option::of(proptest::sample::select(EmailStatus::ALL.to_vec())),
        expect in proptest::sample::select(EmailStatus::ALL.to_vec()),
    ) {
        match judge(answer, expect) {
            Verdict::Written(s) => prop_assert!(s.is_stop() && Some(s) == answer && s == expect),
            Verdict::Surprise => prop_assert!(answer != Some(expect) || !expect.is_stop()),
        }
    }
}
