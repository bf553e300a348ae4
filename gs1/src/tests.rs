use proptest::prelude::*;

use super::*;

fn parse(uri: &str) -> DigitalLink {
    DigitalLink::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
}

fn refused(uri: &str) -> Gs1Error {
    DigitalLink::parse(uri).expect_err(uri)
}

#[test]
fn check_digits_of_gs1_examples() {
    assert!(check_digit_ok("09506000134352"));
    assert!(!check_digit_ok("09506000134353"));
    assert!(check_digit_ok("106141411234567897"));
    assert!(check_digit_ok("9520123456788"));
    assert_eq!(with_check_digit("0950600013435").unwrap(), "09506000134352");
    assert!(!check_digit_ok("7"));
    assert!(!check_digit_ok("12a4"));
    // GenSpecs' example GMN with its check character pair.
    assert_eq!(&check_pair("1987654Ad4X4bL5ttr2310c").unwrap(), b"2K");
    check_value(ai::lookup("8013").unwrap(), "1987654Ad4X4bL5ttr2310c2K").unwrap();
    assert!(check_value(ai::lookup("8013").unwrap(), "1987654Ad4X4bL5ttr2310c2L").is_err());
}

#[test]
fn every_form_of_a_lot_names_one_thing() {
    let canonical = "https://id.gs1.org/01/09506000134352/10/ABC123";
    for uri in [
        canonical,
        "HTTPS://id.gs1.org/01/09506000134352/10/ABC123",
        "http://example.com/01/09506000134352/10/ABC123",
        "https://example.com/some/prefix/01/09506000134352/10/ABC123",
        "https://example.com/01/9506000134352/10/ABC123",
        "https://example.com/gtin/09506000134352/lot/ABC123",
        "https://id.gs1.org/01/09506000134352/10/ABC123/",
        "https://id.gs1.org/01/09506000134352/10/ABC123?3103=000195&17=261231",
        "https://id.gs1.org/01/09506000134352/10/ABC123#frag",
        "https://id.gs1.org/01/09506000134352/10/ABC123?linkType=all#x",
        "https://id.gs1.org/01/09506000134352/10/%41BC123",
    ] {
        let l = parse(uri);
        assert_eq!(l.canonical(), canonical, "{uri}");
        assert_eq!(l.gtin(), Some("09506000134352"));
        assert_eq!(l.get("10"), Some("ABC123"));
        assert_eq!(canonical_id(uri).as_deref(), Some(canonical), "{uri}");
    }
    let l = parse("https://id.gs1.org/01/09506000134352/10/ABC123?3103=000195&linkType=gs1:epcis");
    assert_eq!(l.get("3103"), Some("000195"));
    assert_eq!(l.extensions, vec![("linkType".into(), "gs1:epcis".into())]);
    assert_eq!(l.query(), "3103=000195&linkType=gs1%3Aepcis");
    assert_eq!(l.stem, "https://id.gs1.org");
    assert_eq!(
        parse("https://example.com/p/01/09506000134352").stem,
        "https://example.com/p"
    );
}

#[test]
fn values_are_percent_encoded_in_the_canonical_form() {
    // A space is outside the GS1 character set, encoded or not.
    assert!(matches!(
        refused("https://id.gs1.org/01/09506000134352/10/A%2FB%20C"),
        Gs1Error::Syntax { ai: "10", .. }
    ));
    let l = parse("https://id.gs1.org/01/09506000134352/10/A%2FB!C");
    assert_eq!(l.get("10"), Some("A/B!C"));
    assert_eq!(l.path(), "/01/09506000134352/10/A%2FB%21C");
    assert_eq!(parse(&l.canonical()), l);
}

