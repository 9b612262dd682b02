//! The emulator's clock is the workspace's one injectable clock: the system clock, or a
//! manual one that tests move forward so that a minute's throttle window passes without
//! waiting a minute.

pub use keap::Clock as SimClock;
