//! The demo's scenario table: what people do, how many of them, and what the rules expect.

use keap::EmailStatus;
use keap_sim::SimEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    UnsubscribeEmail1,
    UnsubscribeEmail2,
    ManualOptOut,
    HardBounce,
    Unengaged,
    /// A SendGrid spam report (signed Event Webhook) for EMAIL1.
    SendgridSpam,
    /// A Mailgun permanent failure (signed webhook) for EMAIL2.
    MailgunBounce,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Self::UnsubscribeEmail1,
        Self::UnsubscribeEmail2,
        Self::ManualOptOut,
        Self::HardBounce,
        Self::Unengaged,
        Self::SendgridSpam,
        Self::MailgunBounce,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::UnsubscribeEmail1 => "unsubscribe link, EMAIL1",
            Self::UnsubscribeEmail2 => "unsubscribe link, EMAIL2",
            Self::ManualOptOut => "manual opt-out (Admin)",
            Self::HardBounce => "hard bounce in Keap",
            Self::Unengaged => "unengaged non-marketable",
            Self::SendgridSpam => "SendGrid spam report, EMAIL1",
            Self::MailgunBounce => "Mailgun hard bounce, EMAIL2",
        }
    }

    /// What the report says the rules require.
    pub fn note(self) -> &'static str {
        match self {
            Self::UnsubscribeEmail1 | Self::UnsubscribeEmail2 => "every address opted out",
            Self::ManualOptOut => "Keap posts nothing: honoured by reconciliation",
            Self::HardBounce | Self::Unengaged => "address-only: siblings untouched",
            Self::SendgridSpam => "signed webhook: every address opted out",
            Self::MailgunBounce => "signed webhook: that address only",
        }
    }

    /// Reported by a sending provider's webhook rather than by Keap.
    pub fn provider(self) -> bool {
        matches!(self, Self::SendgridSpam | Self::MailgunBounce)
    }

    /// (which address, what happens to it in Keap)
    pub fn event(self) -> (usize, SimEvent) {
        match self {
            Self::UnsubscribeEmail1 => (0, SimEvent::UnsubscribeLink),
            Self::UnsubscribeEmail2 => (1, SimEvent::UnsubscribeLink),
            Self::ManualOptOut => (0, SimEvent::ManualOptOut),
            Self::HardBounce => (0, SimEvent::HardBounce),
            Self::Unengaged => (0, SimEvent::UnengagedNonMarketable),
            // Keap hears nothing of these; the status is what it already was.
            Self::SendgridSpam => (0, SimEvent::Set(EmailStatus::SingleOptIn)),
            Self::MailgunBounce => (1, SimEvent::Set(EmailStatus::SingleOptIn)),
        }
    }

    /// Keap's action set posts for it.
    pub fn posts(self) -> bool {
        matches!(self, Self::UnsubscribeEmail1 | Self::UnsubscribeEmail2)
    }

    pub fn count(self) -> usize {
        match self {
            Self::UnsubscribeEmail1 | Self::UnsubscribeEmail2 => 40,
            Self::SendgridSpam | Self::MailgunBounce => 15,
            _ => 20,
        }
    }
}
