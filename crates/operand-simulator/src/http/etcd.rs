//! PD's embedded etcd as its JSON gateway serves it on PD's client URL (`/v3/kv/range`,
//! `/v3/kv/txn`): keys and values in base64, 64-bit numbers as strings, fields at
//! their default left out, as etcd's gateway writes them. Only single keys: no prefixes, leases
//! or watches.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::pd::{ok, parse_body, with_pd};
use super::{ClusterPath, SharedSim};
use crate::sim::ApiError;
use crate::sim::kv::{Compare, Entry, Kv, Op, OpResult, Relation, Target};

const P: &str = "/clusters/{namespace}/{cluster}/v3/kv";

pub(super) fn routes() -> Router<SharedSim> {
    Router::new()
        .route(&format!("{P}/range"), post(range))
        .route(&format!("{P}/txn"), post(txn))
}

async fn range(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>, body: Bytes) -> Response {
    with_pd(&sim, &p, |c, _| {
        let req: Value = parse_body(&body)?;
        single_key(&req)?;
        let key = bytes(&req, "key")?;
        let mut answer = range_answer(&key, c.kv.get(&key));
        answer.insert("header".into(), header(&c.kv));
        ok(&answer)
    })
}

async fn txn(State(sim): State<SharedSim>, Path(p): Path<ClusterPath>, body: Bytes) -> Response {
    with_pd(&sim, &p, |c, _| {
        let req: Value = parse_body(&body)?;
        let compare = list(&req, "compare")?
            .iter()
            .map(compare)
            .collect::<Result<Vec<_>, _>>()?;
        let success = ops(&req, "success")?;
        let failure = ops(&req, "failure")?;
        let (succeeded, results) = c.kv.txn(&compare, &success, &failure);
        let ran = if succeeded { &success } else { &failure };
        let responses: Vec<Value> = ran
            .iter()
            .zip(&results)
            .map(|(op, result)| op_answer(op, result))
            .collect();
        let mut answer = Map::new();
        answer.insert("header".into(), header(&c.kv));
        if succeeded {
            answer.insert("succeeded".into(), Value::Bool(true));
        }
        if !responses.is_empty() {
            answer.insert("responses".into(), Value::Array(responses));
        }
        ok(&answer)
    })
}

fn header(kv: &Kv) -> Value {
    json!({"revision": kv.revision().to_string(), "raft_term": "1"})
}

fn entry(key: &[u8], e: &Entry) -> Value {
    json!({
        "key": STANDARD.encode(key),
        "create_revision": e.create_revision.to_string(),
        "mod_revision": e.mod_revision.to_string(),
        "version": e.version.to_string(),
        "value": STANDARD.encode(&e.value),
    })
}

fn range_answer(key: &[u8], found: Option<&Entry>) -> Map<String, Value> {
    let mut answer = Map::new();
    if let Some(e) = found {
        answer.insert("kvs".into(), json!([entry(key, e)]));
        answer.insert("count".into(), json!("1"));
    }
    answer
}

fn op_answer(op: &Op, result: &OpResult) -> Value {
    match (op, result) {
        (Op::Get(key), OpResult::Get(found)) => {
            json!({"response_range": range_answer(key, found.as_ref())})
        }
        (_, OpResult::Delete(n)) if *n > 0 => {
            json!({"response_delete_range": {"deleted": n.to_string()}})
        }
        (_, OpResult::Delete(_)) => json!({"response_delete_range": {}}),
        _ => json!({"response_put": {}}),
    }
}

fn bad(message: String) -> ApiError {
    ApiError::new(400, message)
}

/// A base64 field; absent reads empty, as protobuf's default.
fn bytes(v: &Value, field: &str) -> Result<Vec<u8>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => STANDARD
            .decode(s)
            .map_err(|e| bad(format!("{field}: not base64: {e}"))),
        Some(other) => Err(bad(format!(
            "{field}: expected a base64 string, got {other}"
        ))),
    }
}

/// A 64-bit number field, as a string or a number; absent reads 0.
fn int(v: &Value, field: &str) -> Result<i64, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| bad(format!("{field}: {n} is not a 64-bit integer"))),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|e| bad(format!("{field}: {s:?} is not an integer: {e}"))),
        Some(other) => Err(bad(format!("{field}: expected an integer, got {other}"))),
    }
}

fn list<'a>(v: &'a Value, field: &str) -> Result<&'a [Value], ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(bad(format!("{field}: expected a list, got {other}"))),
    }
}

fn compare(c: &Value) -> Result<Compare, ApiError> {
    let text = |field: &str, default: &'static str| {
        c.get(field)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    // etcd's defaults: result EQUAL, target VERSION.
    let relation = match text("result", "EQUAL").as_str() {
        "EQUAL" => Relation::Equal,
        "NOT_EQUAL" => Relation::NotEqual,
        "GREATER" => Relation::Greater,
        "LESS" => Relation::Less,
        other => return Err(bad(format!("compare result {other:?} is not known"))),
    };
    let target = match text("target", "VERSION").as_str() {
        "CREATE" => Target::Create(int(c, "create_revision")?),
        "MOD" => Target::Mod(int(c, "mod_revision")?),
        "VERSION" => Target::Version(int(c, "version")?),
        "VALUE" => Target::Value(bytes(c, "value")?),
        other => return Err(bad(format!("compare target {other:?} is not supported"))),
    };
    if c.get("range_end").is_some() {
        return Err(bad("compare over a range of keys is not supported".into()));
    }
    Ok(Compare {
        key: bytes(c, "key")?,
        target,
        relation,
    })
}

fn ops(req: &Value, field: &str) -> Result<Vec<Op>, ApiError> {
    list(req, field)?
        .iter()
        .map(|op| {
            if let Some(r) = op.get("request_range") {
                single_key(r)?;
                Ok(Op::Get(bytes(r, "key")?))
            } else if let Some(r) = op.get("request_put") {
                Ok(Op::Put(bytes(r, "key")?, bytes(r, "value")?))
            } else if let Some(r) = op.get("request_delete_range") {
                single_key(r)?;
                Ok(Op::Delete(bytes(r, "key")?))
            } else {
                Err(bad(format!("{field}: operation {op} is not supported")))
            }
        })
        .collect()
}

fn single_key(r: &Value) -> Result<(), ApiError> {
    match r.get("range_end") {
        None | Some(Value::Null) => Ok(()),
        Some(_) => Err(bad("ranges over several keys are not supported".into())),
    }
}