#[test]
fn other_primary_keys_and_qualifiers() {
    for (uri, key, value) in [
        (
            "https://id.gs1.org/00/106141411234567897",
            "00",
            "106141411234567897",
        ),
        (
            "https://id.gs1.org/414/9520123456788/254/32a%2Fb",
            "414",
            "9520123456788",
        ),
        (
            "https://id.gs1.org/417/9520123456788",
            "417",
            "9520123456788",
        ),
        (
            "https://id.gs1.org/8003/00614141123452400",
            "8003",
            "00614141123452400",
        ),
        (
            "https://id.gs1.org/8004/061414112345400",
            "8004",
            "061414112345400",
        ),
        (
            "https://id.gs1.org/8018/061414112345678902/8019/12",
            "8018",
            "061414112345678902",
        ),
        (
            "https://id.gs1.org/253/0614141123452400",
            "253",
            "0614141123452400",
        ),
        (
            "https://id.gs1.org/8006/095060001343520102/10/L1",
            "8006",
            "095060001343520102",
        ),
        (
            "https://id.gs1.org/8010/ABC-12%2F3/8011/77",
            "8010",
            "ABC-12/3",
        ),
        (
            "https://id.gs1.org/8013/1987654Ad4X4bL5ttr2310c2K",
            "8013",
            "1987654Ad4X4bL5ttr2310c2K",
        ),
        (
            "https://id.gs1.org/01/09506000134352/235/TPX1",
            "01",
            "09506000134352",
        ),
    ] {
        let l = parse(uri);
        assert_eq!((l.key.ai.code, l.key.value.as_str()), (key, value), "{uri}");
        assert_eq!(
            parse(&l.canonical()),
            DigitalLink {
                stem: CANONICAL_STEM.into(),
                ..l
            }
        );
    }
}

