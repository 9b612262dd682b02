//! The emulated app's data: the `Contact` table and the `EmailAddStatus` table.
//!
//! Status belongs to the address, not the contact (one `EmailAddStatus` row per address), so
//! two contacts sharing an address share its status — exactly the situation that makes
//! opt-out propagation delicate.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use keap::EmailStatus;

/// A contact record. `emails[0]` is `Email` (EMAIL1), then `EmailAddress2`, `EmailAddress3`.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    pub emails: [Option<String>; 3],
    pub date_created_ms: u64,
    pub last_updated_ms: u64,
}

/// One `EmailAddStatus` row.
#[derive(Debug, Clone)]
pub struct AddressRow {
    pub id: i64,
    /// The address as first written (Keap keys rows case-insensitively).
    pub email: String,
    pub status: EmailStatus,
    pub date_created_ms: u64,
    pub last_sent_ms: Option<u64>,
    pub last_open_ms: Option<u64>,
    pub last_click_ms: Option<u64>,
    pub reason: Option<String>,
}

/// The lookup key Keap uses for an address: trimmed and case-folded.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

#[derive(Debug, Default)]
pub struct Store {
    pub contacts: BTreeMap<i64, Contact>,
    pub rows: HashMap<String, AddressRow>,
    /// address key → ids of the contacts holding it in any of the three fields.
    holders: HashMap<String, BTreeSet<i64>>,
    next_contact_id: i64,
    next_row_id: i64,
}

/// What a status change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub before: Option<EmailStatus>,
    pub after: EmailStatus,
}

impl Change {
    pub fn changed(&self) -> bool {
        self.before != Some(self.after)
    }
}

impl Store {
    pub fn new() -> Self {
        Self {
            next_contact_id: 1,
            next_row_id: 1,
            ..Self::default()
        }
    }

