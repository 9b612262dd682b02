//! suppress: puts an address on a sending provider's own do-not-send list, in every scope the
//! list has (SES region, Mailgun domain, Postmark stream, SparkPost type, Brevo sender), and
//! reads it back where the provider has a read call (SES, SendGrid, Mailgun, Postmark,
//! SparkPost, Mandrill's `rejects/list`).
//!
//! One client per provider, all built on [`Api`]: https only (plain http is allowed on a
//! loopback address, for an emulator), a timeout and a response-size cap on every call, no
//! redirects. Answers become typed [`Error`]s: rate limited (with the wait when the provider
//! says it), transient (5xx, timeout: every write here is idempotent, so send it again),
//! refused credential, permanent, and — for Postmark — written but not confirmed yet.

mod api;
mod brevo;
mod error;
mod mailgun;
mod mailjet;
mod mandrill;
mod postmark;
mod provider;
mod sendgrid;
mod ses;
pub mod sigv4;
mod sparkpost;

pub use api::{Api, Options};
pub use brevo::BrevoClient;
pub use error::Error;
pub use mailgun::{MailgunClient, MailgunRegion};
pub use mailjet::MailjetClient;
pub use mandrill::MandrillClient;
pub use postmark::PostmarkClient;
pub use provider::{Provider, Scope, Suppressed};
pub use sendgrid::SendgridClient;
pub use ses::{SesClient, SesCredentials, SesReason};
pub use sparkpost::SparkpostClient;

/// The address a credential check looks up: on a reserved domain (RFC 2606), so no list
/// holds it and no read of it reveals anyone.
pub const PROBE: &str = "optsync-credential-check@example.invalid";
