//! [`PdClient`]: the calls the operator makes to PD's HTTP API (`/pd/api/v1/...`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};

use crate::error::{Error, Result};
use crate::tls::TlsConfig;
use crate::transport::{Reply, Transport, WriteGate, join, parse_base};
use crate::types::{
    ClusterInfo, EvictLeaderConfig, Member, MemberHealth, MembersInfo, PlacementRule, RegionsInfo,
    ReplicationConfig, StoreInfo, StoresInfo,
};

/// The name of PD's evict-leader scheduler. Since PD 4.0 there is one such scheduler for all
/// evicted stores, holding the store IDs in its config.
pub const EVICT_LEADER_SCHEDULER: &str = "evict-leader-scheduler";

/// `metapb.StoreState` values `GET /stores` filters on: Up, Offline, Tombstone. Without a
/// `state` parameter PD lists only Up and Offline stores.
const ALL_STORE_STATES: [(&str, &str); 3] = [("state", "0"), ("state", "1"), ("state", "2")];

/// Told of every request a [`PdClient`] made: its method (`GET`), its endpoint (the first
/// segment of the API path: `members`, `stores`, `store`, ...; never an ID) and its outcome, as
/// one of [`PdClient::OUTCOMES`].
pub type RequestObserver = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

#[derive(Clone, Default)]
struct Observer(Option<RequestObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Observer" } else { "None" })
    }
}

/// A client of one PD endpoint (a member or the PD Service in front of them).
#[derive(Debug, Clone)]
pub struct PdClient {
    base: String,
    base_url: Url,
    transport: Transport,
    observer: Observer,
}

impl PdClient {
    /// `base` is PD's client URL, e.g. "http://basic-pd.db:2379" or, behind a test simulator, a URL
    /// with a path prefix like "http://127.0.0.1:7777/clusters/db/basic" — every API path is
    /// appended to it ("/pd/api/v1/members"), so a prefix must be kept.
    ///
    /// `tls` gives the CA (and, for mutual TLS, the client certificate) for an `https` base;
    /// `timeout` bounds connecting and each whole request.
    pub fn new(base: &str, tls: Option<&TlsConfig>, timeout: Duration) -> Result<Self> {
        let (base, base_url) = parse_base(base)?;
        Ok(Self {
            base,
            base_url,
            transport: Transport::new(tls, timeout)?,
            observer: Observer::default(),
        })
    }