#[test]
fn what_the_standard_does_not_allow_is_refused_with_the_reason() {
    type Expect = fn(&Gs1Error) -> bool;
    let cases: &[(&str, Expect)] = &[
        // Check digits of every key that has one.
        ("https://id.gs1.org/01/09506000134353", |e| {
            e.check_digit_of() == Some(("01", "09506000134353"))
        }),
        ("https://id.gs1.org/00/106141411234567898", |e| {
            e.check_digit_of().is_some()
        }),
        ("https://id.gs1.org/414/9520123456789", |e| {
            e.check_digit_of().is_some()
        }),
        ("https://id.gs1.org/8003/00614141123453400", |e| {
            e.check_digit_of().is_some()
        }),
        (
            "https://id.gs1.org/01/09506000134352?02=09506000134353",
            |e| e.check_digit_of().is_some(),
        ),
        ("https://id.gs1.org/8013/1987654Ad4X4bL5ttr2310c2L", |e| {
            e.check_digit_of().is_some()
        }),
        // Lengths and character sets.
        ("https://id.gs1.org/01/09506000134", |e| {
            matches!(e, Gs1Error::Syntax { ai: "01", .. })
        }),
        ("https://id.gs1.org/01/095060001343521", |e| {
            matches!(e, Gs1Error::Syntax { ai: "01", .. })
        }),
        (
            "https://id.gs1.org/01/09506000134352/10/ABCDEFGHIJKLMNOPQRSTU",
            |e| matches!(e, Gs1Error::Syntax { ai: "10", .. }),
        ),
        ("https://id.gs1.org/01/09506000134352/21/A%20B", |e| {
            matches!(e, Gs1Error::Syntax { ai: "21", .. })
        }),
        ("https://id.gs1.org/01/09506000134352/21/%C3%A9", |e| {
            matches!(e, Gs1Error::Syntax { ai: "21", .. })
        }),
        ("https://id.gs1.org/8010/abc", |e| {
            matches!(e, Gs1Error::Syntax { ai: "8010", .. })
        }),
        ("https://id.gs1.org/8003/10614141123452400", |e| {
            matches!(e, Gs1Error::Syntax { ai: "8003", .. })
        }),
        ("https://id.gs1.org/01/09506000134352?17=261340", |e| {
            matches!(e, Gs1Error::Syntax { ai: "17", .. })
        }),
        ("https://id.gs1.org/01/09506000134352?17=250229", |e| {
            matches!(e, Gs1Error::Syntax { ai: "17", .. })
        }),
        ("https://id.gs1.org/01/09506000134352?3103=12", |e| {
            matches!(e, Gs1Error::Syntax { ai: "3nnn", .. })
        }),
        // Empty values, duplicates, unknown AIs.
        ("https://id.gs1.org/01/09506000134352/10/", |e| {
            matches!(e, Gs1Error::Syntax { ai: "10", .. })
        }),
        ("https://id.gs1.org/01/09506000134352?17=", |e| {
            matches!(e, Gs1Error::Syntax { ai: "17", .. })
        }),
        (
            "https://id.gs1.org/01/09506000134352?17=261231&17=261231",
            |e| *e == Gs1Error::Duplicate("17"),
        ),
        ("https://id.gs1.org/01/09506000134352/10/L1?10=L1", |e| {
            e.to_string().contains("belongs in the path")
        }),
        ("https://id.gs1.org/01/09506000134352?10=L1", |e| {
            e.to_string()
                .contains("key qualifier and belongs in the path")
        }),
        (
            "https://id.gs1.org/01/09506000134352?414=9506000000008",
            |e| {
                e.to_string()
                    .contains("primary key and belongs in the path")
            },
        ),
        ("https://id.gs1.org:80x/01/09506000134352", |e| {
            e.to_string().contains("port")
        }),
        ("https://id<gs1>.org/01/09506000134352", |e| {
            e.to_string().contains("host")
        }),
        ("https://[zz::1]/01/09506000134352", |e| {
            e.to_string().contains("IP literal")
        }),
        ("https://id.gs1.org/01/09506000134352?9999=1", |e| {
            *e == Gs1Error::UnknownAi("9999".into())
        }),
        ("https://id.gs1.org/01/09506000134352/99/x", |e| {
            matches!(e, Gs1Error::NotDigitalLink(..))
        }),
        // Qualifiers: order, and only those of the key.
        ("https://id.gs1.org/01/09506000134352/21/S1/10/L1", |e| {
            matches!(e, Gs1Error::Qualifier { .. })
        }),
        ("https://id.gs1.org/01/09506000134352/10/L1/235/T", |e| {
            matches!(e, Gs1Error::Qualifier { .. })
        }),
        ("https://id.gs1.org/00/106141411234567897/10/L1", |e| {
            matches!(e, Gs1Error::Qualifier { key: "00", .. })
        }),
        (
            "https://id.gs1.org/414/9520123456788/254/a/7040/1ABC",
            |e| matches!(e, Gs1Error::Qualifier { .. }),
        ),
        // Not a Digital Link at all.
        ("https://id.gs1.org/", |e| {
            matches!(e, Gs1Error::NotDigitalLink(..))
        }),
        ("https://id.gs1.org/10/L1", |e| {
            matches!(e, Gs1Error::NotDigitalLink(..))
        }),
        ("ftp://id.gs1.org/01/09506000134352", |e| {
            matches!(e, Gs1Error::NotDigitalLink(..))
        }),
        ("id.gs1.org/01/09506000134352", |e| {
            matches!(e, Gs1Error::NotDigitalLink(..))
        }),
        ("https:///01/09506000134352", |e| {
            matches!(e, Gs1Error::NotDigitalLink(..))
        }),
        ("https://id.gs1.org/01/09506000134352/10/L%2", |e| {
            matches!(e, Gs1Error::NotDigitalLink(..))
        }),
        (
            "https://id.gs1.org/01/09506000134352?17=261231&11=%ZZ",
            |e| matches!(e, Gs1Error::NotDigitalLink(..)),
        ),
    ];
    for (uri, expected) in cases {
        let e = refused(uri);
        assert!(expected(&e), "{uri}: {e:?}");
        // Every refusal says something a partner can act on.
        assert!(e.to_string().len() > 20, "{uri}: {e}");
    }
}

