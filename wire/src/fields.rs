//! One rule per field kind, used by both the server's checks and its OpenAPI document.
//!
//! Every field a client sends has a kind (a person's name, an idempotency key, an amount in
//! yuan, grams on a scale, ...). Each kind here is a type whose `Deserialize` enforces the kind's
//! rule and whose schema states the same rule (`minLength`, `maxLength`, `pattern`, `minimum`,
//! `maximum`, `enum`), built from the same constants, so the document and the server cannot
//! drift. A body that breaks a rule is refused as a whole with the rule's stable code
//! (`bad_name`, `bad_idempotency_key`, `bad_amount`, ...): the server reads the code from the
//! deserialisation error ([`FieldError::parse`]) and answers 422.
//!
//! Lengths are counted in characters (Unicode scalar values), as JSON Schema counts them. Text
//! never contains control characters or the invisible bidirectional controls that can make
//! a name display as something else (a right-to-left override turns "txt.exe" round).

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A field that broke its kind's rule: the stable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Every code a rule here can give (what [`FieldError::parse`] recognises).
pub const CODES: &[&str] = &[
    "bad_name",
    "bad_department",
    "bad_category",
    "bad_reason",
    "bad_dish",
    "bad_employee_no",
    "bad_username",
    "weak_password",
    "bad_idempotency_key",
    "bad_code",
    "bad_time",
    "bad_period",
    "bad_amount",
    "bad_id",
    "bad_grams",
    "bad_utc_offset",
    "bad_meals_per_period",
    "bad_valid_minutes",
    "bad_embedding",
    "bad_role",
    "bad_action",
    "bad_status",
];

impl FieldError {
    fn new(code: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            code,
            message: message.into(),
        }
    }

    /// Recovers a rule's error from the text a deserialiser made of it (`"<code>: <message>"`).
    pub fn parse(text: &str) -> Option<FieldError> {
        let (code, message) = text.split_once(": ")?;
        let code = CODES.iter().find(|c| **c == code)?;
        Some(FieldError::new(code, message))
    }
}

// ---- text ----------------------------------------------------------------------------------

/// Characters no text field takes: C0 and C1 controls, DEL, the bidirectional marks, embeddings,
/// overrides and isolates, line and paragraph separators, and the byte-order mark.
const FORBIDDEN: &[(char, char)] = &[
    ('\u{0}', '\u{1f}'),
    ('\u{7f}', '\u{9f}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{200e}', '\u{200f}'),
    ('\u{2028}', '\u{202e}'),
    ('\u{2066}', '\u{2069}'),
    ('\u{feff}', '\u{feff}'),
];

/// Spaces: allowed inside a text, but a text of spaces alone is empty (and texts are stored
/// without leading and trailing spaces).
const SPACES: &[(char, char)] = &[
    (' ', ' '),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

fn in_ranges(c: char, ranges: &[(char, char)]) -> bool {
    ranges.iter().any(|(a, b)| (*a..=*b).contains(&c))
}

/// The ranges as the inside of a regular-expression class, in the `\uXXXX` form that both
/// ECMA-262 (JSON Schema's dialect) and Python's `re` read.
fn class_of(ranges: &[(char, char)]) -> String {
    let esc = |c: char| format!("\\u{:04X}", c as u32);
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                esc(*a)
            } else {
                format!("{}-{}", esc(*a), esc(*b))
            }
        })
        .collect()
}

/// Which characters a text kind takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// Anything printable, and (when at least one character is required) not only spaces.
    Printable,
    /// ASCII letters, digits and `.`, `_`, `-` (identifiers people type: employee numbers).
    Token,
    /// [`Charset::Token`] and `@` (login names, which are often e-mail addresses).
    Login,
}

impl Charset {
    fn allows(self, c: char) -> bool {
        match self {
            Charset::Printable => !in_ranges(c, FORBIDDEN),
            Charset::Token => c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
            Charset::Login => Charset::Token.allows(c) || c == '@',
        }
    }
}

