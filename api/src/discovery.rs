//! The EPCIS REST binding's discovery: `OPTIONS` on an EPCIS resource
//! answers 204 with the methods it allows and the versions, formats and
//! extensions this node speaks (the binding's `204DefaultDiscoveryResponse`),
//! for capture (`ingest`) and queries (`web`) alike.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;

/// The EPCIS and CBV version every EPCIS answer of this node is in.
pub const EPCIS_VERSION: &str = "2.0.0";

/// The namespace coldtrail's own EPCIS fields (`coldtrail:entry`,
/// `coldtrail:standing`) are in.
pub const NAMESPACE: &str = "https://coldtrail.dev/ns/epcis#";

/// The discovery answer for a resource that allows `allow` (as the `Allow`
/// header writes it, `OPTIONS` included).
pub fn discovery(allow: &'static str) -> HttpResponse {
    HttpResponse::build(StatusCode::NO_CONTENT)
        .insert_header((header::ALLOW, allow))
        .insert_header(("GS1-EPCIS-Version", EPCIS_VERSION))
        .insert_header(("GS1-EPCIS-Min", EPCIS_VERSION))
        .insert_header(("GS1-EPCIS-Max", EPCIS_VERSION))
        .insert_header(("GS1-CBV-Version", EPCIS_VERSION))
        .insert_header(("GS1-CBV-Min", EPCIS_VERSION))
        .insert_header(("GS1-CBV-Max", EPCIS_VERSION))
        // Events are answered as captured unless a client asks otherwise.
        .insert_header(("GS1-EPC-Format", "Never_Translates"))
        .insert_header(("GS1-CBV-XML-Format", "Never_Translates"))
        .insert_header(("GS1-Extensions", format!("coldtrail={NAMESPACE}")))
        .insert_header((
            "GS1-Vendor-Version",
            concat!("coldtrail-", env!("CARGO_PKG_VERSION")),
        ))
        .finish()
}
