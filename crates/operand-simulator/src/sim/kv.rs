//! The part of PD's embedded etcd that the operator uses: keys with create and mod revisions, and
//! a transaction that compares them before it writes (etcd's `Txn`). No leases, watches, ranges
//! over prefixes or history: what a compare-and-swap record needs, and nothing more.

use std::collections::BTreeMap;

/// One key's value and revisions, as etcd's `mvccpb.KeyValue` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: Vec<u8>,
    /// The store revision that created the key.
    pub create_revision: i64,
    /// The store revision of the last write to the key.
    pub mod_revision: i64,
    /// Writes to the key since it was created.
    pub version: i64,
}

/// What a comparison reads of a key; a key that does not exist reads 0 (or an empty value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `create_revision`.
    Create(i64),
    /// `mod_revision`.
    Mod(i64),
    /// `version`.
    Version(i64),
    /// The value.
    Value(Vec<u8>),
}

/// How a key's field must compare with the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// `EQUAL`.
    Equal,
    /// `NOT_EQUAL`.
    NotEqual,
    /// `GREATER`.
    Greater,
    /// `LESS`.
    Less,
}

/// One comparison of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key.
    pub key: Vec<u8>,
    /// The field and the operand.
    pub target: Target,
    /// The relation that must hold.
    pub relation: Relation,
}

/// One operation of a transaction's branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read one key.
    Get(Vec<u8>),
    /// Write one key.
    Put(Vec<u8>, Vec<u8>),
    /// Remove one key.
    Delete(Vec<u8>),
}

/// What one operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// The key's entry, when it exists.
    Get(Option<Entry>),
    /// A write.
    Put,
    /// How many keys were removed (0 or 1).
    Delete(i64),
}

/// The keys and the store revision.
#[derive(Clone, Debug)]
pub struct Kv {
    revision: i64,
    entries: BTreeMap<Vec<u8>, Entry>,
}

impl Default for Kv {
    fn default() -> Self {
        // etcd's store starts at revision 1.
        Kv {
            revision: 1,
            entries: BTreeMap::new(),
        }
    }
}

impl Kv {
    /// The store revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The entry of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Runs `success` when every comparison holds, `failure` otherwise, as one write (one
    /// revision for all its changes); returns which branch ran and what its operations returned.
    pub fn txn(
        &mut self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
    ) -> (bool, Vec<OpResult>) {
        let succeeded = compare.iter().all(|c| self.holds(c));
        let ops = if succeeded { success } else { failure };
        let writes = ops.iter().any(|op| match op {
            Op::Put(..) => true,
            Op::Delete(key) => self.entries.contains_key(key),
            Op::Get(_) => false,
        });
        let revision = if writes {
            self.revision + 1
        } else {
            self.revision
        };
        let results = ops
            .iter()
            .map(|op| match op {
                Op::Get(key) => OpResult::Get(self.entries.get(key).cloned()),
                Op::Put(key, value) => {
                    let entry = self.entries.entry(key.clone()).or_insert(Entry {
                        value: Vec::new(),
                        create_revision: revision,
                        mod_revision: revision,
                        version: 0,
                    });
                    entry.value = value.clone();
                    entry.mod_revision = revision;
                    entry.version += 1;
                    OpResult::Put
                }
                Op::Delete(key) => OpResult::Delete(i64::from(self.entries.remove(key).is_some())),
            })
            .collect();
        self.revision = revision;
        (succeeded, results)
    }

    fn holds(&self, c: &Compare) -> bool {
        let entry = self.entries.get(&c.key);
        let number = |field: fn(&Entry) -> i64| entry.map_or(0, field);
        let ordering = match &c.target {
            Target::Create(n) => number(|e| e.create_revision).cmp(n),
            Target::Mod(n) => number(|e| e.mod_revision).cmp(n),
            Target::Version(n) => number(|e| e.version).cmp(n),
            Target::Value(v) => entry.map_or(&[][..], |e| &e.value[..]).cmp(&v[..]),
        };
        match c.relation {
            Relation::Equal => ordering.is_eq(),
            Relation::NotEqual => ordering.is_ne(),
            Relation::Greater => ordering.is_gt(),
            Relation::Less => ordering.is_lt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn absent(key: &[u8]) -> Compare {
        Compare {
            key: key.to_vec(),
            target: Target::Create(0),
            relation: Relation::Equal,
        }
    }

    #[test]
    fn a_put_if_absent_wins_once_and_a_stale_swap_loses() {
        let mut kv = Kv::default();
        let put = |v: &str| vec![Op::Put(b"k".to_vec(), v.as_bytes().to_vec())];
        assert!(kv.txn(&[absent(b"k")], &put("a"), &[]).0);
        let entry = kv.get(b"k").cloned().unwrap();
        assert_eq!(
            (entry.create_revision, entry.mod_revision, entry.version),
            (2, 2, 1)
        );
        // A second writer that also saw the key absent loses, and what it reads back is the winner.
        let (won, read) = kv.txn(&[absent(b"k")], &put("b"), &[Op::Get(b"k".to_vec())]);
        assert!(!won);
        assert_eq!(read, vec![OpResult::Get(Some(entry.clone()))]);
        // A swap against the current mod revision wins; one against an older revision loses.
        let current = Compare {
            key: b"k".to_vec(),
            target: Target::Mod(2),
            relation: Relation::Equal,
        };
        assert!(kv.txn(std::slice::from_ref(&current), &put("c"), &[]).0);
        assert!(!kv.txn(&[current], &put("d"), &[]).0);
        assert_eq!(kv.get(b"k").map(|e| e.value.clone()), Some(b"c".to_vec()));
        assert_eq!(
            kv.revision(),
            3,
            "a failed branch without writes takes no revision"
        );
        // A delete removes it; the key reads absent again.
        let (_, deleted) = kv.txn(&[], &[Op::Delete(b"k".to_vec())], &[]);
        assert_eq!(deleted, vec![OpResult::Delete(1)]);
        assert!(kv.txn(&[absent(b"k")], &[], &[]).0);
    }
}
