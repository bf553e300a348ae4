//! Relay-style connections over lists the read model has in hand: opaque
//! cursors (positions), `pageInfo`, `totalCount`, and a bounded `first`.

use api::ApiError;
use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, OutputType, SimpleObject};
use base64::Engine;

use crate::context::{refusal, Answer, PageLimits};

/// Every list in the schema is one of these.
pub type Page<T> = Connection<String, T, TotalCount, EmptyFields>;

#[derive(SimpleObject)]
pub struct TotalCount {
    /// How many items the whole list holds.
    pub total_count: usize,
}

fn cursor(position: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("p{position}"))
}

fn position(cursor: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix('p')?
        .parse()
        .ok()
}

/// The page of `items` after `after`, at most `first` long (the server's
/// default when absent; more than the maximum is refused).
pub fn page<T: OutputType>(
    ctx: &Context<'_>,
    items: Vec<T>,
    first: Option<i32>,
    after: Option<String>,
) -> Answer<Page<T>> {
    let limits = ctx.data_unchecked::<PageLimits>();
    let n = match first {
        None => limits.default_page,
        Some(f) if f >= 0 && (f as usize) <= limits.max_page => f as usize,
        Some(f) => {
            return Err(refusal(ApiError::InvalidParameter {
                name: "first".into(),
                message: format!(
                    "{f}: give 0 to {} and page on with `after: pageInfo.endCursor`",
                    limits.max_page
                ),
            }))
        }
    };
    let start = match after.as_deref() {
        None => 0,
        Some(c) => position(c).map(|p| p + 1).ok_or_else(|| {
            refusal(ApiError::InvalidParameter {
                name: "after".into(),
                message: format!("{c:?} is not a cursor this API handed out; give an `endCursor` or `cursor` from an earlier answer"),
            })
        })?,
    };
    let total = items.len();
    let mut c = Connection::with_additional_fields(
        start > 0,
        start.saturating_add(n) < total,
        TotalCount { total_count: total },
    );
    c.edges.extend(
        items
            .into_iter()
            .enumerate()
            .skip(start)
            .take(n)
            .map(|(i, t)| Edge::new(cursor(i), t)),
    );
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        for p in [0, 1, 19, 1_000_000] {
            assert_eq!(position(&cursor(p)), Some(p));
        }
        assert_eq!(position("bm9wZQ"), None);
        assert_eq!(position("not base64!"), None);
    }
}
