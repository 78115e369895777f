//! Where backup data lives, as BR and the Job see it: the storage URI and BR's storage flags, the
//! environment that carries credentials (only as references to a Secret, never values), and the
//! volume of a local storage. Pure functions of the spec.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector, Volume, VolumeMount};
use operator_api::br::{
    AzblobStorageProvider, GcsStorageProvider, LocalStorageProvider, S3StorageProvider,
    StorageProvider,
};

/// Keys of an S3 credentials Secret.
pub const S3_ACCESS_KEY: &str = "access_key";
/// Key of the S3 secret key in the Secret.
pub const S3_SECRET_KEY: &str = "secret_key";
/// Key of the GCS service account JSON in the Secret.
pub const GCS_CREDENTIALS: &str = "credentials";
/// Key (and variable) of the Azure storage account.
pub const AZURE_STORAGE_ACCOUNT: &str = "AZURE_STORAGE_ACCOUNT";
/// The environment variable the runner turns into a GCS credentials file for BR.
pub const GCS_JSON_KEY_ENV: &str = "GCS_SERVICE_ACCOUNT_JSON_KEY";

/// Keys of an Azure Secret that hold credentials, each optional: a shared key, or a service
/// principal.
const AZURE_OPTIONAL_KEYS: [&str; 4] = [
    "AZURE_STORAGE_KEY",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
];

