//! A client for Keap's (Infusionsoft's) API, limited to what keeping email opt-outs in sync
//! needs: reading a contact's addresses and their statuses, finding the contacts that hold an
//! address, paging through contacts and opted-out addresses, and opting an address out with
//! verification. REST v2 is the main path; XML-RPC (being retired) is the fallback for the one
//! write REST v2 does not document.

pub mod ids;
pub mod limits;
pub mod status;
pub mod xmlrpc;

pub use ids::{ContactId, EmailAddress, EmailField, IdError};
pub use limits::{DailyQuota, Limits, RollingWindow, WindowLimit};
pub use status::{EmailStatus, StatusClass, UnknownStatus};
