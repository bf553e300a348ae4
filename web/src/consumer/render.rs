//! The consumer page as HTML: server-rendered, mobile first, readable
//! without JavaScript; the temperature chart is inline SVG. Every fact
//! links to the proof of the ledger entry it rests on and carries
//! `data-entry="shard/index/id"` for a verifier to check.

use analytics::lineage::At;
use analytics::readings::Series;
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use readstate::access::Grant;

use super::facts::{extremes, Breach, LotFacts, StepKind, Trouble};

/// The page's language, from `Accept-Language`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    /// The first language the reader prefers that the page speaks
    /// (q-values honoured); English otherwise.
    pub fn from_accept(header: Option<&str>) -> Lang {
        let mut prefs: Vec<(f32, &str)> = header
            .unwrap_or("")
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let tag = it.next()?.trim();
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (!tag.is_empty()).then_some((q, tag))
            })
            .collect();
        prefs.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (q, tag) in prefs {
            if q <= 0.0 {
                continue;
            }
            let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
            match primary.as_str() {
                "de" => return Lang::De,
                "en" => return Lang::En,
                _ => {}
            }
        }
        Lang::En
    }

    /// Every language the pages speak.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::De];

    /// The language a `lang` parameter names (`en`, `de`, any case).
    pub fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(code))
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    fn t(self, en: &'static str, de: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::De => de,
        }
    }

    fn step(self, s: StepKind) -> &'static str {
        match s {
            StepKind::Harvested => self.t("Harvested", "Geerntet"),
            StepKind::Packed => self.t("Packed", "Verpackt"),
            StepKind::Shipped => self.t("Shipped", "Versandt"),
            StepKind::Received => self.t("Received", "Angenommen"),
            StepKind::Stored => self.t("Stored", "Eingelagert"),
            StepKind::Transformed => self.t("Processed", "Verarbeitet"),
            StepKind::Sold => self.t("Sold", "Verkauft"),
            StepKind::Other => self.t("Handled", "Bearbeitet"),
        }
    }

    fn during(self, s: StepKind) -> &'static str {
        match s {
            StepKind::Shipped => self.t("in transport", "beim Transport"),
            StepKind::Received | StepKind::Stored => self.t("in storage", "im Lager"),
            StepKind::Sold => self.t("in the shop", "im Geschäft"),
            _ => self.t("after packing", "nach dem Verpacken"),
        }
    }

    fn date(self, ms: i64) -> String {
        let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        match self {
            Lang::En => t.format("%-d %b %Y, %H:%M UTC").to_string(),
            Lang::De => t.format("%-d.%-m.%Y, %H:%M UTC").to_string(),
        }
    }

    /// A temperature as the page's language writes it: "-18.5 °C",
    /// "-18,5 °C"; whole degrees without decimals.
    fn temp(self, c: f64) -> String {
        let s = format!("{c:.1}");
        let s = s.strip_suffix(".0").unwrap_or(&s).to_string();
        match self {
            Lang::En => format!("{s} °C"),
            Lang::De => format!("{} °C", s.replace('.', ",")),
        }
    }

    /// A chart's end label: the day, or for a span of under two days the
    /// day and time (a journey of hours would read "1 Nov" at both ends).
    fn chart_end(self, ms: i64, span_ms: i64) -> String {
        if span_ms >= 2 * 86_400_000 {
            return self.day(ms);
        }
        let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        match self {
            Lang::En => t.format("%-d %b %H:%M").to_string(),
            Lang::De => t.format("%-d.%-m. %H:%M").to_string(),
        }
    }

    fn day(self, ms: i64) -> String {
        let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        match self {
            Lang::En => t.format("%-d %b").to_string(),
            Lang::De => t.format("%-d.%-m.").to_string(),
        }
    }
}

