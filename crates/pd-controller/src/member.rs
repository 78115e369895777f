//! Pure decisions about one PD member: what PD says of it (member, leader, health), the next
//! step of restarting its outdated Pod, and what a member on a cordoned Node does with its
//! leadership. A restart never happens on PD's silence: a member whose leadership or quorum PD
//! cannot confirm keeps its Pod.

use std::collections::BTreeSet;
use std::time::Duration;

use pd_client::{MemberHealth, MembersInfo, PdClient};

/// Reason: PD cannot be asked, so a restart waits.
pub const REASON_PD_UNREACHABLE: &str = "PDUnreachable";
/// Reason: restarting this member now would leave PD without a healthy majority.
pub const REASON_QUORUM_AT_RISK: &str = "QuorumAtRisk";
/// Reason: the leader cannot hand over: no other member is healthy.
pub const REASON_NO_SUCCESSOR: &str = "NoHealthySuccessor";

/// What the reconcile learns about the member from PD.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The members, when PD answered.
    pub members: Option<MembersInfo>,
    /// Their health, when PD answered.
    pub health: Option<Vec<MemberHealth>>,
    /// Why PD did not answer.
    pub error: Option<String>,
    /// Why the member's own ready API says it is not ready, when a gate asks it
    /// ([`crate::ready`]).
    pub not_ready: Option<(&'static str, String)>,
}

impl Observed {
    /// Asks PD.
    pub async fn of(pd: &PdClient) -> Self {
        match pd.members().await {
            Ok(members) => Observed {
                members: Some(members),
                health: pd.health().await.ok(),
                ..Observed::default()
            },
            Err(e) => Observed {
                error: Some(e.to_string()),
                ..Observed::default()
            },
        }
    }

    /// Whether `name` is a member.
    pub fn is_member(&self, name: &str) -> bool {
        self.members
            .as_ref()
            .is_some_and(|m| m.member(name).is_some())
    }

    /// Whether `name` leads PD.
    pub fn is_leader(&self, name: &str) -> bool {
        self.members.as_ref().and_then(|m| m.leader_name()) == Some(name)
    }

    /// Whether PD reports `name` healthy.
    pub fn healthy(&self, name: &str) -> bool {
        self.health
            .as_ref()
            .is_some_and(|h| h.iter().any(|m| m.name == name && m.health))
    }

    /// A healthy member other than `name` to hand leadership to.
    pub fn successor(&self, name: &str) -> Option<String> {
        self.successor_avoiding(name, &BTreeSet::new())
    }

    /// A healthy member other than `name`, and none of `avoid` (members on cordoned Nodes), to
    /// hand leadership to.
    pub fn successor_avoiding(&self, name: &str, avoid: &BTreeSet<String>) -> Option<String> {
        let members = self.members.as_ref()?;
        let health = self.health.as_deref().unwrap_or_default();
        members.successor(health, name, &|m| avoid.contains(m))
    }
}

/// The member PD's leadership goes to before `name` is removed: a healthy one that stays (none
/// of `leaving`, the other members of its group on their way out, as in an exit where every
/// local member goes and leadership must land on another Kubernetes cluster's member), else
/// any healthy one (it hands over again before its own removal).
pub fn removal_successor(
    observed: &Observed,
    name: &str,
    leaving: &BTreeSet<String>,
) -> Option<String> {
    observed
        .successor_avoiding(name, leaving)
        .or_else(|| observed.successor(name))
}

/// The next step of restarting member `name`'s outdated Pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartStep {
    /// Delete the Pod now.
    Restart,
    /// Hand PD's leadership to this member first.
    TransferTo(String),
    /// Keep the Pod; the condition says why.
    Wait {
        /// Condition reason.
        reason: &'static str,
        /// Condition message.
        message: String,
    },
}

/// Decides the next step of restarting `name`, whose Pod is ready (`pod_ready`) or not. A Pod
/// that does not serve is restarted whatever PD says (it leads nothing and is the reason PD may
/// not answer); one that serves is restarted only when PD answered, it does not lead, and the
/// other members keep a healthy majority.
/// Leadership goes to a member on a schedulable Node when there is one (`cordoned` names those
/// that are not), else to any healthy one.
pub fn restart_step(
    observed: &Observed,
    name: &str,
    pod_ready: bool,
    cordoned: &BTreeSet<String>,
) -> RestartStep {
    if !pod_ready {
        return RestartStep::Restart;
    }
    let Some(members) = &observed.members else {
        let error = observed.error.as_deref().unwrap_or("no answer");
        return RestartStep::Wait {
            reason: REASON_PD_UNREACHABLE,
            message: format!(
                "the Pod is outdated, but PD cannot tell whether {name} leads it or what restarting it would cost its quorum ({error}); the Pod is kept until PD answers"
            ),
        };
    };
    let total = members.members.len();
    let healthy_others = members
        .members
        .iter()
        .filter(|m| m.name != name && observed.healthy(&m.name))
        .count();
    // With this member down for its restart, the others alone must be a majority of all.
    if observed.healthy(name) && total > 1 && healthy_others * 2 <= total {
        return RestartStep::Wait {
            reason: REASON_QUORUM_AT_RISK,
            message: format!(
                "restarting {name} now would leave {healthy_others} healthy of {total} PD members, no majority; it waits for the others"
            ),
        };
    }
    if observed.is_leader(name) {
        let successor = observed
            .successor_avoiding(name, cordoned)
            .or_else(|| observed.successor(name));
        return match successor {
            Some(successor) => RestartStep::TransferTo(successor),
            None if total > 1 => RestartStep::Wait {
                reason: REASON_NO_SUCCESSOR,
                message: format!(
                    "{name} leads PD and no other member is healthy to take over; the restart waits"
                ),
            },
            None => RestartStep::Restart,
        };
    }
    RestartStep::Restart
}

