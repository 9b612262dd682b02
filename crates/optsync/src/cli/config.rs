//! `optsync config`: the effective settings, each with where its value came from.

use crate::config::{Overrides, Settings, Values, process_env};

use super::table::Table;

/// Prints every setting, its value (secrets redacted) and its source; fails, as `serve`
/// would, when a value is not valid.
pub fn run(overrides: &Overrides) -> anyhow::Result<()> {
    let values = Values::load(overrides, &process_env)?;
    Settings::from_values(&values)?;
    let mut t = Table::new(&["SETTING", "VALUE", "SOURCE"]);
    for r in values.iter() {
        t.row(vec![
            r.key.name.to_string(),
            r.shown(),
            r.source.to_string(),
        ]);
    }
    t.print();
    Ok(())
}
