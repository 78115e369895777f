//! A kubeconfig that acts as a ServiceAccount, with a token from the TokenRequest API, so a
//! controller started by a test has exactly the permissions `manifests/` gives it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::{AuthInfo, Context, Kubeconfig, NamedAuthInfo, NamedContext};
use kube::{Api, Client};

use crate::error::{Error, Result};

/// Writes a kubeconfig next to `admin` that uses the same server and CA but authenticates as
/// `namespace/service_account` with a one-hour token. Returns its path.
pub async fn service_account_kubeconfig(
    client: &Client,
    admin: &Path,
    namespace: &str,
    service_account: &str,
    out_dir: &Path,
) -> Result<PathBuf> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let issued: TokenRequest = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_subresource("token", service_account, &PostParams::default(), &request)
        .await
        .map_err(Error::api(format!(
            "requesting a token for {namespace}/{service_account}"
        )))?;
    let token = issued
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Kubeconfig {
            path: admin.to_path_buf(),
            message: "TokenRequest returned no token".into(),
        })?;

    let mut config = Kubeconfig::read_from(admin).map_err(|e| Error::Kubeconfig {
        path: admin.to_path_buf(),
        message: e.to_string(),
    })?;
    let context = config
        .current_context
        .clone()
        .and_then(|name| config.contexts.iter().find(|c| c.name == name).cloned())
        .and_then(|c| c.context)
        .ok_or_else(|| Error::Kubeconfig {
            path: admin.to_path_buf(),
            message: "no current context".into(),
        })?;
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    config.auth_infos = vec![NamedAuthInfo {
        name: user.clone(),
        auth_info: Some(AuthInfo {
            token: Some(token.into()),
            ..AuthInfo::default()
        }),
        other: Default::default(),
    }];
    config.contexts = vec![NamedContext {
        name: user.clone(),
        context: Some(Context {
            cluster: context.cluster,
            user: Some(user.clone()),
            ..Context::default()
        }),
        other: Default::default(),
    }];
    config.current_context = Some(user);

    // A file of its own per call: processes started in parallel must never read a half-written
    // kubeconfig of another.
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let unique = format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = out_dir.join(format!("{namespace}.{service_account}.{unique}.kubeconfig"));
    let yaml = serde_yaml::to_string(&config).map_err(|e| Error::Kubeconfig {
        path: path.clone(),
        message: e.to_string(),
    })?;
    std::fs::write(&path, yaml).map_err(|e| Error::Kubeconfig {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(path)
}
