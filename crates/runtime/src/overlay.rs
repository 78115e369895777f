//! Merging a user's overlay over an object the operator built, the way a strategic merge patch
//! does for the fields users overlay: objects merge key by key, lists of named items (containers,
//! volumes, env, ports) merge by `name`, other lists and scalars are replaced.

use serde_json::Value;

/// Merges `overlay` into `base` in place. `null` in the overlay removes the key.
pub fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                if value.is_null() {
                    base.remove(key);
                    continue;
                }
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(overlay))
            if is_named_list(base) && is_named_list(overlay) =>
        {
            for item in overlay {
                let name = item.get("name");
                match base.iter_mut().find(|b| b.get("name") == name) {
                    Some(existing) => merge(existing, item),
                    None => base.push(item.clone()),
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

fn is_named_list(items: &[Value]) -> bool {
    items
        .iter()
        .all(|item| item.get("name").is_some_and(Value::is_string))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn containers_merge_by_name_and_scalars_are_replaced() {
        let mut pod = json!({
            "containers": [{"name": "pd", "image": "pd:v1", "env": [{"name": "A", "value": "1"}]}],
            "terminationGracePeriodSeconds": 30,
            "tolerations": [{"key": "a"}]
        });
        merge(
            &mut pod,
            &json!({
                "containers": [{"name": "pd", "env": [{"name": "B", "value": "2"}]}, {"name": "sidecar", "image": "s"}],
                "terminationGracePeriodSeconds": 60,
                "tolerations": [{"key": "b"}]
            }),
        );
        assert_eq!(
            pod,
            json!({
                "containers": [
                    {"name": "pd", "image": "pd:v1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                    {"name": "sidecar", "image": "s"}
                ],
                "terminationGracePeriodSeconds": 60,
                "tolerations": [{"key": "b"}]
            })
        );
    }

    #[test]
    fn null_removes_a_key() {
        let mut value = json!({"a": 1, "b": 2});
        merge(&mut value, &json!({"a": null}));
        assert_eq!(value, json!({"b": 2}));
    }
}
