//! One entity's chart: the value over event time with the range the detector expected, the
//! anomalies marked (their reasons on hover and in a table under the chart) and the other
//! flags on a track of their own, as inline SVG (see the page's module doc for why SVG is
//! written here), and the geometry and downsampling it is drawn with.

use std::fmt::Write;

use super::format::{esc, number, time};
use super::{EntityView, Point};
use pipeline_core::detect::DetectReason;

/// Plot geometry, in SVG user units.
const WIDTH: f64 = 1000.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const PLOT_H: f64 = 230.0;
const TRACK_GAP: f64 = 8.0;
const TRACK_H: f64 = 26.0;
const AXIS_H: f64 = 26.0;
/// Pixel columns a series is reduced to (four points each at most).
pub(super) const COLUMNS: usize = 460;
/// Pixel width of a drawing column.
const COLUMN_W: f64 = (WIDTH - RIGHT - LEFT) / COLUMNS as f64;
/// Rows of the anomaly table under each chart; the marks are all drawn regardless.
const TABLE_ROWS: usize = 60;

/// A linear map from a data interval onto a pixel interval.
#[derive(Clone, Copy)]
struct Scale {
    d0: f64,
    d1: f64,
    p0: f64,
    p1: f64,
}

impl Scale {
    fn new(d0: f64, d1: f64, p0: f64, p1: f64) -> Self {
        // A constant series still needs a non-empty domain.
        let (d0, d1) = if d1 > d0 {
            (d0, d1)
        } else {
            let pad = d0.abs().max(1.0) * 0.5;
            (d0 - pad, d0 + pad)
        };
        Scale { d0, d1, p0, p1 }
    }

    fn at(&self, x: f64) -> f64 {
        self.p0 + (x - self.d0) / (self.d1 - self.d0) * (self.p1 - self.p0)
    }
}

