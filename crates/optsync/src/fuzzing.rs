//! The entry points the fuzzers drive (`fuzz/`, `scripts/fuzz`), shared with the tests that
//! replay every input a fuzzer ever crashed on (`fuzz/regressions/TARGET/`) and the seed
//! corpus. Each takes arbitrary bytes and must return, whatever they are: an error is fine,
//! a panic, a hang or an allocation out of proportion is a bug.

use crate::providers::{self, Provider};

/// One fuzz target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Keap's XML-RPC answers (and calls, which keap-sim parses).
    XmlRpc,
    /// Keap's action-set post, form-encoded.
    KeapPost,
    /// A provider's webhook body, after verification.
    Provider(Provider),
    /// An SNS envelope: the string SNS signs, and the SES message inside.
    SnsStringToSign,
    /// `optsync.toml`.
    Config,
}

impl Target {
    /// Every target, in the order `scripts/fuzz` runs them.
    pub fn all() -> Vec<Target> {
        let mut all = vec![Self::XmlRpc, Self::KeapPost, Self::SnsStringToSign];
        all.extend(
            Provider::ALL
                .into_iter()
                .filter(|p| *p != Provider::Ses)
                .map(Self::Provider),
        );
        all.push(Self::Config);
        all
    }

    /// The target's name: its `fuzz/fuzz_targets/NAME.rs` and corpus directories.
    pub fn name(self) -> String {
        match self {
            Self::XmlRpc => "xmlrpc".into(),
            Self::KeapPost => "keap_post".into(),
            Self::Provider(p) => format!("provider_{}", p.name()),
            Self::SnsStringToSign => "sns_string_to_sign".into(),
            Self::Config => "config".into(),
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::all().into_iter().find(|t| t.name() == name)
    }
}

/// Runs one input through a target.
pub fn run(target: Target, data: &[u8]) {
    match target {
        Target::XmlRpc => {
            let _ = keap::xmlrpc::parse_response(data);
            let _ = keap::xmlrpc::parse_call(data);
        }
        Target::KeapPost => {
            let _ = crate::http::keap_post::parse_post(data);
        }
        Target::Provider(p) => {
            let _ = providers::parse_verified(p, data);
        }
        Target::SnsStringToSign => {
            let _ = providers::parse_verified(Provider::Ses, data);
        }
        Target::Config => {
            if let Ok(text) = std::str::from_utf8(data) {
                let _ = crate::config::check_file_text(text);
            }
        }
    }
}

/// Runs one input through the target named `name` (what each `fuzz_targets/NAME.rs` calls).
///
/// # Panics
/// On a name that is no target: a fuzz target file out of step with this module.
pub fn run_named(name: &str, data: &[u8]) {
    let target = Target::from_name(name).unwrap_or_else(|| panic!("{name:?} is not a fuzz target"));
    run(target, data);
}