#[test]
fn epc_urns_of_gs1_keys_become_digital_links() {
    // Examples from the EPC Tag Data Standard.
    for (urn, canonical) in [
        (
            "urn:epc:id:sgtin:0614141.812345.6789",
            "https://id.gs1.org/01/80614141123458/21/6789",
        ),
        (
            "urn:epc:class:lgtin:0614141.012345.998877",
            "https://id.gs1.org/01/00614141123452/10/998877",
        ),
        (
            "urn:epc:id:sscc:0614141.1234567890",
            "https://id.gs1.org/00/106141412345678908",
        ),
        (
            "urn:epc:id:sgln:0614141.12345.400",
            "https://id.gs1.org/414/0614141123452/254/400",
        ),
        (
            "urn:epc:id:sgln:0614141.12345.0",
            "https://id.gs1.org/414/0614141123452",
        ),
        (
            "urn:epc:id:grai:0614141.12345.400",
            "https://id.gs1.org/8003/00614141123452400",
        ),
        (
            "urn:epc:id:giai:0614141.12345400",
            "https://id.gs1.org/8004/061414112345400",
        ),
        (
            "urn:epc:id:gsrn:0614141.1234567890",
            "https://id.gs1.org/8018/061414112345678902",
        ),
        (
            "urn:epc:id:gdti:0614141.12345.400",
            "https://id.gs1.org/253/0614141123452400",
        ),
        (
            "urn:epc:id:pgln:0614141.12345",
            "https://id.gs1.org/417/0614141123452",
        ),
        (
            "urn:epc:id:sgtin:0614141.812345.A%2FB",
            "https://id.gs1.org/01/80614141123458/21/A%2FB",
        ),
    ] {
        let l = from_epc_urn(urn)
            .unwrap()
            .unwrap_or_else(|| panic!("{urn}"));
        assert_eq!(l.canonical(), canonical, "{urn}");
        assert_eq!(canonical_id(urn).as_deref(), Some(canonical));
    }
    // The URN and the Digital Link of one lot are one thing.
    assert_eq!(
        canonical_id("urn:epc:class:lgtin:0614141.012345.L1"),
        canonical_id("https://example.com/01/0614141123452/10/L1")
    );
    // Well-shaped schemes without a Digital Link form, and patterns.
    for urn in [
        "urn:epc:id:gid:95100000.12345.400",
        "urn:epc:idpat:sgtin:0614141.112345.*",
    ] {
        assert_eq!(from_epc_urn(urn).unwrap(), None, "{urn}");
        check_identifier(urn).unwrap();
    }
    for urn in [
        "urn:epc:id:sgtin:0614141.81234.6789",
        "urn:epc:id:sgtin:0614141.812345",
        "urn:epc:id:sgtin:06141X1.812345.1",
        "urn:epc:id:sscc:0614141.123456789",
        "urn:epc:id:sgtin:0614141.812345.ABCDEFGHIJKLMNOPQRSTU",
        "urn:epc:id:sgtin:0614141.812345.A B",
        "urn:epc:id:",
        "urn:epc:id:sgtin",
    ] {
        assert!(check_identifier(urn).is_err(), "{urn}");
    }
}

/// Inputs the fuzzer (`fuzz/fuzz_targets/digital_link.rs`) found panicking:
/// a GMN-style check pair on a value too short to hold one.
#[test]
fn short_values_of_check_pair_keys_are_refused_not_panicked_on() {
    for uri in [
        "https://id.g414/8013/0?85$08055b8087",
        "https://id.gs1.org/8013/0",
        "https://id.gs1.org/8013/01",
        "https://id.gs1.org/8013/0A",
    ] {
        let e = DigitalLink::parse(uri).unwrap_err();
        assert!(e.to_string().contains("check"), "{uri}: {e}");
    }
}

proptest! {
    #[test]
    fn any_lot_round_trips_through_its_canonical_uri(
        lot in "[!\"%&'()*+,\\-./0-9:;<=>?A-Z_a-z]{1,20}",
        serial in proptest::option::of("[0-9A-Za-z]{1,20}"),
    ) {
        let mut uri = format!("https://id.gs1.org/01/09506000134352/10/{}", encode(&lot));
        if let Some(s) = &serial {
            uri.push_str(&format!("/21/{s}"));
        }
        let l = DigitalLink::parse(&uri).unwrap();
        prop_assert_eq!(l.get("10"), Some(lot.as_str()));
        prop_assert_eq!(l.canonical(), uri.clone());
        prop_assert_eq!(DigitalLink::parse(&l.canonical()).unwrap(), l);
    }

    #[test]
    fn no_input_panics(s in "\\PC{0,80}", path in "(/[0-9a-z%]{0,6}){0,6}(\\?[0-9a-z=&%]{0,20})?") {
        let _ = DigitalLink::parse(&s);
        let _ = canonical_id(&s);
        let _ = check_identifier(&s);
        let _ = DigitalLink::parse(&format!("https://x.org{path}"));
        let _ = from_epc_urn(&format!("urn:epc:id:sgtin:{s}"));
    }

    /// Whatever a compressed path holds, decoding it never panics, and
    /// what it decodes to parses or is refused by the URI syntax.
    #[test]
    fn no_compressed_path_panics(
        packed in "[A-Za-z0-9_-]{1,120}",
        key in "(01/09506000134352/)?",
        query in proptest::option::of("[a-z0-9=&]{0,20}"),
    ) {
        let path = format!("/{key}{packed}");
        if let Some(Ok((p, q))) = crate::compression::uncompressed(&path, &path) {
            let q = [q.as_str(), query.as_deref().unwrap_or("")]
                .into_iter()
                .filter(|q| !q.is_empty())
                .collect::<Vec<_>>()
                .join("&");
            let _ = DigitalLink::from_parts("https://x.org", &p, Some(&q));
        }
    }
}