/// `h h m min` / `m min`.
fn duration(ms: i64) -> String {
    let min = (ms.max(0) + 30_000) / 60_000;
    match (min / 60, min % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

fn entry_attr(a: &At) -> String {
    format!("{}/{}/{}", a.shard, a.index, ledger::Digest(a.id).to_hex())
}

/// A breach in plain words: "above 8 °C for 10 h 12 min on 3 Nov in
/// transport"; `lead` says what kind of bad news it is.
fn breach_words(b: &Breach, lang: Lang) -> (&'static str, String) {
    let len = match b.to_ms {
        Some(t) => duration(t - b.from_ms),
        None => lang.t("still going on", "dauert an").to_string(),
    };
    let de = lang == Lang::De;
    let (lead, what) = match b.trouble {
        Trouble::Above(l) | Trouble::WarmOnAverage(l) if de => (
            "Nicht kalt genug gehalten",
            format!("über {} für {len}", lang.temp(l)),
        ),
        Trouble::Above(l) => (
            "Not kept cold enough",
            format!("above {} for {len}", lang.temp(l)),
        ),
        Trouble::Below(l) if de => (
            "Zu kalt gehalten",
            format!("unter {} für {len}", lang.temp(l)),
        ),
        Trouble::Below(l) => ("Kept too cold", format!("below {} for {len}", lang.temp(l))),
        Trouble::WarmOnAverage(l) => (
            "Not kept cold enough",
            format!("too warm on average (above {}) over {len}", lang.temp(l)),
        ),
        Trouble::Jump if de => (
            "Kühlkette unterbrochen",
            "Temperatur sprang plötzlich".to_string(),
        ),
        Trouble::Jump => (
            "Cold chain interrupted",
            "the temperature jumped suddenly".to_string(),
        ),
        Trouble::Silence if de => (
            "Kühlkette nicht belegt",
            format!("{len} lang keine Temperatur aufgezeichnet"),
        ),
        Trouble::Silence => (
            "Cold chain not recorded",
            format!("no temperature recorded for {len}"),
        ),
        Trouble::Shock if de => ("Beschädigung möglich", "ein harter Stoß".to_string()),
        Trouble::Shock => ("Possibly damaged", "a hard knock".to_string()),
        Trouble::Swings if de => (
            "Kühlung unzuverlässig",
            format!("Kühlung schaltete {len} lang immer wieder an und aus"),
        ),
        Trouble::Swings => (
            "Cooling unreliable",
            format!("the cooling kept switching on and off for {len}"),
        ),
        Trouble::Other if de => (
            "Bedingungen nicht eingehalten",
            format!("außerhalb der Vorgaben für {len}"),
        ),
        Trouble::Other => (
            "Conditions not kept",
            format!("outside its required conditions for {len}"),
        ),
    };
    let mut s = format!("{what} {} {}", lang.t("on", "am"), lang.day(b.from_ms));
    if let Some(d) = b.during {
        s.push(' ');
        s.push_str(lang.during(d));
    }
    (lead, s)
}

/// The verdict in one sentence, and whether it is good news.
fn verdict(f: &LotFacts, lang: Lang) -> (bool, String) {
    if let Some(b) = f.breaches.first() {
        let (lead, words) = breach_words(b, lang);
        let mut s = format!("{lead}: {words}");
        if f.breaches.len() > 1 {
            s.push_str(&match lang {
                Lang::En => format!(", and {} more", f.breaches.len() - 1),
                Lang::De => format!(", und {} weitere", f.breaches.len() - 1),
            });
        }
        s.push('.');
        return (false, s);
    }
    let s = match (f.range_c, lang) {
        ((Some(lo), Some(hi)), Lang::En) => format!(
            "Kept between {} and {} for the whole journey.",
            lang.temp(lo),
            lang.temp(hi)
        ),
        ((Some(lo), Some(hi)), Lang::De) => format!(
            "Auf dem ganzen Weg zwischen {} und {} gehalten.",
            lang.temp(lo),
            lang.temp(hi)
        ),
        ((None, Some(hi)), Lang::En) => {
            format!("Kept at or below {} for the whole journey.", lang.temp(hi))
        }
        ((None, Some(hi)), Lang::De) => {
            format!("Auf dem ganzen Weg höchstens {} warm.", lang.temp(hi))
        }
        (_, Lang::En) => "Kept within its limits for the whole journey.".into(),
        (_, Lang::De) => "Auf dem ganzen Weg innerhalb der Grenzwerte gehalten.".into(),
    };
    (true, s)
}

const CSS: &str = "\
:root{--ok:#0b6b2e;--bad:#a40e0e;--wait:#7a4d00;--ink:#1b1b1b;--mute:#555;--line:#d6d6d6}\
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,sans-serif;color:var(--ink);background:#fff;overflow-wrap:anywhere}\
main{max-width:40rem;margin:0 auto;padding:1rem}h1{font-size:1.5rem;margin:.5rem 0}\
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}.sub{color:var(--mute);margin:0}\
.recall{background:var(--bad);color:#fff;padding:1rem;border-radius:.5rem;margin:.5rem 0}\
.recall h2{margin:0 0 .25rem;font-size:1.3rem}.recall p{margin:.25rem 0}\
.recall a,.recall .proof[data-state]{color:#fff}\
.verdict{border-left:.4rem solid var(--ok);padding:.5rem .75rem;background:#eef7f0;font-weight:600}\
.verdict.bad{border-color:var(--bad);background:#fbeeee}\
ol.journey{list-style:none;padding:0;margin:0;border-left:2px solid var(--line)}\
ol.journey li{padding:0 0 .75rem 1rem;position:relative}\
ol.journey li::before{content:'';position:absolute;left:-.4rem;top:.45rem;width:.7rem;height:.7rem;border-radius:50%;background:var(--ink)}\
time,.place{color:var(--mute)}figure{margin:0}svg{width:100%;height:auto}\
figcaption{color:var(--mute);font-size:.9rem}.proof{font-size:.8rem;color:var(--mute)}\
.proof[data-state=verified]{color:var(--ok)}.proof[data-state=failed]{color:var(--bad);font-weight:600}\
.proof[data-state=unwitnessed]{color:var(--wait)}\
footer{margin-top:2rem;font-size:.85rem;color:var(--mute)}a{color:#0645ad}";

/// The link to a fact's inclusion proof (entry bytes, audit path, signed
/// head: what anyone can check against the node's published key).
///
/// `kind` is the entry kind (VERIFYING.md §5) the fact rests on; the
/// verifier checks the entry is one.
///
/// `data-grant` is the page's leave to read the entry's content (the page
/// discloses the entries behind the facts it shows, and only those).
fn proof(a: &At, kind: &str, lang: Lang, grant: &Grant) -> Markup {
    html! {
        a.proof href=(format!("/v1/shards/{}/entries/{}/proof", a.shard, a.index)) data-entry=(entry_attr(a)) data-kind=(kind) data-grant=(grant.for_entry(a.shard, a.index)) {
            (lang.t("ledger proof", "Registernachweis"))
        }
    }
}

/// The temperature chart: per logger the band between bucket minimum and
/// maximum and the mean line; the allowed range shaded; breaches marked.
fn chart(f: &LotFacts, series: &[Series], lang: Lang) -> Markup {
    let Some((lo_c, hi_c)) = extremes(series) else {
        return html! { p { (lang.t("No temperature readings were recorded for this lot.", "Für diese Charge wurden keine Temperaturen aufgezeichnet.")) } };
    };
    let (w, h, pad) = (600.0, 200.0, 28.0);
    let t0 = series
        .iter()
        .map(|s| s.buckets.first().map_or(i64::MAX, |b| b.from_ms))
        .min()
        .unwrap_or(f.first_ms);
    let t1 = series
        .iter()
        .map(|s| s.buckets.last().map_or(i64::MIN, |b| b.to_ms))
        .max()
        .unwrap_or(f.last_ms)
        .max(t0 + 1);
    let (rlo, rhi) = f.range_c;
    let ymin = [Some(lo_c), rlo]
        .into_iter()
        .flatten()
        .fold(f64::INFINITY, f64::min)
        - 1.0;
    let ymax = [Some(hi_c), rhi]
        .into_iter()
        .flatten()
        .fold(f64::NEG_INFINITY, f64::max)
        + 1.0;
    let x = |t: i64| pad + (t - t0) as f64 / (t1 - t0) as f64 * (w - 2.0 * pad);
    let y = |c: f64| h - pad - (c - ymin) / (ymax - ymin) * (h - 2.0 * pad);
    let mut svg = String::new();
    if rlo.is_some() || rhi.is_some() {
        let (a, b) = (y(rhi.unwrap_or(ymax)), y(rlo.unwrap_or(ymin)));
        svg.push_str(&format!(
            r##"<rect x="{pad}" y="{a:.1}" width="{:.1}" height="{:.1}" fill="#dff0e3"/>"##,
            w - 2.0 * pad,
            (b - a).max(0.0)
        ));
    }
    for b in &f.breaches {
        let (a, e) = (x(b.from_ms.max(t0)), x(b.to_ms.unwrap_or(t1).min(t1)));
        svg.push_str(&format!(
            r##"<rect x="{a:.1}" y="{pad}" width="{:.1}" height="{:.1}" fill="#f6c9c9"/>"##,
            (e - a).max(1.5),
            h - 2.0 * pad
        ));
    }
    for s in series {
        let mut band_top = String::new();
        let mut band_bottom = Vec::new();
        let mut line = String::new();
        for bk in &s.buckets {
            let xm = x((bk.from_ms + bk.to_ms) / 2);
            band_top.push_str(&format!("{xm:.1},{:.1} ", y(bk.max_c)));
            band_bottom.push(format!("{xm:.1},{:.1}", y(bk.min_c)));
            line.push_str(&format!("{xm:.1},{:.1} ", y(bk.mean_c)));
        }
        band_bottom.reverse();
        svg.push_str(&format!(
            r##"<polygon points="{band_top}{}" fill="#9ab8d9" fill-opacity=".5"/><polyline points="{line}" fill="none" stroke="#1d4f91" stroke-width="1.5"/>"##,
            band_bottom.join(" ")
        ));
    }
    // Axes: the limits and the first and last day.
    for c in [rlo, rhi].into_iter().flatten() {
        svg.push_str(&format!(
            r##"<line x1="{pad}" x2="{:.1}" y1="{yc:.1}" y2="{yc:.1}" stroke="#0b6b2e" stroke-dasharray="4 3"/><text x="2" y="{:.1}" font-size="11">{}</text>"##,
            w - pad,
            y(c) + 4.0,
            lang.temp(c),
            yc = y(c)
        ));
    }
    svg.push_str(&format!(
        r##"<text x="{pad}" y="{:.1}" font-size="11">{}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
        h - 8.0,
        lang.chart_end(t0, t1 - t0),
        w - pad,
        h - 8.0,
        lang.chart_end(t1, t1 - t0)
    ));
    let readings: u64 = series
        .iter()
        .flat_map(|s| &s.buckets)
        .map(|b| b.count)
        .sum();
    let caption = match lang {
        Lang::En => format!(
            "{readings} readings from {} logger(s): lowest {}, highest {}.",
            series.len(),
            lang.temp(lo_c),
            lang.temp(hi_c)
        ),
        Lang::De => format!(
            "{readings} Messwerte von {} Logger(n): niedrigste {}, höchste {}.",
            series.len(),
            lang.temp(lo_c),
            lang.temp(hi_c)
        ),
    };
    let title = lang.t("Temperature during the journey", "Temperatur auf dem Weg");
    html! {
        figure {
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-labelledby="chart-title chart-desc" {
                title id="chart-title" { (title) }
                desc id="chart-desc" { (caption) }
                (PreEscaped(svg))
            }
            figcaption { (caption) }
        }
    }
}

/// Every page's `<head>`: mobile viewport, title, inline style, and (on
/// pages with facts) the verifier, a module script: deferred, so it runs
/// after the page is parsed and shown. A page at `urls` names itself
/// canonical and its versions in each language as `hreflang` alternates.
fn head(title: &str, urls: Option<&Urls>, verifier: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · coldtrail" }
            // No icon to fetch (a 404 for /favicon.ico is a console error).
            link rel="icon" href="data:,";
            @if let Some(u) = urls {
                link rel="canonical" href=(u.page);
                @for l in Lang::ALL {
                    link rel="alternate" hreflang=(l.code()) href=(format!("{}?lang={}", u.page, l.code()));
                }
                link rel="alternate" hreflang="x-default" href=(u.page);
                link rel="linkset" type="application/linkset+json" href=(u.linkset);
            }
            style { (PreEscaped(CSS)) }
            @if verifier { script type="module" src=(format!("{}/verify.js", crate::assets::PREFIX)) {} }
        }
    }
}

