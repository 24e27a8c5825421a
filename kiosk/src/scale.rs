//! The plate scale: parsing the continuous ASCII output of canteen scales and deciding
//! when a tray's weight is settled. Pure logic only (bytes in, readings and weighings
//! out); the serial port, the TCP link and the simulator live in [`crate::scale_io`].
//!
//! Most bench scales stream one line per reading in the "ST/US" family:
//! `ST,GS,+0001.234kg` (stable, gross), `US,GS,+0001.240kg` (unstable), `ST,NT,...`
//! (net), `OL,GS,+9999.999kg` or just `OL` (overload). Numbers may be padded with spaces
//! (`ST,GS,+   1.234 kg`), the unit is `kg`, `g`, `lb` or `oz`, lines end in CR, LF or
//! both. A serial line picks up noise when a cable is plugged in, so the framer drops
//! over-long lines and non-ASCII bytes and the parser returns an error for anything it
//! does not understand: nothing here panics or allocates without bound.

use serde::Serialize;

/// Longest line worth parsing; longer ones are noise (a real reading is ~20 bytes).
pub const MAX_LINE: usize = 64;

/// What the scale reported on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Reading {
    /// A weight in milligrams (negative when the platform reads below its zero).
    Weight {
        stable: bool,
        kind: WeightKind,
        milligrams: i64,
    },
    /// The load exceeds the scale's capacity.
    Overload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WeightKind {
    Gross,
    Net,
    Tare,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty line")]
    Empty,
    #[error("line is not ASCII")]
    NotAscii,
    #[error("unknown status {0:?} (expected ST, US or OL)")]
    UnknownStatus(String),
    #[error("unknown weight kind {0:?} (expected GS, NT or TR)")]
    UnknownKind(String),
    #[error("bad number {0:?}")]
    BadNumber(String),
    #[error("unknown unit {0:?}")]
    UnknownUnit(String),
    #[error("missing field")]
    Missing,
}

/// Parses one line (without its terminator).
pub fn parse_line(line: &[u8]) -> Result<Reading, ParseError> {
    let text = std::str::from_utf8(line).map_err(|_| ParseError::NotAscii)?;
    if !text.is_ascii() {
        return Err(ParseError::NotAscii);
    }
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut fields = text.split(',').map(str::trim);
    let status = fields
        .next()
        .ok_or(ParseError::Missing)?
        .to_ascii_uppercase();
    let stable = match status.as_str() {
        "ST" => true,
        "US" => false,
        "OL" => return Ok(Reading::Overload),
        _ => return Err(ParseError::UnknownStatus(truncate(&status))),
    };
    let kind_field = fields.next().ok_or(ParseError::Missing)?;
    let (kind, value) = match kind_field.to_ascii_uppercase().as_str() {
        "GS" | "G" => (WeightKind::Gross, fields.next().ok_or(ParseError::Missing)?),
        "NT" | "N" => (WeightKind::Net, fields.next().ok_or(ParseError::Missing)?),
        "TR" | "T" => (WeightKind::Tare, fields.next().ok_or(ParseError::Missing)?),
        // Some scales omit the kind: `ST,+0001.234kg`.
        _ if kind_field.starts_with(['+', '-'])
            || kind_field.starts_with(|c: char| c.is_ascii_digit()) =>
        {
            (WeightKind::Gross, kind_field)
        }
        other => return Err(ParseError::UnknownKind(truncate(other))),
    };
    if fields.next().is_some() {
        return Err(ParseError::BadNumber(truncate(text)));
    }
    let milligrams = parse_weight(value)?;
    Ok(Reading::Weight {
        stable,
        kind,
        milligrams,
    })
}

/// `+0001.234kg`, `-  12.5 g`, `1.2lb` → milligrams.
fn parse_weight(s: &str) -> Result<i64, ParseError> {
    let s: String = s.chars().filter(|c| *c != ' ').collect();
    let unit_start = s
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| ParseError::UnknownUnit(String::new()))?;
    let (num, unit) = s.split_at(unit_start);
    // Milligrams per unit, as a rational (numerator, denominator) to stay exact for g/kg.
    let (per_num, per_den): (i128, i128) = match unit.to_ascii_lowercase().as_str() {
        "kg" => (1_000_000, 1),
        "g" => (1_000, 1),
        "lb" | "lbs" => (45_359_237, 100),
        "oz" => (28_349_523_125, 1_000_000),
        other => return Err(ParseError::UnknownUnit(truncate(other))),
    };
    let (negative, digits) = match num.as_bytes().first() {
        Some(b'+') => (false, &num[1..]),
        Some(b'-') => (true, &num[1..]),
        _ => (false, num),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !ok(int_part)
        || !ok(frac_part)
        || int_part.len() + frac_part.len() > 15
    {
        return Err(ParseError::BadNumber(truncate(num)));
    }
    let mantissa: i128 = format!("{int_part}{frac_part}")
        .parse()
        .map_err(|_| ParseError::BadNumber(truncate(num)))?;
    let scale = 10i128.pow(frac_part.len() as u32);
    let mg = (mantissa * per_num + (scale * per_den) / 2) / (scale * per_den);
    let mg = i64::try_from(mg).map_err(|_| ParseError::BadNumber(truncate(num)))?;
    Ok(if negative { -mg } else { mg })
}