/// The rule of a text kind.
#[derive(Clone, Copy, Debug)]
pub struct TextRule {
    pub code: &'static str,
    /// What the field is, for messages ("name", "idempotency key").
    pub what: &'static str,
    pub min_chars: usize,
    pub max_chars: usize,
    pub charset: Charset,
    /// Stored without leading and trailing spaces. Keys are not trimmed: a key is matched
    /// exactly as the client sent it.
    pub trim: bool,
}

impl TextRule {
    /// Checks `s`; on success returns it, without leading and trailing spaces if the kind
    /// trims.
    pub fn check(&self, s: &str) -> Result<String, FieldError> {
        let n = s.chars().count();
        if n < self.min_chars || n > self.max_chars {
            return Err(FieldError::new(
                self.code,
                format!(
                    "{} must be {}-{} characters (got {n})",
                    self.what, self.min_chars, self.max_chars
                ),
            ));
        }
        if let Some(c) = s.chars().find(|c| !self.charset.allows(*c)) {
            return Err(FieldError::new(
                self.code,
                format!("{} may not contain U+{:04X}", self.what, c as u32),
            ));
        }
        if self.charset != Charset::Printable {
            return Ok(s.to_string());
        }
        let trimmed = s.trim_matches(|c| in_ranges(c, SPACES));
        if self.min_chars > 0 && trimmed.is_empty() {
            return Err(FieldError::new(
                self.code,
                format!("{} may not be blank", self.what),
            ));
        }
        Ok(if self.trim { trimmed } else { s }.to_string())
    }

    /// The same rule as a regular expression (lengths are stated separately).
    pub fn pattern(&self) -> String {
        match self.charset {
            Charset::Printable if self.min_chars > 0 => {
                let f = class_of(FORBIDDEN);
                let sp = class_of(SPACES);
                format!("^[^{f}]*[^{f}{sp}][^{f}]*$")
            }
            Charset::Printable => format!("^[^{}]*$", class_of(FORBIDDEN)),
            Charset::Token => "^[A-Za-z0-9._-]*$".into(),
            Charset::Login => "^[A-Za-z0-9._@-]*$".into(),
        }
    }
}

/// A text kind: a type carrying a checked string and the rule it was checked against.
pub trait TextKind: Sized {
    const RULE: TextRule;
    const DESCRIPTION: &'static str;
    fn from_checked(s: String) -> Self;

    /// Checks `s` against the kind's rule.
    fn parse(s: &str) -> Result<Self, FieldError> {
        Self::RULE.check(s).map(Self::from_checked)
    }
}