/// An open recall's banner, whatever else the page shows: a recall is a
/// public safety notice.
fn recall_banners(f: &LotFacts, lang: Lang, grant: &Grant) -> Markup {
    html! {
        @if !f.recalls.is_empty() {
            // The target of the resolver's `gs1:recallStatus` link.
            div #recall {
                @for r in &f.recalls {
                    section.recall role="alert" aria-labelledby="recall-h" {
                        h2 id="recall-h" { (lang.t("Recalled: do not eat or use this product", "Rückruf: Dieses Produkt nicht verzehren oder verwenden")) }
                        p { (lang.t("Reason", "Grund")) ": " (r.reason) }
                        p { (lang.t("Return it to the shop where you bought it for a refund, or throw it away.", "Bringen Sie es in das Geschäft zurück, in dem Sie es gekauft haben, oder werfen Sie es weg.")) }
                        p { small { (lang.t("Since", "Seit")) " " (lang.date(r.since_ms)) ". " (proof(&r.entry, "recall", lang, grant)) } }
                    }
                }
            }
        }
    }
}

/// Where a page is and where its thing's linkset is.
#[derive(Debug, Clone)]
pub struct Urls {
    /// The page's own URL, without a query.
    pub page: String,
    /// The resolver's linkset of the thing the page is about.
    pub linkset: String,
}

