//! The emulator's clock is the workspace's one injectable clock: the system clock, or a manual
//! one that tests move forward (a rate window or Postmark's activation delay passes without
//! waiting).

pub use keap::Clock as SimClock;
