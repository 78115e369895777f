//! PD's restart slot: one record in PD's embedded etcd naming the one member, of any Kubernetes
//! cluster, whose serving Pod may be restarted for a roll. When one PD spans several Kubernetes
//! clusters, each side's operator rolls its own members one at a time but cannot see the
//! other's; taking the slot first (compare-and-swap, so two sides never both win) makes the roll
//! one member at a time across all of them. The holder gives it back once its member serves
//! again; a holder that vanished (its whole side gone) loses it when its lease ends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pd_client::{EtcdEntry, PdClient};
use serde::{Deserialize, Serialize};

/// The key, one per PD cluster.
pub const KEY: &str = "/tidb-operator/pd-restart-slot";
/// How long a claim lasts unless its holder renews it; the holder renews it while its member
/// restarts, so only a holder that stopped looking loses it.
pub const LEASE: Duration = Duration::from_secs(300);
/// Reason: another member holds the slot.
pub const REASON_SLOT_TAKEN: &str = "WaitingForRestartSlot";
/// Reason: the slot cannot be read or written.
pub const REASON_SLOT_UNKNOWN: &str = "RestartSlotUnknown";

/// The record under [`KEY`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The PD member restarting.
    pub member: String,
    /// Until when the claim holds unless renewed, in seconds since the Unix epoch.
    pub until: u64,
}

/// What a member that wants to restart does about the slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// It holds the slot and may restart.
    Held,
    /// Write the claim, if the record is still at this revision (`None`: still absent).
    Take(Option<i64>),
    /// Another member holds it.
    Wait {
        /// The holder.
        member: String,
        /// Seconds until the holder's claim ends unless renewed.
        left: u64,
    },
    /// The record does not read as one: nothing is taken over on a guess.
    Unreadable(String),
}

/// Decides whether `name` may restart now (`now` in seconds since the Unix epoch), given the
/// record as read. The holder keeps it (and renews it in its last half); an ended claim is
/// taken over.
pub fn claim(record: Option<&EtcdEntry>, name: &str, now: u64) -> Claim {
    let Some(entry) = record else {
        return Claim::Take(None);
    };
    let holder: Holder = match serde_json::from_slice(&entry.value) {
        Ok(holder) => holder,
        Err(e) => {
            return Claim::Unreadable(format!(
                "{KEY} in PD's etcd holds {:?}, not a restart slot record ({e})",
                String::from_utf8_lossy(&entry.value)
            ));
        }
    };
    if holder.member == name {
        if holder.until.saturating_sub(now) < LEASE.as_secs() / 2 {
            return Claim::Take(Some(entry.mod_revision));
        }
        return Claim::Held;
    }
    if holder.until <= now {
        return Claim::Take(Some(entry.mod_revision));
    }
    Claim::Wait {
        member: holder.member,
        left: holder.until - now,
    }
}

/// What the holder does once its Pod is no longer restarting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tend {
    /// Nothing: the slot is not this member's.
    Nothing,
    /// Renew the claim (still restarting, the lease in its last half) at this revision.
    Renew(i64),
    /// Give it back (the member serves again) at this revision.
    Release(i64),
}