/// The page for a product none of whose lots was named (a bare GTIN) or
/// whose lot nobody recorded here (`lot`): what it is, and where a lot's
/// record is found. It states no ledger fact.
pub fn product_page(
    gtin: &str,
    product: Option<&str>,
    lot: Option<&str>,
    lang: Lang,
    urls: &Urls,
) -> String {
    let name = product.map_or_else(|| format!("GTIN {gtin}"), str::to_string);
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(&name, Some(urls), false))
            body {
                main {
                    header {
                        h1 { (name) }
                        p.sub { "GTIN " (gtin) }
                    }
                    section aria-labelledby="product-h" data-fact="product" {
                        h2 id="product-h" { (lang.t("Supply-chain record", "Lieferkette")) }
                        @if let Some(l) = lot {
                            p data-fact="unknown-lot" {
                                (lang.t("No record of lot", "Keine Angaben zur Charge")) " " strong { (l) } " "
                                (lang.t("is held here. Check the lot code on the pack; this is what we know of the product.", "liegen hier vor. Prüfen Sie die Chargennummer auf der Packung; dies ist, was wir über das Produkt wissen."))
                            }
                        }
                        p { (lang.t("Each lot of this product has its own record of where it comes from and how it was kept cold: scan the code on the pack, which names its lot.", "Jede Charge dieses Produkts hat ihre eigenen Angaben zu Herkunft und Kühlung: Scannen Sie den Code auf der Packung, der ihre Charge nennt.")) }
                    }
                    footer {
                        p { a href=(urls.linkset) { (lang.t("All links for this product", "Alle Verweise zu diesem Produkt")) } }
                    }
                }
            }
        }
    }
    .into_string()
}

