//! Shared helpers of the project-level tests: the repository layout and the fixture manifests.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it came from, relative to the repository root.
    pub file: String,
    /// Its position in the file (0-based).
    pub index: usize,
    /// The document.
    pub value: Value,
}

impl Manifest {
    /// The object's `kind`.
    pub fn kind(&self) -> &str {
        self.value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// A short label for messages: `file#index (Kind/name)`.
    pub fn label(&self) -> String {
        let name = self
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        format!("{}#{} ({}/{})", self.file, self.index, self.kind(), name)
    }
}

/// Every YAML document of every `.yaml` file below the given folders (relative to the repository
/// root), in a stable order. Kustomization files are skipped: they are not objects.
pub fn load_manifests(folders: &[&str]) -> Result<Vec<Manifest>, String> {
    let root = repo_root();
    let mut files = Vec::new();
    for folder in folders {
        collect_yaml(&root.join(folder), &mut files)?;
    }
    files.sort();
    let mut manifests = Vec::new();
    for path in files {
        if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value: Value = serde::Deserialize::deserialize(document)
                .map_err(|e| format!("{file}#{index}: {e}"))?;
            if value.is_null() {
                continue;
            }
            manifests.push(Manifest {
                file: file.clone(),
                index,
                value,
            });
        }
    }
    Ok(manifests)
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Installs the CRDs of this checkout (`manifests/crd`) into the local control plane, once per
/// test process, so tests never run against CRDs from an older build, and waits until they are
/// Established.
pub fn ensure_crds(cluster: &testkit::LocalCluster) -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let kubectl = cluster.kubectl();
        let dir = repo_root().join("manifests/crd");
        let dir = dir.to_string_lossy();
        kubectl
            .ok(
                &["apply", "--server-side", "--force-conflicts", "-k", &dir],
                None,
            )
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = operator_api::crds()
            .iter()
            .filter_map(|crd| crd.metadata.name.as_ref().map(|n| format!("crd/{n}")))
            .collect();
        let mut args = vec!["wait", "--for=condition=Established", "--timeout=60s"];
        args.extend(names.iter().map(String::as_str));
        kubectl.ok(&args, None).map_err(|e| e.to_string())?;
        Ok(())
    })
    .clone()
}

/// The API resource of one of the operator's kinds, by kind name.
pub fn api_resource(kind: &str) -> Option<kube::core::ApiResource> {
    use kube::core::ApiResource;
    use operator_api::{br, core};
    Some(match kind {
        "Cluster" => ApiResource::erase::<core::Cluster>(&()),
        "PDGroup" => ApiResource::erase::<core::PDGroup>(&()),
        "PD" => ApiResource::erase::<core::PD>(&()),
        "TiKVGroup" => ApiResource::erase::<core::TiKVGroup>(&()),
        "TiKV" => ApiResource::erase::<core::TiKV>(&()),
        "TiDBGroup" => ApiResource::erase::<core::TiDBGroup>(&()),
        "TiDB" => ApiResource::erase::<core::TiDB>(&()),
        "Backup" => ApiResource::erase::<br::Backup>(&()),
        "Restore" => ApiResource::erase::<br::Restore>(&()),
        "BackupSchedule" => ApiResource::erase::<br::BackupSchedule>(&()),
        _ => return None,
    })
}