/// What a member on a cordoned Node does about PD's leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CordonStep {
    /// PD cannot be asked; nothing is done until it answers.
    Unknown(String),
    /// The member does not lead: nothing to hand over.
    NotLeader,
    /// Hand leadership to this member, healthy and on a schedulable Node.
    TransferTo(String),
    /// It leads, and no other member is healthy on a schedulable Node to take over.
    NoSuccessor,
    /// It still leads after the hand-over was asked for the whole bound: asked no more.
    TimedOut,
}

/// Decides what member `name`, whose Pod is on a cordoned Node, does: hand leadership to a
/// healthy member that is not on a cordoned Node (`cordoned` names the members that are),
/// asking again until `timeout` has passed since the cordon was first seen (`waited`).
pub fn cordon_step(
    observed: &Observed,
    name: &str,
    cordoned: &BTreeSet<String>,
    waited: Duration,
    timeout: Duration,
) -> CordonStep {
    if observed.members.is_none() {
        let error = observed.error.as_deref().unwrap_or("no answer");
        return CordonStep::Unknown(error.to_string());
    }
    if !observed.is_leader(name) {
        return CordonStep::NotLeader;
    }
    if waited >= timeout {
        return CordonStep::TimedOut;
    }
    match observed.successor_avoiding(name, cordoned) {
        Some(successor) => CordonStep::TransferTo(successor),
        None => CordonStep::NoSuccessor,
    }
}

#[cfg(test)]
mod tests {
    use pd_client::Member;

    use super::*;

    fn observed(members: &[(&str, bool)], leader: Option<&str>) -> Observed {
        let member = |name: &str| Member {
            name: name.into(),
            ..Member::default()
        };
        Observed {
            members: Some(MembersInfo {
                members: members.iter().map(|(n, _)| member(n)).collect(),
                leader: leader.map(member),
                ..MembersInfo::default()
            }),
            health: Some(
                members
                    .iter()
                    .map(|(n, h)| MemberHealth {
                        name: (*n).into(),
                        health: *h,
                        ..MemberHealth::default()
                    })
                    .collect(),
            ),
            ..Observed::default()
        }
    }

    #[test]
    fn a_leaving_leader_hands_over_to_a_member_that_stays() {
        // Two local members (a, b) leave in an exit; r1 and r2 are another side's.
        let pd = observed(
            &[("a", true), ("b", true), ("r1", false), ("r2", true)],
            Some("a"),
        );
        let leaving: BTreeSet<String> = ["b".to_string()].into();
        assert_eq!(removal_successor(&pd, "a", &leaving).as_deref(), Some("r2"));
        // Nothing else healthy stays: a healthy leaving member takes it (it hands over again).
        let pd = observed(&[("a", true), ("b", true), ("r1", false)], Some("a"));
        assert_eq!(removal_successor(&pd, "a", &leaving).as_deref(), Some("b"));
        assert_eq!(
            removal_successor(&observed(&[("a", true)], Some("a")), "a", &leaving),
            None
        );
    }

