//! Resolving [`KEYS`]: each setting's value as text and where it came from. Precedence:
//! flag, then environment (`OPTSYNC_X`, or for a secret the file named by `OPTSYNC_X_FILE`),
//! then `optsync.toml`, then the default.

use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches};

use super::keys::{Fallback, KEYS, Key, find};
use crate::error::{Error, Result};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(p) => write!(f, "file {}", p.display()),
            Self::Env(name) => write!(f, "env {name}"),
            Self::Flag(flag) => write!(f, "flag --{flag}"),
        }
    }
}

/// One setting, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub key: &'static Key,
    /// `None`: not set (an optional setting).
    pub value: Option<String>,
    pub source: Source,
}

impl Resolved {
    /// The value as `optsync config` shows it: secrets never.
    pub fn shown(&self) -> String {
        match (&self.value, self.key.secret()) {
            (None, _) => "(unset)".into(),
            (Some(v), true) if self.key.name == "database_url" => crate::store::redact(v),
            (Some(_), true) => "(redacted)".into(),
            (Some(v), false) => v.clone(),
        }
    }
}

/// Every setting, resolved, in [`KEYS`] order.
#[derive(Debug, Clone)]
pub struct Values(Vec<Resolved>);

/// The global flags: `--config` and one per [`Given::Flag`](super::keys::Given::Flag) key.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    /// (setting name, value) for each flag given.
    pub flags: Vec<(&'static str, String)>,
}

impl clap::FromArgMatches for Overrides {
    fn from_arg_matches(m: &ArgMatches) -> std::result::Result<Self, clap::Error> {
        let flags = KEYS
            .iter()
            .filter(|k| k.flag().is_some())
            .filter_map(|k| Some((k.name, m.get_one::<String>(k.name)?.clone())))
            .collect();
        Ok(Self {
            config: m.get_one::<PathBuf>("config").cloned(),
            flags,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> std::result::Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for Overrides {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let config = Arg::new("config")
            .long("config")
            .global(true)
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help("Path of the configuration file (default, if it exists: /etc/optsync/optsync.toml for an installed binary, ./optsync.toml in a source checkout) [env: OPTSYNC_CONFIG]");
        KEYS.iter().fold(cmd.arg(config), |cmd, k| match k.flag() {
            Some(flag) => cmd.arg(
                Arg::new(k.name)
                    .long(flag)
                    .global(true)
                    .value_name("VALUE")
                    .help(format!("{} [env: {}]", k.help, k.env())),
            ),
            None => cmd,
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The configuration file read: `--config`, else `OPTSYNC_CONFIG`, else the layout's default
/// if it exists.
pub fn config_path(o: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    o.config
        .clone()
        .or_else(|| env("OPTSYNC_CONFIG").map(PathBuf::from))
        .or_else(|| Some(super::Layout::detect().default_config()).filter(|p| p.exists()))
}

/// Reads the process environment; empty values count as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Values {
    /// Flags, then `env`, then the configuration file, then defaults.
    pub fn load(o: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let path = config_path(o, env);
        let file = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))?;
                parse_file(&text).map_err(|e| Error::Config(format!("{}: {e}", p.display())))?
            }
            None => Vec::new(),
        };
        let mut given = Vec::new();
        for k in KEYS {
            let flag = o.flags.iter().find(|(n, _)| *n == k.name);
            let found = match flag {
                Some((_, v)) => Some((v.clone(), Source::Flag(k.name.replace('_', "-")))),
                None => from_env(k, env)?,
            };
            let found = found.or_else(|| {
                let (_, v) = file.iter().find(|(n, _)| *n == k.name)?;
                let p = path.clone().unwrap_or_default();
                Some((v.clone(), Source::File(p)))
            });
            given.push(found);
        }
        Ok(Self::resolve(given))
    }

    /// Defaults only.
    pub fn defaults() -> Self {
        Self::resolve(KEYS.iter().map(|_| None).collect())
    }

    /// Defaults and the keys of an `optsync.toml` text.
    pub fn from_file_text(text: &str) -> Result<Self> {
        let file = parse_file(text)?;
        Ok(Self::resolve(
            KEYS.iter()
                .map(|k| {
                    let (_, v) = file.iter().find(|(n, _)| *n == k.name)?;
                    Some((v.clone(), Source::File(PathBuf::from("optsync.toml"))))
                })
                .collect(),
        ))
    }

    /// Fills what nothing gave from the defaults, in [`KEYS`] order (so a derived default
    /// sees what it derives from).
    fn resolve(given: Vec<Option<(String, Source)>>) -> Self {
        let mut out: Vec<Resolved> = Vec::with_capacity(KEYS.len());
        for (k, g) in KEYS.iter().zip(given) {
            let (value, source) = match g {
                Some((v, s)) => (Some(v), s),
                None => {
                    let lookup = |name: &str| {
                        out.iter()
                            .find(|r| r.key.name == name)
                            .and_then(|r| r.value.clone())
                            .unwrap_or_default()
                    };
                    let v = match k.fallback {
                        Fallback::Value(v) => Some(v.to_string()),
                        Fallback::Derived(f) => Some(f(&lookup)),
                        Fallback::Unset => None,
                    };
                    (v, Source::Default)
                }
            };
            out.push(Resolved {
                key: k,
                value,
                source,
            });
        }
        Self(out)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Resolved> {
        self.0.iter()
    }

    /// Replaces a value (tests and the demo start from the defaults).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        if let Some(r) = self.0.iter_mut().find(|r| r.key.name == name) {
            r.value = Some(value.into());
            r.source = Source::Default;
        }
    }

    fn entry(&self, name: &str) -> Result<&Resolved> {
        self.0
            .iter()
            .find(|r| r.key.name == name)
            .ok_or_else(|| Error::Config(format!("no setting is called {name}")))
    }

    /// The value of an optional setting, parsed.
    pub fn opt<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        let r = self.entry(name)?;
        let Some(v) = &r.value else { return Ok(None) };
        v.trim().parse().map(Some).map_err(|_| {
            let shown = if r.key.secret() {
                "(redacted)".into()
            } else {
                format!("{v:?}")
            };
            Error::Config(format!("{name} = {shown} ({}) is not valid", r.source))
        })
    }