/// Decides what `name`, whose Pod is current, does about the slot: gives it back once it
/// `serves` (ready, and healthy in PD's view), renews it while it does not.
pub fn tend(record: Option<&EtcdEntry>, name: &str, serves: bool, now: u64) -> Tend {
    let Some(entry) = record else {
        return Tend::Nothing;
    };
    match serde_json::from_slice::<Holder>(&entry.value) {
        Ok(holder) if holder.member == name => {
            if serves {
                Tend::Release(entry.mod_revision)
            } else if holder.until.saturating_sub(now) < LEASE.as_secs() / 2 {
                Tend::Renew(entry.mod_revision)
            } else {
                Tend::Nothing
            }
        }
        _ => Tend::Nothing,
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn record(name: &str, now: u64) -> Vec<u8> {
    let holder = Holder {
        member: name.to_string(),
        until: now + LEASE.as_secs(),
    };
    serde_json::to_vec(&holder).unwrap_or_default()
}

/// Takes or keeps the slot for `name`. `None` when `name` holds it and may restart; otherwise the
/// condition reason and message of the wait.
pub async fn acquire(pd: &PdClient, name: &str) -> Option<(&'static str, String)> {
    let unknown = |e: pd_client::Error| {
        Some((
            REASON_SLOT_UNKNOWN,
            format!(
                "PD's restart slot cannot be read or taken ({e}); the Pod is kept until it can"
            ),
        ))
    };
    let now = now();
    let current = match pd.etcd_get(KEY).await {
        Ok(current) => current,
        Err(e) => return unknown(e),
    };
    match claim(current.as_ref(), name, now) {
        Claim::Held => None,
        Claim::Take(expected) => match pd.etcd_put_if(KEY, &record(name, now), expected).await {
            Ok(true) => None,
            Ok(false) => Some((
                REASON_SLOT_TAKEN,
                "another PD member took PD's restart slot first; this one restarts after it".into(),
            )),
            Err(e) => unknown(e),
        },
        Claim::Wait { member, left } => Some((
            REASON_SLOT_TAKEN,
            format!(
                "PD member {member} is restarting and holds PD's restart slot (PD restarts one member at a time across every Kubernetes cluster); this one restarts once it serves again, or in {left}s if it stops renewing its claim"
            ),
        )),
        Claim::Unreadable(message) => Some((
            REASON_SLOT_UNKNOWN,
            format!("{message}; delete the key once no PD member is restarting"),
        )),
    }
}

/// Gives the slot back once `name` serves again, or renews it while it does not. Failures are
/// left for the next reconcile: the claim ends on its own at the latest.
pub async fn settle(pd: &PdClient, name: &str, serves: bool) -> Result<(), pd_client::Error> {
    let now = now();
    let current = pd.etcd_get(KEY).await?;
    match tend(current.as_ref(), name, serves, now) {
        Tend::Nothing => {}
        Tend::Renew(revision) => {
            pd.etcd_put_if(KEY, &record(name, now), Some(revision))
                .await?;
        }
        Tend::Release(revision) => {
            pd.etcd_delete_if(KEY, revision).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(member: &str, until: u64, revision: i64) -> EtcdEntry {
        EtcdEntry {
            value: serde_json::to_vec(&Holder {
                member: member.into(),
                until,
            })
            .unwrap(),
            mod_revision: revision,
        }
    }

    #[test]
    fn the_slot_goes_to_one_member_at_a_time_and_an_ended_claim_is_taken_over() {
        let now = 1_000;
        assert_eq!(claim(None, "a", now), Claim::Take(None));
        let held = entry("a", now + LEASE.as_secs(), 7);
        assert_eq!(claim(Some(&held), "a", now), Claim::Held);
        assert_eq!(
            claim(Some(&held), "b", now),
            Claim::Wait {
                member: "a".into(),
                left: LEASE.as_secs()
            }
        );
        // The holder renews in the last half of its lease; an ended claim is anyone's, but only
        // against the revision read, so two takers cannot both win.
        assert_eq!(
            claim(Some(&entry("a", now + 10, 7)), "a", now),
            Claim::Take(Some(7))
        );
        assert_eq!(
            claim(Some(&entry("a", now, 7)), "b", now),
            Claim::Take(Some(7))
        );
        let garbage = EtcdEntry {
            value: b"not json".to_vec(),
            mod_revision: 3,
        };
        assert!(
            matches!(claim(Some(&garbage), "b", now), Claim::Unreadable(m) if m.contains("not json"))
        );
    }

    #[test]
    fn the_holder_gives_the_slot_back_once_it_serves_and_renews_it_until_then() {
        let now = 1_000;
        let fresh = entry("a", now + LEASE.as_secs(), 7);
        assert_eq!(tend(Some(&fresh), "a", true, now), Tend::Release(7));
        assert_eq!(tend(Some(&fresh), "a", false, now), Tend::Nothing);
        assert_eq!(
            tend(Some(&entry("a", now + 10, 7)), "a", false, now),
            Tend::Renew(7)
        );
        // Someone else's claim, or none: nothing to do.
        assert_eq!(tend(Some(&fresh), "b", true, now), Tend::Nothing);
        assert_eq!(tend(None, "a", true, now), Tend::Nothing);
    }
}