fn truncate(s: &str) -> String {
    s.chars().take(16).collect()
}

/// Splits a byte stream into lines: CR, LF or CRLF end a line; lines longer than
/// [`MAX_LINE`] are dropped whole (up to the next terminator).
#[derive(Debug, Default)]
pub struct LineFramer {
    buf: Vec<u8>,
    overflow: bool,
}

impl LineFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the complete lines they finish.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                if !self.overflow && !self.buf.is_empty() {
                    out.push(std::mem::take(&mut self.buf));
                }
                self.buf.clear();
                self.overflow = false;
            } else if self.buf.len() >= MAX_LINE {
                self.overflow = true;
                self.buf.clear();
            } else if !self.overflow {
                self.buf.push(b);
            }
        }
        out
    }
}

/// When a weighing counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StabilityConfig {
    /// This many consecutive stable readings within `tolerance_g` of each other.
    pub stable_readings: usize,
    pub tolerance_g: f64,
    /// A gross weight below this is "nothing on the scale" (re-arms for the next tray).
    pub empty_below_g: f64,
    /// A tray must weigh at least this (gross) to be recorded.
    pub min_load_g: f64,
}

impl Default for StabilityConfig {
    fn default() -> Self {
        StabilityConfig {
            stable_readings: 5,
            tolerance_g: 2.0,
            empty_below_g: 20.0,
            min_load_g: 50.0,
        }
    }
}

/// What the stability detector concluded after a reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum ScaleEvent {
    /// A tray's gross weight settled (grams, rounded). Emitted once per tray.
    Settled {
        gross_g: i64,
    },
    /// The platform is empty again: the next load is a new tray.
    Emptied,
    Overload,
}

/// Waits for N stable readings of one load, emits it once, and re-arms only after the
/// scale has been emptied, so a tray left on the scale is not recorded twice.
#[derive(Debug, Clone)]
pub struct StabilityDetector {
    config: StabilityConfig,
    window: Vec<i64>,
    /// A settled weight was emitted and the scale has not been emptied since.
    spent: bool,
    empty: bool,
}

impl StabilityDetector {
    pub fn new(config: StabilityConfig) -> Self {
        StabilityDetector {
            config,
            window: Vec::new(),
            spent: false,
            empty: true,
        }
    }

