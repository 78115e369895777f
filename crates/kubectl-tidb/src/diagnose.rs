//! `diagnose`: one tar.gz archive (or a directory) with what a bug report needs: the cluster's
//! objects (Secret values redacted), the Events of its objects, the `status` view and a summary of
//! what looks wrong.

use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret, Service};
use kube::api::{ListParams, LogParams};
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

/// The files of a diagnosis, by path relative to its top directory, in the order made.
#[derive(Debug, Default)]
pub struct Bundle {
    /// Path and content of each file.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    fn add(&mut self, path: String, text: String) {
        self.files.push((path, text.into_bytes()));
    }

    /// Writes the files under `dir`; returns how many.
    pub fn write_dir(&self, dir: &Path) -> Result<usize> {
        for (file, content) in &self.files {
            let path = dir.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                    doing: format!("creating {}", parent.display()),
                    source,
                })?;
            }
            std::fs::write(&path, content).map_err(|source| Error::Io {
                doing: format!("writing {}", path.display()),
                source,
            })?;
        }
        Ok(self.files.len())
    }

    /// Writes the files as a gzip-compressed tar archive at `path`, under the top directory
    /// `top`; returns how many.
    pub fn write_archive(&self, path: &Path, top: &str) -> Result<usize> {
        let io = |source| Error::Io {
            doing: format!("writing {}", path.display()),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ));
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for (name, content) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(mtime);
            archive
                .append_data(&mut header, format!("{top}/{name}"), content.as_slice())
                .map_err(io)?;
        }
        archive.into_inner().map_err(io)?.finish().map_err(io)?;
        Ok(self.files.len())
    }
}

fn yaml<T: Serialize>(value: &T) -> Result<String> {
    serde_yaml::to_string(value).map_err(|e| Error::Encode(e.to_string()))
}

fn objects<K: ResourceExt + Serialize + Clone>(
    bundle: &mut Bundle,
    folder: &str,
    items: &[K],
) -> Result<()> {
    for item in items {
        let mut item = item.clone();
        item.meta_mut().managed_fields = None;
        bundle.add(format!("{folder}/{}.yaml", item.name_any()), yaml(&item)?);
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

/// The label every Pod of the operator's controllers carries (manifests/controllers).
pub const OPERATOR_POD_SELECTOR: &str = "app.kubernetes.io/part-of=tidb-operator";
/// Lines of each controller's log that are kept.
const LOG_TAIL_LINES: i64 = 5000;

/// The operator's controller Pods in `namespace`: each Pod, the tail of its log, and its
/// `/metrics` through the API server's Pod proxy, as far as RBAC and the network allow; what
/// cannot be read is noted.
async fn operator(
    client: &Client,
    namespace: &str,
    bundle: &mut Bundle,
    notes: &mut Vec<String>,
) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(OPERATOR_POD_SELECTOR);
    let pods = readable(api.clone(), &params, notes).await?;
    if pods.is_empty() {
        notes.push(format!(
            "operator: no Pod with {OPERATOR_POD_SELECTOR} in namespace {namespace} (another namespace: --operator-namespace)"
        ));
    }
    objects(bundle, "operator/pods", &pods)?;
    for pod in &pods {
        let name = pod.name_any();
        let logs = LogParams {
            tail_lines: Some(LOG_TAIL_LINES),
            timestamps: true,
            ..LogParams::default()
        };
        match api.logs(&name, &logs).await {
            Ok(text) => bundle.add(format!("operator/logs/{name}.log"), text),
            Err(e) => notes.push(format!(
                "operator: the log of Pod {namespace}/{name} is not readable: {e}"
            )),
        }
        let port = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some("http"))
            .map(|p| p.container_port);
        let Some(port) = port else { continue };
        let uri = format!("/api/v1/namespaces/{namespace}/pods/{name}:{port}/proxy/metrics");
        let request = http::Request::get(&uri)
            .body(Vec::new())
            .map_err(|e| Error::Encode(e.to_string()))?;
        match client.request_text(request).await {
            Ok(text) => bundle.add(format!("operator/metrics/{name}.txt"), text),
            Err(e) => notes.push(format!(
                "operator: the metrics of Pod {namespace}/{name} are not reachable: {e}"
            )),
        }
    }
    Ok(())
}

