//! The time-to-honour chart: daily p50 and p99 over the last 30 days as an inline SVG,
//! drawn on the server from numbers only (nothing from outside reaches the markup).

use std::fmt::Write as _;

const DAY_MS: i64 = 86_400_000;
const W: f64 = 720.0;
const H: f64 = 220.0;
const PAD: f64 = 40.0;

/// One day's percentiles (ms), if anything was honoured that day.
pub struct DayPoint {
    pub p50: Option<i64>,
    pub p99: Option<i64>,
}

/// Buckets (received day, latency ms) pairs into the 30 days ending with `today_start`'s day.
pub fn days(latencies: &[(i64, i64)], today_start: i64) -> Vec<DayPoint> {
    let first = today_start - 29 * DAY_MS;
    (0..30)
        .map(|d| {
            let from = first + d * DAY_MS;
            let mut v: Vec<i64> = latencies
                .iter()
                .filter(|(at, _)| *at >= from && *at < from + DAY_MS)
                .map(|(_, l)| *l)
                .collect();
            v.sort_unstable();
            DayPoint {
                p50: crate::report::nearest_rank(&v, 0.5),
                p99: crate::report::nearest_rank(&v, 0.99),
            }
        })
        .collect()
}

/// The line's points, and a dot on each (a day alone still shows).
fn series(
    points: &[DayPoint],
    pick: fn(&DayPoint) -> Option<i64>,
    max: f64,
    colour: &str,
) -> (String, String) {
    let step = (W - 2.0 * PAD) / 29.0;
    let (mut line, mut dots) = (String::new(), String::new());
    for (i, p) in points.iter().enumerate() {
        if let Some(v) = pick(p) {
            let x = PAD + step * i as f64;
            let y = H - PAD - (v as f64 / max) * (H - 2.0 * PAD);
            let _ = write!(line, "{x:.1},{y:.1} ");
            let _ = write!(
                dots,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
            );
        }
    }
    (line.trim_end().to_string(), dots)
}

/// The SVG, with a title for screen readers and the scale in seconds.
pub fn svg(points: &[DayPoint]) -> String {
    let max_ms = points
        .iter()
        .filter_map(|p| p.p99.or(p.p50))
        .max()
        .unwrap_or(1000)
        .max(1000) as f64;
    let (p50, dots50) = series(points, |p| p.p50, max_ms, "#1f6feb");
    let (p99, dots99) = series(points, |p| p.p99, max_ms, "#b42318");
    let (x0, y0, x1, y1) = (PAD, H - PAD, W - PAD, PAD);
    format!(
        r##"<svg id="chart" viewBox="0 0 {W} {H}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">
<title>Daily p50 and p99 time to honour over the last 30 days; the scale tops out at {top:.1} s</title>
<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>
<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#8a939e"/>
<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#8a939e"/>
<text x="4" y="{y1}" font-size="11">{top:.1} s</text>
<text x="4" y="{y0}" font-size="11">0</text>
<text x="{x0}" y="{ty}" font-size="11">30 days ago</text>
<text x="{tx}" y="{ty}" font-size="11">today</text>
<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{p50}"/>
<polyline fill="none" stroke="#b42318" stroke-width="2" stroke-dasharray="4 3" points="{p99}"/>
{dots50}{dots99}
<text x="{lx}" y="14" font-size="11" fill="#1f6feb">p50</text>
<text x="{lx2}" y="14" font-size="11" fill="#b42318">p99</text>
</svg>"##,
        top = max_ms / 1000.0,
        tx = W - PAD - 30.0,
        ty = H - 12.0,
        lx = W - 110.0,
        lx2 = W - 70.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_plots_each_day_with_data() {
        let today = 100 * DAY_MS;
        let pts = days(
            &[(today + 5, 2000), (today + 9, 4000), (today - DAY_MS, 1000)],
            today,
        );
        assert_eq!(pts.len(), 30);
        assert_eq!(pts[29].p50, Some(2000));
        assert_eq!(pts[29].p99, Some(4000));
        assert_eq!(pts[28].p50, Some(1000));
        let s = svg(&pts);
        assert!(s.starts_with("<svg") && s.contains("<polyline"));
        assert_eq!(s.matches(',').count(), 4, "two points on each line");
    }
}
