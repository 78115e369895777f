//! `diagnose`: a directory with what a bug report needs: the cluster's objects (Secret values
//! redacted), the Events of its objects, the `status` view and a summary of what looks wrong.

use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret, Service};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use operator_api::keys;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::render::{self, Style};
use crate::snapshot::Snapshot;
use crate::view;

/// What a redacted Secret value becomes.
pub const REDACTED: &str = "REDACTED";

/// A Secret with every value replaced by [`REDACTED`]; the keys stay, so a missing key shows.
pub fn redact(secret: &Secret) -> Secret {
    let mut out = secret.clone();
    if let Some(data) = out.data.as_mut() {
        for value in data.values_mut() {
            *value = ByteString(REDACTED.as_bytes().to_vec());
        }
    }
    if let Some(data) = out.string_data.as_mut() {
        for value in data.values_mut() {
            *value = REDACTED.to_string();
        }
    }
    // The last-applied annotation of `kubectl apply` holds the values too.
    if let Some(annotations) = out.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    out.metadata.managed_fields = None;
    out
}

/// Whether a Secret belongs to the cluster: labelled with it, or named after it or one of its
/// groups (the TLS Secrets `<cluster>-...` and `<group>-<component>-cluster-secret`).
pub fn secret_of_cluster(secret: &Secret, cluster: &str, groups: &[String]) -> bool {
    let name = secret.name_any();
    secret.labels().get(keys::LABEL_CLUSTER).map(String::as_str) == Some(cluster)
        || name.starts_with(&format!("{cluster}-"))
        || groups.iter().any(|g| name.starts_with(&format!("{g}-")))
}

fn write(dir: &Path, file: &str, text: &str) -> Result<()> {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            doing: format!("creating {}", parent.display()),
            source,
        })?;
    }
    std::fs::write(&path, text).map_err(|source| Error::Io {
        doing: format!("writing {}", path.display()),
        source,
    })
}

fn yaml<T: Serialize>(value: &T) -> Result<String> {
    serde_yaml::to_string(value).map_err(|e| Error::Encode(e.to_string()))
}

fn objects<K: ResourceExt + Serialize + Clone>(
    dir: &Path,
    folder: &str,
    items: &[K],
) -> Result<()> {
    for item in items {
        let mut item = item.clone();
        item.meta_mut().managed_fields = None;
        write(
            dir,
            &format!("{folder}/{}.yaml", item.name_any()),
            &yaml(&item)?,
        )?;
    }
    Ok(())
}

/// Lists what the user may read; a 403 is noted in the summary instead of failing.
async fn readable<K>(api: Api<K>, params: &ListParams, notes: &mut Vec<String>) -> Result<Vec<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list(params).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            notes.push(format!(
                "not allowed to list {}: not included",
                K::plural(&())
            ));
            Ok(Vec::new())
        }
        Err(e) => Err(Error::api(format!("listing {}", K::plural(&())))(e)),
    }
}

