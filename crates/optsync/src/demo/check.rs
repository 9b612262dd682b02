//! Checking the demo's outcome: the rules applied independently to the state people left
//! (before the service did anything) say what every address must end as.

use std::collections::{BTreeMap, HashMap, HashSet};

use keap::EmailStatus;

use super::scenario::Scenario;
use crate::rules::is_settled;
use crate::store::{EventSource, HonouredEvent};

/// What the demo knows of Keap before and after, and what the providers reported.
pub struct World {
    /// Each contact's addresses, lower-cased.
    pub emails_of: HashMap<i64, Vec<String>>,
    /// Statuses as the people left them.
    pub pre: HashMap<String, EmailStatus>,
    /// Statuses once the service is done.
    pub after: HashMap<String, EmailStatus>,
    pub provider_stops: HashSet<String>,
    pub bounced: HashSet<String>,
}

impl World {
    /// A contact holding a stop source: every address must end stopped or dead.
    fn is_target(&self, id: i64) -> bool {
        self.emails_of[&id].iter().any(|e| {
            self.pre.get(e).is_some_and(|s| s.is_stop()) || self.provider_stops.contains(e)
        })
    }

    fn target_addresses(&self) -> HashSet<&String> {
        self.emails_of
            .iter()
            .filter(|(id, _)| self.is_target(**id))
            .flat_map(|(_, v)| v.iter())
            .collect()
    }

    /// Any other contact keeps its statuses, except an address it shares with a target or
    /// one a provider reported bounced.
    fn contact_ok(&self, id: i64, targets: &HashSet<&String>) -> bool {
        let v = &self.emails_of[&id];
        if self.is_target(id) {
            return v
                .iter()
                .all(|e| self.after.get(e).is_some_and(|s| is_settled(*s)));
        }
        v.iter().all(|e| {
            self.after.get(e) == self.pre.get(e)
                || targets.contains(e)
                || (self.bounced.contains(e) && self.after.get(e).is_some_and(|s| is_settled(*s)))
        })
    }
}

/// One scenario's line of the report.
#[derive(Debug, Default)]
pub struct Row {
    pub count: usize,
    pub correct: usize,
    /// Click to honoured, ms.
    pub times: Vec<u64>,
}

pub struct Outcome {
    pub rows: BTreeMap<Scenario, Row>,
    pub wrong: Vec<String>,
    pub others: usize,
    pub others_ok: usize,
}

/// When each contact (and each provider-reported address) was first honoured.
fn honoured_times(events: &[HonouredEvent]) -> (HashMap<i64, i64>, HashMap<String, i64>) {
    let mut by_contact: HashMap<i64, i64> = HashMap::new();
    let mut by_email: HashMap<String, i64> = HashMap::new();
    for e in events {
        if let Some(c) = e.contact_id {
            let honoured = e.honoured_at.as_i64();
            let at = by_contact.entry(c).or_insert(honoured);
            *at = (*at).min(honoured);
        }
        if let (EventSource::Provider(_), Some(email)) = (e.source, &e.email) {
            by_email.insert(email.to_lowercase(), e.honoured_at.as_i64());
        }
    }
    (by_contact, by_email)
}

pub fn check(
    world: &World,
    plan: &[(Scenario, i64)],
    clicked_at: &HashMap<i64, i64>,
    honoured: &[HonouredEvent],
) -> Outcome {
    let (by_contact, by_email) = honoured_times(honoured);
    let targets = world.target_addresses();
    let mut rows: BTreeMap<Scenario, Row> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (sc, id) in plan {
        let row = rows.entry(*sc).or_default();
        row.count += 1;
        if world.contact_ok(*id, &targets) {
            row.correct += 1;
        } else {
            let seen: Vec<_> = world.emails_of[id]
                .iter()
                .map(|a| (a, world.after.get(a)))
                .collect();
            wrong.push(format!("{}: contact {id} {seen:?}", sc.name()));
        }
        let honoured = by_contact
            .get(id)
            .or_else(|| world.emails_of[id].iter().find_map(|e| by_email.get(e)));
        if let (Some(h), Some(c)) = (honoured, clicked_at.get(id))
            && (world.is_target(*id) || sc.provider())
        {
            row.times.push((h - c).max(0) as u64);
        }
    }
    let planned: HashSet<i64> = plan.iter().map(|(_, id)| *id).collect();
    let others: Vec<i64> = world
        .emails_of
        .keys()
        .copied()
        .filter(|id| !planned.contains(id))
        .collect();
    let others_ok = others
        .iter()
        .filter(|id| world.contact_ok(**id, &targets))
        .count();
    if others_ok != others.len() {
        wrong.push(format!(
            "{} of {} other contacts are not as the rules require",
            others.len() - others_ok,
            others.len()
        ));
    }
    Outcome {
        rows,
        wrong,
        others: others.len(),
        others_ok,
    }
}

pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[idx.min(sorted.len() - 1)])
}
