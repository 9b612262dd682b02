//! Each client against esp-sim: the write in every scope, the read-back, and the typed errors
//! for refused credentials, 429s, 5xx and partial inserts.

mod accounts;
mod regions;

use esp_sim::{EspSim, SimBuilder, SimClock};
use secrecy::SecretString;
use suppress::Options;

/// 2026-11-30T12:00:00Z.
pub const T0: u64 = 1_795_953_600_000;

pub async fn sim(f: impl FnOnce(SimBuilder) -> SimBuilder) -> EspSim {
    f(EspSim::builder().clock(SimClock::manual(T0)))
        .start()
        .await
        .expect("sim starts")
}

/// The client's options on the emulator's clock.
pub fn options(sim: &EspSim) -> Options {
    Options {
        clock: sim.clock().clone(),
        ..Options::default()
    }
}

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}