    /// Every branch, as a table: PD's view, the member, its Pod ready; the step (a wait by its
    /// reason).
    #[test]
    fn a_member_is_restarted_only_when_pd_confirms_it_is_safe() {
        let silent = Observed {
            error: Some("HTTP 503: no leader".into()),
            ..Observed::default()
        };
        let three = observed(&[("a", true), ("b", true), ("c", true)], Some("a"));
        let one_down = observed(&[("a", true), ("b", false), ("c", true)], Some("a"));
        let others_down = observed(&[("a", true), ("b", false), ("c", false)], Some("a"));
        let alone = observed(&[("a", true)], Some("a"));
        let all_unhealthy = observed(&[("a", false), ("b", false), ("c", false)], Some("a"));
        let wait = |reason: &str| format!("wait {reason}");
        let table: [(&str, &Observed, &str, bool, String); 11] = [
            (
                "PD silent, Pod serving",
                &silent,
                "a",
                true,
                wait(REASON_PD_UNREACHABLE),
            ),
            (
                "PD silent, Pod not serving",
                &silent,
                "a",
                false,
                "restart".into(),
            ),
            ("follower, all healthy", &three, "b", true, "restart".into()),
            (
                "leader, all healthy",
                &three,
                "a",
                true,
                "transfer b".into(),
            ),
            (
                "leader, one other down",
                &one_down,
                "a",
                true,
                wait(REASON_QUORUM_AT_RISK),
            ),
            (
                "follower, another down",
                &one_down,
                "c",
                true,
                wait(REASON_QUORUM_AT_RISK),
            ),
            (
                "the down member itself",
                &one_down,
                "b",
                true,
                "restart".into(),
            ),
            (
                "leader, every other down",
                &others_down,
                "a",
                true,
                wait(REASON_QUORUM_AT_RISK),
            ),
            ("the only member", &alone, "a", true, "restart".into()),
            (
                "leader unhealthy, no one to take over",
                &all_unhealthy,
                "a",
                true,
                wait(REASON_NO_SUCCESSOR),
            ),
            ("not listed yet", &three, "d", true, "restart".into()),
        ];
        for (case, observed, name, pod_ready, want) in table {
            let got = match restart_step(observed, name, pod_ready, &BTreeSet::new()) {
                RestartStep::Restart => "restart".to_string(),
                RestartStep::TransferTo(to) => format!("transfer {to}"),
                RestartStep::Wait { reason, .. } => wait(reason),
            };
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn a_restarting_leader_prefers_a_successor_on_a_schedulable_node() {
        let three = observed(&[("a", true), ("b", true), ("c", true)], Some("a"));
        let cordoned: BTreeSet<String> = ["b".to_string()].into();
        assert_eq!(
            restart_step(&three, "a", true, &cordoned),
            RestartStep::TransferTo("c".into())
        );
        // Only cordoned members are healthy: one of them still takes over for a restart.
        let all: BTreeSet<String> = ["b".to_string(), "c".to_string()].into();
        assert_eq!(
            restart_step(&three, "a", true, &all),
            RestartStep::TransferTo("b".into())
        );
    }

    /// A member on a cordoned Node, as a table: PD's view, the member, the cordoned members, how
    /// long since the cordon was seen; the step.
    #[test]
    fn a_leader_on_a_cordoned_node_hands_over_to_a_member_elsewhere_within_the_bound() {
        let silent = Observed {
            error: Some("HTTP 503: no leader".into()),
            ..Observed::default()
        };
        let three = observed(&[("a", true), ("b", true), ("c", true)], Some("a"));
        let c_down = observed(&[("a", true), ("b", true), ("c", false)], Some("a"));
        let set =
            |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| n.to_string()).collect() };
        let (early, late) = (Duration::from_secs(5), Duration::from_secs(60));
        let timeout = Duration::from_secs(60);
        type Row<'a> = (
            &'a str,
            &'a Observed,
            &'a str,
            BTreeSet<String>,
            Duration,
            CordonStep,
        );
        let table: [Row<'_>; 7] = [
            (
                "PD silent",
                &silent,
                "a",
                set(&["a"]),
                early,
                CordonStep::Unknown("HTTP 503: no leader".into()),
            ),
            (
                "a follower",
                &three,
                "b",
                set(&["b"]),
                early,
                CordonStep::NotLeader,
            ),
            (
                "the leader",
                &three,
                "a",
                set(&["a"]),
                early,
                CordonStep::TransferTo("b".into()),
            ),
            (
                "the leader, b on a cordoned Node too",
                &three,
                "a",
                set(&["a", "b"]),
                early,
                CordonStep::TransferTo("c".into()),
            ),
            (
                "the leader, b cordoned and c unhealthy",
                &c_down,
                "a",
                set(&["a", "b"]),
                early,
                CordonStep::NoSuccessor,
            ),
            (
                "the leader past the bound",
                &three,
                "a",
                set(&["a"]),
                late,
                CordonStep::TimedOut,
            ),
            (
                "a follower past the bound",
                &three,
                "c",
                set(&["c"]),
                late,
                CordonStep::NotLeader,
            ),
        ];
        for (case, observed, name, cordoned, waited, want) in table {
            assert_eq!(
                cordon_step(observed, name, &cordoned, waited, timeout),
                want,
                "{case}"
            );
        }
    }
}

/// PD's answers for tests of more than one module.
#[cfg(test)]
pub mod fixture {
    use pd_client::{Member, MemberHealth, MembersInfo};

    use super::Observed;

    /// Members a, b and c, `leader` leading, the `healthy` ones healthy.
    pub fn observed(leader: &str, healthy: &[&str]) -> Observed {
        let member = |n: &str| Member {
            name: n.into(),
            member_id: 7,
            ..Member::default()
        };
        Observed {
            members: Some(MembersInfo {
                members: vec![member("a"), member("b"), member("c")],
                leader: Some(member(leader)),
                etcd_leader: None,
            }),
            health: Some(
                ["a", "b", "c"]
                    .iter()
                    .map(|n| MemberHealth {
                        name: n.to_string(),
                        health: healthy.contains(n),
                        ..MemberHealth::default()
                    })
                    .collect(),
            ),
            ..Observed::default()
        }
    }
}
