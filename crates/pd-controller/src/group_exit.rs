//! A PDGroup deleted outright under MultiPDGroup while another PDGroup of its Cluster stays: its
//! members leave PD one at a time, as a scale-in, instead of vanishing from under PD with their
//! group (PD would count them as dead members and could lose its quorum).

use kube::ResourceExt;
use operator_api::core::Feature;
use operator_runtime::cache;
use operator_runtime::reconcile::Started;

use crate::context::Ctx;
use crate::member::Observed;

/// Whether the instance's PDGroup is gone (or going) while its Cluster lives, under
/// MultiPDGroup, with another PDGroup of the Cluster left to keep PD: then the group's members
/// leave PD rather than vanish from under it.
pub fn group_exits(ctx: &Ctx, start: &Started) -> bool {
    let Some(cluster) = start.cluster.as_deref() else {
        return false;
    };
    if cluster.metadata.deletion_timestamp.is_some() || !cluster.spec.enables(Feature::MultiPDGroup)
    {
        return false;
    }
    let group_going = cache::get(&ctx.groups, &start.namespace, &start.group)
        .is_none_or(|g| g.metadata.deletion_timestamp.is_some());
    let others_stay = !cache::list(&ctx.groups, &start.namespace, |g| {
        g.spec.cluster.name == cluster.name_any()
            && g.name_any() != start.group
            && g.metadata.deletion_timestamp.is_none()
    })
    .is_empty();
    group_going && others_stay
}

/// Reason of a member of a deleted PDGroup waiting for its turn to leave PD.
pub const REASON_LEAVING_IN_TURN: &str = "LeavingInTurn";

/// Why `name`, of a PDGroup leaving as a whole, does not leave PD yet: another member of the
/// group (`group`, those PD still lists go first by name) is leaving, or PD would lose its
/// healthy majority without it.
pub fn exit_turn(observed: &Observed, name: &str, group: &[String]) -> Option<String> {
    let mut before: Vec<&String> = group
        .iter()
        .filter(|m| m.as_str() < name && observed.is_member(m))
        .collect();
    before.sort();
    if let Some(first) = before.first() {
        return Some(format!(
            "the members of a deleted PDGroup leave PD one at a time; {first} leaves first"
        ));
    }
    let members = observed.members.as_ref()?;
    let remaining: Vec<&str> = members
        .members
        .iter()
        .map(|m| m.name.as_str())
        .filter(|m| *m != name)
        .collect();
    let healthy = remaining.iter().filter(|m| observed.healthy(m)).count();
    (healthy * 2 <= remaining.len()).then(|| {
        format!(
            "removing {name} would leave {healthy} healthy of {} PD members, no quorum; it leaves once the others are healthy",
            remaining.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::fixture;

    fn observed(healthy: &[&str]) -> Observed {
        fixture::observed("c", healthy)
    }

    #[test]
    fn the_members_of_a_deleted_group_leave_pd_one_at_a_time_and_never_below_a_quorum() {
        // a and b are of the deleted group, c of the group that stays.
        let all = observed(&["a", "b", "c"]);
        let group = ["a".to_string(), "b".to_string()];
        assert_eq!(exit_turn(&all, "a", &group), None);
        let waits = exit_turn(&all, "b", &group).unwrap();
        assert!(waits.contains("a leaves first"), "{waits}");
        // Once a is out of PD, b goes.
        let mut without_a = all.clone();
        if let Some(m) = without_a.members.as_mut() {
            m.members.retain(|m| m.name != "a");
        }
        assert_eq!(exit_turn(&without_a, "b", &group), None);
        // Never when the members left would have no healthy majority.
        let sick = observed(&["a", "c"]);
        let refused = exit_turn(&sick, "a", &group).unwrap();
        assert!(refused.contains("1 healthy of 2"), "{refused}");
    }
}