/// Collects the diagnosis of the snapshot's cluster, with the operator's Pods, logs and metrics
/// from `operator_namespace`.
pub async fn diagnose(
    client: &Client,
    snapshot: &Snapshot,
    operator_namespace: &str,
) -> Result<Bundle> {
    let mut bundle = Bundle::default();
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
        &mut bundle,
        "objects/cluster",
        std::slice::from_ref(&snapshot.cluster),
    )?;
    objects(&mut bundle, "objects/pdgroups", &snapshot.pd_groups)?;
    objects(&mut bundle, "objects/tikvgroups", &snapshot.tikv_groups)?;
    objects(&mut bundle, "objects/tidbgroups", &snapshot.tidb_groups)?;
    objects(&mut bundle, "objects/pds", &snapshot.pds)?;
    objects(&mut bundle, "objects/tikvs", &snapshot.tikvs)?;
    objects(&mut bundle, "objects/tidbs", &snapshot.tidbs)?;
    objects(&mut bundle, "objects/pods", &snapshot.pods)?;
    objects(&mut bundle, "objects/pvcs", &snapshot.pvcs)?;
    objects(&mut bundle, "objects/configmaps", &config_maps)?;
    objects(&mut bundle, "objects/services", &services)?;
    objects(&mut bundle, "objects/secrets", &secrets)?;

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
    bundle.add("events.yaml".into(), yaml(&events)?);

    operator(client, operator_namespace, &mut bundle, &mut notes).await?;
    // PD's own view, where the service proxy reaches it: the first failure stands for the rest.
    for (file, path) in [
        ("pd/members.json", "/pd/api/v1/members"),
        ("pd/stores.json", "/pd/api/v1/stores"),
        ("pd/config.json", "/pd/api/v1/config"),
    ] {
        match crate::snapshot::pd_get(client, snapshot, path).await {
            Ok(body) => bundle.add(file.to_string(), body),
            Err(e) => {
                notes.push(format!("PD's own view: not readable: {e}"));
                break;
            }
        }
    }

    let status = view::status_view(snapshot);
    bundle.add("status.txt".into(), render::status(Style::PLAIN, &status));
    bundle.add(
        "status.json".into(),
        serde_json::to_string_pretty(&status).map_err(|e| Error::Encode(e.to_string()))?,
    );
    let mut summary = summary(&status);
    summary.push('\n');
    for note in &notes {
        summary.push_str(note);
        summary.push('\n');
    }
    bundle.add("summary.txt".into(), summary);
    Ok(bundle)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;

    use super::*;

    #[test]
    fn the_archive_holds_every_file_under_one_top_directory() {
        let mut bundle = Bundle::default();
        bundle.add("summary.txt".into(), "Cluster db/basic: healthy\n".into());
        bundle.add(
            "objects/cluster/basic.yaml".into(),
            "kind: Cluster\n".into(),
        );
        let path =
            std::env::temp_dir().join(format!("diagnose-test-{}.tar.gz", std::process::id()));
        assert_eq!(bundle.write_archive(&path, "top").unwrap(), 2);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
            std::fs::File::open(&path).unwrap(),
        ));
        let mut found = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            found.push((entry.path().unwrap().display().to_string(), text));
        }
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            found,
            [
                (
                    "top/summary.txt".to_string(),
                    "Cluster db/basic: healthy\n".to_string()
                ),
                (
                    "top/objects/cluster/basic.yaml".to_string(),
                    "kind: Cluster\n".to_string()
                )
            ]
        );
    }
}
