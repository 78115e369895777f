//! The availability and data-safety record of a cluster: spans without a PD leader, spans of
//! Regions without a leader, and data-loss events. Spans are counted in simulation ticks as well
//! as milliseconds, so a verdict's bound does not depend on how busy the machine is. Bounded like
//! the event log: the oldest closed spans are dropped (and counted).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

use crate::clock::Now;

/// Closed PD spans kept per cluster.
pub const PD_SPANS_KEPT: usize = 1_000;
/// Closed Region spans kept per cluster.
pub const REGION_SPANS_KEPT: usize = 5_000;
/// Data-loss events kept per cluster.
pub const DATA_LOSS_KEPT: usize = 1_000;

/// A span of time without a leader.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Span {
    /// When it began, RFC 3339.
    pub start: String,
    /// When it ended, RFC 3339; `None` while ongoing.
    pub end: Option<String>,
    /// Still going on.
    pub ongoing: bool,
    /// Its length so far, milliseconds.
    pub duration_ms: u64,
    /// Simulation ticks it spanned so far.
    pub ticks: u64,
}

/// A span of one Region without a leader.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RegionSpan {
    /// The Region.
    pub region_id: u64,
    /// The span.
    #[serde(flatten)]
    pub span: Span,
}

/// Data that is gone for good.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataLoss {
    /// The PVC of a store that is not Tombstone was deleted.
    StoreVolumeDeleted {
        /// When, RFC 3339.
        time: String,
        /// The store.
        store_id: u64,
        /// Its TiKV instance.
        instance: String,
        /// The claim.
        claim: String,
        /// Its state then.
        store_state: String,
    },
    /// A Region lost a majority of its replicas for good.
    RegionLost {
        /// When, RFC 3339.
        time: String,
        /// The Region.
        region_id: u64,
        /// Stores of its peers.
        peer_stores: Vec<u64>,
        /// Those whose data is gone.
        lost_stores: Vec<u64>,
    },
    /// The PVC of a PD member that was still a voting member was deleted.
    PdMemberVolumeDeleted {
        /// When, RFC 3339.
        time: String,
        /// The member.
        name: String,
        /// The claim.
        claim: String,
    },
}

/// A span being recorded.
#[derive(Clone, Copy, Debug)]
struct Open {
    start: Now,
    start_tick: u64,
}

impl Open {
    fn span(self, now: Now, tick: u64, ended: bool) -> Span {
        Span {
            start: self.start.rfc3339(),
            end: ended.then(|| now.rfc3339()),
            ongoing: !ended,
            duration_ms: u64::try_from(
                now.instant
                    .saturating_duration_since(self.start.instant)
                    .as_millis(),
            )
            .unwrap_or(u64::MAX),
            ticks: tick.saturating_sub(self.start_tick),
        }
    }
}

/// The record of one cluster.
#[derive(Clone, Debug, Default)]
pub struct Safety {
    /// Whether PD ever had a leader (the start of a cluster is not an outage).
    had_pd_leader: bool,
    pd_open: Option<Open>,
    pd_spans: VecDeque<Span>,
    pd_dropped: u64,
    region_open: BTreeMap<u64, Open>,
    region_spans: VecDeque<RegionSpan>,
    region_dropped: u64,
    data_loss: VecDeque<DataLoss>,
    data_loss_dropped: u64,
}

/// `GET /control/clusters/{ns}/{cluster}/safety`.
#[derive(Clone, Debug, Serialize)]
pub struct SafetyView {
    /// Namespace.
    pub namespace: String,
    /// Cluster.
    pub cluster: String,
    /// Ticks so far.
    pub ticks: u64,
    /// The tick's length, milliseconds.
    pub tick_ms: u64,
    /// Whether PD has a leader now.
    pub pd_leader: bool,
    /// Spans without a PD leader (after the first leader), oldest first, the ongoing one last.
    pub pd_without_leader: Vec<Span>,
    /// Older PD spans dropped from the record.
    pub pd_spans_dropped: u64,
    /// Spans of Regions without a leader, oldest first, ongoing ones last.
    pub regions_without_leader: Vec<RegionSpan>,
    /// Older Region spans dropped from the record.
    pub region_spans_dropped: u64,
    /// Data that is gone, oldest first.
    pub data_loss: Vec<DataLoss>,
    /// Older data-loss events dropped from the record.
    pub data_loss_dropped: u64,
}

impl Safety {
    /// Records whether PD has a leader and which Regions have none, as of `now`.
    pub fn observe(&mut self, now: Now, tick: u64, pd_leader: bool, leaderless: &BTreeSet<u64>) {
        if pd_leader {
            self.had_pd_leader = true;
            if let Some(open) = self.pd_open.take() {
                push_bounded(
                    &mut self.pd_spans,
                    &mut self.pd_dropped,
                    PD_SPANS_KEPT,
                    open.span(now, tick, true),
                );
            }
        } else if self.had_pd_leader && self.pd_open.is_none() {
            self.pd_open = Some(Open {
                start: now,
                start_tick: tick,
            });
        }
        let ended: Vec<u64> = self
            .region_open
            .keys()
            .filter(|id| !leaderless.contains(id))
            .copied()
            .collect();
        for id in ended {
            if let Some(open) = self.region_open.remove(&id) {
                push_bounded(
                    &mut self.region_spans,
                    &mut self.region_dropped,
                    REGION_SPANS_KEPT,
                    RegionSpan {
                        region_id: id,
                        span: open.span(now, tick, true),
                    },
                );
            }
        }
        for id in leaderless {
            self.region_open.entry(*id).or_insert(Open {
                start: now,
                start_tick: tick,
            });
        }
    }

    /// Records data that is gone.
    pub fn lost(&mut self, loss: DataLoss) {
        push_bounded(
            &mut self.data_loss,
            &mut self.data_loss_dropped,
            DATA_LOSS_KEPT,
            loss,
        );
    }

    /// The record as of `now`, ongoing spans included.
    pub fn view(&self, now: Now, tick: u64) -> SafetyParts {
        let mut pd: Vec<Span> = self.pd_spans.iter().cloned().collect();
        pd.extend(self.pd_open.map(|o| o.span(now, tick, false)));
        let mut regions: Vec<RegionSpan> = self.region_spans.iter().cloned().collect();
        regions.extend(self.region_open.iter().map(|(id, open)| RegionSpan {
            region_id: *id,
            span: open.span(now, tick, false),
        }));
        SafetyParts {
            pd,
            pd_dropped: self.pd_dropped,
            regions,
            region_dropped: self.region_dropped,
            data_loss: self.data_loss.iter().cloned().collect(),
            data_loss_dropped: self.data_loss_dropped,
        }
    }
}

/// The parts of a [`SafetyView`] the record holds.
pub struct SafetyParts {
    pub(super) pd: Vec<Span>,
    pub(super) pd_dropped: u64,
    pub(super) regions: Vec<RegionSpan>,
    pub(super) region_dropped: u64,
    pub(super) data_loss: Vec<DataLoss>,
    pub(super) data_loss_dropped: u64,
}

fn push_bounded<T>(queue: &mut VecDeque<T>, dropped: &mut u64, cap: usize, item: T) {
    if queue.len() == cap {
        queue.pop_front();
        *dropped += 1;
    }
    queue.push_back(item);
}