    /// The value of a setting with a default, parsed.
    pub fn get<T: std::str::FromStr>(&self, name: &str) -> Result<T> {
        self.opt(name)?
            .ok_or_else(|| Error::Config(format!("{name} has no value")))
    }

    /// The text of a setting; an empty text counts as unset.
    pub fn text(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .entry(name)?
            .value
            .clone()
            .filter(|v| !v.trim().is_empty()))
    }
}

/// `OPTSYNC_X`, or for a secret the trimmed content of the file `OPTSYNC_X_FILE` names (not
/// both: which one wins would be a guess).
fn from_env(k: &Key, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<(String, Source)>> {
    let name = k.env();
    let direct = env(&name).map(|v| (v, Source::Env(name.clone())));
    if !k.secret() {
        return Ok(direct);
    }
    let file_var = format!("{name}_FILE");
    let Some(path) = env(&file_var) else {
        return Ok(direct);
    };
    if direct.is_some() {
        return Err(Error::Config(format!("set {name} or {file_var}, not both")));
    }
    let value = read_secret(Path::new(path.trim()))
        .map_err(|e| Error::Config(format!("{file_var}: {e}")))?;
    Ok(Some((value, Source::Env(file_var))))
}

fn read_secret(p: &Path) -> std::result::Result<String, String> {
    let text =
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{} is empty", p.display()));
    }
    Ok(text.to_string())
}

/// The keys of an `optsync.toml` text with their values as text; unknown keys, keys that
/// may not be written in the file and tables are errors.
fn parse_file(text: &str) -> Result<Vec<(&'static str, String)>> {
    let table: toml::Table = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
    table
        .into_iter()
        .map(|(name, v)| {
            let k = find(&name)
                .filter(|k| k.in_file())
                .ok_or_else(|| Error::Config(format!("unknown key {name:?}")))?;
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                    v.to_string()
                }
                _ => return Err(Error::Config(format!("{name}: expected a single value"))),
            };
            Ok((k.name, text))
        })
        .collect()
}
