//! Small schema adjustments the derive macros cannot express, shared by every kind.

use schemars::Schema;
use serde_json::Value;

/// The semantic-version pattern the reference operator uses for `version` (an optional `v` prefix).
pub const VERSION_PATTERN: &str = r"^(v)?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$";

/// The DNS-subdomain pattern of a Cluster name.
pub const CLUSTER_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Limits a map to 512 entries, as the reference does for template labels.
pub fn max_512_properties(schema: &mut Schema) {
    schema.insert("maxProperties".into(), Value::from(512));
}

/// Requires a map to have at least one entry (a topology names at least one label).
pub fn min_1_property(schema: &mut Schema) {
    schema.insert("minProperties".into(), Value::from(1));
}

/// Marks an object whose fields the API server keeps as given (a TOML-like free map).
pub fn preserve_unknown_fields(schema: &mut Schema) {
    schema.insert(
        "x-kubernetes-preserve-unknown-fields".into(),
        Value::Bool(true),
    );
}

/// Lets an overlay's Pod spec leave out `containers`: an overlay that only adds tolerations or a
/// node selector is a whole patch on its own, and the operator merges it over a Pod that has its
/// containers already.
pub fn relax_overlay_pod_spec(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(spec) = map
                .get_mut("overlay")
                .and_then(|o| o.pointer_mut("/properties/pod/properties/spec"))
                .and_then(Value::as_object_mut)
            {
                spec.remove("required");
            }
            map.values_mut().for_each(relax_overlay_pod_spec);
        }
        Value::Array(items) => items.iter_mut().for_each(relax_overlay_pod_spec),
        _ => {}
    }
}
