//! What every controller binary shares: command-line flags, logging, and (as the controllers
//! grow) leader election, the metrics and health server, apply and status helpers.

pub mod flags;
pub mod telemetry;

pub use flags::{CommonFlags, EndpointOverride, LogFormat};
