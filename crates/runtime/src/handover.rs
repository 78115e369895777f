//! The hand-over preStop hook of PD and TiKV Pods (`tidb-handover`, crates/handover): an init
//! container copies the binary out of the operator's image (which has no shell) into a volume the
//! server's container runs it from when the Pod is deleted, whoever deletes it.

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, ExecAction, Lifecycle, LifecycleHandler, PodSpec,
    ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Where the binary is installed in the Pod.
pub const DIR: &str = "/var/lib/tidb-handover";
/// The binary's name, at the root of the operator's image and in [`DIR`].
pub const BINARY: &str = "tidb-handover";
/// The init container that installs it.
pub const INIT_CONTAINER: &str = "handover-install";
/// The volume it is installed in.
pub const VOLUME: &str = "handover";

/// Adds the hook to the Pod `spec`: the volume, the init container (from `image`, the operator's)
/// and, on the container named `container`, the read-only mount and the preStop hook running the
/// binary with `args`.
pub fn add(spec: &mut PodSpec, container: &str, image: &str, args: Vec<String>) {
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("64Mi".into())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    });
    spec.init_containers
        .get_or_insert_with(Vec::new)
        .push(installer(image));
    if let Some(server) = spec.containers.iter_mut().find(|c| c.name == container) {
        server
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: VOLUME.into(),
                mount_path: DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        let mut command = vec![format!("{DIR}/{BINARY}")];
        command.extend(args);
        server.lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(command),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        });
    }
}

fn installer(image: &str) -> Container {
    Container {
        name: INIT_CONTAINER.into(),
        image: Some(image.to_string()),
        command: Some(vec![
            format!("/{BINARY}"),
            "install".into(),
            format!("{DIR}/{BINARY}"),
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: VOLUME.into(),
            mount_path: DIR.into(),
            ..VolumeMount::default()
        }]),
        // A copy of one file; explicit, so a namespace whose ResourceQuota requires them admits
        // the Pod.
        resources: Some(ResourceRequirements {
            requests: Some(
                [("cpu", "10m"), ("memory", "32Mi")]
                    .map(|(k, v)| (k.to_string(), Quantity(v.into())))
                    .into(),
            ),
            limits: Some(
                [("cpu", "100m"), ("memory", "64Mi")]
                    .map(|(k, v)| (k.to_string(), Quantity(v.into())))
                    .into(),
            ),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    }
}

/// The preStop command of the container `container` of a Pod spec, if it has one.
pub fn hook_of(spec: &PodSpec, container: &str) -> Option<Vec<String>> {
    spec.containers
        .iter()
        .find(|c| c.name == container)?
        .lifecycle
        .as_ref()?
        .pre_stop
        .as_ref()?
        .exec
        .as_ref()?
        .command
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_runs_the_installed_binary_and_the_installer_fills_its_volume() {
        let mut spec = PodSpec {
            containers: vec![
                Container {
                    name: "pd".into(),
                    ..Container::default()
                },
                Container {
                    name: "sidecar".into(),
                    ..Container::default()
                },
            ],
            ..PodSpec::default()
        };
        add(
            &mut spec,
            "pd",
            "operator:v1",
            vec!["pd".into(), "--x".into()],
        );
        assert_eq!(
            hook_of(&spec, "pd").unwrap(),
            ["/var/lib/tidb-handover/tidb-handover", "pd", "--x"]
        );
        assert_eq!(hook_of(&spec, "sidecar"), None);
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.image.as_deref(), Some("operator:v1"));
        assert_eq!(
            init.command.as_deref().unwrap(),
            [
                "/tidb-handover",
                "install",
                "/var/lib/tidb-handover/tidb-handover"
            ]
        );
        let limits = init.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["memory"], Quantity("64Mi".into()));
        let volume = &spec.volumes.as_ref().unwrap()[0];
        assert!(volume.empty_dir.is_some());
        let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            (DIR, Some(true))
        );
    }
}