/// The product's name (else its GTIN), and the lot as the pack prints it.
fn page_header(product: &str, f: &LotFacts, lang: Lang) -> Markup {
    html! {
        header {
            h1 { (product) }
            @if let Some(l) = &f.lot_number {
                p.sub { (lang.t("Lot", "Charge")) " " strong { (l) } @if let Some(g) = &f.gtin { " · GTIN " (g) } }
            }
        }
    }
}

/// The product's name from the catalogue, else its GTIN; and the page's
/// title.
fn names(f: &LotFacts, product: Option<&str>, lang: Lang) -> (String, String) {
    let product = product.map_or_else(
        || format!("GTIN {}", f.gtin.as_deref().unwrap_or("?")),
        str::to_string,
    );
    let title = match &f.lot_number {
        Some(l) => format!("{product} · {} {l}", lang.t("lot", "Charge")),
        None => product.clone(),
    };
    (product, title)
}

/// The page for a lot of a product whose brand owner has not disclosed its
/// record (`Catalogue::discloses`): the product and lot as the pack prints
/// them, open recalls, and no ledger fact (no origin, journey, verdict or
/// readings, and so no proof of any).
pub fn withheld_page(
    f: &LotFacts,
    product: Option<&str>,
    lang: Lang,
    urls: &Urls,
    grant: &Grant,
) -> String {
    let (product, title) = names(f, product, lang);
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(&title, Some(urls), !f.recalls.is_empty()))
            body {
                main {
                    (recall_banners(f, lang, grant))
                    (page_header(&product, f, lang))
                    section aria-labelledby="withheld-h" data-fact="withheld" {
                        h2 id="withheld-h" { (lang.t("Supply-chain record", "Lieferkette")) }
                        p { (lang.t("The brand owner has not published this product's supply-chain record here. Ask them, or the shop, where it comes from and how it was kept cold.", "Der Markeninhaber hat die Lieferkette dieses Produkts hier nicht veröffentlicht. Fragen Sie ihn oder das Geschäft, woher es kommt und wie es gekühlt wurde.")) }
                    }
                    footer {
                        p #proof-summary.proof aria-live="polite" hidden {}
                        p { a href=(urls.linkset) { (lang.t("All links for this product", "Alle Verweise zu diesem Produkt")) } }
                    }
                }
            }
        }
    }
    .into_string()
}

