//! Reading a cluster's objects from the API server: the Cluster, its groups and instances, their
//! Pods, PVCs and Warning Events. Only reads, so it works under read-only RBAC.

use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use operator_api::core::{Cluster, OfCluster, PD, PDGroup, TiDB, TiDBGroup, TiKV, TiKVGroup};
use operator_api::keys;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Everything the plugin shows of one cluster, as read at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The Cluster.
    pub cluster: Cluster,
    /// Its PD groups.
    pub pd_groups: Vec<PDGroup>,
    /// Its TiKV groups.
    pub tikv_groups: Vec<TiKVGroup>,
    /// Its TiDB groups.
    pub tidb_groups: Vec<TiDBGroup>,
    /// Its PD instances.
    pub pds: Vec<PD>,
    /// Its TiKV instances.
    pub tikvs: Vec<TiKV>,
    /// Its TiDB instances.
    pub tidbs: Vec<TiDB>,
    /// The Pods of its instances.
    pub pods: Vec<Pod>,
    /// The PVCs of its instances.
    pub pvcs: Vec<PersistentVolumeClaim>,
    /// Warning Events of the namespace (filtered to the cluster's objects when shown).
    pub events: Vec<Event>,
    /// Kinds that could not be read (forbidden), said in the output instead of failing.
    pub unreadable: Vec<String>,
}

/// Lists `K` in `namespace` (every namespace when `None`) with an optional label selector.
pub async fn list<K>(
    client: &Client,
    namespace: Option<&str>,
    labels: Option<&str>,
) -> Result<Vec<K>>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut params = ListParams::default();
    if let Some(labels) = labels {
        params = params.labels(labels);
    }
    let items = api
        .list(&params)
        .await
        .map_err(Error::api(format!("listing {}", K::plural(&()))))?
        .items;
    Ok(items)
}

/// [`list`] of a kind an older installation may not serve (TiFlash, TiCDC): no such resource
/// (404, its CRD not installed) or no right to read it (403) gives nothing.
pub async fn list_optional<K>(client: &Client, namespace: Option<&str>) -> Result<Vec<K>>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 404 => Ok(Vec::new()),
        Err(e) => Err(Error::api(format!("listing {}", K::plural(&())))(e)),
    }
}

/// [`list`], but a kind the user may not read (403) gives nothing and is noted in `unreadable`.
async fn list_or_note<K>(
    client: &Client,
    namespace: &str,
    params: ListParams,
    unreadable: &mut Vec<String>,
) -> Result<Vec<K>>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.list(&params).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            unreadable.push(K::plural(&()).to_string());
            Ok(Vec::new())
        }
        Err(e) => Err(Error::api(format!("listing {}", K::plural(&())))(e)),
    }
}

fn of<G: OfCluster>(items: Vec<G>, cluster: &str) -> Vec<G> {
    items
        .into_iter()
        .filter(|g| g.cluster_name() == cluster)
        .collect()
}

fn sorted<K: ResourceExt>(mut items: Vec<K>) -> Vec<K> {
    items.sort_by_key(|k| k.name_any());
    items
}

/// Reads the Cluster `name` in `namespace` and everything of it.
pub async fn fetch(client: &Client, namespace: &str, name: &str) -> Result<Snapshot> {
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), namespace);
    let cluster = clusters
        .get_opt(name)
        .await
        .map_err(Error::api(format!("reading Cluster {namespace}/{name}")))?
        .ok_or_else(|| Error::NotFound(format!("no Cluster {name} in namespace {namespace}")))?;
    let ns = Some(namespace);
    let selector = format!("{}={name}", keys::LABEL_CLUSTER);
    let mut unreadable = Vec::new();
    let labelled = || ListParams::default().labels(&selector);
    Ok(Snapshot {
        pd_groups: sorted(of(list(client, ns, None).await?, name)),
        tikv_groups: sorted(of(list(client, ns, None).await?, name)),
        tidb_groups: sorted(of(list(client, ns, None).await?, name)),
        pds: sorted(of(list(client, ns, None).await?, name)),
        tikvs: sorted(of(list(client, ns, None).await?, name)),
        tidbs: sorted(of(list(client, ns, None).await?, name)),
        pods: sorted(list_or_note(client, namespace, labelled(), &mut unreadable).await?),
        pvcs: sorted(list_or_note(client, namespace, labelled(), &mut unreadable).await?),
        events: list_or_note(
            client,
            namespace,
            ListParams::default().fields("type=Warning"),
            &mut unreadable,
        )
        .await?,
        cluster,
        unreadable,
    })
}

/// The service-proxy base path of the snapshot's cluster's PD, or why there is none.
fn pd_base(snapshot: &Snapshot) -> Result<String, String> {
    let namespace = snapshot.cluster.namespace().unwrap_or_default();
    let url = snapshot
        .cluster
        .status
        .as_ref()
        .map(|s| s.pd.clone())
        .unwrap_or_default();
    crate::view::pd_proxy_path(&namespace, &url)
        .ok_or_else(|| format!("the Cluster reports no PD URL it can be reached at ({url:?})"))
}

/// GETs `path` of PD's API (`/pd/api/v1/...`) through the API server's service proxy (RBAC: `get`
/// on `services/proxy`) and returns the body; the error says why it could not be read.
pub async fn pd_get(client: &Client, snapshot: &Snapshot, path: &str) -> Result<String, String> {
    let path = format!("{}{path}", pd_base(snapshot)?);
    let request = http::Request::get(&path)
        .body(Vec::new())
        .map_err(|e| format!("{path}: {e}"))?;
    client
        .request_text(request)
        .await
        .map_err(|e| format!("{path}: {e}"))
}

/// PD's own view of the snapshot's cluster, read through the API server's service proxy.
pub async fn pd_view(client: &Client, snapshot: &Snapshot) -> Result<crate::view::PdView, String> {
    async fn get<T: DeserializeOwned>(
        client: &Client,
        snapshot: &Snapshot,
        path: &str,
    ) -> Result<T, String> {
        let text = pd_get(client, snapshot, path).await?;
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
    }
    let members: pd_client::MembersInfo = get(client, snapshot, "/pd/api/v1/members").await?;
    let stores: pd_client::StoresInfo = get(client, snapshot, "/pd/api/v1/stores").await?;
    Ok(crate::view::pd_view(&members, &stores))
}
