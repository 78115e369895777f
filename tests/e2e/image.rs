//! The operator image end to end: every controller, run from the binary taken out of the built
//! image, under its shipped ServiceAccount, brings the sample cluster to Ready; the image holds
//! static binaries that say which build they are, and runs as the non-root user.
//!
//! `TIDB_OPERATOR_IMAGE_BUNDLE` names the unpacked image (`rootfs/` and the image's
//! `config.json`): `hack/build-image.sh` makes it and `hack/test.sh` sets it. Without it these
//! scenarios say so and check nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Api;
use operator_api::conditions::{self, HasConditions};
use operator_api::core::Cluster;
use operator_runtime::build_info::{BUILD_INFO, VERSION};
use scenarios::{Controller, Simulator, apply_controller_identity, ensure_crds, metric_sum};
use serde_json::Value;
use testkit::{LocalCluster, TestNamespace, wait_until};

/// Every controller binary the image holds, each run by its own Deployment.
const CONTROLLERS: [&str; 5] = [
    "cluster-controller",
    "pd-controller",
    "tikv-controller",
    "tidb-controller",
    "backup-controller",
];

/// The hand-over binary PD Pods install from the image for their preStop hook.
const HANDOVER: &str = "tidb-handover";
/// The sidecar of TiCDC Pods under TiCDCDynamicSecretSyncer, run from this image.
const SECRET_SYNCER: &str = "tidb-secret-syncer";

/// The user the image and the Deployments run as.
const NONROOT: &str = "65532:65532";

/// The unpacked image, when the test run has one.
fn bundle() -> Option<PathBuf> {
    let dir = std::env::var_os("TIDB_OPERATOR_IMAGE_BUNDLE").map(PathBuf::from);
    if dir.is_none() {
        eprintln!(
            "TIDB_OPERATOR_IMAGE_BUNDLE is not set: no image to check \
             (hack/build-image.sh builds one and prints it; hack/test.sh sets it)"
        );
    }
    dir
}

/// Whether an ELF executable asks for a dynamic loader (has a `PT_INTERP` program header): one
/// that does cannot start in an image that has no libraries.
fn needs_loader(binary: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    assert!(
        binary.len() > 64 && binary.starts_with(b"\x7fELF") && binary[4] == 2 && binary[5] == 1,
        "not a 64-bit little-endian ELF file"
    );
    let u16_at = |at: usize| u16::from_le_bytes([binary[at], binary[at + 1]]) as usize;
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&binary[0x20..0x28]);
    let program_headers = u64::from_le_bytes(offset) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = program_headers + i * size;
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&binary[at..at + 4]);
        u32::from_le_bytes(kind) == PT_INTERP
    })
}

/// What `<binary> --version` prints.
fn version_of(binary: &Path) -> String {
    let output = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    assert!(output.status.success(), "{}: {output:?}", binary.display());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The commit a `--version` line names: `<name> <version> (commit <commit>, built <date>)`.
fn commit_of(version_line: &str) -> &str {
    version_line
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default()
}

#[test]
fn the_image_runs_as_nonroot_and_holds_static_binaries_that_name_their_build() {
    let Some(bundle) = bundle() else { return };
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["User"], NONROOT, "{config:#}");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        VERSION
    );

    let rootfs = bundle.join("rootfs");
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    let certificates = std::fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt"));
    assert!(
        certificates.is_ok_and(|c| c.contains("-----BEGIN CERTIFICATE-----")),
        "the image carries CA certificates"
    );
    // Nothing else: no shell, no package manager, no libraries.
    let mut top: Vec<String> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    let mut expected: Vec<String> = CONTROLLERS.iter().map(|c| c.to_string()).collect();
    expected.push(HANDOVER.into());
    expected.push(SECRET_SYNCER.into());
    expected.push("etc".into());
    expected.sort();
    assert_eq!(top, expected, "the image's top-level files");

    for controller in CONTROLLERS {
        let binary = rootfs.join(controller);
        let bytes = std::fs::read(&binary).unwrap();
        assert!(
            !needs_loader(&bytes),
            "{controller} is dynamically linked: it cannot start in the image"
        );
        let line = version_of(&binary);
        assert!(
            line.starts_with(&format!("{controller} {VERSION} (commit ")),
            "{line}"
        );
        let commit = commit_of(&line);
        assert!(
            commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{controller} names the commit it was built from: {line}"
        );
        assert!(!line.contains("unknown"), "{line}");
    }
    // The hand-over runs in PD Pods from a copy: it must be static too.
    let handover = rootfs.join(HANDOVER);
    assert!(!needs_loader(&std::fs::read(&handover).unwrap()));
    let line = version_of(&handover);
    assert!(line.starts_with(&format!("{HANDOVER} {VERSION}")), "{line}");
    let syncer = rootfs.join(SECRET_SYNCER);
    assert!(!needs_loader(&std::fs::read(&syncer).unwrap()));
    let line = version_of(&syncer);
    assert!(
        line.starts_with(&format!("{SECRET_SYNCER} {VERSION}")),
        "{line}"
    );
}

