//! The Nodes the operands run on: where an instance's Pod is and whether that Node is cordoned
//! (`spec.unschedulable`, as `kubectl cordon` and `kubectl drain` set it), read from a Node
//! cache; and the wake-up of the instances on a Node whose `unschedulable` changed.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Node, NodeSpec, Pod};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// Where an instance's Pod runs, as far as the caches tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodNode {
    /// On this Node, which is cordoned.
    Cordoned(String),
    /// On this Node, which takes new Pods.
    Schedulable(String),
    /// No Pod, a Pod not scheduled yet, or a Node the cache does not hold.
    Unknown,
}

impl PodNode {
    /// Whether the Pod's Node is cordoned.
    pub fn is_cordoned(&self) -> bool {
        matches!(self, PodNode::Cordoned(_))
    }

    /// The Node's name, when the Pod is on a known Node.
    pub fn name(&self) -> Option<&str> {
        match self {
            PodNode::Cordoned(name) | PodNode::Schedulable(name) => Some(name),
            PodNode::Unknown => None,
        }
    }
}

/// Whether a Node is cordoned: it takes no new Pods and is likely to be drained.
pub fn is_cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// The name of the Node `pod` is scheduled on.
pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Where `pod` runs, from the Node cache.
pub fn pod_node(nodes: &Store<Node>, pod: Option<&Pod>) -> PodNode {
    let Some(name) = pod.and_then(node_name) else {
        return PodNode::Unknown;
    };
    match nodes.get(&ObjectRef::new(name)) {
        Some(node) if is_cordoned(&node) => PodNode::Cordoned(name.to_string()),
        Some(_) => PodNode::Schedulable(name.to_string()),
        None => PodNode::Unknown,
    }
}

/// Starts a cache of every Node, for [`pod_node`] and the Nodes' location labels. Needs get,
/// list and watch on `nodes`. It keeps of each Node only its name, labels and `unschedulable`
/// ([`trim`]): a Node's status (its images, conditions, addresses) is most of its size, and a
/// large Kubernetes cluster has thousands of Nodes.
pub fn cache(client: &Client, shutdown: &tokio_util::sync::CancellationToken) -> Store<Node> {
    crate::cache::reflect_trimmed(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        shutdown,
        trim,
    )
}

/// Takes out of a cached Node everything but its name, labels and `spec.unschedulable`.
fn trim(node: &mut Node) {
    node.status = None;
    node.metadata.annotations = None;
    node.spec = node.spec.take().map(|spec| NodeSpec {
        unschedulable: spec.unschedulable,
        ..NodeSpec::default()
    });
}

/// The last `unschedulable` seen of each Node, so that only a change wakes anything: a Node's
/// status heartbeats would otherwise wake every instance on it.
#[derive(Debug, Default)]
struct Seen(HashMap<String, bool>);

impl Seen {
    /// Whether a sighting of Node `name` with `cordoned` is news: a change, or the first
    /// sighting of a cordoned Node (a schedulable one seen first changes nothing).
    fn changed(&mut self, name: &str, cordoned: bool) -> bool {
        match self.0.insert(name.to_string(), cordoned) {
            Some(before) => before != cordoned,
            None => cordoned,
        }
    }
}

/// The instances of kind `I` whose Pods (the controller-owned Pods in `pods`) are on `node`.
pub fn instances_on<I>(pods: &Store<Pod>, node: &str) -> Vec<ObjectRef<I>>
where
    I: Resource<DynamicType = ()>,
{
    let kind = I::kind(&());
    pods.state()
        .iter()
        .filter(|p| node_name(p) == Some(node))
        .filter_map(|p| {
            let owner = p
                .metadata
                .owner_references
                .as_ref()?
                .iter()
                .find(|o| o.controller == Some(true) && o.kind == kind)?;
            let namespace = p.metadata.namespace.as_deref()?;
            Some(ObjectRef::new(&owner.name).within(namespace))
        })
        .collect()
}

