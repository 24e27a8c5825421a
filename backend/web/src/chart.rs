//! Charts drawn on the server as inline SVG: stacked bars and lines over days, with a title
//! and a description for screen readers (`role="img"`, `<title>`, `<desc>`); the page shows
//! the same values as a table beside each chart. Hand-written SVG: a few rectangles and a
//! polyline need no chart library, and the markup stays small (a 30-day chart is ~6 KB).

use std::fmt::Write;

/// One named series of values, one per label.
pub struct Series {
    pub name: String,
    /// A CSS colour.
    pub colour: &'static str,
    pub values: Vec<f64>,
}

pub enum Kind {
    /// Bars, the series stacked on each other.
    StackedBars,
    /// One line per series (points joined in order).
    Lines,
}

pub struct Chart {
    /// Unique on the page (used for element ids).
    pub id: &'static str,
    pub title: String,
    pub labels: Vec<String>,
    pub series: Vec<Series>,
    pub kind: Kind,
    /// The top of the axis; `None` picks a round number above the largest value.
    pub y_max: Option<f64>,
    /// How a tick value is written (`¥120`, `40%`).
    pub y_format: fn(f64) -> String,
}

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 28.0;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// 1, 2 or 5 times a power of ten, at least `v` (axis tops people can read).
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

impl Chart {
    fn top(&self) -> f64 {
        if let Some(m) = self.y_max {
            return m;
        }
        let n = self.labels.len();
        let max = match self.kind {
            Kind::StackedBars => (0..n)
                .map(|i| {
                    self.series
                        .iter()
                        .map(|s| s.values.get(i).copied().unwrap_or(0.0).max(0.0))
                        .sum::<f64>()
                })
                .fold(0.0, f64::max),
            Kind::Lines => self
                .series
                .iter()
                .flat_map(|s| s.values.iter().copied())
                .fold(0.0, f64::max),
        };
        nice_ceiling(max)
    }

    /// A one-sentence summary for screen readers.
    fn description(&self) -> String {
        let mut d = String::new();
        for s in &self.series {
            let total: f64 = s.values.iter().filter(|v| v.is_finite()).sum();
            let max = s.values.iter().copied().fold(f64::NAN, f64::max);
            let _ = write!(
                d,
                "{}: {} … {}; ",
                s.name,
                self.labels.first().map(String::as_str).unwrap_or(""),
                self.labels.last().map(String::as_str).unwrap_or("")
            );
            if max.is_finite() {
                let _ = write!(
                    d,
                    "max {}, sum {}. ",
                    (self.y_format)(max),
                    (self.y_format)(total)
                );
            }
        }
        d
    }

    /// The SVG markup, 720 units wide (a desktop card).
    pub fn svg(&self) -> String {
        self.svg_width(W)
    }

