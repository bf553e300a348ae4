//! The browser verifier's and the GraphQL console's files, compiled into the
//! binary: the product runs without a JavaScript build step or anything
//! installed beside it. `assets/verify.js`, `assets/proof.js` and
//! `assets/console.*` are ours; `assets/vendor/` holds the noble libraries,
//! GraphiQL and React as published on npm, refreshed by
//! `assets/vendor/refresh.sh` at pinned versions (see `vendor/VERSIONS`).

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use ingest::ApiError;

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

/// Compressed for browsers that accept it (gzip): GraphiQL's bundle is
/// 3.5 MB as published, about a quarter of that compressed.
pub(crate) fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::resource(format!("{PREFIX}/{{name:.*}}"))
            .wrap(actix_web::middleware::Compress::default())
            .route(web::get().to(get_asset)),
    );
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
    use actix_web::test as web_test;
    use actix_web::App;
    use std::io::Read;

    /// A browser that accepts gzip gets the file gzipped; a client that
    /// does not gets it as it is; both with the same ETag, and a 304 for it.
    #[actix_web::test]
    async fn files_are_gzipped_for_clients_that_accept_it() {
        let app = web_test::init_service(App::new().configure(configure)).await;
        let name = "vendor/graphiql/graphiql.min.js";
        let uri = format!("{PREFIX}/{name}");
        let (_, body) = file(name).unwrap();

        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get()
                .uri(&uri)
                .insert_header((header::ACCEPT_ENCODING, "gzip, deflate, br"))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers().get(header::CONTENT_ENCODING).unwrap(), "gzip");
        // Caches keep the two representations apart by this.
        assert!(res
            .headers()
            .get(header::VARY)
            .unwrap()
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("accept-encoding"));
        let etag = res.headers().get(header::ETAG).unwrap().clone();
        let gz = web_test::read_body(res).await;
        assert!(gz.len() < body.len() / 3, "{} of {}", gz.len(), body.len());
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut plain)
            .unwrap();
        assert!(plain == body, "the gzipped body is the file");

        let res =
            web_test::call_service(&app, web_test::TestRequest::get().uri(&uri).to_request()).await;
        assert!(res.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(res.headers().get(header::ETAG).unwrap(), etag);
        assert!(web_test::read_body(res).await == body.as_bytes());

        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get()
                .uri(&uri)
                .insert_header((header::ACCEPT_ENCODING, "gzip"))
                .insert_header((header::IF_NONE_MATCH, etag))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), 304);
    }

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
