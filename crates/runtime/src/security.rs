//! The security every Pod the operator creates gets, so that it passes the "restricted" Pod
//! Security Standard: not root, no privilege escalation, every capability dropped, the runtime's
//! default seccomp profile. Only what is unset is filled in: a template's overlay (or a Backup's
//! `podSecurityContext`) still decides what it names.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
};

/// The user and group the components run as. PingCAP's images run as root unless told
/// otherwise; their binaries are world-executable and write only to their volumes and `/tmp`.
pub const RUN_AS: i64 = 1000;

/// Fills in the restricted defaults of `spec` and of each of its containers and init
/// containers.
pub fn restrict(spec: &mut PodSpec) {
    let pod = spec
        .security_context
        .get_or_insert_with(PodSecurityContext::default);
    pod.run_as_non_root.get_or_insert(true);
    pod.run_as_user.get_or_insert(RUN_AS);
    pod.run_as_group.get_or_insert(RUN_AS);
    // The volumes become writable by the group; only their root is checked at each start, not
    // every file of a large TiKV volume.
    pod.fs_group.get_or_insert(RUN_AS);
    pod.fs_group_change_policy
        .get_or_insert_with(|| "OnRootMismatch".to_string());
    pod.seccomp_profile.get_or_insert_with(|| SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    });
    let init = spec.init_containers.iter_mut().flatten();
    for container in spec.containers.iter_mut().chain(init) {
        restrict_container(container);
    }
}

fn restrict_container(container: &mut Container) {
    let context = container
        .security_context
        .get_or_insert_with(SecurityContext::default);
    context.allow_privilege_escalation.get_or_insert(false);
    context.run_as_non_root.get_or_insert(true);
    context.capabilities.get_or_insert_with(|| Capabilities {
        drop: Some(vec!["ALL".into()]),
        ..Capabilities::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_is_restricted_and_what_is_set_is_kept() {
        let mut spec = PodSpec {
            containers: vec![Container {
                name: "main".into(),
                ..Container::default()
            }],
            init_containers: Some(vec![Container {
                name: "sidecar".into(),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(true),
                    ..SecurityContext::default()
                }),
                ..Container::default()
            }]),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(2000),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        };
        restrict(&mut spec);
        let pod = spec.security_context.as_ref().unwrap();
        assert_eq!(pod.run_as_user, Some(2000), "what is set is kept");
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(pod.fs_group, Some(RUN_AS));
        assert_eq!(
            pod.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
        let main = spec.containers[0].security_context.as_ref().unwrap();
        assert_eq!(main.allow_privilege_escalation, Some(false));
        assert_eq!(
            main.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()])
        );
        let sidecar = spec.init_containers.as_ref().unwrap()[0]
            .security_context
            .as_ref()
            .unwrap();
        assert_eq!(sidecar.allow_privilege_escalation, Some(true));
        assert_eq!(sidecar.run_as_non_root, Some(true));
        // Restricting twice changes nothing.
        let once = spec.clone();
        restrict(&mut spec);
        assert_eq!(spec, once);
    }
}