/// The storage a spec names, checked: exactly one provider, with what it needs.
#[derive(Clone, Copy, Debug)]
pub enum Storage<'a> {
    /// An S3-compatible bucket.
    S3(&'a S3StorageProvider),
    /// A Google Cloud Storage bucket.
    Gcs(&'a GcsStorageProvider),
    /// An Azure Blob Storage container.
    Azblob(&'a AzblobStorageProvider),
    /// A volume mounted into the Pod.
    Local(&'a LocalStorageProvider),
}

/// A Secret the storage reads credentials from, and the keys it must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretNeed {
    /// Name of the Secret, in the object's namespace.
    pub name: String,
    /// Keys that must be present.
    pub keys: Vec<&'static str>,
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

impl<'a> Storage<'a> {
    /// The one provider set in `provider`, or why there is none usable.
    pub fn of(provider: &'a StorageProvider) -> Result<Storage<'a>, String> {
        let mut set = Vec::new();
        if let Some(s3) = &provider.s3 {
            set.push(Storage::S3(s3));
        }
        if let Some(gcs) = &provider.gcs {
            set.push(Storage::Gcs(gcs));
        }
        if let Some(az) = &provider.azblob {
            set.push(Storage::Azblob(az));
        }
        if let Some(local) = &provider.local {
            set.push(Storage::Local(local));
        }
        let storage = match set.as_slice() {
            [] => {
                return Err("no storage provider: set one of s3, gcs, azblob or local".to_string());
            }
            [one] => *one,
            _ => {
                return Err(
                    "more than one storage provider: set only one of s3, gcs, azblob or local"
                        .to_string(),
                );
            }
        };
        storage.check()?;
        Ok(storage)
    }

    fn check(&self) -> Result<(), String> {
        match self {
            Storage::S3(s3) => {
                if s3.path.trim_matches('/').is_empty() && s3.bucket.trim_matches('/').is_empty() {
                    return Err("s3: set bucket (and prefix) or path".into());
                }
            }
            Storage::Gcs(gcs) => {
                if gcs.project_id.is_empty() {
                    return Err("gcs: projectId is required".into());
                }
                if gcs.path.trim_matches('/').is_empty() && gcs.bucket.trim_matches('/').is_empty()
                {
                    return Err("gcs: set bucket (and prefix) or path".into());
                }
            }
            Storage::Azblob(az) => {
                if az.path.trim_matches('/').is_empty() && az.container.trim_matches('/').is_empty()
                {
                    return Err("azblob: set container (and prefix) or path".into());
                }
                if !az.sas_token.is_empty() {
                    return Err("azblob: sasToken would put a credential in the Job spec in plain text; put it in the Secret named by secretName instead".into());
                }
                if az.secret_name.is_empty() && az.storage_account.is_empty() {
                    return Err("azblob: set secretName or storageAccount".into());
                }
            }
            Storage::Local(local) => {
                if local.volume_mount.mount_path.is_empty() {
                    return Err("local: volumeMount.mountPath is required".into());
                }
                if local.volume_mount.name != local.volume.name {
                    return Err(format!(
                        "local: volumeMount.name {:?} must be the volume's name {:?}",
                        local.volume_mount.name, local.volume.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The storage URI BR takes, for example `s3://bucket/prefix` or `local:///backup/prefix`.
    pub fn uri(&self) -> String {
        match self {
            Storage::S3(s3) => {
                let path = if s3.path.trim_matches('/').is_empty() {
                    join(&[&s3.bucket, &s3.prefix])
                } else {
                    join(&[&s3.path])
                };
                format!("s3://{path}")
            }
            Storage::Gcs(gcs) => {
                let path = if gcs.path.trim_matches('/').is_empty() {
                    join(&[&gcs.bucket, &gcs.prefix])
                } else {
                    join(&[&gcs.path])
                };
                format!("gcs://{path}/")
            }
            Storage::Azblob(az) => {
                let path = if az.path.trim_matches('/').is_empty() {
                    join(&[&az.container, &az.prefix])
                } else {
                    join(&[&az.path])
                };
                format!("azure://{path}/")
            }
            Storage::Local(local) => {
                format!(
                    "local:///{}",
                    join(&[&local.volume_mount.mount_path, &local.prefix])
                )
            }
        }
    }

    /// BR's `--storage` flag and the provider's own flags.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![format!("--storage={}", self.uri())];
        let mut flag = |name: &str, value: &str| {
            if !value.is_empty() {
                args.push(format!("--{name}={value}"));
            }
        };
        match self {
            Storage::S3(s3) => {
                flag("s3.region", &s3.region);
                flag("s3.provider", &s3.provider);
                flag("s3.endpoint", &s3.endpoint);
                flag("s3.sse", &s3.sse);
                flag("s3.acl", &s3.acl);
                flag("s3.storage-class", &s3.storage_class);
                args.extend(s3.options.iter().cloned());
            }
            Storage::Gcs(gcs) => {
                flag("gcs.storage-class", &gcs.storage_class);
                flag("gcs.predefined-acl", &gcs.object_acl);
            }
            Storage::Azblob(az) => {
                flag("azblob.access-tier", &az.access_tier);
            }
            Storage::Local(_) => {}
        }
        args
    }

    /// The Secret the credentials come from, if any, and the keys it must have.
    pub fn secret(&self) -> Option<SecretNeed> {
        let (name, keys) = match self {
            Storage::S3(s3) => (&s3.secret_name, vec![S3_ACCESS_KEY, S3_SECRET_KEY]),
            Storage::Gcs(gcs) => (&gcs.secret_name, vec![GCS_CREDENTIALS]),
            Storage::Azblob(az) => (
                &az.secret_name,
                if az.storage_account.is_empty() {
                    vec![AZURE_STORAGE_ACCOUNT]
                } else {
                    Vec::new()
                },
            ),
            Storage::Local(_) => return None,
        };
        (!name.is_empty()).then(|| SecretNeed {
            name: name.clone(),
            keys,
        })
    }

    /// Environment of the BR container for this storage. Credentials appear only as
    /// `secretKeyRef`s; the values stay in the Secret.
    pub fn env(&self) -> Vec<EnvVar> {
        let mut env = Vec::new();
        match self {
            Storage::S3(s3) => {
                if !s3.secret_name.is_empty() {
                    env.push(secret_env(
                        "AWS_ACCESS_KEY_ID",
                        &s3.secret_name,
                        S3_ACCESS_KEY,
                        false,
                    ));
                    env.push(secret_env(
                        "AWS_SECRET_ACCESS_KEY",
                        &s3.secret_name,
                        S3_SECRET_KEY,
                        false,
                    ));
                }
            }
            Storage::Gcs(gcs) => {
                env.push(value_env("GCS_PROJECT_ID", &gcs.project_id));
                if !gcs.secret_name.is_empty() {
                    env.push(secret_env(
                        GCS_JSON_KEY_ENV,
                        &gcs.secret_name,
                        GCS_CREDENTIALS,
                        false,
                    ));
                }
            }
            Storage::Azblob(az) => {
                if !az.storage_account.is_empty() {
                    env.push(value_env(AZURE_STORAGE_ACCOUNT, &az.storage_account));
                } else if !az.secret_name.is_empty() {
                    env.push(secret_env(
                        AZURE_STORAGE_ACCOUNT,
                        &az.secret_name,
                        AZURE_STORAGE_ACCOUNT,
                        false,
                    ));
                }
                if !az.secret_name.is_empty() {
                    for key in AZURE_OPTIONAL_KEYS {
                        env.push(secret_env(key, &az.secret_name, key, true));
                    }
                }
            }
            Storage::Local(_) => {}
        }
        env
    }

    /// The volume and mount a local storage needs in the Pod.
    pub fn volume(&self) -> Option<(Volume, VolumeMount)> {
        match self {
            Storage::Local(local) => Some((local.volume.clone(), local.volume_mount.clone())),
            _ => None,
        }
    }
}

fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

fn secret_env(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: optional.then_some(true),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// `base` with the variables of `overrides` replacing those of the same name, and the others
/// added after them.
pub fn merge_env(base: Vec<EnvVar>, overrides: &[EnvVar]) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = base
        .into_iter()
        .filter(|e| !overrides.iter().any(|o| o.name == e.name))
        .collect();
    env.extend(overrides.iter().cloned());
    env
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn provider(value: serde_json::Value) -> StorageProvider {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn s3_flags_follow_the_spec() {
        let p = provider(json!({"s3": {
            "provider": "ceph", "region": "us-west-2", "bucket": "/backups/", "prefix": "/daily/one",
            "endpoint": "http://minio:9000", "storageClass": "STANDARD_IA", "acl": "private",
            "sse": "aws:kms", "secretName": "s3-secret"
        }}));
        let storage = Storage::of(&p).unwrap();
        assert_eq!(storage.uri(), "s3://backups/daily/one");
        assert_eq!(
            storage.args(),
            [
                "--storage=s3://backups/daily/one",
                "--s3.region=us-west-2",
                "--s3.provider=ceph",
                "--s3.endpoint=http://minio:9000",
                "--s3.sse=aws:kms",
                "--s3.acl=private",
                "--s3.storage-class=STANDARD_IA",
            ]
        );
        assert_eq!(
            storage.secret(),
            Some(SecretNeed {
                name: "s3-secret".into(),
                keys: vec!["access_key", "secret_key"]
            })
        );
    }

    #[test]
    fn s3_path_wins_over_bucket_and_prefix() {
        let p = provider(json!({"s3": {"provider": "aws", "path": "b/p/q", "bucket": "x"}}));
        assert_eq!(Storage::of(&p).unwrap().uri(), "s3://b/p/q");
        let p = provider(json!({"s3": {"provider": "aws", "bucket": "b"}}));
        assert_eq!(Storage::of(&p).unwrap().uri(), "s3://b");
    }

    #[test]
    fn credentials_are_only_secret_references() {
        let p = provider(json!({"s3": {"provider": "aws", "bucket": "b", "secretName": "s"}}));
        let env = Storage::of(&p).unwrap().env();
        assert_eq!(env.len(), 2);
        for var in &env {
            assert!(var.value.is_none(), "{var:?}");
            let source = var
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap();
            assert_eq!(source.name, "s");
        }
        // No secret: the Pod's own identity, no credential variables at all.
        let p = provider(json!({"s3": {"provider": "aws", "bucket": "b"}}));
        assert!(Storage::of(&p).unwrap().env().is_empty());
        assert!(Storage::of(&p).unwrap().secret().is_none());
    }

    #[test]
    fn gcs_azure_and_local_uris_and_flags() {
        let gcs = provider(
            json!({"gcs": {"projectId": "proj", "bucket": "b", "prefix": "p",
            "storageClass": "NEARLINE", "objectAcl": "private", "secretName": "g"}}),
        );
        let gcs = Storage::of(&gcs).unwrap();
        assert_eq!(
            gcs.args(),
            [
                "--storage=gcs://b/p/",
                "--gcs.storage-class=NEARLINE",
                "--gcs.predefined-acl=private"
            ]
        );
        assert_eq!(gcs.env()[0].value.as_deref(), Some("proj"));
        assert_eq!(gcs.env()[1].name, GCS_JSON_KEY_ENV);

        let az = provider(
            json!({"azblob": {"container": "c", "prefix": "p", "accessTier": "Cool",
            "secretName": "a"}}),
        );
        let az = Storage::of(&az).unwrap();
        assert_eq!(
            az.args(),
            ["--storage=azure://c/p/", "--azblob.access-tier=Cool"]
        );
        assert_eq!(az.secret().unwrap().keys, vec![AZURE_STORAGE_ACCOUNT]);
        assert_eq!(az.env().len(), 5);

        let local = provider(json!({"local": {
            "volume": {"name": "nfs", "nfs": {"server": "10.0.0.1", "path": "/exports"}},
            "volumeMount": {"name": "nfs", "mountPath": "/backup"},
            "prefix": "cluster-a"
        }}));
        let local = Storage::of(&local).unwrap();
        assert_eq!(local.args(), ["--storage=local:///backup/cluster-a"]);
        assert!(local.volume().is_some());
        assert!(local.secret().is_none());
    }

    #[test]
    fn bad_storage_is_refused_with_a_reason() {
        let none = StorageProvider::default();
        assert!(
            Storage::of(&none)
                .unwrap_err()
                .contains("no storage provider")
        );
        let two = provider(json!({"s3": {"provider": "aws", "bucket": "b"},
            "gcs": {"projectId": "p", "bucket": "b"}}));
        assert!(Storage::of(&two).unwrap_err().contains("more than one"));
        let no_bucket = provider(json!({"s3": {"provider": "aws"}}));
        assert!(Storage::of(&no_bucket).unwrap_err().contains("bucket"));
        let sas = provider(
            json!({"azblob": {"container": "c", "sasToken": "sv=x", "storageAccount": "a"}}),
        );
        assert!(Storage::of(&sas).unwrap_err().contains("plain text"));
        let mismatch = provider(json!({"local": {
            "volume": {"name": "a", "emptyDir": {}}, "volumeMount": {"name": "b", "mountPath": "/x"}}}));
        assert!(
            Storage::of(&mismatch)
                .unwrap_err()
                .contains("must be the volume")
        );
    }

    #[test]
    fn user_env_overrides_by_name() {
        let base = vec![value_env("A", "1"), value_env("B", "2")];
        let merged = merge_env(base, &[value_env("B", "3"), value_env("C", "4")]);
        let pairs: Vec<(String, Option<String>)> =
            merged.into_iter().map(|e| (e.name, e.value)).collect();
        assert_eq!(
            pairs,
            [
                ("A".to_string(), Some("1".to_string())),
                ("B".to_string(), Some("3".to_string())),
                ("C".to_string(), Some("4".to_string()))
            ]
        );
    }
}
