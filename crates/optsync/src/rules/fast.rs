//! The Keap-post fast path, pure: when a Keap post may be honoured by writing the post's
//! other addresses without reading the contact first, and what a write's answer means.
//!
//! Keap's post says that one of the contact's addresses was opted out, not which one. The
//! fast path presumes it is the address in the field that held the stop in this app's last
//! post (an app sends either from Keap, to `Email`, or through a relay, to `EmailAddress2`),
//! writes every other address of the post, and takes each write's answer as the status
//! after. That is sound only while an answer tells our write from the person's own stop:
//! the app's REST write must leave a stop status the post never fires for (not `Manual` or
//! `Spam`, which the unsubscribe form sets), and every answer must be exactly that status.
//! Anything else — a different stop (the presumed source was wrong: the person's stop was
//! on the address written), a status that is not a stop, a refusal, an error — sends the job
//! back to reading the contact first.

use keap::{EmailAddress, EmailField, EmailStatus};

use super::OwnWrite;

/// The statuses Keap's opt-out post fires for: the unsubscribe form's link (`Manual`) and
/// its "this is spam" (`Spam`). A write that leaves one of these cannot be told from the
/// person's own opt-out, so no fast path there.
pub const POST_STOPS: [EmailStatus; 2] = [EmailStatus::Manual, EmailStatus::Spam];

/// What the job knows without asking Keap.
#[derive(Debug, Clone)]
pub struct Known<'a> {
    /// The post's addresses, by field.
    pub posted: &'a [(EmailField, EmailAddress)],
    /// optsync's own last write to each posted address, in the same order.
    pub own: &'a [Option<OwnWrite>],
    /// The field that held the person's stop in this app's last post (`Email` when none is
    /// known yet).
    pub source_field: EmailField,
    /// The status this app's REST write left when last it took, if known.
    pub written: Option<EmailStatus>,
    /// The local address index is fresh and holds exactly the post's addresses for the
    /// contact (so the post names no address the contact does not have).
    pub index_agrees: bool,
}

/// What to do with a Keap post's contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Read the contact first, as for any other job; the reason is logged.
    ReadFirst(&'static str),
    /// Write `targets` without reading; `source` is presumed to hold the person's stop, and
    /// each answer must be `expect`.
    Write {
        source: EmailAddress,
        targets: Vec<EmailAddress>,
        expect: EmailStatus,
    },
}

/// Decides whether the fast path may serve the post.
pub fn plan(k: &Known) -> Plan {
    if k.posted.is_empty() {
        return Plan::ReadFirst("the post gave no addresses");
    }
    if !k.index_agrees {
        return Plan::ReadFirst("the address index does not hold the post's addresses");
    }
    let Some(expect) = k.written else {
        return Plan::ReadFirst("the status the app's REST write leaves is not known yet");
    };
    if !expect.is_stop() || POST_STOPS.contains(&expect) {
        return Plan::ReadFirst("the app's REST write cannot be told from a person's opt-out");
    }
    if k.own.iter().any(Option::is_some) {
        return Plan::ReadFirst("optsync has written one of the post's addresses before");
    }
    let Some((_, source)) = k.posted.iter().find(|(f, _)| *f == k.source_field) else {
        return Plan::ReadFirst("the post has no address in the usual source field");
    };
    let mut targets: Vec<EmailAddress> = Vec::new();
    for (_, e) in k.posted {
        if e.key() != source.key() && !targets.iter().any(|t| t.key() == e.key()) {
            targets.push(e.clone());
        }
    }
    if targets.is_empty() {
        return Plan::ReadFirst("the post has no other address to write");
    }
    Plan::Write {
        source: source.clone(),
        targets,
        expect,
    }
}

/// What one fast write's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The answer is the status the app's write leaves: optsync wrote it.
    Written(EmailStatus),
    /// Anything else: the job reads the contact and decides as any other job.
    Surprise,
}

/// Judges a write's answer (`None`: refused, or no status in the answer).
pub fn judge(answer: Option<EmailStatus>, expect: EmailStatus) -> Verdict {
    match answer {
        Some(s) if s == expect && s.is_stop() => Verdict::Written(s),
        _ => Verdict::Surprise,
    }
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
