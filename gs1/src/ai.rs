//! The Application Identifiers a GS1 Digital Link URI may carry, with the
//! syntax of their values in the GS1 Syntax Dictionary's notation.
//!
//! A format is one or more components separated by spaces: `N14` (exactly
//! 14 digits), `N..12` (1 to 12 digits), `X..20` (1 to 20 characters of the
//! GS1 82-character set), `Y..30` (the 39-character set of CPIDs), `X3`
//! (exactly three), `[N..4]` (optional, only last). Flags after a comma check a component: `csum` (its last
//! digit is the GS1 mod-10 check digit), `csumalpha` (its last two
//! characters are the GS1 check character pair), `yymmdd` (a date),
//! `yymmd0` (a date whose day may be 00), `zero` (the digit is 0), `bool`
//! (0 or 1).

/// What an AI is in a Digital Link URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Identifies a thing on its own: the first path element.
    PrimaryKey,
    /// Narrows a primary key (lot, serial…): a later path element.
    Qualifier,
    /// Describes the thing: a query string parameter.
    Attribute,
}

/// One Application Identifier.
#[derive(Debug, PartialEq, Eq)]
pub struct Ai {
    pub code: &'static str,
    /// The GS1 data title.
    pub title: &'static str,
    pub format: &'static str,
    pub role: Role,
    /// The deprecated short name Digital Link 1.1 allowed in its place
    /// (`gtin`, `lot`…), accepted and rewritten to the code.
    pub alpha: Option<&'static str>,
}

macro_rules! ais {
    ($($code:literal $title:literal $format:literal $role:ident $($alpha:literal)?;)*) => {
        /// Every AI this module knows, in code order within each role.
        pub static TABLE: &[Ai] = &[
            $(Ai { code: $code, title: $title, format: $format, role: Role::$role, alpha: ais!(@alpha $($alpha)?) },)*
        ];
    };
    (@alpha) => { None };
    (@alpha $a:literal) => { Some($a) };
}

