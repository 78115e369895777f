//! The cluster a Backup or Restore works on, as BR needs it: the PD address, the version that
//! picks BR's image, and with TLS the client certificate's Secret. Read from the Cluster and its
//! TiKV or PD group; never written.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::ListParams;
use operator_api::br::BRConfig;
use operator_api::core::{Cluster, PDGroup, TiKVGroup};

use operator_runtime::tls::{CA_KEY, CERT_KEY, KEY_KEY};

use crate::error::Error;
use crate::status::{Blocked, SECRET_KEY_MISSING, SECRET_NOT_FOUND};

/// Reason: the Cluster has no PD URL or version yet.
pub const CLUSTER_NOT_READY: &str = "ClusterNotReady";
/// Where a Job mounts the Cluster's client certificate (as the reference does), for BR's
/// `--ca`, `--cert` and `--key`.
pub const CLIENT_TLS_DIR: &str = "/var/lib/cluster-client-tls";

/// What BR needs to know about its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Namespace of the Cluster.
    pub namespace: String,
    /// Name of the Cluster.
    pub name: String,
    /// PD as `host:port`.
    pub pd: String,
    /// Version of TiKV (or PD) the cluster runs, if known.
    pub version: Option<String>,
    /// With TLS between components: the client certificate BR presents, which the Job mounts
    /// at [`CLIENT_TLS_DIR`].
    pub tls: Option<ClientCert>,
}

/// The Secrets of a Cluster's client certificate (`<cluster>-cluster-client-secret` for both,
/// unless the Cluster's `spec.security.tls.client` names others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The Secret with `tls.crt` and `tls.key`.
    pub cert: String,
    /// The Secret with `ca.crt`.
    pub ca: String,
}

/// `host:port` of a PD URL such as `http://basic-pd.db:2379`.
pub fn pd_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// Finds the Cluster `br.cluster` (in `br.clusterNamespace`, else `namespace`). `Ok(Err(_))`
/// says it does not exist.
async fn find(
    client: &kube::Client,
    namespace: &str,
    br: &BRConfig,
) -> Result<Result<(String, Cluster), Blocked>, Error> {
    let cluster_ns = if br.cluster_namespace.is_empty() {
        namespace
    } else {
        &br.cluster_namespace
    };
    let name = &br.cluster;
    Ok(Api::<Cluster>::namespaced(client.clone(), cluster_ns)
        .get_opt(name)
        .await
        .map_err(Error::kube("reading the Cluster"))?
        .map(|cluster| (cluster_ns.to_string(), cluster))
        .ok_or_else(|| {
            Blocked::new(
                operator_api::conditions::reasons::CLUSTER_NOT_FOUND,
                format!("Cluster {name} does not exist in namespace {cluster_ns}"),
            )
        }))
}

/// The namespace of the Cluster `br.cluster` and its version, for Jobs that only need the
/// version to pick their images (a compaction talks to the storage, not to the cluster).
pub async fn version_of(
    client: &kube::Client,
    namespace: &str,
    br: &BRConfig,
) -> Result<Result<(String, Option<String>), Blocked>, Error> {
    let (cluster_ns, _) = match find(client, namespace, br).await? {
        Ok(found) => found,
        Err(blocked) => return Ok(Err(blocked)),
    };
    let version = version(client, &cluster_ns, &br.cluster).await?;
    Ok(Ok((cluster_ns, version)))
}