/// The whole page for a lot; `product` is its name from the catalogue.
pub fn lot_page(
    f: &LotFacts,
    product: Option<&str>,
    series: &[Series],
    lang: Lang,
    urls: &Urls,
    grant: &Grant,
) -> String {
    let (good, verdict_text) = verdict(f, lang);
    // A breach rests on the rules' verdict entry; a clean journey on the
    // last custody event the readings were judged up to.
    let (verdict_entry, verdict_kind) = match f.breaches.first() {
        Some(b) => (b.entry, "verdict"),
        None => (
            f.journey.last().map_or(f.origin_entry, |s| s.entry),
            "custody",
        ),
    };
    let (product, title) = names(f, product, lang);
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(&title, Some(urls), true))
            body {
                main {
                    (recall_banners(f, lang, grant))
                    (page_header(&product, f, lang))
                    section aria-labelledby="origin-h" {
                        h2 id="origin-h" { (lang.t("Where it comes from", "Herkunft")) }
                        p data-fact="origin" {
                            strong { (f.origin) }
                            @if let Some(p) = &f.origin_place { @if *p != f.origin { ", " span.place { (p) } } }
                            " " (proof(&f.origin_entry, "custody", lang, grant))
                        }
                    }
                    section aria-labelledby="verdict-h" {
                        h2 id="verdict-h" { (lang.t("Cold chain", "Kühlkette")) }
                        p.verdict.bad[!good] data-fact="verdict" { (verdict_text) " " (proof(&verdict_entry, verdict_kind, lang, grant)) }
                        (chart(f, series, lang))
                    }
                    section aria-labelledby="journey-h" {
                        h2 id="journey-h" { (lang.t("Journey", "Weg")) }
                        ol.journey {
                            @for s in &f.journey {
                                li data-fact="step" {
                                    strong { (lang.step(s.what)) }
                                    @if let Some(p) = &s.place { " · " span.place { (p) } }
                                    br;
                                    time datetime=(DateTime::<Utc>::from_timestamp_millis(s.time_ms).unwrap_or_default().to_rfc3339()) { (lang.date(s.time_ms)) }
                                    " " (proof(&s.entry, "custody", lang, grant))
                                }
                            }
                        }
                    }
                    @if !f.observations.is_empty() {
                        section aria-labelledby="observations-h" {
                            h2 id="observations-h" { (lang.t("Checked by others", "Von Dritten geprüft")) }
                            p { (lang.t("Observations by organisations that did not hold this lot (an inspection, say). They are recorded, and change nothing above.", "Beobachtungen von Organisationen, die diese Charge nicht hatten (etwa eine Prüfung). Sie sind verzeichnet und ändern nichts an den Angaben oben.")) }
                            ul {
                                @for s in &f.observations {
                                    li data-fact="observation" {
                                        strong { (s.by) }
                                        @if let Some(p) = &s.place { @if *p != s.by { " · " span.place { (p) } } }
                                        br;
                                        time datetime=(DateTime::<Utc>::from_timestamp_millis(s.time_ms).unwrap_or_default().to_rfc3339()) { (lang.date(s.time_ms)) }
                                        " " (proof(&s.entry, "custody", lang, grant))
                                    }
                                }
                            }
                        }
                    }
                    footer {
                        p { (lang.t("Every fact above is recorded on a tamper-evident ledger; each links to its proof, which anyone can check against the node's published key.", "Jede Angabe oben steht in einem fälschungssicheren Register; jede verweist auf ihren Nachweis, den jeder mit dem veröffentlichten Schlüssel prüfen kann.")) }
                        p #proof-summary.proof aria-live="polite" hidden {}
                        p { a href=(urls.linkset) { (lang.t("All links for this product", "Alle Verweise zu diesem Produkt")) } }
                    }
                }
            }
        }
    }
    .into_string()
}

