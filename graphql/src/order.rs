//! Answers in the order they were asked. The GraphQL specification (§7.2.2,
//! "Serialized Map Ordering") has a result map follow the selection set: the
//! fields in the order the query names them, fragments' fields where the
//! fragment is spread, a response key at its first appearance (CollectFields).
//! async-graphql builds objects in its own order (its issue #612), so this
//! extension puts each answer's `data` back into the query's order, for
//! queries and mutations over HTTP and every notice of a subscription alike.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextSubscribe,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use async_graphql::{Name, Response, ServerResult, Value, Variables};
use futures_util::stream::BoxStream;

/// The extension's factory: one [`Ordering`] per request.
pub(crate) struct SelectionOrder;

impl ExtensionFactory for SelectionOrder {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Ordering::default())
    }
}

/// What a request asked: its document and the operation it runs, kept from
/// the request's preparation and parsing until its answers go out.
#[derive(Default)]
struct Ordering {
    asked: Arc<Mutex<Asked>>,
}

#[derive(Default)]
struct Asked {
    document: Option<ExecutableDocument>,
    operation: Option<String>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for Ordering {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        self.asked.lock().expect("asked lock").operation = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        self.asked.lock().expect("asked lock").document = Some(document.clone());
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        self.asked
            .lock()
            .expect("asked lock")
            .reorder(&mut response.data);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        use futures_util::StreamExt;
        let asked = Arc::clone(&self.asked);
        next.run(ctx, stream)
            .map(move |mut response| {
                asked
                    .lock()
                    .expect("asked lock")
                    .reorder(&mut response.data);
                response
            })
            .boxed()
    }
}

impl Asked {
    /// Puts `data` into the order of the operation that produced it.
    fn reorder(&self, data: &mut Value) {
        let Some(document) = &self.document else {
            return;
        };
        let operation = match (&document.operations, self.operation.as_deref()) {
            (DocumentOperations::Single(op), _) => op,
            (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
                Some(op) => op,
                None => return,
            },
            (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
                ops.values().next().expect("one operation")
            }
            _ => return,
        };
        order(data, &[&operation.node.selection_set.node], document);
    }
}

/// Orders `value` (an object, or a list of them, at any depth) by the
/// selection sets that produced it.
fn order(value: &mut Value, sets: &[&SelectionSet], document: &ExecutableDocument) {
    match value {
        Value::List(items) => items.iter_mut().for_each(|v| order(v, sets, document)),
        Value::Object(map) => {
            let mut keys = Vec::new();
            let mut spread = Vec::new();
            for set in sets {
                collect(set, document, &mut keys, &mut spread);
            }
            let mut rest = std::mem::take(map);
            for (key, subs) in keys {
                if let Some((k, mut v)) = rest.shift_remove_entry(key) {
                    order(&mut v, &subs, document);
                    map.insert(k, v);
                }
            }
            // Nothing else should be there; if it is, it keeps its place
            // after what was asked.
            map.extend(rest);
        }
        _ => {}
    }
}

/// The response keys `set` asks for, in order, each with the selection sets
/// of its fields (merged across repeats and fragments).
fn collect<'d>(
    set: &'d SelectionSet,
    document: &'d ExecutableDocument,
    keys: &mut Vec<(&'d Name, Vec<&'d SelectionSet>)>,
    spread: &mut Vec<&'d Name>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let key = &f.node.response_key().node;
                let sub = &f.node.selection_set.node;
                match keys.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, subs)) => subs.push(sub),
                    None => keys.push((key, vec![sub])),
                }
            }
            Selection::FragmentSpread(s) => {
                let name = &s.node.fragment_name.node;
                // A fragment spread twice adds nothing the first did not.
                if spread.contains(&name) {
                    continue;
                }
                spread.push(name);
                if let Some(fragment) = document.fragments.get(name) {
                    collect(&fragment.node.selection_set.node, document, keys, spread);
                }
            }
            Selection::InlineFragment(i) => {
                collect(&i.node.selection_set.node, document, keys, spread)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(query: &str) -> Asked {
        Asked {
            document: Some(async_graphql::parser::parse_query(query).unwrap()),
            operation: None,
        }
    }

    fn keys(v: &Value) -> Vec<String> {
        match v {
            Value::Object(m) => m.keys().map(|k| k.to_string()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn objects_lists_aliases_and_fragments_follow_the_query() {
        let query = "{ z: lot { lotNumber id ...more holder { name id } } a: recalls { items { open id } } }
                     fragment more on Lot { gtin id quantity }";
        let mut data = Value::from_json(serde_json::json!({
            "a": {"items": [{"id": 1, "open": true}, {"id": 2, "open": false}]},
            "z": {"id": "x", "quantity": 1, "gtin": "g", "holder": {"id": 3, "name": "n"}, "lotNumber": "L"}
        }))
        .unwrap();
        asked(query).reorder(&mut data);
        assert_eq!(keys(&data), ["z", "a"]);
        let Value::Object(top) = &data else { panic!() };
        assert_eq!(
            keys(&top["z"]),
            ["lotNumber", "id", "gtin", "quantity", "holder"]
        );
        let Value::Object(lot) = &top["z"] else {
            panic!()
        };
        assert_eq!(keys(&lot["holder"]), ["name", "id"]);
        let Value::Object(a) = &top["a"] else {
            panic!()
        };
        let Value::List(items) = &a["items"] else {
            panic!()
        };
        for item in items {
            assert_eq!(keys(item), ["open", "id"]);
        }
    }

    #[test]
    fn the_named_operation_orders_and_unknown_keys_stay_after() {
        let mut a = asked("query A { b a } query B { a b }");
        a.operation = Some("A".into());
        let mut data = Value::from_json(serde_json::json!({"a": 1, "b": 2, "c": 3})).unwrap();
        a.reorder(&mut data);
        assert_eq!(keys(&data), ["b", "a", "c"]);
    }
}
