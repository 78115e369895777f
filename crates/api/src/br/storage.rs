//! Where backup data lives: S3-compatible object stores, Google Cloud Storage, Azure Blob Storage
//! or a volume mounted into the job's Pod.

use k8s_openapi::api::core::v1::{Volume, VolumeMount};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The storage of a backup. Set exactly one of `s3`, `gcs`, `azblob` or `local`; a Backup made by a
/// BackupSchedule may leave all of them empty and take the schedule's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StorageProvider {
    /// Amazon S3 or an S3-compatible object store (Ceph, MinIO and others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3StorageProvider>,
    /// Google Cloud Storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsStorageProvider>,
    /// Azure Blob Storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azblob: Option<AzblobStorageProvider>,
    /// A volume mounted into the backup or restore Pod, for example NFS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalStorageProvider>,
}

impl StorageProvider {
    /// True when no storage is set.
    pub fn is_empty(&self) -> bool {
        self.s3.is_none() && self.gcs.is_none() && self.azblob.is_none() && self.local.is_none()
    }
}

/// An S3-compatible bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3StorageProvider {
    /// Who implements the S3 API, for example `aws` or `ceph` (use `ceph` for most S3-compatible
    /// stores such as MinIO).
    pub provider: String,
    /// Region of the bucket, for example `us-west-2`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// Full path of the backup as `<bucket>/<path>`; an alternative to `bucket` and `prefix`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The bucket.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bucket: String,
    /// Endpoint URL of the store; required for stores other than AWS.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// Storage class of the uploaded objects, for example `STANDARD_IA`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_class: String,
    /// Canned ACL of the uploaded objects, for example `private`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub acl: String,
    /// Secret holding `access_key` and `secret_key`. Empty means the Pod's own identity (IAM role,
    /// IRSA) is used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    /// Path inside the bucket under which the data is written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Server-side encryption, for example `aws:kms`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sse: String,
    /// Extra storage options passed to the tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A Google Cloud Storage bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsStorageProvider {
    /// The Google Cloud project of the bucket.
    pub project_id: String,
    /// Location of the bucket, for example `us-east1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    /// Full path of the backup as `<bucket>/<path>`; an alternative to `bucket` and `prefix`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The bucket.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bucket: String,
    /// Storage class of the uploaded objects, for example `NEARLINE`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_class: String,
    /// Access control of the uploaded objects, for example `private`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object_acl: String,
    /// Access control of buckets created for the backup.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bucket_acl: String,
    /// Secret holding the service account key (`credentials`). Empty means the Pod's own identity
    /// (Workload Identity) is used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    /// Path inside the bucket under which the data is written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// An Azure Blob Storage container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzblobStorageProvider {
    /// Full path of the backup as `<container>/<path>`; an alternative to `container` and
    /// `prefix`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    /// Access tier of the uploaded blobs: `Hot`, `Cool` or `Archive`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_tier: String,
    /// Secret holding the account credentials (`AZURE_STORAGE_ACCOUNT` and a key, or a client
    /// ID and secret). Empty means the Pod's own identity is used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    /// The storage account; when set it overrides the account in the Secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_account: String,
    /// A shared access signature token for the storage account.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sas_token: String,
    /// Path inside the container under which the data is written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// A Kubernetes volume mounted into the job's Pod, such as NFS or a PVC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalStorageProvider {
    /// The volume that holds the backup data.
    pub volume: Volume,
    /// Where the volume is mounted in the job's container; its name is the volume's.
    pub volume_mount: VolumeMount,
    /// Directory inside the mount under which the data is written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}
