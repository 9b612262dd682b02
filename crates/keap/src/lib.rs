//! A client for Keap's (Infusionsoft's) API, limited to what keeping email opt-outs in sync
//! needs: reading a contact's addresses and their statuses, finding the contacts that hold an
//! address, paging through contacts and opted-out addresses, and opting an address out with
//! verification. REST v2 is the main path; XML-RPC (being retired) is the fallback for the one
//! write REST v2 does not document.
//!
//! Every call is paced to Keap's real limits per credential ([`pacing`]), authenticated with a
//! service account key or OAuth ([`credentials`]), bounded by a timeout, never redirected, and
//! mapped to one [`Error`] that says whether a retry can help.

mod client;
pub mod clock;
pub mod credentials;
pub mod error;
pub mod ids;
pub mod limits;
pub mod model;
pub mod oauth;
mod ops;
pub mod pacing;
pub mod status;
pub mod token_store;
pub mod xmlrpc;

pub use client::{KeapClient, KeapClientBuilder};
pub use clock::Clock;
pub use credentials::{Credential, OAuthSession};
pub use error::Error;
pub use ids::{ContactId, EmailAddress, EmailField, IdError};
pub use limits::{DailyQuota, Limits, RollingWindow, WindowLimit};
pub use model::{
    Address, AddressStatus, Api, AttemptOutcome, Contact, ContactsPage, OptOutMethod, OptOutPath,
    OptOutReport, OptedOutPage, PathAttempt,
};
pub use oauth::{Grant, OAuthClient, OAuthTokens};
pub use ops::MAX_PAGE_SIZE;
pub use pacing::{Budget, CallPolicy, Lane, Pacer, PacingConfig};
pub use status::{EmailStatus, StatusClass, UnknownStatus};
pub use token_store::{MemoryTokenStore, StoreFuture, StoredPair, TokenStore};
