//! Typed async client of the PD HTTP API, the TiDB/TiKV status endpoints and TiCDC's API.
//!
//! [`PdClient`] makes the calls the operator needs from PD: members and leader transfer, stores
//! and their removal, the evict-leader scheduler, Region health and the replication config, and
//! compare-and-swap writes of single keys in PD's embedded etcd.
//! [`StatusClient`] checks TiDB's and TiKV's status ports and makes TiCDC's calls (captures,
//! owner resignation, capture drain). Both speak plain HTTP or TLS (with a
//! client certificate for mutual TLS) through rustls and its ring provider, put one timeout on
//! every request, and return an [`Error`] that names the URL and, for a non-2xx answer, the
//! status and the start of the body.
//!
//! The JSON types follow what PD writes (field names, comma-joined `location-labels`, enums as
//! numbers, IDs above `i64::MAX`) and decode leniently: missing or `null` fields take their
//! default and unknown fields are ignored, so neighbouring PD versions and the operand simulator
//! decode alike.

#![warn(missing_docs)]

mod error;
mod etcd;
mod pd;
mod status;
mod tls;
mod transport;
mod types;

pub use error::{Error, MAX_ERROR_BODY_CHARS, Result};
pub use etcd::EtcdEntry;
pub use pd::{EVICT_LEADER_SCHEDULER, PdClient, RequestObserver, max_tiflash_replicas};
pub use status::{StatusClient, TIDB_POOL_ACTIVATED, TIDB_POOL_STANDBY};
pub use tls::TlsConfig;
pub use transport::WriteGate;
pub use types::{
    CaptureInfo, CaptureStatus, ClusterInfo, LabelConstraint, Member, MemberHealth, MembersInfo,
    Peer, PeerStats, PlacementRule, RegionInfo, RegionsInfo, ReplicationConfig, STATE_DISCONNECTED,
    STATE_DOWN, STATE_OFFLINE, STATE_TOMBSTONE, STATE_UP, Store, StoreInfo, StoreLabel,
    StoreStatus, StoresInfo, TidbServerInfo, TidbServers, TidbStatus,
};
