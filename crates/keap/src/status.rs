//! The 17 email-address statuses Keap knows, in every spelling its APIs use.
//!
//! Keap keeps opt-in status per *address* (the `EmailAddStatus` table), not per contact.
//! XML-RPC and REST v1 spell it as a `Type` (`SingleOptIn`, `HardBounce`, …), REST v2 as
//! SCREAMING_SNAKE (`SINGLE_OPT_IN`), and REST v1's `PUT /emailAddresses` as a display label
//! (`Unconfirmed`, `Opt-Out: Admin`, …). All three parse into one enum here.

use std::fmt;
use std::str::FromStr;

/// An email address's status in Keap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EmailStatus {
    UnengagedMarketable,
    SingleOptIn,
    DoubleOptIn,
    Confirmed,
    UnengagedNonMarketable,
    NonMarketable,
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
}

/// Why an address is not (or no longer) marketable: because the person asked, or because of
/// the address itself. Only the first kind may ever spread to a contact's other addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// Marketable: mail may be sent.
    Marketable,
    /// The person asked to stop (unsubscribe link, user opt-out on request, List-Unsubscribe,
    /// ISP complaint, spam report).
    Stop,
    /// Deliverability or consent bookkeeping about this address only.
    AddressOnly,
}

impl EmailStatus {
    /// Every status, in Keap's own order (§5.3 of the reference).
    pub const ALL: [EmailStatus; 17] = [
        Self::UnengagedMarketable,
        Self::SingleOptIn,
        Self::DoubleOptIn,
        Self::Confirmed,
        Self::UnengagedNonMarketable,
        Self::NonMarketable,
        Self::Lockdown,
        Self::Bounce,
        Self::HardBounce,
        Self::Manual,
        Self::Admin,
        Self::System,
        Self::ListUnsubscribe,
        Self::Feedback,
        Self::Spam,
        Self::Invalid,
        Self::Deactivated,
    ];

    /// The XML-RPC / REST v1 `Type` spelling (`DoubleOptin` with Keap's lower-case "in").
    pub fn type_name(self) -> &'static str {
        match self {
            Self::UnengagedMarketable => "UnengagedMarketable",
            Self::SingleOptIn => "SingleOptIn",
            Self::DoubleOptIn => "DoubleOptin",
            Self::Confirmed => "Confirmed",
            Self::UnengagedNonMarketable => "UnengagedNonMarketable",
            Self::NonMarketable => "NonMarketable",
            Self::Lockdown => "Lockdown",
            Self::Bounce => "Bounce",
            Self::HardBounce => "HardBounce",
            Self::Manual => "Manual",
            Self::Admin => "Admin",
            Self::System => "System",
            Self::ListUnsubscribe => "ListUnsubscribe",
            Self::Feedback => "Feedback",
            Self::Spam => "Spam",
            Self::Invalid => "Invalid",
            Self::Deactivated => "Deactivated",
        }
    }

    /// The REST v2 enum spelling.
    pub fn v2_name(self) -> &'static str {
        match self {
            Self::UnengagedMarketable => "UNENGAGED_MARKETABLE",
            Self::SingleOptIn => "SINGLE_OPT_IN",
            Self::DoubleOptIn => "DOUBLE_OPT_IN",
            Self::Confirmed => "CONFIRMED",
            Self::UnengagedNonMarketable => "UNENGAGED_NON_MARKETABLE",
            Self::NonMarketable => "NON_MARKETABLE",
            Self::Lockdown => "LOCKDOWN",
            Self::Bounce => "BOUNCE",
            Self::HardBounce => "HARD_BOUNCE",
            Self::Manual => "MANUAL",
            Self::Admin => "ADMIN",
            Self::System => "SYSTEM",
            Self::ListUnsubscribe => "LIST_UNSUBSCRIBE",
            Self::Feedback => "FEEDBACK",
            Self::Spam => "SPAM",
            Self::Invalid => "INVALID",
            Self::Deactivated => "DEACTIVATED",
        }
    }

    /// The display label (REST v1 `PUT /emailAddresses`, early v2, Keap's UI).
    pub fn label(self) -> &'static str {
        match self {
            Self::UnengagedMarketable => "Unengaged Marketable",
            Self::SingleOptIn => "Unconfirmed",
            Self::DoubleOptIn => "Confirmed (Legacy)",
            Self::Confirmed => "Confirmed",
            Self::UnengagedNonMarketable => "Unengaged NonMarketable",
            Self::NonMarketable => "Non-marketable",
            Self::Lockdown => "Lockdown",
            Self::Bounce => "Soft Bounce",
            Self::HardBounce => "Hard Bounce",
            Self::Manual => "Opt-Out",
            Self::Admin => "Opt-Out: Admin",
            Self::System => "Opt-Out: System",
            Self::ListUnsubscribe => "List Unsubscribe",
            Self::Feedback => "Provided Feedback",
            Self::Spam => "Reported Spam",
            Self::Invalid => "Invalid Email",
            Self::Deactivated => "Deactivated/Delinquent Mailbox",
        }
    }

    /// Whether Keap will send marketing mail to an address in this status.
    pub fn is_marketable(self) -> bool {
        matches!(
            self,
            Self::UnengagedMarketable | Self::SingleOptIn | Self::DoubleOptIn | Self::Confirmed
        )
    }

    pub fn class(self) -> StatusClass {
        match self {
            s if s.is_marketable() => StatusClass::Marketable,
            Self::Manual | Self::Admin | Self::ListUnsubscribe | Self::Feedback | Self::Spam => {
                StatusClass::Stop
            }
            _ => StatusClass::AddressOnly,
        }
    }

    /// The person behind the address asked to stop.
    pub fn is_stop(self) -> bool {
        self.class() == StatusClass::Stop
    }

    /// Statuses that only the person's own opt-in can leave: once an address is here, optsync
    /// has nothing left to do for it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::HardBounce | Self::Invalid | Self::System | Self::Deactivated
        )
    }

    /// `APIEmailService.getOptStatus`'s integer: 2 double opt-in/confirmed, 1 single opt-in
    /// (and unengaged-but-marketable), 0 for everything else.
    pub fn opt_status_int(self) -> i32 {
        match self {
            Self::DoubleOptIn | Self::Confirmed => 2,
            Self::SingleOptIn | Self::UnengagedMarketable => 1,
            _ => 0,
        }
    }
}

