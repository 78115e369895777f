//! The DNS names the operator writes for a cluster's components, in the form its
//! `spec.dns` asks for: `<svc>.<namespace>` (`InCluster`) or `<svc>.<namespace>.svc.<domain>`
//! (`FQDN`), with the scheme its `spec.tlsCluster` asks for (`https` with TLS). Every host and
//! scheme in an address the operator writes or calls comes from here.

use kube::{Resource, ResourceExt};
use operator_api::core::{Cluster, ClusterSpec, DnsMode};

/// The cluster domain `FQDN` names use when `spec.dns.clusterDomain` is left empty.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// How one cluster's hosts are named.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dns {
    /// The cluster domain of fully qualified names; `None` for the short `InCluster` form.
    fqdn_domain: Option<String>,
    /// Whether the cluster has TLS between its components (`https` URLs).
    tls: bool,
}

impl Dns {
    /// The names a Cluster's spec asks for. A Cluster without `spec.dns` (or with
    /// `mode: InCluster`) keeps the short form, whatever its `clusterDomain`.
    pub fn of_spec(spec: &ClusterSpec) -> Self {
        let fqdn_domain = spec
            .dns
            .as_ref()
            .filter(|dns| dns.mode == DnsMode::Fqdn)
            .map(|dns| match dns.cluster_domain.trim_end_matches('.') {
                "" => DEFAULT_CLUSTER_DOMAIN.to_string(),
                domain => domain.to_string(),
            });
        let tls = spec.tls_cluster.as_ref().is_some_and(|t| t.enabled);
        Self { fqdn_domain, tls }
    }

    /// The names of `cluster`; the short form when the Cluster is not known (it is gone).
    pub fn of(cluster: Option<&Cluster>) -> Self {
        cluster.map_or_else(Self::default, |c| Self::of_spec(&c.spec))
    }

    /// Fully qualified names in `domain`.
    pub fn fqdn(domain: &str) -> Self {
        Self {
            fqdn_domain: Some(domain.to_string()),
            tls: false,
        }
    }

    /// The same names, with `https` URLs when `tls`.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// The scheme of every URL of the cluster: `https` with TLS between its components.
    pub fn scheme(&self) -> &'static str {
        crate::tls::scheme(self.tls)
    }

    /// The cluster domain of fully qualified names, `None` for the short form.
    pub fn domain(&self) -> Option<&str> {
        self.fqdn_domain.as_deref()
    }

    /// The host of a Service: `<service>.<namespace>`, or
    /// `<service>.<namespace>.svc.<domain>` when fully qualified.
    pub fn service_host(&self, service: &str, namespace: &str) -> String {
        match &self.fqdn_domain {
            Some(domain) => format!("{service}.{namespace}.svc.{domain}"),
            None => format!("{service}.{namespace}"),
        }
    }

    /// The host of an instance's Pod through its headless Service (the instance's
    /// `subdomain`): `<instance>.<subdomain>.<namespace>` and, when fully qualified,
    /// `.svc.<domain>` after it.
    pub fn instance_host<I>(&self, instance: &I) -> String
    where
        I: operator_api::core::Instance + Resource<DynamicType = ()>,
    {
        format!(
            "{}.{}",
            instance.name_any(),
            self.service_host(
                instance.subdomain(),
                &instance.namespace().unwrap_or_default()
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use operator_api::core::ClusterDns;

    use super::*;

    fn spec(dns: Option<(DnsMode, &str)>) -> ClusterSpec {
        ClusterSpec {
            dns: dns.map(|(mode, domain)| ClusterDns {
                mode,
                cluster_domain: domain.into(),
            }),
            ..ClusterSpec::default()
        }
    }

    #[test]
    fn in_cluster_names_are_short_whatever_the_domain() {
        for dns in [
            None,
            Some((DnsMode::InCluster, "")),
            Some((DnsMode::InCluster, "east.example")),
        ] {
            let names = Dns::of_spec(&spec(dns));
            assert_eq!(names, Dns::default());
            assert_eq!(names.service_host("basic-pd", "db"), "basic-pd.db");
            assert_eq!(names.domain(), None);
        }
    }

    #[test]
    fn fqdn_names_carry_svc_and_the_cluster_domain() {
        let names = Dns::of_spec(&spec(Some((DnsMode::Fqdn, "east.example"))));
        assert_eq!(
            names.service_host("basic-pd", "db"),
            "basic-pd.db.svc.east.example"
        );
        assert_eq!(names.domain(), Some("east.example"));
        // A trailing dot (an absolute name) is the same domain.
        let absolute = Dns::of_spec(&spec(Some((DnsMode::Fqdn, "east.example."))));
        assert_eq!(absolute, names);
    }

    #[test]
    fn fqdn_without_a_domain_uses_cluster_local() {
        let names = Dns::of_spec(&spec(Some((DnsMode::Fqdn, ""))));
        assert_eq!(
            names.service_host("basic-pd", "db"),
            "basic-pd.db.svc.cluster.local"
        );
        assert_eq!(Dns::of(None), Dns::default());
    }
}
