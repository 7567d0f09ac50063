//! Generic plans of slow statements (`EXPLAIN (GENERIC_PLAN)`, PostgreSQL
//! 16 and later), read by the server view's poller with placeholders only:
//! the plan's main nodes, never a filter or condition text.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

/// Plans kept; the oldest goes first when full.
const MAX_PLANS: usize = 256;

/// Rows (the planner's `reltuples`) from which a table scanned
/// sequentially is flagged as large.
pub const LARGE_TABLE_ROWS: i64 = 10_000;

/// The generic plan of one statement.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatementPlan {
    /// When it was read, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The text explained: the statement with `$n` for each literal and
    /// parameter (never a value).
    pub explained: String,
    /// The plan's nodes, depth first (at most 40), or none when it could
    /// not be read.
    pub nodes: Vec<PlanNode>,
    /// The planner's row estimate for the whole statement.
    pub estimated_rows: Option<f64>,
    /// The planner's total cost.
    pub total_cost: Option<f64>,
    /// Sequential scans over tables of at least [`LARGE_TABLE_ROWS`] rows.
    pub large_seq_scans: Vec<SeqScan>,
    /// Why there is no plan (the server's error, masked), when there is
    /// none.
    pub failed: Option<String>,
}

/// One node of a plan: what the planner chose, without its conditions.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PlanNode {
    /// Depth in the tree (0: the root).
    pub depth: u32,
    /// `Seq Scan`, `Index Scan`, `Hash Join`, …
    pub node_type: String,
    /// The table scanned, schema-qualified, when the node scans one.
    pub relation: Option<String>,
    /// The index used, when it uses one.
    pub index: Option<String>,
    /// The join type or strategy (`Inner`, `Hashed`, …), if any.
    pub detail: Option<String>,
    /// The planner's row estimate for the node.
    pub estimated_rows: f64,
    /// The planner's total cost for the node.
    pub total_cost: f64,
}

/// A sequential scan over a large table.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SeqScan {
    /// The table, schema-qualified.
    pub relation: String,
    /// Its rows as the planner knows them (`reltuples`).
    pub table_rows: i64,
}

/// The plans read, by fingerprint; and why none can be, when the server
/// is too old or plans are off.
#[derive(Default)]
pub(crate) struct PlanStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    plans: HashMap<u64, StatementPlan>,
    unavailable: Option<String>,
}

impl PlanStore {
    pub(crate) fn keep(&self, fingerprint: u64, plan: StatementPlan) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.plans.len() >= MAX_PLANS && !inner.plans.contains_key(&fingerprint) {
            let oldest = inner.plans.iter().min_by_key(|(_, p)| p.at_unix_ms).map(|(fp, _)| *fp);
            if let Some(oldest) = oldest {
                inner.plans.remove(&oldest);
            }
        }
        inner.plans.insert(fingerprint, plan);
    }

    pub(crate) fn unavailable(&self, why: Option<String>) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).unavailable = why;
    }

    /// The plan of `fingerprint`.
    pub(crate) fn get(&self, fingerprint: u64) -> Option<StatementPlan> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.plans.get(&fingerprint).cloned()
    }

    /// Why no plan can be read, if none can.
    pub(crate) fn why_unavailable(&self) -> Option<String> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).unavailable.clone()
    }
}

/// The nodes of an `EXPLAIN (FORMAT JSON, VERBOSE)` document, depth first,
/// with only the fields that hold no value: node type, relation, index,
/// join type or strategy, estimates. `None` when it is not a plan.
pub(crate) fn nodes(explain: &serde_json::Value) -> Option<Vec<PlanNode>> {
    let root = explain.as_array()?.first()?.get("Plan")?;
    let mut out = Vec::new();
    walk(root, 0, &mut out);
    Some(out)
}

const MAX_NODES: usize = 40;

fn walk(node: &serde_json::Value, depth: u32, out: &mut Vec<PlanNode>) {
    if out.len() >= MAX_NODES {
        return;
    }
    let text = |key: &str| node.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let number = |key: &str| node.get(key).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    let relation = text("Relation Name").map(|r| match text("Schema") {
        Some(schema) => format!("{schema}.{r}"),
        None => r,
    });
    out.push(PlanNode {
        depth,
        node_type: text("Node Type").unwrap_or_else(|| "?".to_owned()),
        relation,
        index: text("Index Name"),
        detail: text("Join Type").or_else(|| text("Strategy")),
        estimated_rows: number("Plan Rows"),
        total_cost: number("Total Cost"),
    });
    if let Some(children) = node.get("Plans").and_then(|p| p.as_array()) {
        for child in children {
            walk(child, depth + 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_keeps_its_nodes_and_none_of_its_conditions() {
        let explain = serde_json::json!([{"Plan": {
            "Node Type": "Hash Join", "Join Type": "Inner", "Plan Rows": 10, "Total Cost": 99.5,
            "Hash Cond": "(o.customer = c.id)",
            "Plans": [
                {"Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public", "Alias": "o",
                 "Plan Rows": 100000, "Total Cost": 80.0, "Filter": "(o.note = 'secret'::text)"},
                {"Node Type": "Hash", "Plan Rows": 5, "Total Cost": 3.0, "Plans": [
                    {"Node Type": "Index Scan", "Relation Name": "customers", "Schema": "public",
                     "Index Name": "customers_pkey", "Plan Rows": 5, "Total Cost": 2.0,
                     "Index Cond": "(id = $1)"}
                ]}
            ]
        }}]);
        let nodes = nodes(&explain).unwrap();
        let shape: Vec<(u32, &str, Option<&str>)> = nodes
            .iter()
            .map(|n| (n.depth, n.node_type.as_str(), n.relation.as_deref()))
            .collect();
        assert_eq!(
            shape,
            [
                (0, "Hash Join", None),
                (1, "Seq Scan", Some("public.orders")),
                (1, "Hash", None),
                (2, "Index Scan", Some("public.customers"))
            ]
        );
        assert_eq!(nodes[0].detail.as_deref(), Some("Inner"));
        assert_eq!(nodes[3].index.as_deref(), Some("customers_pkey"));
        let json = serde_json::to_string(&nodes).unwrap();
        assert!(!json.contains("secret") && !json.contains("Cond"), "{json}");
        assert!(super::nodes(&serde_json::json!({"not": "a plan"})).is_none());
    }

    #[test]
    fn the_store_is_bounded_and_drops_the_oldest() {
        let store = PlanStore::default();
        let plan = |at| StatementPlan {
            at_unix_ms: at,
            explained: String::new(),
            nodes: Vec::new(),
            estimated_rows: None,
            total_cost: None,
            large_seq_scans: Vec::new(),
            failed: None,
        };
        for fp in 0..(MAX_PLANS as u64 + 10) {
            store.keep(fp, plan(fp));
        }
        assert!(store.get(0).is_none());
        assert!(store.get(MAX_PLANS as u64 + 9).is_some());
        assert_eq!(store.inner.lock().unwrap().plans.len(), MAX_PLANS);
    }
}