ais! {
    "00" "SSCC" "N18,csum" PrimaryKey "sscc";
    "01" "GTIN" "N14,csum" PrimaryKey "gtin";
    "253" "GDTI" "N13,csum X..17" PrimaryKey "gdti";
    "255" "GCN" "N13,csum N..12" PrimaryKey "gcn";
    "401" "GINC" "X..30" PrimaryKey "ginc";
    "402" "GSIN" "N17,csum" PrimaryKey "gsin";
    "414" "LOC NO." "N13,csum" PrimaryKey "gln";
    "415" "PAY TO" "N13,csum" PrimaryKey;
    "417" "PARTY" "N13,csum" PrimaryKey "party";
    "8003" "GRAI" "N1,zero N13,csum X..16" PrimaryKey "grai";
    "8004" "GIAI" "X..30" PrimaryKey "giai";
    "8006" "ITIP" "N14,csum N2 N2" PrimaryKey "itip";
    "8010" "CPID" "Y..30" PrimaryKey "cpid";
    "8013" "GMN" "X..25,csumalpha" PrimaryKey "gmn";
    "8017" "GSRN - PROVIDER" "N18,csum" PrimaryKey "gsrnp";
    "8018" "GSRN - RECIPIENT" "N18,csum" PrimaryKey "gsrn";

    "10" "BATCH/LOT" "X..20" Qualifier "lot";
    "21" "SERIAL" "X..20" Qualifier "ser";
    "22" "CPV" "X..20" Qualifier "cpv";
    "235" "TPX" "X..28" Qualifier;
    "254" "GLN EXTENSION COMPONENT" "X..20" Qualifier "glnx";
    "7040" "UIC+EXT" "N1 X3" Qualifier;
    "8011" "CPID SERIAL" "N..12" Qualifier "cpsn";
    "8019" "SRIN" "N..10" Qualifier "srin";
    "8020" "REF NO." "X..25" Qualifier "refno";

    "02" "CONTENT" "N14,csum" Attribute;
    "11" "PROD DATE" "N6,yymmdd" Attribute;
    "12" "DUE DATE" "N6,yymmd0" Attribute;
    "13" "PACK DATE" "N6,yymmdd" Attribute;
    "15" "BEST BEFORE or BEST BY" "N6,yymmd0" Attribute;
    "16" "SELL BY" "N6,yymmdd" Attribute;
    "17" "USE BY or EXPIRY" "N6,yymmd0" Attribute "exp";
    "20" "VARIANT" "N2" Attribute;
    "30" "VAR. COUNT" "N..8" Attribute;
    "37" "COUNT" "N..8" Attribute;
    "90" "INTERNAL" "X..30" Attribute;
    "91" "INTERNAL" "X..90" Attribute;
    "92" "INTERNAL" "X..90" Attribute;
    "93" "INTERNAL" "X..90" Attribute;
    "94" "INTERNAL" "X..90" Attribute;
    "95" "INTERNAL" "X..90" Attribute;
    "96" "INTERNAL" "X..90" Attribute;
    "97" "INTERNAL" "X..90" Attribute;
    "98" "INTERNAL" "X..90" Attribute;
    "99" "INTERNAL" "X..90" Attribute;
    "240" "ADDITIONAL ID" "X..30" Attribute;
    "241" "CUST. PART No." "X..30" Attribute;
    "242" "MTO VARIANT" "N..6" Attribute;
    "243" "PCN" "X..20" Attribute;
    "250" "SECONDARY SERIAL" "X..30" Attribute;
    "251" "REF. TO SOURCE" "X..30" Attribute;
    "400" "ORDER NUMBER" "X..30" Attribute;
    "403" "ROUTE" "X..30" Attribute;
    "410" "SHIP TO LOC" "N13,csum" Attribute;
    "411" "BILL TO" "N13,csum" Attribute;
    "412" "PURCHASE FROM" "N13,csum" Attribute;
    "413" "SHIP FOR LOC" "N13,csum" Attribute;
    "416" "PROD/SERV LOC" "N13,csum" Attribute;
    "420" "SHIP TO POST" "X..20" Attribute;
    "421" "SHIP TO POST" "N3 X..9" Attribute;
    "422" "ORIGIN" "N3" Attribute;
    "423" "COUNTRY - INITIAL PROCESS." "N3 N..12" Attribute;
    "424" "COUNTRY - PROCESS." "N3" Attribute;
    "425" "COUNTRY - DISASSEMBLY" "N3 N..12" Attribute;
    "426" "COUNTRY - FULL PROCESS" "N3" Attribute;
    "427" "ORIGIN SUBDIVISION" "X..3" Attribute;
    "710" "NHRN PZN" "X..20" Attribute;
    "711" "NHRN CIP" "X..20" Attribute;
    "712" "NHRN CN" "X..20" Attribute;
    "713" "NHRN DRN" "X..20" Attribute;
    "714" "NHRN AIM" "X..20" Attribute;
    "715" "NHRN NDC" "X..20" Attribute;
    "4300" "SHIP TO COMP" "X..35" Attribute;
    "4301" "SHIP TO NAME" "X..35" Attribute;
    "4302" "SHIP TO ADD1" "X..70" Attribute;
    "4303" "SHIP TO ADD2" "X..70" Attribute;
    "4304" "SHIP TO SUB" "X..70" Attribute;
    "4305" "SHIP TO LOC" "X..70" Attribute;
    "4306" "SHIP TO REG" "X..70" Attribute;
    "4307" "SHIP TO COUNTRY" "X2" Attribute;
    "4308" "SHIP TO PHONE" "X..30" Attribute;
    "4309" "SHIP TO GEO" "N20" Attribute;
    "4310" "RTN TO COMP" "X..35" Attribute;
    "4311" "RTN TO NAME" "X..35" Attribute;
    "4312" "RTN TO ADD1" "X..70" Attribute;
    "4313" "RTN TO ADD2" "X..70" Attribute;
    "4314" "RTN TO SUB" "X..70" Attribute;
    "4315" "RTN TO LOC" "X..70" Attribute;
    "4316" "RTN TO REG" "X..70" Attribute;
    "4317" "RTN TO COUNTRY" "X2" Attribute;
    "4318" "RTN TO POST" "X..20" Attribute;
    "4319" "RTN TO PHONE" "X..30" Attribute;
    "4320" "SRV DESCRIPTION" "X..35" Attribute;
    "4321" "DANGEROUS GOODS" "N1,bool" Attribute;
    "4322" "AUTH LEAVE" "N1,bool" Attribute;
    "4323" "SIG REQUIRED" "N1,bool" Attribute;
    "4324" "NBEF DEL DT" "N10" Attribute;
    "4325" "NAFT DEL DT" "N10" Attribute;
    "4326" "REL DATE" "N6,yymmdd" Attribute;
    "4330" "MAX TEMP F" "N6" Attribute;
    "4331" "MAX TEMP C" "N6" Attribute;
    "4332" "MIN TEMP F" "N6" Attribute;
    "4333" "MIN TEMP C" "N6" Attribute;
    "7001" "NSN" "N13" Attribute;
    "7002" "MEAT CUT" "X..30" Attribute;
    "7003" "EXPIRY TIME" "N10" Attribute "expdt";
    "7004" "ACTIVE POTENCY" "N..4" Attribute;
    "7005" "CATCH AREA" "X..12" Attribute;
    "7006" "FIRST FREEZE DATE" "N6,yymmdd" Attribute;
    "7007" "HARVEST DATE" "N6,yymmdd [N6,yymmdd]" Attribute;
    "7008" "AQUATIC SPECIES" "X..3" Attribute;
    "7009" "FISHING GEAR TYPE" "X..10" Attribute;
    "7010" "PROD METHOD" "X..2" Attribute;
    "7011" "TEST BY DATE" "N6,yymmdd [N..4]" Attribute;
    "7020" "REFURB LOT" "X..20" Attribute;
    "7021" "FUNC STAT" "X..20" Attribute;
    "7022" "REV STAT" "X..20" Attribute;
    "7023" "GIAI - ASSEMBLY" "X..30" Attribute;
    "7030" "PROCESSOR # 0" "N3 X..27" Attribute;
    "7031" "PROCESSOR # 1" "N3 X..27" Attribute;
    "7032" "PROCESSOR # 2" "N3 X..27" Attribute;
    "7033" "PROCESSOR # 3" "N3 X..27" Attribute;
    "7034" "PROCESSOR # 4" "N3 X..27" Attribute;
    "7035" "PROCESSOR # 5" "N3 X..27" Attribute;
    "7036" "PROCESSOR # 6" "N3 X..27" Attribute;
    "7037" "PROCESSOR # 7" "N3 X..27" Attribute;
    "7038" "PROCESSOR # 8" "N3 X..27" Attribute;
    "7039" "PROCESSOR # 9" "N3 X..27" Attribute;
    "7041" "UFRGT UNIT TYPE" "X..4" Attribute;
    "7230" "CERT # 0" "X2 X..28" Attribute;
    "7231" "CERT # 1" "X2 X..28" Attribute;
    "7232" "CERT # 2" "X2 X..28" Attribute;
    "7233" "CERT # 3" "X2 X..28" Attribute;
    "7234" "CERT # 4" "X2 X..28" Attribute;
    "7235" "CERT # 5" "X2 X..28" Attribute;
    "7236" "CERT # 6" "X2 X..28" Attribute;
    "7237" "CERT # 7" "X2 X..28" Attribute;
    "7238" "CERT # 8" "X2 X..28" Attribute;
    "7239" "CERT # 9" "X2 X..28" Attribute;
    "7240" "PROTOCOL" "X..20" Attribute;
    "7241" "AIDC MEDIA TYPE" "N2" Attribute;
    "7242" "VCN" "X..25" Attribute;
    "8001" "DIMENSIONS" "N14" Attribute;
    "8002" "CMT No." "X..20" Attribute;
    "8005" "PRICE PER UNIT" "N6" Attribute;
    "8007" "IBAN" "X..34" Attribute;
    "8008" "PROD TIME" "N8 [N..4]" Attribute;
    "8009" "OPTSEN" "X..50" Attribute;
    "8012" "VERSION" "X..20" Attribute;
    "8026" "ITIP CONTENT" "N14,csum N2 N2" Attribute;
    "8110" "-" "X..70" Attribute;
    "8111" "POINTS" "N4" Attribute;
    "8112" "-" "X..70" Attribute;
    "8200" "PRODUCT URL" "X..70" Attribute;
}

