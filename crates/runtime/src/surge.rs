//! The plan of a component that rolls with a surge (TiDB, TiCDC): a new server is Ready before
//! an old one leaves, and an outdated server that is not Ready does not stall the roll.

use crate::update::{self, Action, InstanceView, Plan, Policy};

/// The update engine's plan, and one thing more: the engine surges only while every instance is
/// available (Ready for `minReadySeconds`), but an outdated server that is not Ready serves no
/// one, and waiting for it would stall the very roll that may fix it. Then the surge goes ahead
/// (placed as the engine places it), and the engine removes the unready outdated server first. A
/// new server that is not yet available still holds the roll: no working server is removed for
/// it.
pub fn plan(policy: &Policy, views: &[InstanceView]) -> Plan {
    let plan = update::plan(policy, views);
    if !plan.actions.is_empty() || policy.max_surge <= 0 {
        return plan;
    }
    let replicas = usize::try_from(policy.replicas).unwrap_or(0);
    let active = views.iter().filter(|v| !v.deleting).count();
    let not_ready: Vec<&InstanceView> = views.iter().filter(|v| !v.ready).collect();
    let only_outdated_unready = !not_ready.is_empty()
        && not_ready
            .iter()
            .all(|v| !v.deleting && v.revision != policy.update_revision);
    if active != views.len() || active != replicas || !only_outdated_unready {
        return plan;
    }
    let as_if_ready: Vec<InstanceView> = views
        .iter()
        .cloned()
        .map(|mut v| {
            v.ready = true;
            v.settling = None;
            v
        })
        .collect();
    let surge = update::plan(policy, &as_if_ready);
    let creates: Vec<Action> = surge
        .actions
        .into_iter()
        .filter(|a| matches!(a, Action::Create { .. }))
        .collect();
    if creates.is_empty() {
        return plan;
    }
    Plan {
        actions: creates,
        waiting: None,
        recheck_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, revision: &str, ready: bool) -> InstanceView {
        InstanceView {
            name: name.into(),
            revision: revision.into(),
            ready,
            settling: None,
            deleting: false,
            topology: Default::default(),
            last: false,
        }
    }

    fn policy() -> Policy {
        Policy {
            replicas: 2,
            update_revision: "new".into(),
            max_surge: 1,
            max_unavailable: 1,
            topologies: Vec::new(),
        }
    }

    #[test]
    fn a_roll_surges_past_an_unready_outdated_server_and_removes_it_first() {
        let views = [view("db-a", "old", false), view("db-b", "old", true)];
        let first = plan(&policy(), &views);
        assert!(
            matches!(first.actions.as_slice(), [Action::Create { .. }]),
            "{first:?}"
        );
        let views = [
            view("db-a", "old", false),
            view("db-b", "old", true),
            view("db-c", "new", false),
        ];
        assert_eq!(
            plan(&policy(), &views).actions,
            [Action::Delete {
                name: "db-a".into()
            }]
        );
    }

    #[test]
    fn an_unready_new_server_still_holds_the_roll() {
        let views = [view("db-b", "old", true), view("db-c", "new", false)];
        let held = plan(&policy(), &views);
        assert!(held.actions.is_empty(), "{held:?}");
        assert!(held.waiting.is_some());
    }

    #[test]
    fn without_surge_the_engine_decides_alone() {
        let mut p = policy();
        p.max_surge = 0;
        let views = [view("db-a", "old", false), view("db-b", "old", true)];
        assert_eq!(
            plan(&p, &views).actions,
            [Action::Update {
                name: "db-a".into()
            }]
        );
    }
}