    /// The SVG markup at a width of `w` units: on a phone a narrower drawing keeps its text
    /// (sized in the same units) readable when scaled to the screen.
    pub fn svg_width(&self, w: f64) -> String {
        let n = self.labels.len().max(1);
        let top = self.top();
        let plot_w = w - LEFT - RIGHT;
        let plot_h = H - TOP - BOTTOM;
        let band = plot_w / n as f64;
        let y = |v: f64| TOP + plot_h - (v / top).clamp(0.0, 1.0) * plot_h;
        let mut s = String::with_capacity(8 * 1024);
        let _ = write!(
            s,
            "<svg class=\"chart\" viewBox=\"0 0 {w} {H}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" \
             xmlns=\"http://www.w3.org/2000/svg\"><title id=\"{id}-t\">{title}</title><desc id=\"{id}-d\">{desc}</desc>",
            id = self.id,
            title = escape(&self.title),
            desc = escape(&self.description()),
        );
        // Grid and y ticks.
        for k in 0..=4 {
            let v = top * k as f64 / 4.0;
            let yy = y(v);
            let _ = write!(
                s,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
                 <text class=\"tick\" x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{label}</text>",
                x2 = w - RIGHT,
                tx = LEFT - 6.0,
                ty = yy + 4.0,
                label = escape(&(self.y_format)(v)),
            );
        }
        // X labels: about six, always the last.
        let every = n.div_ceil(6).max(1);
        for (i, l) in self.labels.iter().enumerate() {
            if i % every == 0 || i + 1 == n {
                let _ = write!(
                    s,
                    "<text class=\"tick\" x=\"{x:.1}\" y=\"{yy}\" text-anchor=\"middle\">{l}</text>",
                    x = LEFT + band * (i as f64 + 0.5),
                    yy = H - 8.0,
                    l = escape(l),
                );
            }
        }
        match self.kind {
            Kind::StackedBars => {
                let bw = (band * 0.7).max(1.0);
                for i in 0..self.labels.len() {
                    let mut base = 0.0;
                    for ser in &self.series {
                        let v = ser.values.get(i).copied().unwrap_or(0.0).max(0.0);
                        if v > 0.0 {
                            let (y0, y1) = (y(base), y(base + v));
                            let _ = write!(
                                s,
                                "<rect x=\"{x:.1}\" y=\"{y1:.1}\" width=\"{bw:.1}\" height=\"{h:.1}\" fill=\"{c}\">\
                                 <title>{l} {name}: {val}</title></rect>",
                                x = LEFT + band * i as f64 + (band - bw) / 2.0,
                                h = (y0 - y1).max(0.5),
                                c = ser.colour,
                                l = escape(&self.labels[i]),
                                name = escape(&ser.name),
                                val = escape(&(self.y_format)(v)),
                            );
                        }
                        base += v;
                    }
                }
            }
            Kind::Lines => {
                for ser in &self.series {
                    // A day without data (NaN) breaks the line rather than dropping it to 0.
                    let mut segment: Vec<String> = Vec::new();
                    let mut segments: Vec<Vec<String>> = Vec::new();
                    for (i, v) in ser.values.iter().enumerate() {
                        if v.is_finite() {
                            segment.push(format!(
                                "{:.1},{:.1}",
                                LEFT + band * (i as f64 + 0.5),
                                y(*v)
                            ));
                        } else if !segment.is_empty() {
                            segments.push(std::mem::take(&mut segment));
                        }
                    }
                    if !segment.is_empty() {
                        segments.push(segment);
                    }
                    for pts in segments.iter().filter(|p| p.len() > 1) {
                        let _ = write!(
                            s,
                            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2.5\" points=\"{p}\"/>",
                            c = ser.colour,
                            p = pts.join(" ")
                        );
                    }
                    for (i, v) in ser.values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                        let _ = write!(
                            s,
                            "<circle cx=\"{x:.1}\" cy=\"{yy:.1}\" r=\"3\" fill=\"{c}\"><title>{l}: {val}</title></circle>",
                            x = LEFT + band * (i as f64 + 0.5),
                            yy = y(*v),
                            c = ser.colour,
                            l = escape(&self.labels[i.min(self.labels.len().saturating_sub(1))]),
                            val = escape(&(self.y_format)(*v)),
                        );
                    }
                }
            }
        }
        // Legend, top left.
        let mut lx = LEFT;
        for ser in &self.series {
            let _ = write!(
                s,
                "<rect x=\"{lx:.1}\" y=\"10\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{c}\"/>\
                 <text class=\"legend\" x=\"{tx:.1}\" y=\"20\">{name}</text>",
                c = ser.colour,
                tx = lx + 17.0,
                name = escape(&ser.name),
            );
            lx += 30.0 + 9.0 * ser.name.chars().count() as f64 * 1.4;
        }
        s.push_str("</svg>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(kind: Kind, values: Vec<f64>) -> Chart {
        Chart {
            id: "c",
            title: "Meals <per> day".into(),
            labels: (1..=values.len()).map(|d| format!("12-{d:02}")).collect(),
            series: vec![Series {
                name: "Lunch & more".into(),
                colour: "#2a7",
                values,
            }],
            kind,
            y_max: None,
            y_format: |v| format!("{v:.0}"),
        }
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(400.0), 500.0);
    }

    #[test]
    fn bars_are_drawn_one_per_value_with_escaped_text() {
        let svg = chart(Kind::StackedBars, vec![1.0, 0.0, 3.0]).svg();
        // Zero draws no bar; the others one each.
        assert_eq!(svg.matches("<rect x").count() - 1, 2, "{svg}");
        assert!(svg.contains("<title id=\"c-t\">Meals &lt;per&gt; day</title>"));
        assert!(svg.contains("Lunch &amp; more"));
        assert!(!svg.contains("<per>"));
        // The tallest bar reaches the top of the axis (5 is the round top above 3).
        assert!(svg.contains(">5</text>"));
    }

    #[test]
    fn lines_have_a_point_per_value() {
        let svg = chart(Kind::Lines, vec![10.0, 20.0, 30.0, 40.0]).svg();
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches("<polyline").count(), 1);
    }

    #[test]
    fn days_without_data_break_the_line() {
        let svg = chart(
            Kind::Lines,
            vec![10.0, 20.0, f64::NAN, 30.0, 40.0, f64::NAN],
        )
        .svg();
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(!svg.contains("NaN"));
    }
}