/// The measure AIs (`310n`…`369n`, `n` the decimal point position), whose
/// titles follow a pattern: six digits each.
const MEASURE_PREFIXES: &[&str] = &[
    "310", "311", "312", "313", "314", "315", "316", "320", "321", "322", "323", "324", "325",
    "326", "327", "328", "329", "330", "331", "332", "333", "334", "335", "336", "337", "340",
    "341", "342", "343", "344", "345", "346", "347", "348", "349", "350", "351", "352", "353",
    "354", "355", "356", "357", "360", "361", "362", "363", "364", "365", "366", "367", "368",
    "369",
];

static MEASURE: Ai = Ai {
    code: "3nnn",
    title: "MEASURE",
    format: "N6",
    role: Role::Attribute,
    alpha: None,
};

/// The AI `code` names (a code, or a deprecated short name such as `gtin`).
pub fn lookup(code: &str) -> Option<&'static Ai> {
    if let Some(ai) = TABLE
        .iter()
        .find(|a| a.code == code || a.alpha == Some(code))
    {
        return Some(ai);
    }
    // Measures and amounts: one entry per family, the last digit the
    // decimal point's position.
    if code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()) {
        let (family, n) = (&code[..3], code.as_bytes()[3] - b'0');
        if MEASURE_PREFIXES.contains(&family) && n <= 5 {
            return Some(&MEASURE);
        }
        if let Some(ai) = AMOUNT_AIS.iter().find(|a| a.code.starts_with(family)) {
            return Some(ai);
        }
    }
    None
}

