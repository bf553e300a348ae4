//! Request parameters read one by one, so that a refusal names the one at
//! fault (`invalid_parameter`), for every edge crate's handlers.

use actix_web::web;
use actix_web::HttpRequest;

use crate::problem::ApiError;

/// A request's query string, read parameter by parameter so that a bad one
/// is named in the refusal; a parameter the route does not know is refused.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(req: &HttpRequest, known: &[&str]) -> Result<QueryParams, ApiError> {
        QueryParams::from_query_string(req.query_string(), known)
    }

    /// [`QueryParams::parse`] on a raw query string (without the `?`).
    pub fn from_query_string(query: &str, known: &[&str]) -> Result<QueryParams, ApiError> {
        let QueryParams(pairs) = QueryParams::any_from_query_string(query)?;
        if let Some((name, _)) = pairs.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            return Err(ApiError::InvalidParameter {
                name: name.clone(),
                message: format!(
                    "this route takes no such parameter; it takes {}",
                    known.join(", ")
                ),
            });
        }
        Ok(QueryParams(pairs))
    }

    /// Every parameter, in order, without checking names (for routes whose
    /// parameters are a language of their own, like EPCIS queries).
    pub fn parse_any(req: &HttpRequest) -> Result<QueryParams, ApiError> {
        QueryParams::any_from_query_string(req.query_string())
    }

    /// [`QueryParams::parse_any`] on a raw query string (without the `?`).
    pub fn any_from_query_string(query: &str) -> Result<QueryParams, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| ApiError::InvalidParameter {
                name: "query".into(),
                message: format!("the query string is not valid form encoding: {e}"),
            })?
            .into_inner();
        // A value without a name (`?=x`, `&=x`) could only be refused later
        // as "parameter ``", which tells nobody what to fix.
        if pairs.iter().any(|(name, _)| name.is_empty()) {
            return Err(ApiError::InvalidParameter {
                name: "query".into(),
                message:
                    "a value has no parameter name (`=…` with nothing before it); write name=value"
                        .into(),
            });
        }
        Ok(QueryParams(pairs))
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn get<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.0.iter().find(|(n, _)| n == name) {
            None => Ok(None),
            Some((_, v)) => v.parse().map(Some).map_err(|_| ApiError::InvalidParameter {
                name: name.into(),
                message: format!("{v:?} is not a {}", std::any::type_name::<T>()),
            }),
        }
    }

    /// A time given as Unix epoch milliseconds or RFC 3339.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get::<String>(name)? else {
            return Ok(None);
        };
        if let Ok(ms) = raw.parse::<i64>() {
            return Ok(Some(ms));
        }
        chrono::DateTime::parse_from_rfc3339(&raw)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|_| ApiError::InvalidParameter {
                name: name.into(),
                message: format!(
                    "{raw:?} is neither Unix epoch milliseconds nor an RFC 3339 time like 2026-11-02T00:00:00Z"
                ),
            })
    }

    pub fn require<T: std::str::FromStr>(&self, name: &str) -> Result<T, ApiError> {
        self.get(name)?.ok_or_else(|| ApiError::InvalidParameter {
            name: name.into(),
            message: "this parameter is required".into(),
        })
    }
}

/// A path segment as a number, or a refusal naming it.
pub fn path_number<T: std::str::FromStr>(req: &HttpRequest, name: &str) -> Result<T, ApiError> {
    let raw = req.match_info().get(name).unwrap_or("");
    raw.parse().map_err(|_| ApiError::InvalidParameter {
        name: name.into(),
        message: format!("{raw:?} is not a non-negative number"),
    })
}

/// Percent-encodes a query or path component (everything but RFC 3986's
/// unreserved characters).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `query_params` fuzz target: a nameless value reached the
    /// EPCIS query parser, which refused "parameter ``".
    #[test]
    fn a_value_without_a_name_is_refused_naming_the_query() {
        let err = QueryParams::any_from_query_string("=urn%3Aepc&GE_quantity=3")
            .err()
            .expect("refused");
        let ApiError::InvalidParameter { name, message } = err else {
            panic!("{err}");
        };
        assert_eq!(name, "query");
        assert!(message.contains("no parameter name"), "{message}");
        assert!(QueryParams::any_from_query_string("a=1&b=").is_ok());
        assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
    }
}