    /// The outcomes a [`RequestObserver`] is told: a 2xx answer, another status, no connection
    /// or no answer in time, anything else.
    pub const OUTCOMES: [&'static str; 4] = ["success", "status", "unreachable", "error"];

    /// The same client, telling `observer` of every request it makes (for metrics).
    pub fn observed(mut self, observer: RequestObserver) -> Self {
        self.observer = Observer(Some(observer));
        self
    }

    /// The same client, asking `gate` before every write ([`WriteGate`]).
    pub fn gated(mut self, gate: WriteGate) -> Self {
        self.transport = self.transport.gated(gate);
        self
    }

    /// The base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The base URL, parsed.
    pub(crate) fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// `GET /pd/api/v1/health`: every member and whether PD could reach it.
    pub async fn health(&self) -> Result<Vec<MemberHealth>> {
        let reply = self.get(&["health"], &[]).await?;
        Ok(reply
            .json::<Option<Vec<MemberHealth>>>()?
            .unwrap_or_default())
    }

    /// `GET /pd/api/v1/members`: the members, the PD leader and the etcd leader.
    pub async fn members(&self) -> Result<MembersInfo> {
        self.get(&["members"], &[]).await?.json()
    }

    /// `GET /pd/api/v2/ready` (`/pd/api/v2/readyz` with `v2`), asked of one member: `true` when
    /// it is ready (200), `false` while it is still loading its Regions (500). Any other answer is
    /// the error, a 404 included (a PD before v8.5.2 has no such path).
    pub async fn ready(&self, v2: bool) -> Result<bool> {
        let leaf = if v2 { "readyz" } else { "ready" };
        let url = join(&self.base_url, &["pd", "api", "v2", leaf])?;
        match self.send_url(Method::GET, url, leaf, &[], None).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(500) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /pd/api/v1/leader`: the PD leader; [`Error::NoLeader`] while none is elected (PD
    /// answers `null` then).
    pub async fn leader(&self) -> Result<Member> {
        let reply = self.get(&["leader"], &[]).await?;
        match reply.json::<Option<Member>>()? {
            Some(leader) if !leader.name.is_empty() => Ok(leader),
            _ => Err(Error::NoLeader {
                url: self.url(&["leader"])?.to_string(),
            }),
        }
    }

    /// `POST /pd/api/v1/leader/transfer/{name}`: asks the leader to hand leadership to the member
    /// `to_member_name`. PD answers once the request is submitted; the new leader shows in
    /// [`PdClient::leader`] a moment later.
    pub async fn transfer_leader(&self, to_member_name: &str) -> Result<()> {
        self.send(
            Method::POST,
            &["leader", "transfer", to_member_name],
            &[],
            None,
        )
        .await
        .map(drop)
    }

    /// `DELETE /pd/api/v1/members/name/{name}`: removes the member from PD's etcd cluster. A
    /// member that is already gone (404) counts as removed.
    pub async fn delete_member_by_name(&self, name: &str) -> Result<()> {
        ignore_not_found(
            self.send(Method::DELETE, &["members", "name", name], &[], None)
                .await,
        )
    }

    /// `GET /pd/api/v1/cluster`: the cluster's metadata; fails (HTTP 500) before bootstrap.
    pub async fn cluster(&self) -> Result<ClusterInfo> {
        self.get(&["cluster"], &[]).await?.json()
    }

    /// `GET /pd/api/v1/cluster` → `id`: the cluster ID.
    pub async fn cluster_id(&self) -> Result<u64> {
        Ok(self.cluster().await?.id)
    }

    /// `POST /pd/api/v1/config` with `{"schedule.leader-schedule-limit": 8, ...}`: changes these
    /// items online. PD stores `schedule`, `replication` and `pd-server` items for the whole
    /// cluster; `log.level` changes on the member asked. An item PD cannot change answers 400.
    pub async fn set_config(&self, items: &BTreeMap<String, serde_json::Value>) -> Result<()> {
        let body = serde_json::json!(items);
        self.send(Method::POST, &["config"], &[], Some(&body))
            .await
            .map(drop)
    }

    /// `GET /pd/api/v1/config/replicate`: `max-replicas` and `location-labels`.
    pub async fn replication_config(&self) -> Result<ReplicationConfig> {
        self.get(&["config", "replicate"], &[]).await?.json()
    }

    /// `GET /pd/api/v1/config/rules/group/{group}`: the placement rules of a group (TiDB writes
    /// one per table with TiFlash replicas in group `tiflash`); none when PD knows no such group.
    pub async fn rules_of_group(&self, group: &str) -> Result<Vec<PlacementRule>> {
        match self.get(&["config", "rules", "group", group], &[]).await {
            Ok(reply) => Ok(reply
                .json::<Option<Vec<PlacementRule>>>()?
                .unwrap_or_default()),
            Err(error) if error.is_not_found() => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }

    /// The most TiFlash replicas any table asks for: the largest `count` of the learner rules of
    /// group `tiflash` that place on `engine=tiflash` stores (0 when no table has TiFlash
    /// replicas).
    pub async fn tiflash_replicas(&self) -> Result<u64> {
        Ok(max_tiflash_replicas(&self.rules_of_group("tiflash").await?))
    }

    /// `GET /pd/api/v1/stores?state=0&state=1&state=2`: every store, Tombstones included (PD
    /// lists only Up and Offline stores unless asked for the states by number). Up stores that
    /// miss heartbeats show as "Disconnected" or "Down".
    pub async fn stores(&self) -> Result<StoresInfo> {
        self.get(&["stores"], &ALL_STORE_STATES).await?.json()
    }

    /// `GET /pd/api/v1/store/{id}`: one store, whatever its state; 404 when PD has no such store.
    pub async fn store(&self, id: u64) -> Result<StoreInfo> {
        self.get(&["store", &id.to_string()], &[]).await?.json()
    }

    /// `DELETE /pd/api/v1/store/{id}`: takes the store offline; PD moves its Regions away and
    /// then marks it Tombstone. A store already removed (410 Gone) counts as done; a store PD
    /// does not know answers 404.
    pub async fn delete_store(&self, id: u64) -> Result<()> {
        match self
            .send(Method::DELETE, &["store", &id.to_string()], &[], None)
            .await
        {
            Err(error) if error.status() == Some(410) => Ok(()),
            other => other.map(drop),
        }
    }

    /// `POST /pd/api/v1/store/{id}/state?state=Up`: cancels taking an Offline store out. PD
    /// refuses (410 Gone) for a store that is already Tombstone.
    pub async fn cancel_delete_store(&self, id: u64) -> Result<()> {
        self.send(
            Method::POST,
            &["store", &id.to_string(), "state"],
            &[("state", "Up")],
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /pd/api/v1/store/{id}/label` with `{"zone": "a", ...}`: sets (adds or overwrites)
    /// these labels; labels not named keep their value. PD refuses the reserved key "engine".
    pub async fn set_store_labels(&self, id: u64, labels: &BTreeMap<String, String>) -> Result<()> {
        let body = serde_json::json!(labels);
        self.send(
            Method::POST,
            &["store", &id.to_string(), "label"],
            &[],
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `DELETE /pd/api/v1/store/{id}/label` with the key as a JSON string: removes that one
    /// label (setting labels only ever adds or overwrites them).
    pub async fn delete_store_label(&self, id: u64, key: &str) -> Result<()> {
        let body = serde_json::json!(key);
        self.send(
            Method::DELETE,
            &["store", &id.to_string(), "label"],
            &[],
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `GET /pd/api/v1/schedulers`: the names of the schedulers that run.
    pub async fn schedulers(&self) -> Result<Vec<String>> {
        let reply = self.get(&["schedulers"], &[]).await?;
        Ok(reply.json::<Option<Vec<String>>>()?.unwrap_or_default())
    }

    /// `POST /pd/api/v1/schedulers` with `{"name": "evict-leader-scheduler", "store_id": id}`:
    /// starts moving the store's Region leaders away. PD creates the scheduler or, when it runs
    /// already, adds the store to its config; asking again for an evicted store changes nothing.
    pub async fn add_evict_leader_scheduler(&self, store_id: u64) -> Result<()> {
        let body = serde_json::json!({ "name": EVICT_LEADER_SCHEDULER, "store_id": store_id });
        self.send(Method::POST, &["schedulers"], &[], Some(&body))
            .await
            .map(drop)
    }

    /// `DELETE /pd/api/v1/schedulers/evict-leader-scheduler-{store_id}`: stops evicting leaders
    /// from one store. PD turns this into
    /// `DELETE /pd/api/v1/scheduler-config/evict-leader-scheduler/delete/{store_id}`, which drops
    /// the store from the shared scheduler's config and removes the scheduler itself once no
    /// store is left, so other stores stay evicted. 404 (the store is not evicted, or no such
    /// scheduler runs) counts as done. Some PD versions answer 500 instead of 404; then the
    /// scheduler's config is read back and the call succeeds if the store is no longer evicted.
    pub async fn remove_evict_leader_scheduler(&self, store_id: u64) -> Result<()> {
        let name = format!("{EVICT_LEADER_SCHEDULER}-{store_id}");
        match self
            .send(Method::DELETE, &["schedulers", &name], &[], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) if error.status() == Some(500) => {
                match self.evict_leader_store_ids().await {
                    Ok(ids) if !ids.contains(&store_id) => Ok(()),
                    _ => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// The stores whose leaders PD is evicting, sorted: the keys of `store-id-ranges` in
    /// `GET /pd/api/v1/scheduler-config/evict-leader-scheduler/list`. That path answers 404 when
    /// the scheduler does not run; then the scheduler names are read instead, where PD before
    /// 4.0 ran one `evict-leader-scheduler-{store_id}` per store (empty on later versions).
    pub async fn evict_leader_store_ids(&self) -> Result<Vec<u64>> {
        let path = ["scheduler-config", EVICT_LEADER_SCHEDULER, "list"];
        let mut ids = match self.get(&path, &[]).await {
            Ok(reply) => {
                let config: EvictLeaderConfig = reply.json()?;
                config
                    .store_id_ranges
                    .keys()
                    .map(|key| {
                        key.parse::<u64>().map_err(|e| Error::Decode {
                            url: self.url_string(&path),
                            source: serde::de::Error::custom(format!(
                                "store ID {key:?} in store-id-ranges: {e}"
                            )),
                        })
                    })
                    .collect::<Result<Vec<u64>>>()?
            }
            Err(error) if error.is_not_found() => self
                .schedulers()
                .await?
                .iter()
                .filter_map(|name| {
                    name.strip_prefix(EVICT_LEADER_SCHEDULER)?
                        .strip_prefix('-')?
                        .parse()
                        .ok()
                })
                .collect(),
            Err(error) => return Err(error),
        };
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// `GET /pd/api/v1/regions/check/down-peer`: the Regions with a peer that has stopped
    /// answering.
    pub async fn down_peer_regions(&self) -> Result<RegionsInfo> {
        self.get(&["regions", "check", "down-peer"], &[])
            .await?
            .json()
    }

    /// The URL of an API path: the base, then `/pd/api/v1`, then `path`.
    fn url(&self, path: &[&str]) -> Result<Url> {
        let mut segments = vec!["pd", "api", "v1"];
        segments.extend_from_slice(path);
        join(&self.base_url, &segments)
    }

    /// [`PdClient::url`] as text for an error message, even if it cannot be built.
    fn url_string(&self, path: &[&str]) -> String {
        self.url(path)
            .map(String::from)
            .unwrap_or_else(|_| format!("{}/pd/api/v1/{}", self.base, path.join("/")))
    }

    async fn get(&self, path: &[&str], query: &[(&str, &str)]) -> Result<Reply> {
        self.send(Method::GET, path, query, None).await
    }

    async fn send(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Reply> {
        let url = self.url(path)?;
        let endpoint = path.first().copied().unwrap_or_default();
        self.send_url(method, url, endpoint, query, body).await
    }

    /// Sends to `url` (under [`PdClient::base`]), telling the observer of it as `endpoint`.
    pub(crate) async fn send_url(
        &self,
        method: Method,
        url: Url,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Reply> {
        let result = self.transport.send(method.clone(), url, query, body).await;
        // A write the gate refused was never sent: the observer is not told of it.
        if let Err(Error::Fenced { .. }) = &result {
            return result;
        }
        if let Some(observer) = &self.observer.0 {
            let outcome = match &result {
                Ok(_) => Self::OUTCOMES[0],
                Err(e) if e.status().is_some() => Self::OUTCOMES[1],
                Err(e) if e.is_unreachable() => Self::OUTCOMES[2],
                Err(_) => Self::OUTCOMES[3],
            };
            observer(method.as_str(), endpoint, outcome);
        }
        result
    }
}

/// A write whose 404 means "already done".
/// The largest `count` of `rules` that are TiFlash learner rules.
pub fn max_tiflash_replicas(rules: &[PlacementRule]) -> u64 {
    rules
        .iter()
        .filter(|r| r.role == "learner")
        .filter(|r| {
            r.label_constraints.iter().any(|c| {
                c.key == "engine" && c.op == "in" && c.values.iter().any(|v| v == "tiflash")
            })
        })
        .map(|r| r.count)
        .max()
        .unwrap_or(0)
}

fn ignore_not_found(result: Result<Reply>) -> Result<()> {
    match result {
        Err(error) if error.is_not_found() => Ok(()),
        other => other.map(drop),
    }
}
