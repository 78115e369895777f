//! Revision hashing: a short, stable name for the content of a template, so an instance can be
//! told up to date or outdated by comparing one label.

use serde::Serialize;

/// FNV-1a over bytes: stable across Rust versions and platforms, unlike `DefaultHasher`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// Hash of a value's JSON form as 10 lowercase characters, safe in names and label values. Maps
/// in our types are ordered, so equal values give equal hashes.
pub fn hash_of<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let hash = fnv1a64(&json);
    // Base-36, fixed width: short but with 51 bits of the hash it is collision-safe in practice.
    let mut n = hash >> 13;
    let mut out = [b'0'; 10];
    for slot in out.iter_mut().rev() {
        let digit = (n % 36) as u8;
        *slot = if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        };
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The revision name of a group's template: `<group>-<hash>`.
pub fn revision_name<T: Serialize>(group: &str, template: &T) -> String {
    format!("{group}-{}", hash_of(template))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn equal_values_hash_equal_and_different_values_differ() {
        let a: BTreeMap<&str, &str> = [("version", "v8.5.0"), ("image", "pd")].into();
        let b: BTreeMap<&str, &str> = [("image", "pd"), ("version", "v8.5.0")].into();
        let c: BTreeMap<&str, &str> = [("image", "pd"), ("version", "v8.5.1")].into();
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_ne!(hash_of(&a), hash_of(&c));
        assert_eq!(hash_of(&a).len(), 10);
        assert!(
            hash_of(&a)
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        );
    }

    #[test]
    fn the_hash_is_stable_across_builds() {
        // A change here would restart every Pod of every cluster after an operator upgrade.
        assert_eq!(fnv1a64(b"tidb"), 0x1e6b_8aef_2eb2_7ae4);
        assert_eq!(
            revision_name("pd", &"v8.5.0"),
            format!("pd-{}", hash_of(&"v8.5.0"))
        );
    }
}
