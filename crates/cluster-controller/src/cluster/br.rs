//! Which Backups and Restores hold a Cluster's deletion: those whose BR Job runs against it now
//! (a snapshot backup or a restore, `Scheduled` or `Running`). A log backup is a task inside the
//! cluster that ends with it, and one that waits for a retry starts no Job against a Cluster being
//! deleted (the backup-controller refuses, `ClusterDeleting`), so neither holds it.

use kube::ResourceExt;
use operator_api::br::{
    BRConfig, Backup, BackupConditionType, BackupMode, Restore, RestoreConditionType,
};

/// Whether `br` names the Cluster `name` in `namespace`, for an object in `object_namespace`.
fn names_cluster(
    br: Option<&BRConfig>,
    object_namespace: &str,
    namespace: &str,
    name: &str,
) -> bool {
    br.is_some_and(|br| {
        let cluster_namespace = if br.cluster_namespace.is_empty() {
            object_namespace
        } else {
            &br.cluster_namespace
        };
        br.cluster == name && cluster_namespace == namespace
    })
}

/// Whether `backup` runs a BR Job against the Cluster `name` in `namespace`.
pub fn backup_holds(backup: &Backup, namespace: &str, name: &str) -> bool {
    let phase = backup.status.as_ref().and_then(|s| s.phase);
    backup.metadata.deletion_timestamp.is_none()
        && backup.spec.mode != Some(BackupMode::Log)
        && matches!(
            phase,
            Some(BackupConditionType::Scheduled | BackupConditionType::Running)
        )
        && names_cluster(
            backup.spec.br.as_ref(),
            &backup.namespace().unwrap_or_default(),
            namespace,
            name,
        )
}

/// Whether `restore` runs a BR Job against the Cluster `name` in `namespace`.
pub fn restore_holds(restore: &Restore, namespace: &str, name: &str) -> bool {
    let phase = restore.status.as_ref().and_then(|s| s.phase);
    restore.metadata.deletion_timestamp.is_none()
        && matches!(
            phase,
            Some(RestoreConditionType::Scheduled | RestoreConditionType::Running)
        )
        && names_cluster(
            restore.spec.br.as_ref(),
            &restore.namespace().unwrap_or_default(),
            namespace,
            name,
        )
}

/// The message of a held deletion, naming what it waits for (`Backup ns/name`, …).
pub fn waiting_message(running: &[String]) -> String {
    format!(
        "the groups are deleted once {} {} finished; deleting {} stops {}",
        running.join(", "),
        if running.len() == 1 { "has" } else { "have" },
        if running.len() == 1 { "it" } else { "them" },
        if running.len() == 1 {
            "its BR Job"
        } else {
            "their BR Jobs"
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn backup(
        namespace: &str,
        mode: Option<&str>,
        phase: Option<&str>,
        br: serde_json::Value,
    ) -> Backup {
        let mut spec = json!({"br": br});
        if let Some(mode) = mode {
            spec["backupMode"] = json!(mode);
        }
        let mut object = json!({
            "apiVersion": "br.pingcap.com/v1alpha1", "kind": "Backup",
            "metadata": {"name": "b", "namespace": namespace},
            "spec": spec,
        });
        if let Some(phase) = phase {
            object["status"] = json!({"phase": phase});
        }
        serde_json::from_value(object).unwrap()
    }

    #[test]
    fn only_a_running_snapshot_backup_or_restore_of_this_cluster_holds_its_deletion() {
        let here = json!({"cluster": "basic"});
        assert!(backup_holds(
            &backup("db", None, Some("Running"), here.clone()),
            "db",
            "basic"
        ));
        assert!(backup_holds(
            &backup("db", Some("snapshot"), Some("Scheduled"), here.clone()),
            "db",
            "basic"
        ));
        // Finished, waiting for a retry, not started, or a log backup: nothing holds.
        for phase in [
            None,
            Some("Complete"),
            Some("Failed"),
            Some("RetryFailed"),
            Some("Invalid"),
        ] {
            assert!(
                !backup_holds(&backup("db", None, phase, here.clone()), "db", "basic"),
                "{phase:?}"
            );
        }
        assert!(!backup_holds(
            &backup("db", Some("log"), Some("Running"), here.clone()),
            "db",
            "basic"
        ));
        // Another Cluster, or the same name in another namespace.
        assert!(!backup_holds(
            &backup("db", None, Some("Running"), json!({"cluster": "other"})),
            "db",
            "basic"
        ));
        assert!(!backup_holds(
            &backup("ops", None, Some("Running"), here.clone()),
            "db",
            "basic"
        ));
        // A Backup in another namespace that names this Cluster's namespace.
        let there = json!({"cluster": "basic", "clusterNamespace": "db"});
        assert!(backup_holds(
            &backup("ops", None, Some("Running"), there),
            "db",
            "basic"
        ));

        let restore: Restore = serde_json::from_value(json!({
            "apiVersion": "br.pingcap.com/v1alpha1", "kind": "Restore",
            "metadata": {"name": "r", "namespace": "db"},
            "spec": {"br": {"cluster": "basic"}},
            "status": {"phase": "Running"},
        }))
        .unwrap();
        assert!(restore_holds(&restore, "db", "basic"));
        assert!(!restore_holds(&restore, "db", "other"));
    }

    #[test]
    fn the_message_names_what_the_deletion_waits_for() {
        assert_eq!(
            waiting_message(&["Backup db/full".into()]),
            "the groups are deleted once Backup db/full has finished; deleting it stops its BR Job"
        );
        assert!(
            waiting_message(&["Backup db/a".into(), "Restore db/b".into()])
                .contains("have finished; deleting them")
        );
    }
}