/// The amount and price AIs (`390n`…`395n`).
static AMOUNT_AIS: &[Ai] = &[
    Ai {
        code: "390n",
        title: "AMOUNT",
        format: "N..15",
        role: Role::Attribute,
        alpha: None,
    },
    Ai {
        code: "391n",
        title: "AMOUNT",
        format: "N3 N..15",
        role: Role::Attribute,
        alpha: None,
    },
    Ai {
        code: "392n",
        title: "PRICE",
        format: "N..15",
        role: Role::Attribute,
        alpha: None,
    },
    Ai {
        code: "393n",
        title: "PRICE",
        format: "N3 N..15",
        role: Role::Attribute,
        alpha: None,
    },
    Ai {
        code: "394n",
        title: "PRCNT OFF",
        format: "N4",
        role: Role::Attribute,
        alpha: None,
    },
    Ai {
        code: "395n",
        title: "PRICE/UoM",
        format: "N6",
        role: Role::Attribute,
        alpha: None,
    },
];

/// The key qualifiers a primary key may take, each list in the one order a
/// URI may use (GS1 Digital Link URI Syntax, path element order). A key
/// with several lists takes the qualifiers of one of them.
pub fn qualifier_paths(key: &str) -> &'static [&'static [&'static str]] {
    match key {
        "01" => &[&["22", "10", "21"], &["235"]],
        "8006" => &[&["22", "10", "21"]],
        "8010" => &[&["8011"]],
        "414" => &[&["254"], &["7040"]],
        "417" => &[&["7040"]],
        "8004" => &[&["7040"]],
        "8017" | "8018" => &[&["8019"]],
        "415" => &[&["8020"]],
        _ => &[],
    }
}