#[tokio::test]
async fn every_controller_from_the_image_brings_the_sample_cluster_to_ready() {
    let Some(bundle) = bundle() else { return };
    let bin_dir = bundle.join("rootfs");
    let cluster = LocalCluster::get().unwrap();
    ensure_crds(&cluster).unwrap();
    for controller in CONTROLLERS {
        apply_controller_identity(&cluster, controller).unwrap();
    }
    let client = cluster.client().await.unwrap();
    let ns = TestNamespace::create(&cluster, &client, "image")
        .await
        .unwrap();
    let n = ns.name();
    let simulator = Simulator::start(&cluster, n).await.unwrap();
    let mut running = Vec::new();
    for controller in CONTROLLERS {
        let extra = simulator.overrides();
        running.push((
            controller,
            Controller::start_from(&cluster, &client, Some(&bin_dir), controller, n, 0, &extra)
                .await
                .unwrap(),
        ));
    }

    let kubectl = cluster.kubectl();
    let dir = scenarios::repo_root().join("examples/basic");
    kubectl
        .ok(
            &[
                "apply",
                "-n",
                n,
                "--server-side",
                "-k",
                &dir.to_string_lossy(),
            ],
            None,
        )
        .unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), n);
    wait_until(
        &kubectl,
        n,
        "Cluster basic Available and Ready with PD 3, TiKV 3, TiDB 2",
        Duration::from_secs(240),
        || async {
            let c = clusters.get("basic").await?;
            let replicas: Vec<i32> = c
                .status
                .as_ref()
                .map(|s| s.components.iter().map(|p| p.replicas).collect())
                .unwrap_or_default();
            Ok::<_, kube::Error>(
                conditions::is_true(c.conditions(), conditions::AVAILABLE)
                    && conditions::is_true(c.conditions(), conditions::READY)
                    && replicas == [3, 3, 2],
            )
        },
    )
    .await
    .unwrap();

    // Each replica says which build it is, the same build as its `--version`, and leads.
    for (controller, process) in &mut running {
        assert!(
            process.process.exited().is_none(),
            "{controller} exited:\n{}",
            process.process.output()
        );
        let metrics = process.metrics().await.unwrap();
        let commit = commit_of(&version_of(&bin_dir.join(*controller))).to_string();
        assert_eq!(
            metric_sum(
                &metrics,
                BUILD_INFO,
                &[("version", VERSION), ("git_commit", commit.as_str())]
            ),
            1.0,
            "{controller}: {BUILD_INFO}"
        );
        assert_eq!(
            metric_sum(&metrics, "tidb_operator_leader", &[]),
            1.0,
            "{controller} holds its Lease"
        );
    }
    simulator
        .verdict(n, "basic", &scenarios::Allowed::none())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_executable_that_asks_for_a_loader_is_told_apart() {
    // The test executable itself is dynamically linked (a plain debug build).
    let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(needs_loader(&own));
}
