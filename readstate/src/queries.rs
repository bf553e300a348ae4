//! Named EPCIS queries (the REST binding's `/queries`): a name, the
//! SimpleEventQuery it stands for (a JSON object of parameters, as GS1's
//! query schema writes one), and the organisation that made it.
//!
//! Running one is running its parameters as `GET /events` would, for the
//! caller: the answer holds only the events the caller may see, whoever
//! made the query. A partner lists, reads and deletes its own
//! organisation's queries (a query's parameters can name a customer's lots);
//! investigators and the operator see every query.
//!
//! Kept in `queries.json` in the data directory, written whole to a
//! temporary file, fsync'd and renamed over the old one, so a crash leaves
//! the old set or the new one and a query acknowledged with 201 survives a
//! restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use analytics::lineage::query::EventQuery;
use api::{ApiError, Principal, Role};
use serde::{Deserialize, Serialize};

use crate::listfile::ListFileError;
use serde_json::{Map, Value};

/// The file the named queries are kept in.
pub const FILE: &str = "queries.json";

/// One named query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedQuery {
    pub name: String,
    /// The organisation (GLN URN) whose partner or investigator made it.
    pub owner: String,
    /// The parameters, as given: name to value (a list, a string, a number
    /// or a boolean).
    pub query: Map<String, Value>,
}

/// The node's named queries.
#[derive(Debug)]
pub struct NamedQueries {
    path: PathBuf,
    queries: Mutex<BTreeMap<String, NamedQuery>>,
}

/// The parameters of a query object as `GET /events` pairs: a list's
/// elements each as its own pair (a repeated parameter is a list), a
/// boolean `true` on an `EXISTS_` parameter as the bare parameter.
pub fn params_of(query: &Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for (name, value) in query {
        let bad = |what: &str| ApiError::InvalidParameter {
            name: name.clone(),
            message: format!("{what}; give a string, a number, a boolean or a list of strings"),
        };
        match value {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(bad("an empty list selects nothing"));
                }
                for i in items {
                    match i {
                        Value::String(s) => out.push((name.clone(), s.clone())),
                        Value::Number(n) => out.push((name.clone(), n.to_string())),
                        _ => return Err(bad("a list holds strings or numbers")),
                    }
                }
            }
            Value::String(s) => out.push((name.clone(), s.clone())),
            Value::Number(n) => out.push((name.clone(), n.to_string())),
            Value::Bool(true) if name.starts_with("EXISTS_") => {
                out.push((name.clone(), String::new()))
            }
            Value::Bool(b) => out.push((name.clone(), b.to_string())),
            Value::Null | Value::Object(_) => return Err(bad("not a parameter value")),
        }
    }
    Ok(out)
}

/// Whether `name` is a usable query name: 1 to 64 letters, digits, `_`,
/// `-` or `.` (it is a path segment).
fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidParameter {
            name: "name".into(),
            message: format!(
                "{name:?}: give 1 to 64 letters, digits, '_', '-' or '.' (it becomes /queries/{{name}})"
            ),
        })
    }
}

/// Whether `who` may see `q`.
fn sees(who: &Principal, q: &NamedQuery) -> bool {
    matches!(who.role, Role::Investigator | Role::Operator) || who.org == q.owner
}

impl NamedQueries {
    /// The named queries of the node whose data directory is `dir` (none if
    /// it has no file yet).
    pub fn open(dir: &Path) -> Result<NamedQueries, ListFileError> {
        let path = dir.join(FILE);
        let queries = crate::listfile::read::<NamedQuery>(&path, "named queries")?
            .into_iter()
            .map(|q| (q.name.clone(), q))
            .collect();
        Ok(NamedQueries {
            path,
            queries: Mutex::new(queries),
        })
    }

    /// Makes query `name` for `who`'s organisation, once its parameters
    /// parse as a SimpleEventQuery; durable when this returns.
    pub fn create(
        &self,
        who: &Principal,
        name: &str,
        query: Map<String, Value>,
    ) -> Result<NamedQuery, ApiError> {
        check_name(name)?;
        EventQuery::from_params(&params_of(&query)?).map_err(|e| ApiError::InvalidParameter {
            name: e.parameter,
            message: e.message,
        })?;
        let mut all = self.queries.lock().expect("queries lock");
        if all.contains_key(name) {
            return Err(ApiError::QueryExists(name.to_string()));
        }
        let q = NamedQuery {
            name: name.to_string(),
            owner: who.org.clone(),
            query,
        };
        let mut next = all.clone();
        next.insert(name.to_string(), q.clone());
        self.write(&next)?;
        *all = next;
        Ok(q)
    }