#[test]
fn every_spelling_of_a_gln_location_or_party_names_one_gln() {
    let gln = Some("https://id.gs1.org/414/0614141000012".to_string());
    for id in [
        "urn:epc:id:sgln:0614141.00001.0",
        "urn:epc:id:sgln:0614141.00001.7",
        "urn:epc:id:pgln:0614141.00001",
        "https://example.com/414/0614141000012/254/dock-3",
        "https://id.gs1.org/417/0614141000012",
    ] {
        assert_eq!(gln_of(id), gln, "{id}");
    }
    assert_ne!(gln_of("urn:epc:id:sgln:0614141.00002.0"), gln);
    assert_eq!(gln_of("urn:epc:class:lgtin:0614141.012345.L1"), None);
    assert_eq!(gln_of("urn:example:somewhere"), None);
}

/// Captured data holds identifiers exactly as the GS1 Digital Link URI
/// Syntax writes them; what people type (and the resolver takes, to
/// redirect) is refused there, each with what to write instead.
#[test]
fn the_exact_syntax_refuses_the_spellings_only_a_resolver_takes() {
    let exact = "https://id.gs1.org/01/09506000134352/10/ABC?17=261231";
    assert_eq!(DigitalLink::parse_strict(exact).unwrap(), parse(exact));
    for ok in [
        "http://example.com/01/09506000134352",
        "https://example.com/some/prefix/01/09506000134352/22/V1/10/ABC/21/S1",
        "https://[2001:db8::1]:8443/00/106141412345678908",
        "https://user@192.0.2.1:8080/414/9506000000008/254/A1?foo=bar#top",
        "https://id.gs1.org/01/09506000134352?3103=000500",
    ] {
        DigitalLink::parse_strict(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        crate::check_identifier(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (lenient, says) in [
        ("HTTPS://id.gs1.org/01/09506000134352", "lower case"),
        ("https://id.gs1.org/gtin/09506000134352", "/01/"),
        ("https://id.gs1.org/01/09506000134352/lot/ABC", "/10/"),
        ("https://id.gs1.org/01/09506000134352?exp=261231", "17="),
        ("https://id.gs1.org/01/9506000134352", "all 14"),
        ("https://id.gs1.org/01/95060002", "all 14"),
    ] {
        // The resolver takes it...
        let link = parse(lenient);
        // ... and names the canonical form, which is exact.
        DigitalLink::parse_strict(&link.canonical()).unwrap();
        let e = DigitalLink::parse_strict(lenient).unwrap_err();
        assert!(e.to_string().contains(says), "{lenient}: {e}");
        assert!(crate::check_identifier(lenient).is_err(), "{lenient}");
    }
}

#[test]
fn company_digits_start_where_the_company_prefix_does_in_every_spelling() {
    for (id, digits) in [
        ("urn:epc:id:sgtin:0614141.107346.2018", "0614141073464"),
        (
            "https://id.gs1.org/01/10614141073464/21/2018",
            "0614141073464",
        ),
        ("urn:epc:class:lgtin:4012345.012345.998877", "4012345123456"),
        ("urn:epc:id:sscc:0614141.1234567890", "06141412345678908"),
        ("urn:epc:id:sgln:0614141.00001.0", "0614141000012"),
        ("urn:epc:id:grai:0614141.12345.400", "0614141123452400"),
        ("urn:epc:id:giai:0614141.12345ABC", "061414112345"),
        (
            "https://example.com/414/0614141000012/254/dock-3",
            "0614141000012",
        ),
    ] {
        assert_eq!(company_digits(id).as_deref(), Some(digits), "{id}");
    }
    assert_eq!(company_digits("urn:epc:id:gid:95100000.12345.400"), None);
    assert_eq!(company_digits("https://example.com/page"), None);
}
