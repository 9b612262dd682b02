//! Deterministic, realistic seed data: most contacts have a relay alias in EMAIL2 (the setup
//! this project exists for), some an EMAIL3, a few share an address with another contact, and
//! the addresses' statuses cover all 17 of Keap's.

use keap::EmailStatus;

use crate::store::Store;

/// SplitMix64: a fixed, documented generator, so that a seed gives the same contacts whatever
/// version of any random-number crate is in the tree.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const FIRST: [&str; 16] = [
    "ann", "bob", "carla", "dev", "erin", "farid", "grace", "hiro", "ines", "jon", "kemi", "luis",
    "maya", "nils", "olga", "priya",
];
const LAST: [&str; 12] = [
    "smith", "garcia", "chen", "okafor", "muller", "rossi", "tanaka", "novak", "silva", "khan",
    "dubois", "berg",
];
const DOMAINS: [&str; 6] = [
    "example.com",
    "example.org",
    "example.net",
    "acme.example",
    "mail.example",
    "corp.example",
];
const RELAYS: [&str; 2] = ["relay.wedeliver.example", "fwd.mailrelay.example"];

/// A status drawn the way a real account's addresses are spread: mostly marketable, a tail of
/// every other kind.
fn draw_status(rng: &mut SplitMix) -> EmailStatus {
    use EmailStatus::*;
    match rng.below(100) {
        0..45 => SingleOptIn,
        45..60 => Confirmed,
        60..64 => DoubleOptIn,
        64..72 => UnengagedMarketable,
        72..77 => UnengagedNonMarketable,
        77..82 => NonMarketable,
        n => [
            Lockdown,
            Bounce,
            HardBounce,
            Manual,
            Admin,
            System,
            ListUnsubscribe,
            Feedback,
            Spam,
            Invalid,
            Deactivated,
        ][(n as usize - 82) % 11],
    }
}

/// Adds `n` contacts generated from `seed`.
pub fn seed(store: &mut Store, n: usize, seed: u64, now_ms: u64) {
    let mut rng = SplitMix(seed ^ 0x6B65_6170_2D73_696D);
    for i in 0..n {
        let first = FIRST[rng.below(FIRST.len() as u64) as usize];
        let last = LAST[rng.below(LAST.len() as u64) as usize];
        let domain = DOMAINS[rng.below(DOMAINS.len() as u64) as usize];
        let mut email1 = format!("{first}.{last}{i}@{domain}");
        if rng.chance(5) {
            // Some addresses were typed with capitals; Keap keys them case-insensitively.
            email1 = format!("{}{}", first[..1].to_uppercase(), &email1[1..]);
        }
        let mut email2 = rng.chance(80).then(|| {
            format!(
                "u{i}x{:06x}@{}",
                rng.next() & 0xFF_FFFF,
                RELAYS[rng.below(2) as usize]
            )
        });
        let mut email3 = rng.chance(15).then(|| format!("{first}{i}@work.example"));
        let existing = store.contacts.len() as u64;
        if existing > 0 && rng.chance(3) {
            // A shared address: another contact's EMAIL1 (an office inbox, a family address).
            let other = rng.below(existing) as i64 + 1;
            let shared = store.contacts.get(&other).and_then(|c| c.emails[0].clone());
            match rng.below(3) {
                0 => email1 = shared.unwrap_or(email1),
                1 => email2 = shared.or(email2),
                _ => email3 = shared.or(email3),
            }
        }
        let emails = [Some(email1), email2, email3];
        let fresh: Vec<String> = emails
            .iter()
            .flatten()
            .filter(|e| store.row(e).is_none())
            .cloned()
            .collect();
        let created = now_ms.saturating_sub(rng.below(3 * 365 * 86_400_000));
        store.add_contact(
            &capitalise(first),
            &capitalise(last),
            emails,
            EmailStatus::SingleOptIn,
            created,
        );
        for (k, e) in fresh.iter().enumerate() {
            // The first 17 contacts' EMAIL1 cover every status, whatever the seed.
            let status = if i < EmailStatus::ALL.len() && k == 0 {
                EmailStatus::ALL[i]
            } else {
                draw_status(&mut rng)
            };
            store.set_status(e, status, "seed", created);
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn seeding_is_deterministic_and_realistic() {
        let (mut a, mut b) = (Store::new(), Store::new());
        seed(&mut a, 2000, 7, 1_700_000_000_000);
        seed(&mut b, 2000, 7, 1_700_000_000_000);
        let emails = |s: &Store| {
            s.contacts
                .values()
                .map(|c| c.emails.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(emails(&a), emails(&b));
        let statuses: HashSet<_> = a.rows.values().map(|r| r.status).collect();
        assert_eq!(statuses.len(), 17, "every status appears");
        let with_relay = a
            .contacts
            .values()
            .filter(|c| c.emails[1].as_deref().is_some_and(|e| e.contains("relay")))
            .count();
        assert!(
            with_relay > 1400,
            "most contacts have a relay alias: {with_relay}"
        );
        assert!(a.contacts.values().any(|c| c.emails[2].is_some()));
        let shared = a.rows.keys().filter(|k| a.holders(k).len() > 1).count();
        assert!(shared > 10, "some addresses are shared: {shared}");
        let mut c = Store::new();
        seed(&mut c, 2000, 8, 1_700_000_000_000);
        assert_ne!(emails(&a), emails(&c));
    }
}