    /// Query `name`, if `who` may see it (else, as if it did not exist, not
    /// found).
    pub fn get(&self, who: &Principal, name: &str) -> Result<NamedQuery, ApiError> {
        self.queries
            .lock()
            .expect("queries lock")
            .get(name)
            .filter(|q| sees(who, q))
            .cloned()
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no query named {name:?} that you may see; GET /queries lists them"
                ))
            })
    }

    /// The queries `who` may see, by name.
    pub fn list(&self, who: &Principal) -> Vec<NamedQuery> {
        self.queries
            .lock()
            .expect("queries lock")
            .values()
            .filter(|q| sees(who, q))
            .cloned()
            .collect()
    }

    /// Deletes query `name`, if `who` may see it; durable when this returns.
    pub fn delete(&self, who: &Principal, name: &str) -> Result<(), ApiError> {
        self.get(who, name)?;
        let mut all = self.queries.lock().expect("queries lock");
        let mut next = all.clone();
        next.remove(name);
        self.write(&next)?;
        *all = next;
        Ok(())
    }

    /// Writes `queries` as the file, durably.
    fn write(&self, queries: &BTreeMap<String, NamedQuery>) -> Result<(), ApiError> {
        let list: Vec<&NamedQuery> = queries.values().collect();
        crate::listfile::write(&self.path, &list, ledger::durable::Mode::Shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who(org: &str, role: Role) -> Principal {
        Principal {
            org: org.to_string(),
            role,
        }
    }

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn queries_survive_reopening_and_each_organisation_sees_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let a = who("urn:epc:id:sgln:0614141.00001.0", Role::Partner);
        let b = who("urn:epc:id:sgln:0614141.00002.0", Role::Partner);
        let inv = who("urn:epc:id:sgln:0614141.00099.0", Role::Investigator);
        let qs = NamedQueries::open(dir.path()).unwrap();
        let body = object(
            json!({"EQ_bizStep": ["shipping", "receiving"], "eventType": ["ObjectEvent"], "EXISTS_errorDeclaration": true, "GE_quantity": 5}),
        );
        qs.create(&a, "mine", body.clone()).unwrap();
        assert!(matches!(
            qs.create(&b, "mine", body.clone()),
            Err(ApiError::QueryExists(_))
        ));
        let qs = NamedQueries::open(dir.path()).unwrap();
        assert_eq!(qs.get(&a, "mine").unwrap().query, body);
        assert!(matches!(qs.get(&b, "mine"), Err(ApiError::NotFound(_))));
        assert_eq!(qs.list(&b).len(), 0);
        assert_eq!(qs.list(&inv).len(), 1);
        assert!(qs.delete(&b, "mine").is_err());
        qs.delete(&a, "mine").unwrap();
        assert!(NamedQueries::open(dir.path())
            .unwrap()
            .list(&inv)
            .is_empty());
        assert_eq!(
            params_of(&body).unwrap(),
            [
                ("EQ_bizStep".to_string(), "shipping".to_string()),
                ("EQ_bizStep".into(), "receiving".into()),
                ("EXISTS_errorDeclaration".into(), String::new()),
                ("GE_quantity".into(), "5".into()),
                ("eventType".into(), "ObjectEvent".into()),
            ]
        );
    }

    #[test]
    fn bad_names_and_parameters_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = who("urn:epc:id:sgln:0614141.00001.0", Role::Partner);
        let qs = NamedQueries::open(dir.path()).unwrap();
        for (name, body, param) in [
            ("a/b", json!({}), "name"),
            ("", json!({}), "name"),
            ("ok", json!({"EQ_bizStp": ["x"]}), "EQ_bizStp"),
            ("ok", json!({"EQ_bizStep": []}), "EQ_bizStep"),
            ("ok", json!({"EQ_bizStep": [{"a": 1}]}), "EQ_bizStep"),
            ("ok", json!({"GE_eventTime": "yesterday"}), "GE_eventTime"),
        ] {
            match qs.create(&a, name, object(body)) {
                Err(ApiError::InvalidParameter { name: n, .. }) => assert_eq!(n, param),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(qs.list(&a).is_empty());
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert!(matches!(
            NamedQueries::open(dir.path()),
            Err(ListFileError::Invalid { .. })
        ));
    }
}
