//! CSV cells as this backend writes them. Cells holding text that came from people (names,
//! employee numbers, memos, reasons) are escaped against formula injection: a cell starting
//! with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so a spreadsheet
//! shows it as text. Numbers the backend writes itself (`-15.00` must stay a number) are not
//! escaped. Lines end with CRLF; a cell with a comma, quote or line break is quoted.

use ledger::Fen;

/// A CSV cell: text from people escaped against formula injection, then quoted if needed.
pub fn text(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Yuan as a plain number (`-15.00`), for spreadsheets.
pub fn money(f: Fen) -> String {
    let sign = if f.0 < 0 { "-" } else { "" };
    let a = f.0.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// Counts CSV records (line ends outside quoted cells) in a stream of bytes fed in pieces.
#[derive(Default)]
pub struct RecordCounter {
    in_quotes: bool,
    pending: bool,
    records: u64,
}

impl RecordCounter {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'"' => {
                    self.in_quotes = !self.in_quotes;
                    self.pending = true;
                }
                b'\n' if !self.in_quotes => {
                    self.records += 1;
                    self.pending = false;
                }
                b'\r' if !self.in_quotes => {}
                _ => self.pending = true,
            }
        }
    }

    /// Records seen, a last one without its line end included.
    pub fn records(&self) -> u64 {
        self.records + u64::from(self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_escaped_and_quoted() {
        assert_eq!(text("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(text("+1"), "'+1");
        assert_eq!(text("-1"), "'-1");
        assert_eq!(text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text("=a,b"), "\"'=a,b\"");
        assert_eq!(text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(text("王芳"), "王芳");
        assert_eq!(money(Fen(-1500)), "-15.00");
        assert_eq!(money(Fen(5)), "0.05");
    }

    #[test]
    fn records_are_counted_outside_quotes() {
        let mut c = RecordCounter::default();
        c.feed(b"a,b\r\n1,\"two\r\nlines\"\r");
        c.feed(b"\n2,\"x\"\"y\"\r\n");
        assert_eq!(c.records(), 3);
        let mut c = RecordCounter::default();
        c.feed(b"a,b\r\n1,2");
        assert_eq!(c.records(), 2);
    }
}
