//! What every controller binary shares: command-line flags, logging, and (as the controllers
//! grow) leader election, the metrics and health server, apply and status helpers.

pub mod apply;
pub mod build;
pub mod build_info;
pub mod cache;
pub mod component;
pub mod dns;
pub mod duration;
pub mod endpoints;
pub mod events;
pub mod expect;
pub mod failover;
pub mod fence;
pub mod finalize;
pub mod flags;
pub mod group;
pub mod group_reconcile;
pub mod handover;
pub mod instance;
pub mod instance_reconcile;
pub mod node;
pub mod online_config;
pub mod overlay;
pub mod pod;
pub mod quantity;
pub mod reconcile;
pub mod revision;
pub mod scope;
pub mod security;
pub mod surge;
pub mod telemetry;
pub mod tls;
pub mod update;
pub mod upgrade;

pub use flags::{CommonFlags, EndpointOverride, LogFormat};
pub mod client;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod run;
pub use error::RuntimeError;
pub use http::{HttpServer, Readiness};
pub use leader::{LeaderConfig, LeaderElector, Leadership, LeaseLoss};
pub use metrics::{Metrics, ReconcileTimer};
pub use run::{Context, RunOutcome, Setup, main, run, run_with};