    pub fn feed(&mut self, reading: Reading) -> Option<ScaleEvent> {
        let (stable, mg) = match reading {
            Reading::Overload => {
                self.window.clear();
                return Some(ScaleEvent::Overload);
            }
            // Tare lines report the scale's stored tare, not the load.
            Reading::Weight {
                kind: WeightKind::Tare,
                ..
            } => return None,
            Reading::Weight {
                stable, milligrams, ..
            } => (stable, milligrams),
        };
        let grams = mg as f64 / 1000.0;
        if grams < self.config.empty_below_g {
            self.window.clear();
            let was_loaded = !self.empty;
            self.empty = true;
            self.spent = false;
            return was_loaded.then_some(ScaleEvent::Emptied);
        }
        self.empty = false;
        if !stable || self.spent {
            self.window.clear();
            return None;
        }
        let tol_mg = (self.config.tolerance_g * 1000.0) as i64;
        if let Some(&first) = self.window.first() {
            if (mg - first).abs() > tol_mg {
                self.window.clear();
            }
        }
        self.window.push(mg);
        if self.window.len() >= self.config.stable_readings.max(1) {
            let mean = self.window.iter().sum::<i64>() as f64 / self.window.len() as f64 / 1000.0;
            self.window.clear();
            if mean >= self.config.min_load_g {
                self.spent = true;
                return Some(ScaleEvent::Settled {
                    gross_g: mean.round() as i64,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w(stable: bool, mg: i64) -> Reading {
        Reading::Weight {
            stable,
            kind: WeightKind::Gross,
            milligrams: mg,
        }
    }

    #[test]
    fn parses_the_common_formats() {
        assert_eq!(parse_line(b"ST,GS,+0001.234kg"), Ok(w(true, 1_234_000)));
        assert_eq!(parse_line(b"US,GS,+0001.240kg"), Ok(w(false, 1_240_000)));
        assert_eq!(parse_line(b"ST,GS,-0000.120kg"), Ok(w(true, -120_000)));
        assert_eq!(
            parse_line(b"ST,NT,+  512.5 g"),
            Ok(Reading::Weight {
                stable: true,
                kind: WeightKind::Net,
                milligrams: 512_500
            })
        );
        assert_eq!(parse_line(b"ST,+0000.450kg"), Ok(w(true, 450_000)));
        assert_eq!(parse_line(b"OL"), Ok(Reading::Overload));
        assert_eq!(parse_line(b"OL,GS,+9999.999kg"), Ok(Reading::Overload));
        assert_eq!(parse_line(b"st,gs,+1lb"), Ok(w(true, 453_592)));
        assert_eq!(
            parse_line(b"ST,TR,+0000.300kg"),
            Ok(Reading::Weight {
                stable: true,
                kind: WeightKind::Tare,
                milligrams: 300_000
            })
        );
    }

    #[test]
    fn refuses_garbage_with_a_reason() {
        assert_eq!(parse_line(b""), Err(ParseError::Empty));
        assert!(matches!(
            parse_line(b"XX,GS,+1kg"),
            Err(ParseError::UnknownStatus(_))
        ));
        assert!(matches!(
            parse_line(b"ST,GS,+1.2.3kg"),
            Err(ParseError::BadNumber(_))
        ));
        assert!(matches!(
            parse_line(b"ST,GS,+1.2"),
            Err(ParseError::UnknownUnit(_))
        ));
        assert!(matches!(
            parse_line(b"ST,GS,+1.2st"),
            Err(ParseError::UnknownUnit(_))
        ));
        assert!(matches!(
            parse_line(b"ST,GS,kg"),
            Err(ParseError::BadNumber(_))
        ));
        assert!(matches!(
            parse_line(b"ST,GS,+99999999999999999kg"),
            Err(ParseError::BadNumber(_))
        ));
        assert_eq!(parse_line(&[0xff, 0xfe]), Err(ParseError::NotAscii));
        assert_eq!(parse_line(b"ST"), Err(ParseError::Missing));
    }

    #[test]
    fn framer_splits_lines_and_drops_overlong_ones() {
        let mut f = LineFramer::new();
        assert_eq!(f.push(b"ST,GS,+1kg\r\nUS,G"), vec![b"ST,GS,+1kg".to_vec()]);
        assert_eq!(f.push(b"S,+2kg\n"), vec![b"US,GS,+2kg".to_vec()]);
        let long = vec![b'9'; MAX_LINE * 3];
        assert!(f.push(&long).is_empty());
        assert!(
            f.push(b"\n").is_empty(),
            "the over-long line is dropped whole"
        );
        assert_eq!(f.push(b"OL\r"), vec![b"OL".to_vec()]);
    }

    #[test]
    fn a_tray_settles_once_and_rearms_after_emptying() {
        let mut d = StabilityDetector::new(StabilityConfig {
            stable_readings: 3,
            ..Default::default()
        });
        let mut events = Vec::new();
        let seq = [
            w(true, 0),
            w(false, 300_000),
            w(false, 420_000),
            w(true, 451_000),
            w(true, 452_000),
            w(true, 450_500),
            w(true, 451_000),
            w(true, 451_000),
            w(true, 451_000),
            w(true, 5_000),
            w(true, 600_000),
            w(true, 600_000),
            w(true, 600_000),
        ];
        for r in seq {
            events.extend(d.feed(r));
        }
        assert_eq!(
            events,
            vec![
                ScaleEvent::Settled { gross_g: 451 },
                ScaleEvent::Emptied,
                ScaleEvent::Settled { gross_g: 600 }
            ]
        );
    }

    #[test]
    fn unstable_jumps_negative_and_overload_do_not_settle() {
        let mut d = StabilityDetector::new(StabilityConfig {
            stable_readings: 3,
            ..Default::default()
        });
        for r in [
            w(true, 400_000),
            w(true, 410_000),
            w(true, 420_000),
            w(false, 420_000),
            w(true, -50_000),
            Reading::Overload,
        ] {
            assert!(
                !matches!(d.feed(r), Some(ScaleEvent::Settled { .. })),
                "{r:?}"
            );
        }
        // Light loads (a spoon) are not trays.
        let mut d = StabilityDetector::new(StabilityConfig {
            stable_readings: 2,
            ..Default::default()
        });
        assert_eq!(d.feed(w(true, 30_000)), None);
        assert_eq!(d.feed(w(true, 30_000)), None);
    }

    proptest! {
        #[test]
        fn parser_and_framer_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut f = LineFramer::new();
            let mut d = StabilityDetector::new(StabilityConfig::default());
            for line in f.push(&bytes) {
                prop_assert!(line.len() <= MAX_LINE);
                if let Ok(r) = parse_line(&line) {
                    let _ = d.feed(r);
                }
            }
        }

        #[test]
        fn well_formed_lines_round_trip(stable in any::<bool>(), neg in any::<bool>(), g in 0i64..100_000_000) {
            let line = format!("{},GS,{}{:04}.{:03}kg", if stable { "ST" } else { "US" }, if neg { "-" } else { "+" }, g / 1000, g % 1000);
            let mg = if neg { -g * 1000 } else { g * 1000 };
            prop_assert_eq!(parse_line(line.as_bytes()), Ok(Reading::Weight { stable, kind: WeightKind::Gross, milligrams: mg }));
        }
    }
}