impl fmt::Display for EmailStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// A status string that none of Keap's spellings matches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown email status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for EmailStatus {
    type Err = UnknownStatus;

    /// Parses the `Type`, v2 and display-label spellings. `DoubleOptIn` (third-party spelling)
    /// is accepted too; matching is exact otherwise, because the labels differ only in case
    /// and punctuation (`Opt-Out` vs `Opt-Out: Admin`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "DoubleOptIn" {
            return Ok(Self::DoubleOptIn);
        }
        Self::ALL
            .into_iter()
            .find(|st| st.type_name() == s || st.v2_name() == s || st.label() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for st in EmailStatus::ALL {
            assert_eq!(st.type_name().parse::<EmailStatus>(), Ok(st));
            assert_eq!(st.v2_name().parse::<EmailStatus>(), Ok(st));
            assert_eq!(st.label().parse::<EmailStatus>(), Ok(st));
        }
        assert_eq!("DoubleOptIn".parse(), Ok(EmailStatus::DoubleOptIn));
        assert!("OptOut".parse::<EmailStatus>().is_err());
    }

    #[test]
    fn classification_matches_the_design_rules() {
        use EmailStatus::*;
        let stops: Vec<_> = EmailStatus::ALL
            .into_iter()
            .filter(|s| s.is_stop())
            .collect();
        assert_eq!(stops, vec![Manual, Admin, ListUnsubscribe, Feedback, Spam]);
        let marketable: Vec<_> = EmailStatus::ALL
            .into_iter()
            .filter(|s| s.is_marketable())
            .collect();
        assert_eq!(
            marketable,
            vec![UnengagedMarketable, SingleOptIn, DoubleOptIn, Confirmed]
        );
        for s in [
            HardBounce,
            Bounce,
            Invalid,
            System,
            Deactivated,
            Lockdown,
            NonMarketable,
            UnengagedNonMarketable,
        ] {
            assert_eq!(s.class(), StatusClass::AddressOnly, "{s}");
        }
        assert_eq!(UnengagedMarketable.class(), StatusClass::Marketable);
    }
}
