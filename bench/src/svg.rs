//! A small SVG line chart: latency (log scale) against concurrency, one
//! colour per target, p50 solid and p99 dashed. No plotting dependency.

use std::fmt::Write;

/// One line: target name and (concurrency, p50 µs, p99 µs) points.
pub struct Series {
    /// Target.
    pub name: String,
    /// Points in concurrency order.
    pub points: Vec<(usize, f64, f64)>,
}

const W: f64 = 720.0;
const H: f64 = 440.0;
const L: f64 = 70.0;
const R: f64 = 150.0;
const T: f64 = 40.0;
const B: f64 = 50.0;
const COLOURS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];

/// Renders the chart.
pub fn render(title: &str, series: &[Series]) -> String {
    let xs: Vec<usize> = {
        let mut v: Vec<usize> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.1, p.2]));
    let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let (lo, hi) = (
        10f64.powf(lo.max(1.0).log10().floor()),
        10f64.powf(hi.max(1.0).log10().ceil()),
    );
    let x = |c: usize| {
        let i = xs.iter().position(|&v| v == c).unwrap_or(0) as f64;
        L + i * (W - L - R) / ((xs.len().max(2) - 1) as f64)
    };
    let y = |v: f64| T + (H - T - B) * (1.0 - (v.log10() - lo.log10()) / (hi.log10() - lo.log10()));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="15" text-anchor="middle">{title}</text>
"#,
        (L + W - R) / 2.0
    );
    let mut decade = lo;
    while decade <= hi * 1.0001 {
        let _ = writeln!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            y(decade) + 4.0,
            if decade >= 1000.0 {
                format!("{} ms", decade / 1000.0)
            } else {
                format!("{decade} µs")
            },
            yy = y(decade)
        );
        decade *= 10.0;
    }
    for &c in &xs {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{c}</text>"#,
            x(c),
            H - B + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">concurrent connections</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">round-trip latency</text>"#,
        (L + W - R) / 2.0,
        H - 12.0,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0
    );
    for (i, ser) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for (idx, dash) in [(1usize, ""), (2, r#" stroke-dasharray="5 4""#)] {
            let pts: Vec<String> = ser
                .points
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.0), y(if idx == 1 { p.1 } else { p.2 })))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                pts.join(" ")
            );
            for p in &pts {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(s, r#"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"#);
            }
        }
        let ly = T + 20.0 + i as f64 * 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            W - R + 12.0,
            W - R + 36.0,
            W - R + 42.0,
            ly + 4.0,
            ser.name
        );
    }
    let ly = T + 20.0 + series.len() as f64 * 20.0 + 10.0;
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{ly}" fill="#555">solid: p50</text><text x="{}" y="{}" fill="#555">dashed: p99</text>
</svg>"##,
        W - R + 12.0,
        W - R + 12.0,
        ly + 16.0
    );
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_every_series_and_point() {
        let s = super::render(
            "t",
            &[super::Series {
                name: "valetkey".into(),
                points: vec![(1, 50.0, 90.0), (16, 200.0, 400.0), (256, 3000.0, 9000.0)],
            }],
        );
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert_eq!(s.matches("<circle").count(), 6);
        assert!(s.contains(">valetkey<"));
    }
}