/// Writes the diagnosis of the snapshot's cluster under `dir` and returns the files written.
pub async fn diagnose(client: &Client, snapshot: &Snapshot, dir: &Path) -> Result<Vec<PathBuf>> {
    let namespace = snapshot.cluster.namespace().unwrap_or_default();
    let name = snapshot.cluster.name_any();
    let mut notes: Vec<String> = snapshot
        .unreadable
        .iter()
        .map(|k| format!("not allowed to list {k}: not included"))
        .collect();
    let selector = ListParams::default().labels(&format!("{}={name}", keys::LABEL_CLUSTER));
    let config_maps: Vec<ConfigMap> = readable(
        Api::namespaced(client.clone(), &namespace),
        &selector,
        &mut notes,
    )
    .await?;
    let services: Vec<Service> = readable(
        Api::namespaced(client.clone(), &namespace),
        &selector,
        &mut notes,
    )
    .await?;
    let groups: Vec<String> = view::groups(snapshot).into_iter().map(|g| g.name).collect();
    let secrets: Vec<Secret> = readable(
        Api::namespaced(client.clone(), &namespace),
        &ListParams::default(),
        &mut notes,
    )
    .await?
    .iter()
    .filter(|s| secret_of_cluster(s, &name, &groups))
    .map(redact)
    .collect();
    let all_events: Vec<Event> = readable(
        Api::namespaced(client.clone(), &namespace),
        &ListParams::default(),
        &mut notes,
    )
    .await?;

    objects(
        dir,
        "objects/cluster",
        std::slice::from_ref(&snapshot.cluster),
    )?;
    objects(dir, "objects/pdgroups", &snapshot.pd_groups)?;
    objects(dir, "objects/tikvgroups", &snapshot.tikv_groups)?;
    objects(dir, "objects/tidbgroups", &snapshot.tidb_groups)?;
    objects(dir, "objects/pds", &snapshot.pds)?;
    objects(dir, "objects/tikvs", &snapshot.tikvs)?;
    objects(dir, "objects/tidbs", &snapshot.tidbs)?;
    objects(dir, "objects/pods", &snapshot.pods)?;
    objects(dir, "objects/pvcs", &snapshot.pvcs)?;
    objects(dir, "objects/configmaps", &config_maps)?;
    objects(dir, "objects/services", &services)?;
    objects(dir, "objects/secrets", &secrets)?;

    // Every Event (not only Warnings) of the cluster's objects.
    let mut names: std::collections::BTreeSet<String> = snapshot_names(snapshot);
    names.extend(config_maps.iter().map(ResourceExt::name_any));
    names.extend(services.iter().map(ResourceExt::name_any));
    let events: Vec<Event> = all_events
        .into_iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_ref()
                .is_some_and(|n| names.contains(n))
        })
        .map(|mut e| {
            e.metadata.managed_fields = None;
            e
        })
        .collect();
    write(dir, "events.yaml", &yaml(&events)?)?;

    let status = view::status_view(snapshot);
    write(dir, "status.txt", &render::status(Style::PLAIN, &status))?;
    write(
        dir,
        "status.json",
        &serde_json::to_string_pretty(&status).map_err(|e| Error::Encode(e.to_string()))?,
    )?;
    let mut summary = summary(&status);
    summary.push_str(
        "\nNot collected by this version: the operator's logs and metrics, PD's own view.\n",
    );
    for note in &notes {
        summary.push_str(note);
        summary.push('\n');
    }
    write(dir, "summary.txt", &summary)?;
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    Ok(files)
}

fn snapshot_names(snapshot: &Snapshot) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    names.insert(snapshot.cluster.name_any());
    for g in view::groups(snapshot) {
        names.insert(g.name);
        for i in g.instances {
            names.insert(i.name);
        }
    }
    names.extend(snapshot.pods.iter().map(ResourceExt::name_any));
    names.extend(snapshot.pvcs.iter().map(ResourceExt::name_any));
    names
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        doing: format!("reading {}", dir.display()),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// What looks wrong, in a few lines: health, groups not settled, every problem, Warning Events.
pub fn summary(view: &view::StatusView) -> String {
    let mut out = format!(
        "Cluster {}/{}: {}{}\n",
        view.namespace,
        view.name,
        if view.healthy {
            "healthy"
        } else {
            "NOT HEALTHY"
        },
        if view.paused { ", paused" } else { "" }
    );
    for g in &view.groups {
        out.push_str(&format!("  {}\n", view::progress_line(g)));
    }
    out.push_str(&format!(
        "{} condition(s) not as they should be\n",
        view.problems.len()
    ));
    for p in &view.problems {
        let c = &p.condition;
        out.push_str(&format!(
            "  {} {}={} {}: {}\n",
            p.object, c.type_, c.status, c.reason, c.message
        ));
    }
    out.push_str(&format!("{} recent Warning Event(s)\n", view.events.len()));
    for e in &view.events {
        out.push_str(&format!(
            "  {} {} {}: {}\n",
            e.last_seen, e.object, e.reason, e.message
        ));
    }
    out
}