/// `controller` (of instances `I`) also reconciles the instances whose Pods are on a Node when
/// that Node is cordoned or uncordoned. The Pods are found in `pods` (the component's Pod
/// cache) by `spec.nodeName`. Needs list and watch on `nodes`.
pub fn wake_on_cordon<I>(
    controller: Controller<I>,
    client: &Client,
    pods: Store<Pod>,
) -> Controller<I>
where
    I: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let seen = Arc::new(Mutex::new(Seen::default()));
    controller.watches(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        move |node: Node| {
            let name = node.metadata.name.clone().unwrap_or_default();
            let news = seen
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .changed(&name, is_cordoned(&node));
            if news {
                instances_on::<I>(&pods, &name)
            } else {
                Vec::new()
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeSpec, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use operator_api::core::TiKV;

    use super::*;

    fn node(name: &str, unschedulable: Option<bool>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                unschedulable,
                ..NodeSpec::default()
            }),
            ..Node::default()
        }
    }

    fn pod(name: &str, node: Option<&str>, owner_kind: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("db".into()),
                owner_references: Some(vec![OwnerReference {
                    kind: owner_kind.into(),
                    name: name.into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn a_cached_node_keeps_its_name_labels_and_cordon_only() {
        let mut full = node("kwok-0", Some(true));
        full.metadata.labels =
            Some([("topology.kubernetes.io/zone".to_string(), "a".to_string())].into());
        full.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
        if let Some(spec) = full.spec.as_mut() {
            spec.pod_cidr = Some("10.0.0.0/24".into());
        }
        full.status = Some(k8s_openapi::api::core::v1::NodeStatus::default());
        let mut trimmed = full.clone();
        trim(&mut trimmed);
        assert_eq!(trimmed.metadata.name, full.metadata.name);
        assert_eq!(trimmed.metadata.labels, full.metadata.labels);
        assert!(is_cordoned(&trimmed));
        assert_eq!(trimmed.metadata.annotations, None);
        assert_eq!(trimmed.status, None);
        assert_eq!(trimmed.spec.and_then(|s| s.pod_cidr), None);
    }

    #[test]
    fn a_pod_is_on_a_cordoned_a_schedulable_or_an_unknown_node() {
        let (nodes, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Apply(node("n1", Some(true))));
        writer.apply_watcher_event(&Event::Apply(node("n2", Some(false))));
        writer.apply_watcher_event(&Event::Apply(node("n3", None)));
        let on = |n: Option<&str>| pod_node(&nodes, Some(&pod("p", n, "TiKV")));
        assert_eq!(on(Some("n1")), PodNode::Cordoned("n1".into()));
        assert_eq!(on(Some("n2")), PodNode::Schedulable("n2".into()));
        assert_eq!(on(Some("n3")), PodNode::Schedulable("n3".into()));
        assert_eq!(on(Some("gone")), PodNode::Unknown);
        assert_eq!(on(None), PodNode::Unknown);
        assert_eq!(pod_node(&nodes, None), PodNode::Unknown);
    }

    #[test]
    fn only_a_change_of_unschedulable_is_news() {
        let mut seen = Seen::default();
        assert!(!seen.changed("a", false), "first seen schedulable");
        assert!(!seen.changed("a", false), "a heartbeat");
        assert!(seen.changed("a", true), "cordoned");
        assert!(!seen.changed("a", true), "still cordoned");
        assert!(seen.changed("a", false), "uncordoned");
        assert!(seen.changed("b", true), "first seen cordoned");
    }

    #[test]
    fn the_instances_on_a_node_are_the_owners_of_its_pods() {
        let (pods, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Apply(pod("tikv-a", Some("n1"), "TiKV")));
        writer.apply_watcher_event(&Event::Apply(pod("tikv-b", Some("n2"), "TiKV")));
        writer.apply_watcher_event(&Event::Apply(pod("job-x", Some("n1"), "Job")));
        writer.apply_watcher_event(&Event::Apply(pod("tikv-c", None, "TiKV")));
        let on: Vec<String> = instances_on::<TiKV>(&pods, "n1")
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect();
        assert_eq!(on, ["db/tikv-a"]);
    }
}
