//! Small schema adjustments the derive macros cannot express, shared by every kind.

use schemars::Schema;
use serde_json::Value;

/// The semantic-version pattern the reference operator uses for `version` (an optional `v` prefix).
pub const VERSION_PATTERN: &str = r"^(v)?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$";

/// The DNS-subdomain pattern of a Cluster name.
/// A Go-style duration of whole units (`90s`, `5m`, `1h30m`), as the duration fields take it.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";
pub const CLUSTER_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// The pattern of a Kubernetes quantity in string form (`100Gi`, `500m`, `1e3`), as the API
/// server's own schemas carry it.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// Makes a quantity's schema check the string form, so a size such as `10 GB` is refused when it
/// is applied rather than when the operator builds a PVC from it.
pub fn quantity(schema: &mut Schema) {
    schema.insert("pattern".into(), Value::from(QUANTITY_PATTERN));
}

/// A volume's storage quantity: a bounded length, so that the CEL rule comparing it with the
/// old size stays within the API server's cost budget.
pub fn storage_quantity(schema: &mut Schema) {
    quantity(schema);
    schema.insert("maxLength".into(), Value::from(64));
}

/// Marks an object that is replaced as a whole by server-side apply (an object reference).
pub fn atomic_map(schema: &mut Schema) {
    schema.insert("x-kubernetes-map-type".into(), Value::from("atomic"));
}

/// Adds `volumes` to the required properties: PD and TiKV cannot run without their data volume,
/// and the reference says so with a required field before its CEL rule.
pub fn require_volumes(schema: &mut Schema) {
    require(schema, "volumes");
}

/// Adds `mode` to the required properties of the DNS settings, which is always written out.
pub fn require_mode(schema: &mut Schema) {
    require(schema, "mode");
}

/// Adds `enabled` to the required properties of a TLS switch, which is always written out, and
/// drops the default a Rust `bool` gets: a switch left out is refused, not taken as off.
pub fn require_enabled(schema: &mut Schema) {
    require(schema, "enabled");
    if let Some(Value::Object(enabled)) = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut("enabled"))
    {
        enabled.remove("default");
    }
}

/// Adds `id` and `isOwner` to the required properties of a TiCDC status, which the reference
/// always writes out.
pub fn require_id_and_is_owner(schema: &mut Schema) {
    require(schema, "id");
    require(schema, "isOwner");
}

fn require(schema: &mut Schema, property: &str) {
    let required = schema
        .ensure_object()
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(names) = required
        && !names.iter().any(|n| n == property)
    {
        names.push(Value::from(property));
    }
}

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

/// Lets a Cluster leave out `spec`, as `kind: Cluster` with a name alone is a whole Cluster: the
/// API server fills in an empty spec, which every field of allows.
pub fn optional_spec(value: &mut Value) {
    if let Some(root) = value.as_object_mut() {
        if let Some(Value::Array(required)) = root.get_mut("required") {
            required.retain(|name| name != "spec");
            if required.is_empty() {
                root.remove("required");
            }
        }
        if let Some(spec) = root
            .get_mut("properties")
            .and_then(|p| p.get_mut("spec"))
            .and_then(Value::as_object_mut)
        {
            spec.insert("default".into(), Value::Object(serde_json::Map::new()));
        }
    }
}

/// Adds `status.mode` of a PDGroup, the PD mode its members have all reached. The status type is
/// every group's, so the field is added here; this operator leaves it unset, as it runs PD in
/// the normal mode only.
pub fn pd_group_status_mode(value: &mut Value) {
    if let Some(properties) = value
        .pointer_mut("/properties/status/properties")
        .and_then(Value::as_object_mut)
    {
        properties.insert(
            "mode".into(),
            serde_json::json!({
                "description": "The PD mode every member has reached: empty for the normal mode, `ms` for microservices.",
                "type": "string"
            }),
        );
    }
}
