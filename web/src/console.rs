//! The investigators' GraphQL console: GraphiQL, served by the node itself.
//!
//! GraphiQL, React and the page's start-up script come from this node's own
//! assets (`assets/vendor/graphiql`, pinned by `assets/vendor/refresh.sh`),
//! never from a CDN: an investigator's browser runs only code this binary
//! carries (it holds their bearer token), and the console works where the
//! node has no way out to the internet. The Content-Security-Policy says so
//! to the browser as well.

use maud::{html, DOCTYPE};

use crate::assets::PREFIX;

/// What the console page may load: scripts, styles and connections to this
/// origin only (`'self'` covers its WebSocket too). GraphiQL sets styles at
/// run time and carries its fonts and icons as `data:` URLs.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console page for the GraphQL endpoint at `endpoint` (a path on this
/// origin; subscriptions go to the same path over WebSocket).
pub fn page(endpoint: &str) -> String {
    let vendor = format!("{PREFIX}/vendor/graphiql");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="robots" content="noindex";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "coldtrail GraphQL" }
                // No icon to fetch (a 404 for /favicon.ico is a console error).
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(format!("{vendor}/graphiql.min.css"));
                link rel="stylesheet" href=(format!("{PREFIX}/console.css"));
            }
            body {
                // Asked for before GraphiQL starts, so that its first look
                // at the schema (introspection) is already authorised.
                form #token hidden {
                    h1 { "coldtrail GraphQL" }
                    p {
                        "The recall investigators' console. Give your bearer token: "
                        code { "coldtrail token issue --role investigator" }
                        " makes one, and "
                        code { "coldtrail demo" }
                        " prints one. It is kept in this tab only and sent only to this node."
                    }
                    label {
                        "Token "
                        input type="password" name="token" autocomplete="off" required;
                    }
                    button type="submit" { "Open the console" }
                }
                noscript {
                    p {
                        "The console needs JavaScript. Without it, POST queries to "
                        code { (endpoint) }
                        " as JSON ({\"query\": \"…\"}) with the header "
                        code { "Authorization: Bearer <token>" }
                        "."
                    }
                }
                div #graphiql data-endpoint=(endpoint) {}
                script src=(format!("{vendor}/react.production.min.js")) {}
                script src=(format!("{vendor}/react-dom.production.min.js")) {}
                script src=(format!("{vendor}/graphiql.min.js")) {}
                script src=(format!("{PREFIX}/console.js")) {}
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything the page loads is served by this node.
    #[test]
    fn the_page_loads_only_served_assets() {
        let page = page("/graphql");
        let loads: Vec<&str> = page
            .split(['"', '\''])
            .filter(|s| s.starts_with(PREFIX) || s.contains("://"))
            .collect();
        assert_eq!(loads.len(), 6, "{page}");
        for url in loads {
            let name = url.strip_prefix(&format!("{PREFIX}/")).unwrap_or(url);
            assert!(crate::assets::file(name).is_some(), "{url} is not served");
        }
    }
}