/// Draws one entity: its chart and the table of its anomalies.
pub(super) fn entity(out: &mut String, e: &EntityView) {
    let pts = &e.points;
    let flags: Vec<&Point> = pts
        .iter()
        .filter(|p| p.reasons.iter().any(|r| track_reason(r).is_some()))
        .collect();
    let _ = write!(
        out,
        "<article class=\"entity\" data-entity=\"{id}\"><h3>{id}</h3><p class=\"counts\">\
         {n} events · <span data-k=\"anomalies\">{a}</span> anomalies · \
         <span data-k=\"flags\">{f}</span> events with other flags{w}</p>",
        id = esc(&e.entity_id),
        n = pts.len(),
        a = e.anomalies(),
        f = flags.len(),
        w = if e.windows.is_empty() {
            String::new()
        } else {
            format!(" · {} labelled windows", e.windows.len())
        },
    );
    if pts.is_empty() {
        out.push_str("</article>");
        return;
    }
    // Event times are not sorted when the input was out of order: take the extremes.
    let t0 = pts.iter().map(|p| p.t_ms).min().unwrap_or(0) as f64;
    let t1 = pts.iter().map(|p| p.t_ms).max().unwrap_or(0) as f64;
    let values = pts.iter().map(|p| p.value).filter(|v| v.is_finite());
    let (vmin, vmax) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (vmin, vmax) = if vmin.is_finite() {
        (vmin, vmax)
    } else {
        (0.0, 1.0)
    };
    // The band may reach far beyond the values while the detector is unsure; show at most
    // half the value span of it either side so that the values keep the height.
    let span = (vmax - vmin).max(vmax.abs() * 0.01).max(1e-9);
    let (bmin, bmax) = pts
        .iter()
        .filter_map(|p| p.band)
        .fold((vmin, vmax), |(a, b), [lo, hi]| (a.min(lo), b.max(hi)));
    let lo = bmin.max(vmin - 0.5 * span);
    let hi = bmax.min(vmax + 0.5 * span);
    let (lo, hi) = (lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo));
    let x = Scale::new(t0, t1, LEFT, WIDTH - RIGHT);
    let y = Scale::new(lo, hi, TOP + PLOT_H, TOP);
    let track_top = TOP + PLOT_H + TRACK_GAP;
    let height = track_top + TRACK_H + AXIS_H;

    let _ = write!(
        out,
        "<svg class=\"series\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"{id} value over time\" xmlns=\"http://www.w3.org/2000/svg\">",
        id = esc(&e.entity_id)
    );
    let _ = write!(
        out,
        "<rect class=\"frame\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{PLOT_H}\"/>",
        WIDTH - RIGHT - LEFT
    );
    for &(a, b) in &e.windows {
        let (xa, xb) = (x.at(a as f64), x.at(b as f64));
        let _ = write!(
            out,
            "<rect class=\"label-window\" x=\"{xa:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\"><title>labelled window {} – {}</title></rect>",
            (xb - xa).max(2.0),
            PLOT_H + TRACK_GAP + TRACK_H,
            time(a),
            time(b)
        );
    }
    // Value axis.
    for v in ticks(lo, hi, 5) {
        let py = y.at(v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            number(v)
        );
    }
    // Time axis: five labels, evenly spaced.
    for i in 0..5 {
        let t = t0 + (t1 - t0) * f64::from(i) / 4.0;
        let px = x.at(t);
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            height - 8.0,
            time(t as i64)
        );
    }

    let order = by_time(pts);
    band(out, &order, x, y, lo, hi);
    let line: Vec<(f64, f64)> = order
        .iter()
        .filter(|p| p.value.is_finite())
        .map(|p| (x.at(p.t_ms as f64), y.at(p.value.clamp(lo, hi))))
        .collect();
    let _ = write!(
        out,
        "<path class=\"value\" d=\"{}\"/>",
        path(&downsample(&line))
    );

    // Flags on their own track, then anomalies on top of everything.
    let _ = write!(
        out,
        "<text class=\"track-name\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">flags</text>\
         <line class=\"track\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
        LEFT - 6.0,
        track_top + TRACK_H / 2.0 + 4.0,
        WIDTH - RIGHT,
        track_top + TRACK_H / 2.0,
        track_top + TRACK_H / 2.0,
    );
    for p in &flags {
        let codes: Vec<&str> = p.reasons.iter().filter_map(track_reason).collect();
        let _ = write!(
            out,
            "<rect class=\"flag {}\" data-event=\"{}\" x=\"{:.1}\" y=\"{track_top:.1}\" width=\"3\" height=\"{TRACK_H}\"><title>{}</title></rect>",
            codes.join(" "),
            esc(&p.event_id),
            x.at(p.t_ms as f64) - 1.5,
            esc(&describe(p))
        );
    }
    for p in pts.iter().filter(|p| p.is_anomaly) {
        let _ = write!(
            out,
            "<circle class=\"mark\" data-event=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"><title>{}</title></circle>",
            esc(&p.event_id),
            x.at(p.t_ms as f64),
            y.at(if p.value.is_finite() {
                p.value.clamp(lo, hi)
            } else {
                hi
            }),
            esc(&describe(p))
        );
    }
    out.push_str("</svg>");

    // The anomalies beside the chart, newest first.
    let mut flagged: Vec<&Point> = pts.iter().filter(|p| p.is_anomaly).collect();
    flagged.sort_by(|a, b| b.t_ms.cmp(&a.t_ms).then(a.event_id.cmp(&b.event_id)));
    if !flagged.is_empty() {
        out.push_str(
            "<table class=\"anomalies\"><tr><th>event time</th><th>event</th><th>value</th>\
             <th>score</th><th>reasons</th></tr>",
        );
        for p in flagged.iter().take(TABLE_ROWS) {
            let reasons: Vec<String> = p.reasons.iter().map(|r| esc(&r.to_string())).collect();
            let _ = write!(
                out,
                "<tr data-event=\"{id}\"><td>{}</td><td>{id}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{:.3}</td><td>{}</td></tr>",
                time(p.t_ms),
                number(p.value),
                p.score,
                reasons.join("<br>"),
                id = esc(&p.event_id),
            );
        }
        if flagged.len() > TABLE_ROWS {
            let _ = write!(
                out,
                "<tr><td colspan=\"5\" class=\"none\">and {} more (all marked on the chart; \
                 `pipeline anomalies --entity` lists them)</td></tr>",
                flagged.len() - TABLE_ROWS
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</article>\n");
}

/// The class of a non-value reason on the flag track; value outliers are marked on the series.
fn track_reason(r: &DetectReason) -> Option<&'static str> {
    match r {
        DetectReason::ValueOutlier { .. } => None,
        other => Some(other.code()),
    }
}

/// Hover text of a mark or flag.
fn describe(p: &Point) -> String {
    let mut s = format!(
        "{} · {}\nvalue {} · score {:.3}{}",
        time(p.t_ms),
        p.event_id,
        number(p.value),
        p.score,
        if p.is_anomaly { " · anomaly" } else { "" }
    );
    for r in &p.reasons {
        s.push('\n');
        s.push_str(&r.to_string());
    }
    s
}

/// The points sorted by event time (stable: processing order breaks ties).
fn by_time(pts: &[Point]) -> Vec<&Point> {
    let mut v: Vec<&Point> = pts.iter().collect();
    v.sort_by_key(|p| p.t_ms);
    v
}

/// The shaded expected range, one polygon per stretch where the detector had one.
fn band(out: &mut String, order: &[&Point], x: Scale, y: Scale, lo: f64, hi: f64) {
    let columns = COLUMN_W;
    let mut segments: Vec<Vec<(f64, f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64, f64)> = Vec::new();
    let mut last_col = None;
    for p in order {
        match p.band {
            Some([a, b]) => {
                let px = x.at(p.t_ms as f64);
                let col = (px / columns).floor() as i64;
                let (ya, yb) = (y.at(a.clamp(lo, hi)), y.at(b.clamp(lo, hi)));
                match current.last_mut() {
                    // One column: keep the widest range seen in it.
                    Some(c) if last_col == Some(col) => {
                        c.1 = c.1.max(ya);
                        c.2 = c.2.min(yb);
                    }
                    _ => current.push((px, ya, yb)),
                }
                last_col = Some(col);
            }
            None => {
                if !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
                last_col = None;
            }
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    for seg in segments {
        let mut d = String::new();
        for (i, (px, _, yb)) in seg.iter().enumerate() {
            let _ = write!(d, "{}{px:.1},{yb:.1}", if i == 0 { "M" } else { "L" });
        }
        for (px, ya, _) in seg.iter().rev() {
            let _ = write!(d, "L{px:.1},{ya:.1}");
        }
        d.push('Z');
        let _ = write!(out, "<path class=\"band\" d=\"{d}\"/>");
    }
}

/// Reduces a polyline (pixel coordinates, x ascending) to at most four points per column:
/// the first, lowest, highest and last, in x order, so spikes survive.
fn downsample(line: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let width = COLUMN_W;
    let mut out = Vec::with_capacity(line.len().min(COLUMNS * 4 + 4));
    let mut i = 0;
    while i < line.len() {
        let col = (line[i].0 / width).floor();
        let mut j = i;
        while j < line.len() && (line[j].0 / width).floor() == col {
            j += 1;
        }
        let chunk = &line[i..j];
        if chunk.len() <= 4 {
            out.extend_from_slice(chunk);
        } else {
            let by_y = |a: &&(f64, f64), b: &&(f64, f64)| a.1.total_cmp(&b.1);
            let mut keep = [0, chunk.len() - 1, 0, 0];
            keep[2] = chunk
                .iter()
                .enumerate()
                .min_by(|a, b| by_y(&a.1, &b.1))
                .map_or(0, |(k, _)| k);
            keep[3] = chunk
                .iter()
                .enumerate()
                .max_by(|a, b| by_y(&a.1, &b.1))
                .map_or(0, |(k, _)| k);
            keep.sort_unstable();
            let mut prev = None;
            for k in keep {
                if prev != Some(k) {
                    out.push(chunk[k]);
                }
                prev = Some(k);
            }
        }
        i = j;
    }
    out
}

fn path(points: &[(f64, f64)]) -> String {
    let mut d = String::with_capacity(points.len() * 14);
    for (i, (px, py)) in points.iter().enumerate() {
        let _ = write!(d, "{}{px:.1},{py:.1}", if i == 0 { "M" } else { "L" });
    }
    d
}

/// About `n` round values covering `[lo, hi]` (steps of 1, 2 or 5 × 10ᵏ).
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return Vec::new();
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi && out.len() < 50 {
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        v += step;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn downsampling_keeps_extremes_and_bounds_the_points() {
        // 60,000 points across the plot with one spike and one dip.
        let n = 60_000;
        let line: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let px = LEFT + (WIDTH - LEFT - RIGHT) * i as f64 / n as f64;
                let py = match i {
                    31_234 => 1.0,
                    45_000 => 300.0,
                    _ => 100.0 + (i % 7) as f64,
                };
                (px, py)
            })
            .collect();
        let d = downsample(&line);
        assert!(d.len() <= (COLUMNS + 2) * 4, "{} points", d.len());
        assert!(d.contains(&line[31_234]) && d.contains(&line[45_000]));
        assert_eq!(d.first(), line.first());
        assert_eq!(d.last(), line.last());
        assert!(d.windows(2).all(|w| w[0].0 <= w[1].0), "x order kept");
    }

    #[test]
    fn ticks_are_round_and_inside() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(-3.2, 117.0, 5);
        assert_eq!(t.first(), Some(&0.0));
        assert!(t.iter().all(|v| (-3.2..=117.0).contains(v)));
        assert!(ticks(1.0, 1.0, 5).is_empty());
    }
}