/// The page for an identifier nobody recorded, or a malformed one.
pub fn not_found_page(lang: Lang, heading: &str, detail: &str) -> String {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(heading, None, false))
            body {
                main {
                    h1 { (heading) }
                    p { (detail) }
                    p { (lang.t("Check the code on the pack, or ask the shop.", "Prüfen Sie den Code auf der Packung oder fragen Sie im Geschäft.")) }
                }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_s_languages_pick_the_page_s() {
        assert_eq!(Lang::from_accept(Some("de-DE,de;q=0.9,en;q=0.8")), Lang::De);
        assert_eq!(
            Lang::from_accept(Some("fr-FR, en;q=0.5, de;q=0.4")),
            Lang::En
        );
        assert_eq!(Lang::from_accept(Some("en;q=0.2, de;q=0.9")), Lang::De);
        assert_eq!(Lang::from_accept(Some("de;q=0")), Lang::En);
        assert_eq!(Lang::from_accept(None), Lang::En);
        assert_eq!(Lang::from_accept(Some(";;,q=,")), Lang::En);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(612 * 60_000), "10 h 12 min");
        assert_eq!(duration(45 * 60_000), "45 min");
        assert_eq!(duration(2 * 3_600_000), "2 h");
        assert_eq!(Lang::En.temp(8.0), "8 °C");
        assert_eq!(Lang::En.temp(-18.5), "-18.5 °C");
        assert_eq!(Lang::De.temp(-18.5), "-18,5 °C");
        assert_eq!(Lang::De.temp(8.0), "8 °C");
    }

    #[test]
    fn a_chart_of_hours_is_labelled_by_time_and_one_of_weeks_by_day() {
        let t0 = 1_793_491_200_000 + 6 * 3_600_000; // 1 Nov 2026 06:00 UTC
        let hours = 8 * 3_600_000;
        assert_eq!(Lang::En.chart_end(t0, hours), "1 Nov 06:00");
        assert_eq!(Lang::En.chart_end(t0 + hours, hours), "1 Nov 14:00");
        assert_eq!(Lang::De.chart_end(t0, hours), "1.11. 06:00");
        assert_eq!(Lang::En.chart_end(t0, 10 * 86_400_000), "1 Nov");
    }
}
