//! Where a controller reaches a component: its in-cluster DNS name, or a URL from
//! `--endpoint-override` when it runs out of the cluster (development, tests, the simulator).
//!
//! An override's URL may hold `{namespace}`, `{cluster}` and `{instance}`, filled in per call,
//! so one override serves every cluster: `pd=http://127.0.0.1:7777/clusters/{namespace}/{cluster}`.
//! A target of `<namespace>/<cluster>/<component>` wins over a plain `<component>`.

use std::collections::BTreeMap;

/// The component and object an endpoint is asked for.
#[derive(Clone, Copy, Debug)]
pub struct EndpointFor<'a> {
    /// `pd`, `tikv` or `tidb`.
    pub component: &'a str,
    /// Namespace of the cluster.
    pub namespace: &'a str,
    /// Cluster name.
    pub cluster: &'a str,
    /// Instance name, for per-instance endpoints (status ports).
    pub instance: &'a str,
}

/// Endpoint overrides by target, from the flags.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    overrides: BTreeMap<String, String>,
}

impl Endpoints {
    /// From `--endpoint-override` values (a later one wins for the same target).
    pub fn new(overrides: &[crate::flags::EndpointOverride]) -> Self {
        Self {
            overrides: overrides
                .iter()
                .map(|o| (o.target.clone(), o.url.clone()))
                .collect(),
        }
    }

    /// The URL to use: an override if one matches, else `in_cluster`.
    pub fn resolve(&self, of: EndpointFor<'_>, in_cluster: String) -> String {
        let specific = format!("{}/{}/{}", of.namespace, of.cluster, of.component);
        match self
            .overrides
            .get(&specific)
            .or_else(|| self.overrides.get(of.component))
        {
            Some(template) => template
                .replace("{namespace}", of.namespace)
                .replace("{cluster}", of.cluster)
                .replace("{instance}", of.instance),
            None => in_cluster,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::EndpointOverride;

    fn of<'a>(component: &'a str, cluster: &'a str) -> EndpointFor<'a> {
        EndpointFor {
            component,
            namespace: "db",
            cluster,
            instance: "tidb-x",
        }
    }

    #[test]
    fn templates_are_filled_and_specific_targets_win() {
        let endpoints = Endpoints::new(&[
            "pd=http://127.0.0.1:7777/clusters/{namespace}/{cluster}"
                .parse::<EndpointOverride>()
                .unwrap(),
            "db/special/pd=http://127.0.0.1:9999".parse().unwrap(),
            "tidb=http://127.0.0.1:7777/clusters/{namespace}/{cluster}/tidb/{instance}"
                .parse()
                .unwrap(),
        ]);
        assert_eq!(
            endpoints.resolve(of("pd", "basic"), "x".into()),
            "http://127.0.0.1:7777/clusters/db/basic"
        );
        assert_eq!(
            endpoints.resolve(of("pd", "special"), "x".into()),
            "http://127.0.0.1:9999"
        );
        assert_eq!(
            endpoints.resolve(of("tidb", "basic"), "x".into()),
            "http://127.0.0.1:7777/clusters/db/basic/tidb/tidb-x"
        );
        assert_eq!(
            endpoints.resolve(of("tikv", "basic"), "http://in-cluster".into()),
            "http://in-cluster"
        );
    }
}