    /// Adds a contact. Addresses that have no status row yet get `initial`; addresses that
    /// already have one keep it (status is the address's, not the contact's).
    pub fn add_contact(
        &mut self,
        first_name: &str,
        last_name: &str,
        emails: [Option<String>; 3],
        initial: EmailStatus,
        now_ms: u64,
    ) -> i64 {
        let id = self.next_contact_id;
        self.next_contact_id += 1;
        let emails = emails.map(|e| e.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
        for e in emails.iter().flatten() {
            self.ensure_row(e, initial, now_ms);
            self.holders.entry(email_key(e)).or_default().insert(id);
        }
        self.contacts.insert(
            id,
            Contact {
                id,
                first_name: first_name.to_string(),
                last_name: last_name.to_string(),
                emails,
                date_created_ms: now_ms,
                last_updated_ms: now_ms,
            },
        );
        id
    }

    fn ensure_row(&mut self, email: &str, initial: EmailStatus, now_ms: u64) -> &mut AddressRow {
        let key = email_key(email);
        let next = &mut self.next_row_id;
        self.rows.entry(key).or_insert_with(|| {
            let id = *next;
            *next += 1;
            AddressRow {
                id,
                email: email.trim().to_string(),
                status: initial,
                date_created_ms: now_ms,
                last_sent_ms: None,
                last_open_ms: None,
                last_click_ms: None,
                reason: None,
            }
        })
    }

    pub fn row(&self, email: &str) -> Option<&AddressRow> {
        self.rows.get(&email_key(email))
    }

    pub fn status(&self, email: &str) -> Option<EmailStatus> {
        self.row(email).map(|r| r.status)
    }

    /// Sets an address's status unconditionally (a simulated event), creating its row.
    pub fn set_status(
        &mut self,
        email: &str,
        status: EmailStatus,
        reason: &str,
        now_ms: u64,
    ) -> Change {
        let row = self.ensure_row(email, status, now_ms);
        let before = row.status;
        row.status = status;
        row.reason = Some(reason.to_string());
        Change {
            before: Some(before),
            after: status,
        }
    }

    /// An API opt-out. Keap will not overwrite a status in which the address is already opted
    /// out or dead (a stop status or a terminal one): only marketable, non-marketable,
    /// unengaged, soft-bounced and lockdown addresses change. An unknown address gets a new,
    /// opted-out row.
    pub fn opt_out(&mut self, email: &str, to: EmailStatus, reason: &str, now_ms: u64) -> Change {
        let existed = self.rows.contains_key(&email_key(email));
        let row = self.ensure_row(email, to, now_ms);
        let before = existed.then_some(row.status);
        let writable = match before {
            None => true,
            Some(s) => {
                s.is_marketable()
                    || matches!(
                        s,
                        EmailStatus::NonMarketable
                            | EmailStatus::UnengagedNonMarketable
                            | EmailStatus::Bounce
                            | EmailStatus::Lockdown
                    )
            }
        };
        if writable {
            row.status = to;
            row.reason = Some(reason.to_string());
        }
        Change {
            before,
            after: row.status,
        }
    }

    /// An API opt-in, which Keap grants only from the states listed in `from`; an unknown
    /// address gets a new `SingleOptIn` row.
    pub fn opt_in(
        &mut self,
        email: &str,
        from: &[EmailStatus],
        reason: &str,
        now_ms: u64,
    ) -> Change {
        let existed = self.rows.contains_key(&email_key(email));
        let row = self.ensure_row(email, EmailStatus::SingleOptIn, now_ms);
        if !existed {
            row.reason = Some(reason.to_string());
            return Change {
                before: None,
                after: EmailStatus::SingleOptIn,
            };
        }
        let before = row.status;
        if from.contains(&before) {
            row.status = EmailStatus::SingleOptIn;
            row.reason = Some(reason.to_string());
        }
        Change {
            before: Some(before),
            after: row.status,
        }
    }

    /// The id the next contact gets (ids only grow, as in Keap). For fixtures that need
    /// particular ids.
    pub fn set_next_contact_id(&mut self, id: i64) {
        self.next_contact_id = self.next_contact_id.max(id);
    }

    /// Ids of the contacts holding an address in any field, ascending.
    pub fn holders(&self, email: &str) -> Vec<i64> {
        self.holders
            .get(&email_key(email))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Replaces a contact's addresses (keeps the holder index right).
    pub fn set_contact_emails(
        &mut self,
        id: i64,
        emails: [Option<String>; 3],
        initial: EmailStatus,
        now_ms: u64,
    ) -> bool {
        let Some(old) = self.contacts.get(&id).map(|c| c.emails.clone()) else {
            return false;
        };
        for e in old.iter().flatten() {
            if let Some(set) = self.holders.get_mut(&email_key(e)) {
                set.remove(&id);
            }
        }
        for e in emails.iter().flatten() {
            self.ensure_row(e, initial, now_ms);
            self.holders.entry(email_key(e)).or_default().insert(id);
        }
        if let Some(c) = self.contacts.get_mut(&id) {
            c.emails = emails;
            c.last_updated_ms = now_ms;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keap::EmailStatus::*;

    #[test]
    fn shared_addresses_share_one_status() {
        let mut s = Store::new();
        let a = s.add_contact(
            "A",
            "X",
            [Some("office@acme.example".into()), None, None],
            SingleOptIn,
            0,
        );
        let b = s.add_contact(
            "B",
            "Y",
            [
                Some("b@acme.example".into()),
                Some("Office@ACME.example".into()),
                None,
            ],
            Confirmed,
            0,
        );
        assert_eq!(s.holders("OFFICE@acme.example"), vec![a, b]);
        assert_eq!(s.status("office@acme.example"), Some(SingleOptIn));
        s.set_status("office@acme.example", Manual, "link", 1);
        assert_eq!(s.status("Office@Acme.Example"), Some(Manual));
    }

    #[test]
    fn api_opt_out_never_overwrites_an_opt_out_or_a_dead_address() {
        let mut s = Store::new();
        for (st, writes) in [
            (SingleOptIn, true),
            (NonMarketable, true),
            (Bounce, true),
            (Manual, false),
            (HardBounce, false),
            (System, false),
        ] {
            let e = format!("{}@x.example", st.type_name());
            s.set_status(&e, st, "seed", 0);
            let c = s.opt_out(&e, Admin, "api", 1);
            assert_eq!(c.changed(), writes, "{st}");
        }
        let c = s.opt_out("new@x.example", Admin, "api", 1);
        assert_eq!((c.before, c.after), (None, Admin));
    }
}