/// Finds the Cluster `br.cluster` (in `br.clusterNamespace`, else `namespace`) and what BR needs
/// of it. `Ok(Err(_))` says why the object cannot proceed.
pub async fn resolve(
    client: &kube::Client,
    namespace: &str,
    br: &BRConfig,
) -> Result<Result<Target, Blocked>, Error> {
    let name = &br.cluster;
    let (cluster_ns, cluster) = match find(client, namespace, br).await? {
        Ok(found) => found,
        Err(blocked) => return Ok(Err(blocked)),
    };
    let cluster_ns = cluster_ns.as_str();
    if cluster.metadata.deletion_timestamp.is_some() {
        // Its deletion waits for the BR Jobs already running; a new one would hold it longer
        // (a schedule's, for ever).
        return Ok(Err(Blocked::new(
            operator_api::conditions::reasons::CLUSTER_DELETING,
            format!(
                "Cluster {name} in namespace {cluster_ns} is being deleted: no BR Job starts against it"
            ),
        )));
    }
    let tls = if operator_runtime::tls::enabled(&cluster) {
        let (cert, ca) = operator_runtime::tls::client_secrets(&cluster);
        // The Job runs in the Backup's (or Restore's) namespace, and a Pod mounts Secrets of its
        // own namespace only: a Pod waiting for a missing Secret would say nothing useful.
        for (secret, keys) in [(&cert, &[CERT_KEY, KEY_KEY][..]), (&ca, &[CA_KEY][..])] {
            if let Some(blocked) =
                check_client_secret(client, namespace, secret, keys, name).await?
            {
                return Ok(Err(blocked));
            }
        }
        Some(ClientCert { cert, ca })
    } else {
        None
    };
    let pd_url = cluster
        .status
        .as_ref()
        .map(|s| s.pd.clone())
        .unwrap_or_default();
    if pd_url.is_empty() {
        return Ok(Err(Blocked::new(
            CLUSTER_NOT_READY,
            format!("Cluster {name} reports no PD URL (status.pd) yet"),
        )));
    }
    let version = version(client, cluster_ns, name).await?;
    Ok(Ok(Target {
        namespace: cluster_ns.to_string(),
        name: name.clone(),
        pd: pd_address(&pd_url),
        version,
        tls,
    }))
}

/// Checks that a client certificate Secret of a TLS Cluster is in `namespace` with the `keys` BR
/// reads. Only names are looked at.
async fn check_client_secret(
    client: &kube::Client,
    namespace: &str,
    secret: &str,
    keys: &[&str],
    cluster: &str,
) -> Result<Option<Blocked>, Error> {
    let found = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(secret)
        .await
        .map_err(Error::kube("reading the client certificate Secret"))?;
    let Some(found) = found else {
        return Ok(Some(Blocked::new(
            SECRET_NOT_FOUND,
            format!(
                "Cluster {cluster} uses TLS between components, and its client certificate Secret {secret} does not exist in namespace {namespace}, where the Job runs"
            ),
        )));
    };
    let data = found.data.unwrap_or_default();
    let missing: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !data.contains_key(*k))
        .collect();
    Ok((!missing.is_empty()).then(|| {
        Blocked::new(
            SECRET_KEY_MISSING,
            format!(
                "client certificate Secret {secret} lacks key(s) {}",
                missing.join(", ")
            ),
        )
    }))
}

/// The version of the cluster's TiKV group (what it runs, else what it is moving to), else of
/// its PD group.
async fn version(
    client: &kube::Client,
    namespace: &str,
    cluster: &str,
) -> Result<Option<String>, Error> {
    let tikv = Api::<TiKVGroup>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("listing TiKV groups"))?;
    let pick = |running: Option<String>, wanted: String| {
        running
            .filter(|v| !v.is_empty())
            .or(Some(wanted).filter(|v| !v.is_empty()))
    };
    if let Some(v) = tikv
        .items
        .iter()
        .filter(|g| g.spec.cluster.name == cluster)
        .find_map(|g| {
            pick(
                g.status.as_ref().map(|s| s.group.version.clone()),
                g.spec.template.spec.common.version.clone(),
            )
        })
    {
        return Ok(Some(v));
    }
    let pd = Api::<PDGroup>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("listing PD groups"))?;
    Ok(pd
        .items
        .iter()
        .filter(|g| g.spec.cluster.name == cluster)
        .find_map(|g| {
            pick(
                g.status.as_ref().map(|s| s.group.version.clone()),
                g.spec.template.spec.common.version.clone(),
            )
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pd_urls_become_addresses() {
        assert_eq!(pd_address("http://basic-pd.db:2379"), "basic-pd.db:2379");
        // A Cluster with `dns.mode: FQDN` reports its PD fully qualified; BR gets it as it is.
        assert_eq!(
            pd_address("http://basic-pd.db.svc.east.example:2379"),
            "basic-pd.db.svc.east.example:2379"
        );
        assert_eq!(pd_address("https://pd.db.svc:2379/"), "pd.db.svc:2379");
        assert_eq!(pd_address("basic-pd:2379"), "basic-pd:2379");
    }
}
