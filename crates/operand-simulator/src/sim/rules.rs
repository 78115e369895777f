//! PD's placement rules: TiDB writes one per table with TiFlash replicas
//! (group `tiflash`, role `learner`, `count` the table's replica count, `engine=tiflash`), and the
//! operator reads them before it takes a TiFlash store out. The simulator keeps them, answers
//! them, and places TiFlash learners by the largest count ([`super::learners`]).

use std::collections::BTreeMap;

use serde_json::Value;

use super::ApiError;

/// The rules of a cluster, by group and ID, each as it was written.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    rules: BTreeMap<(String, String), Value>,
}

impl Rules {
    /// `POST /config/rule`: adds or replaces the rule its `group_id` and `id` name.
    pub fn set(&mut self, rule: Value) -> Result<(), ApiError> {
        let text = |key: &str| {
            rule.get(key)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let (Some(group), Some(id)) = (text("group_id"), text("id")) else {
            return Err(ApiError::new(400, "a rule needs its group_id and id"));
        };
        if rule.get("count").and_then(Value::as_u64).unwrap_or(0) == 0 {
            return Err(ApiError::new(400, "a rule's count must be positive"));
        }
        self.rules.insert((group, id), rule);
        Ok(())
    }

    /// `DELETE /config/rule/{group}/{id}`: removes it, if there is one.
    pub fn delete(&mut self, group: &str, id: &str) {
        self.rules.remove(&(group.to_string(), id.to_string()));
    }

    /// The largest `count` of the group's learner rules: how many learners the most demanding
    /// table keeps (0 without such a rule).
    pub fn max_learners(&self, group: &str) -> u64 {
        self.rules
            .iter()
            .filter(|((g, _), rule)| {
                g == group && rule.get("role").and_then(Value::as_str) == Some("learner")
            })
            .filter_map(|(_, rule)| rule.get("count").and_then(Value::as_u64))
            .max()
            .unwrap_or(0)
    }

    /// `GET /config/rules/group/{group}`: the group's rules, in ID order.
    pub fn of_group(&self, group: &str) -> Vec<Value> {
        self.rules
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|(_, rule)| rule.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_kept_by_group_and_id() {
        let mut rules = Rules::default();
        let rule = |id: &str, count: u64| serde_json::json!({"group_id": "tiflash", "id": id, "role": "learner", "count": count});
        rules.set(rule("table-45-r", 2)).unwrap();
        rules.set(rule("table-46-r", 1)).unwrap();
        rules.set(rule("table-45-r", 3)).unwrap();
        let tiflash = rules.of_group("tiflash");
        assert_eq!(tiflash.len(), 2);
        assert_eq!(tiflash[0]["count"], 3);
        assert!(rules.of_group("pd").is_empty());
        rules.delete("tiflash", "table-46-r");
        assert_eq!(rules.of_group("tiflash").len(), 1);
        assert!(
            rules
                .set(serde_json::json!({"id": "x", "count": 1}))
                .is_err()
        );
        assert!(rules.set(rule("table-47-r", 0)).is_err());
    }
}
