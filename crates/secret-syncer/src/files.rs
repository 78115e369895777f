//! The Secrets as files: `<dir>/<secret>/<key>` for every key, and `<dir>/<secret>/resourceVersion`
//! naming the version written (tidb-operator v2's layout, which TiCDC changefeed configs refer
//! to). Each file is replaced whole (written aside, then renamed), so TiCDC never reads half a
//! certificate.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The file naming the Secret's resourceVersion last written.
pub const RESOURCE_VERSION_FILE: &str = "resourceVersion";

/// Where the Secrets go.
#[derive(Clone, Debug)]
pub struct Files {
    dir: PathBuf,
}

/// A name that cannot be a single path component (a Secret name or key never is one; this
/// guards the files against one anyway).
fn component(name: &str) -> io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} cannot name a file"),
        ));
    }
    Ok(name)
}

impl Files {
    /// The Secrets under `dir`, which is created when missing.
    pub fn new(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The directory of Secret `name`.
    pub fn secret_dir(&self, name: &str) -> io::Result<PathBuf> {
        Ok(self.dir.join(component(name)?))
    }

    /// Writes Secret `name` at `version` with `data`, unless that version is written already;
    /// keys the Secret no longer has are removed. Whether anything was written.
    pub fn write(
        &self,
        name: &str,
        version: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> io::Result<bool> {
        let dir = self.secret_dir(name)?;
        let version_file = dir.join(RESOURCE_VERSION_FILE);
        if fs::read_to_string(&version_file).is_ok_and(|v| v == version) {
            return Ok(false);
        }
        fs::create_dir_all(&dir)?;
        for (key, value) in data {
            if key == RESOURCE_VERSION_FILE {
                continue;
            }
            replace(&dir.join(component(key)?), value)?;
        }
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if file != RESOURCE_VERSION_FILE && !data.contains_key(&file) {
                remove(&entry.path())?;
            }
        }
        replace(&version_file, version.as_bytes())?;
        Ok(true)
    }

    /// Removes Secret `name`'s files.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        remove(&self.secret_dir(name)?)
    }

    /// Removes the files of every Secret not in `names` (those deleted while nobody watched).
    pub fn retain(&self, names: &BTreeSet<String>) -> io::Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if !names.contains(&*entry.file_name().to_string_lossy()) {
                remove(&entry.path())?;
            }
        }
        Ok(())
    }
}

/// Writes `path` whole: aside first, then renamed over it.
fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&aside, contents)?;
    fs::rename(&aside, path)
}

/// Removes a file or a directory with what is in it; gone already is fine.
fn remove(path: &Path) -> io::Result<()> {
    let result = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("secret-syncer-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn data(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn a_secret_becomes_one_file_per_key_and_follows_its_versions() {
        let root = scratch("write");
        let files = Files::new(root.clone()).unwrap();
        assert!(
            files
                .write("sink", "1", &data(&[("ca.crt", "A"), ("tls.crt", "B")]))
                .unwrap()
        );
        assert_eq!(fs::read_to_string(root.join("sink/ca.crt")).unwrap(), "A");
        assert_eq!(
            fs::read_to_string(root.join("sink/resourceVersion")).unwrap(),
            "1"
        );
        // The same version is not written again.
        assert!(!files.write("sink", "1", &data(&[("ca.crt", "X")])).unwrap());
        assert_eq!(fs::read_to_string(root.join("sink/ca.crt")).unwrap(), "A");
        // A new version replaces the files and drops the keys it lacks.
        assert!(files.write("sink", "2", &data(&[("ca.crt", "C")])).unwrap());
        assert_eq!(fs::read_to_string(root.join("sink/ca.crt")).unwrap(), "C");
        assert!(!root.join("sink/tls.crt").exists());
        let names: Vec<String> = fs::read_dir(root.join("sink"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn deleted_secrets_go_and_names_outside_the_directory_are_refused() {
        let root = scratch("retain");
        let files = Files::new(root.clone()).unwrap();
        files.write("a", "1", &data(&[("k", "v")])).unwrap();
        files.write("b", "1", &data(&[("k", "v")])).unwrap();
        files.remove("a").unwrap();
        files.remove("a").unwrap();
        assert!(!root.join("a").exists());
        files.write("c", "1", &data(&[("k", "v")])).unwrap();
        files.retain(&BTreeSet::from(["c".to_string()])).unwrap();
        assert!(!root.join("b").exists() && root.join("c/k").exists());
        assert!(files.write("..", "1", &data(&[])).is_err());
        assert!(files.write("d", "1", &data(&[("../x", "v")])).is_err());
        fs::remove_dir_all(root).unwrap();
    }
}