macro_rules! text_kind {
    ($(#[$doc:meta])* $name:ident, $code:literal, $what:literal, $min:expr, $max:expr, $charset:expr, $desc:literal) => {
        text_kind!($(#[$doc])* $name, $code, $what, $min, $max, $charset, true, $desc);
    };
    ($(#[$doc:meta])* $name:ident, $code:literal, $what:literal, $min:expr, $max:expr, $charset:expr, $trim:expr, $desc:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl TextKind for $name {
            const RULE: TextRule = TextRule {
                code: $code,
                what: $what,
                min_chars: $min,
                max_chars: $max,
                charset: $charset,
                trim: $trim,
            };
            const DESCRIPTION: &'static str = $desc;
            fn from_checked(s: String) -> Self {
                $name(s)
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = FieldError;
            fn from_str(s: &str) -> Result<Self, FieldError> {
                <$name as TextKind>::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                <$name as TextKind>::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                text_schema::<$name>()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

#[cfg(feature = "openapi")]
fn text_schema<K: TextKind>() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(K::RULE.min_chars))
        .max_length(Some(K::RULE.max_chars))
        .pattern(Some(K::RULE.pattern()))
        .description(Some(format!(
            "{} Refused with `{}`.",
            K::DESCRIPTION,
            K::RULE.code
        )))
        .into()
}

text_kind!(
    /// A person's, canteen's or kiosk's name.
    Name, "bad_name", "name", 1, 100, Charset::Printable,
    "A name: 1-100 characters, no control or bidirectional-control characters, not blank; stored without surrounding spaces."
);
text_kind!(
    /// A department (may be empty).
    Department, "bad_department", "department", 0, 100, Charset::Printable,
    "A department: up to 100 characters, no control or bidirectional-control characters."
);
text_kind!(
    /// A staff category (prices and subsidies are set per category), e.g. `regular`.
    Category, "bad_category", "category", 1, 40, Charset::Printable,
    "A staff category such as `regular`: 1-40 characters, not blank."
);
text_kind!(
    /// Why something was done, for the people reading the journal.
    Reason, "bad_reason", "reason", 1, 200, Charset::Printable,
    "A reason: 1-200 characters, not blank."
);
text_kind!(
    /// What was on a tray.
    Dish, "bad_dish", "dish", 1, 100, Charset::Printable,
    "A dish or food category: 1-100 characters, not blank."
);
text_kind!(
    /// An employee number from the personnel system.
    EmployeeNo, "bad_employee_no", "employee number", 1, 32, Charset::Token,
    "An employee number: 1-32 of A-Z, a-z, 0-9, `.`, `_`, `-`."
);
text_kind!(
    /// A login name.
    Username, "bad_username", "username", 1, 64, Charset::Login,
    "A login name: 1-64 of A-Z, a-z, 0-9, `.`, `_`, `-`, `@`."
);
text_kind!(
    /// A new password (only its argon2 hash is kept).
    NewPassword, "weak_password", "password", 10, 128, Charset::Printable, false,
    "A new password: 10-128 characters, no control characters."
);
text_kind!(
    /// A client-made key that makes a request safe to resend.
    IdempotencyKey, "bad_idempotency_key", "idempotency key", 1, 128, Charset::Printable, false,
    "Made by the client (a UUID is fine), 1-128 characters, unique per kiosk. Resending the same request with the same key returns the first result; the same key with a different body is refused with 409 `idempotency_key_reused`."
);
text_kind!(
    /// A one-time code typed or scanned (kiosk enrolment codes, pay codes).
    OneTimeCode, "bad_code", "code", 1, 128, Charset::Printable,
    "A one-time code as issued: 1-128 characters."
);

// ---- patterned text: times and periods -------------------------------------------------------

macro_rules! patterned_kind {
    ($(#[$doc:meta])* $name:ident, $code:literal, $pattern:literal, $check:expr, $desc:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub const PATTERN: &'static str = $pattern;
            pub const CODE: &'static str = $code;

            pub fn parse(s: &str) -> Result<Self, FieldError> {
                let ok: fn(&[u8]) -> bool = $check;
                if ok(s.as_bytes()) {
                    Ok($name(s.to_string()))
                } else {
                    Err(FieldError::new($code, format!("{s:?}: {}", $desc)))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some($pattern))
                    .description(Some(concat!($desc, " Refused with `", $code, "`.")))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

fn digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

patterned_kind!(
    /// A local time of day, `HH:MM` or `H:MM` (`24:00` ends a window at midnight).
    LocalTime, "bad_time", "^(([01]?[0-9]|2[0-3]):[0-5][0-9]|24:00)$",
    |b| {
        let (h, m) = match b.iter().position(|c| *c == b':') {
            Some(i) => (&b[..i], &b[i + 1..]),
            None => return false,
        };
        let ok_h = matches!(h.len(), 1 | 2) && digits(h) && (h.len() == 1 || h < b"24".as_slice());
        let ok_m = m.len() == 2 && digits(m) && m[0] <= b'5';
        (ok_h && ok_m) || b == b"24:00"
    },
    "a local time HH:MM from 00:00 to 24:00"
);
patterned_kind!(
    /// A calendar month, `YYYY-MM`.
    Period, "bad_period", "^[0-9]{4}-(0[1-9]|1[0-2])$",
    |b| b.len() == 7
        && b[4] == b'-'
        && digits(&b[..4])
        && digits(&b[5..])
        && b[5..] >= b"01"[..]
        && b[5..] <= b"12"[..],
    "a month YYYY-MM"
);

// ---- money ----------------------------------------------------------------------------------

/// Most yuan any amount may be (below 10^9 keeps every sum of fen far inside an `i64`).
const MAX_YUAN_DIGITS: usize = 9;

/// An amount of money in yuan, written as a decimal string with at most two places
/// (`"12.50"`, `"3"`, `"0"`). Never a JSON number: floats cannot hold fen exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Yuan(Decimal);

/// As [`Yuan`], more than zero (top-ups, explicit meal prices).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PositiveYuan(Decimal);

impl Yuan {
    pub const PATTERN: &'static str = "^(0|[1-9][0-9]{0,8})(\\.[0-9]{1,2})?$";

    pub fn parse(s: &str) -> Result<Yuan, FieldError> {
        let bad = || {
            FieldError::new(
                "bad_amount",
                format!(
                    "{s:?} is not an amount in yuan (digits, at most two decimals, e.g. \"12.50\")"
                ),
            )
        };
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        let int_ok = int == "0"
            || (!int.is_empty()
                && int.len() <= MAX_YUAN_DIGITS
                && digits(int.as_bytes())
                && !int.starts_with('0'));
        let frac_ok = frac.is_none_or(|f| (1..=2).contains(&f.len()) && digits(f.as_bytes()));
        if !(int_ok && frac_ok) {
            return Err(bad());
        }
        s.parse::<Decimal>().map(Yuan).map_err(|_| bad())
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }
}

impl PositiveYuan {
    pub const PATTERN: &'static str =
        "^([1-9][0-9]{0,8}(\\.[0-9]{1,2})?|0\\.(0[1-9]|[1-9][0-9]?))$";

    pub fn parse(s: &str) -> Result<PositiveYuan, FieldError> {
        let y = Yuan::parse(s)?;
        if y.0.is_zero() {
            return Err(FieldError::new(
                "bad_amount",
                "the amount must be above zero",
            ));
        }
        Ok(PositiveYuan(y.0))
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }
}

impl From<Decimal> for Yuan {
    /// For amounts the server computed (answers): whatever the ledger holds.
    fn from(d: Decimal) -> Yuan {
        Yuan(d)
    }
}

macro_rules! money_serde {
    ($name:ident, $desc:literal) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some($name::PATTERN))
                    .max_length(Some(MAX_YUAN_DIGITS + 3))
                    .description(Some(concat!($desc, " Refused with `bad_amount`.")))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

money_serde!(
    Yuan,
    "Yuan as a decimal string with at most two places (\"12.50\"), zero or more."
);
money_serde!(
    PositiveYuan,
    "Yuan as a decimal string with at most two places (\"12.50\"), more than zero."
);

// ---- whole numbers --------------------------------------------------------------------------

/// The rule of a whole-number kind.
#[derive(Clone, Copy, Debug)]
pub struct IntRule {
    pub code: &'static str,
    pub what: &'static str,
    pub min: i64,
    pub max: i64,
}

impl IntRule {
    pub fn check(&self, v: i64) -> Result<i64, FieldError> {
        if v < self.min || v > self.max {
            return Err(FieldError::new(
                self.code,
                format!(
                    "{} must be {}..={} (got {v})",
                    self.what, self.min, self.max
                ),
            ));
        }
        Ok(v)
    }
}

/// A whole-number kind.
pub trait IntKind: Sized {
    const RULE: IntRule;
    fn from_checked(v: i64) -> Self;
}

/// Reads a JSON whole number; `480.0` is the whole number 480 (as JSON Schema has it).
struct WholeNumber(IntRule);

impl serde::de::Visitor<'_> for WholeNumber {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number for {}", self.0.what)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        self.0.check(v).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        let v = i64::try_from(v).unwrap_or(i64::MAX);
        self.0.check(v).map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() != 0.0 || !v.is_finite() || v.abs() > 9.0e15 {
            return Err(E::invalid_type(serde::de::Unexpected::Float(v), &self));
        }
        self.0.check(v as i64).map_err(E::custom)
    }
}

macro_rules! int_kind {
    ($(#[$doc:meta])* $name:ident, $code:literal, $what:literal, $min:expr, $max:expr, $desc:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl IntKind for $name {
            const RULE: IntRule = IntRule {
                code: $code,
                what: $what,
                min: $min,
                max: $max,
            };
            fn from_checked(v: i64) -> Self {
                $name(v)
            }
        }

        impl $name {
            pub fn new(v: i64) -> Result<Self, FieldError> {
                Self::RULE.check(v).map($name)
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i64(self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(WholeNumber(<$name as IntKind>::RULE))
                    .map($name)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some($min as i64))
                    .maximum(Some($max as i64))
                    .description(Some(concat!($desc, " Refused with `", $code, "`.")))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

/// Largest id a JSON client can hold exactly (2^53 - 1).
pub const MAX_ID: i64 = 9_007_199_254_740_991;

int_kind!(
    /// A record's id (staff, canteen, charge, ...), as the server gave it.
    Id, "bad_id", "id", 1, MAX_ID,
    "A record id as the server gave it."
);
int_kind!(
    /// Grams on a plate scale (a tray with its plates is well under 20 kg).
    Grams, "bad_grams", "grams", 0, 20_000,
    "Grams read from the scale, 0-20000."
);
int_kind!(
    /// A canteen's offset from UTC in minutes (480 for China).
    UtcOffsetMinutes, "bad_utc_offset", "utc_offset_minutes", -720, 840,
    "Minutes east of UTC, -720..840 (480 for China)."
);
int_kind!(
    /// Paid meals a person may take per meal period.
    MealsPerPeriod, "bad_meals_per_period", "meals_per_period", 1, 20,
    "Paid meals allowed per meal period, 1-20."
);
int_kind!(
    /// How long a one-time code stays valid, in minutes (at most a week).
    ValidMinutes, "bad_valid_minutes", "valid_minutes", 1, 10_080,
    "Minutes the code stays valid, 1-10080."
);

// ---- closed sets ----------------------------------------------------------------------------

/// A closed set of words (a role, a status).
pub trait KeywordKind: Sized + Copy {
    fn parse(s: &str) -> Result<Self, FieldError>;
    fn as_str(self) -> &'static str;
}

macro_rules! enum_kind {
    ($(#[$doc:meta])* $name:ident, $code:literal, $what:literal, { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Result<Self, FieldError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(FieldError::new(
                        $code,
                        format!(
                            "{} must be one of {} (got {s:?})",
                            $what,
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }
        }

        impl KeywordKind for $name {
            fn parse(s: &str) -> Result<Self, FieldError> {
                $name::parse(s)
            }
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([$($text),+]))
                    .description(Some(concat!("Refused with `", $code, "` when not one of these.")))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

enum_kind!(
    /// The role of a person's login.
    PersonRole, "bad_role", "role", { Manager = "manager", Auditor = "auditor", Staff = "staff" }
);
enum_kind!(
    /// A charge's state, to filter lists by.
    ChargeStatusName, "bad_status", "status",
    { Accepted = "accepted", Exception = "exception", Refunded = "refunded", Waived = "waived" }
);
enum_kind!(
    /// A refund's state, to filter lists by.
    RefundStatusName, "bad_status", "status",
    { Requested = "requested", Approved = "approved", Rejected = "rejected" }
);
enum_kind!(
    /// What a manager does with an offline exception.
    ExceptionAction, "bad_action", "action", { Collect = "collect", Waive = "waive" }
);

// ---- embeddings -----------------------------------------------------------------------------

/// Most numbers an embedding may have (the models' own have 128).
pub const MAX_EMBEDDING_LEN: usize = 4096;

/// A face embedding sent as JSON numbers: 1-4096 finite values.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding(pub Vec<f32>);

impl Embedding {
    pub fn new(v: Vec<f32>) -> Result<Embedding, FieldError> {
        if v.is_empty() || v.len() > MAX_EMBEDDING_LEN || v.iter().any(|x| !x.is_finite()) {
            return Err(FieldError::new(
                "bad_embedding",
                format!("an embedding is 1-{MAX_EMBEDDING_LEN} finite numbers"),
            ));
        }
        Ok(Embedding(v))
    }
}

impl Serialize for Embedding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Embedding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Embedding::new(Vec::<f32>::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Embedding {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::Number))
            .min_items(Some(1))
            .max_items(Some(MAX_EMBEDDING_LEN))
            .description(Some(
                "A face embedding: 1-4096 finite numbers. Refused with `bad_embedding`.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Embedding {}

// ---- for types that keep plain Rust fields ---------------------------------------------------

/// `#[serde(deserialize_with = ...)]` helpers for the `wire` types the kiosk builds: their Rust
/// fields stay plain (`String`, `i64`, `Decimal`) while the same kind's rule checks them on the
/// server, and `#[schema(value_type = Kind)]` states it in the document.
pub mod check {
    use super::*;

    pub fn text<'de, K: TextKind, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        K::RULE.check(&s).map_err(serde::de::Error::custom)
    }

    pub fn opt_text<'de, K: TextKind, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        match Option::<std::borrow::Cow<'de, str>>::deserialize(d)? {
            None => Ok(None),
            Some(s) => K::RULE
                .check(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    pub fn whole<'de, K: IntKind, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        d.deserialize_any(WholeNumber(K::RULE))
    }

    pub fn opt_whole<'de, K: IntKind, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<OptWhole<K>>::deserialize(d).map(|o| o.map(|w| w.0))
    }

    /// One whole number of kind `K` (the inside of an `Option`).
    struct OptWhole<K>(i64, std::marker::PhantomData<K>);

    impl<'de, K: IntKind> Deserialize<'de> for OptWhole<K> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            whole::<K, D>(d).map(|v| OptWhole(v, std::marker::PhantomData))
        }
    }

    pub fn keyword<'de, K: KeywordKind, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        K::parse(&s)
            .map(|k| k.as_str().to_string())
            .map_err(serde::de::Error::custom)
    }

    pub fn local_time<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(LocalTime::deserialize(d)?.0)
    }

    pub fn embedding<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        Ok(Embedding::deserialize(d)?.0)
    }

    pub fn yuan<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        Ok(Yuan::deserialize(d)?.decimal())
    }

    pub fn opt_yuan<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Ok(Option::<Yuan>::deserialize(d)?.map(Yuan::decimal))
    }

    pub fn positive_yuan<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        Ok(PositiveYuan::deserialize(d)?.decimal())
    }

    pub fn opt_positive_yuan<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Ok(Option::<PositiveYuan>::deserialize(d)?.map(PositiveYuan::decimal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn names_refuse_controls_bidi_and_blanks_and_count_characters() {
        assert_eq!(Name::parse("  王小明 ").unwrap().as_str(), "王小明");
        for bad in [
            "",
            "   ",
            "a\u{0}b",
            "x\u{202e}gpj.exe",
            "tab\there",
            "\u{3000}",
        ] {
            let e = Name::parse(bad).unwrap_err();
            assert_eq!(e.code, "bad_name", "{bad:?}");
        }
        // 100 Chinese characters are 300 bytes: the limit is on characters.
        assert!(Name::parse(&"食".repeat(100)).is_ok());
        assert!(Name::parse(&"食".repeat(101)).is_err());
        let e = json::<Name>("\"\"").unwrap_err();
        assert_eq!(
            FieldError::parse(e.split(" at line").next().unwrap())
                .unwrap()
                .code,
            "bad_name"
        );
    }

    #[test]
    fn keys_count_characters_not_bytes() {
        assert!(IdempotencyKey::parse(&"键".repeat(128)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
    }

    #[test]
    fn money_is_a_string_with_at_most_two_places() {
        for ok in ["0", "0.5", "12.50", "999999999.99", "3"] {
            assert!(Yuan::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-1",
            "1.234",
            "01",
            "1e3",
            " 1",
            "1.",
            ".5",
            "1000000000",
            "NaN",
        ] {
            assert_eq!(Yuan::parse(bad).unwrap_err().code, "bad_amount", "{bad:?}");
        }
        assert!(PositiveYuan::parse("0.00").is_err());
        assert!(PositiveYuan::parse("0.01").is_ok());
        assert!(json::<Yuan>("12.5").is_err(), "a JSON number is not money");
        assert_eq!(
            json::<Yuan>("\"12.50\"").unwrap().decimal(),
            Decimal::new(1250, 2)
        );
    }

    #[test]
    fn whole_numbers_take_integral_floats_only() {
        assert_eq!(json::<UtcOffsetMinutes>("480").unwrap().0, 480);
        assert_eq!(json::<UtcOffsetMinutes>("480.0").unwrap().0, 480);
        assert!(json::<UtcOffsetMinutes>("480.5").is_err());
        assert!(json::<UtcOffsetMinutes>("\"480\"").is_err());
        let e = json::<UtcOffsetMinutes>("9999").unwrap_err();
        assert!(e.starts_with("bad_utc_offset: "), "{e}");
    }

    #[test]
    fn times_periods_and_enums() {
        for ok in ["00:00", "23:59", "24:00", "11:30", "7:00"] {
            assert!(LocalTime::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "24:01", "12:60", "ab:cd", "12:3", "007:00", "+7:00"] {
            assert!(LocalTime::parse(bad).is_err(), "{bad}");
        }
        assert!(Period::parse("2026-12").is_ok());
        for bad in ["2026-13", "2026-00", "26-12", "", "2026-1"] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PersonRole::parse("auditor").unwrap(), PersonRole::Auditor);
        assert_eq!(PersonRole::parse("").unwrap_err().code, "bad_role");
    }

    /// The schema's pattern and the server's check are one rule: they agree on every string.
    fn agree(pattern: &str, check: impl Fn(&str) -> bool, s: &str) {
        // JSON Schema patterns use `\uXXXX`; the regex crate spells it `\x{XXXX}`.
        let rust_pattern = regex_syntax_u(pattern);
        let re = regex::Regex::new(&rust_pattern).unwrap();
        assert_eq!(
            re.is_match(s),
            check(s),
            "pattern {pattern} vs check on {s:?}"
        );
    }

    fn regex_syntax_u(p: &str) -> String {
        let mut out = String::new();
        let mut it = p.chars().peekable();
        while let Some(c) = it.next() {
            if c == '\\' && it.peek() == Some(&'u') {
                it.next();
                let hex: String = (0..4).filter_map(|_| it.next()).collect();
                out.push_str(&format!("\\x{{{hex}}}"));
            } else {
                out.push(c);
            }
        }
        out
    }

    fn text_agrees<K: TextKind>(s: &str) {
        // Lengths are their own keywords in the schema (`minLength`): the pattern is the charset.
        if s.is_empty() {
            return;
        }
        let r = K::RULE;
        agree(
            &r.pattern(),
            |s| {
                let padded = TextRule {
                    min_chars: r.min_chars.min(1),
                    max_chars: usize::MAX,
                    ..r
                };
                padded.check(s).is_ok()
            },
            s,
        );
    }

    proptest! {
        #[test]
        fn patterns_agree_with_checks(s in "\\PC{0,6}|[ \\t\\u{0}-\\u{20}\\u{202e}\\u{3000}a-z0-9.:@-]{0,8}") {
            text_agrees::<Name>(&s);
            text_agrees::<Department>(&s);
            text_agrees::<EmployeeNo>(&s);
            text_agrees::<Username>(&s);
            agree(Yuan::PATTERN, |s| Yuan::parse(s).is_ok(), &s);
            agree(PositiveYuan::PATTERN, |s| PositiveYuan::parse(s).is_ok(), &s);
            agree(LocalTime::PATTERN, |s| LocalTime::parse(s).is_ok(), &s);
            agree(Period::PATTERN, |s| Period::parse(s).is_ok(), &s);
        }

        #[test]
        fn money_patterns_agree_on_numbers(s in "[0-9]{0,11}(\\.[0-9]{0,3})?") {
            agree(Yuan::PATTERN, |s| Yuan::parse(s).is_ok(), &s);
            agree(PositiveYuan::PATTERN, |s| PositiveYuan::parse(s).is_ok(), &s);
        }

        #[test]
        fn times_agree(s in "[0-9]{1,2}:[0-9]{1,2}|[0-9]{4}-[0-9]{1,2}") {
            agree(LocalTime::PATTERN, |s| LocalTime::parse(s).is_ok(), &s);
            agree(Period::PATTERN, |s| Period::parse(s).is_ok(), &s);
        }
    }
}
