//! The browser verifier's and the GraphQL console's files, compiled into the
//! binary: the product runs without a JavaScript build step or anything
//! installed beside it. `assets/verify.js`, `assets/proof.js` and
//! `assets/console.*` are ours; `assets/vendor/` holds the noble libraries,
//! GraphiQL and React as published on npm, refreshed by
//! `assets/vendor/refresh.sh` at pinned versions (see `vendor/VERSIONS`).

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use api::ApiError;

/// Where the files are served; the page loads `{PREFIX}/verify.js`.
pub const PREFIX: &str = "/assets/coldtrail";

macro_rules! files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../assets/", $name)))),*]
    };
}

/// Every servable file by its path under `PREFIX`. The vendored modules
/// import each other by relative path, so the tree is served as it lies.
const FILES: &[(&str, &str)] = files!(
    "verify.js",
    "proof.js",
    "vendor/noble-hashes/blake3.js",
    "vendor/noble-hashes/blake2.js",
    "vendor/noble-hashes/_blake.js",
    "vendor/noble-hashes/_md.js",
    "vendor/noble-hashes/_u64.js",
    "vendor/noble-hashes/utils.js",
    "vendor/noble-hashes/sha2.js",
    "vendor/noble-hashes/LICENSE",
    "vendor/noble-ed25519/index.js",
    "vendor/noble-ed25519/LICENSE",
    "console.js",
    "console.css",
    "vendor/graphiql/react.production.min.js",
    "vendor/graphiql/react-dom.production.min.js",
    "vendor/graphiql/graphiql.min.js",
    "vendor/graphiql/graphiql.min.css",
    "vendor/graphiql/LICENSE-graphiql",
    "vendor/graphiql/LICENSE-react",
    "vendor/VERSIONS",
);

/// The GraphQL console's files, which a consumer page never loads.
fn console_file(name: &str) -> bool {
    name.starts_with("console.") || name.starts_with("vendor/graphiql/")
}

/// A file's body and media type.
pub fn file(name: &str) -> Option<(&'static str, &'static str)> {
    let body = FILES.iter().find(|(n, _)| *n == name)?.1;
    let media = if name.ends_with(".js") {
        "text/javascript; charset=utf-8"
    } else if name.ends_with(".css") {
        "text/css; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    Some((media, body))
}

/// What a browser fetches to verify a page: every served script, in bytes.
pub fn script_bytes() -> usize {
    FILES
        .iter()
        .filter(|(n, _)| n.ends_with(".js") && !console_file(n))
        .map(|(_, b)| b.len())
        .sum()
}

pub(crate) fn configure(cfg: &mut ServiceConfig) {
    cfg.route(&format!("{PREFIX}/{{name:.*}}"), web::get().to(get_asset));
}

async fn get_asset(req: HttpRequest) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or("");
    let Some((media, body)) = file(name) else {
        return actix_web::ResponseError::error_response(&ApiError::NotFound(format!(
            "no file {PREFIX}/{name}: the verifier is {PREFIX}/verify.js"
        )));
    };
    // A new binary with changed files changes their ETags.
    let etag = crate::cache::etag(body.as_bytes());
    let fresh = crate::cache::not_modified(&req, &etag);
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if fresh {
        res.finish()
    } else {
        res.content_type(media).body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every relative import of a served module is itself served.
    #[test]
    fn every_import_is_served() {
        for (name, body) in FILES.iter().filter(|(n, _)| n.ends_with(".js")) {
            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                // Relative imports only: a bare one (`@noble/ed25519`) sits
                // in a usage example in the library's opening comment.
                let Some(target) = line
                    .split(['"', '\''])
                    .nth(1)
                    .filter(|t| t.starts_with('.'))
                else {
                    continue;
                };
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for seg in target.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let resolved = parts.join("/");
                assert!(
                    file(&resolved).is_some(),
                    "{name} imports {target}: {resolved} is not served"
                );
            }
        }
    }
}
