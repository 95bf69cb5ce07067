//! The page: inline CSS, static SVG charts and a few lines of script, nothing fetched, so the
//! file opens anywhere and can be attached to a ticket.
//!
//! The charts are SVG written here rather than with a charting crate: each anomaly must be its
//! own element carrying its reasons (`<title>`, shown on hover without any script) and its event
//! id (so the table beside the chart can highlight it), which `plotters`' SVG backend does not
//! offer, and the drawing is a few paths and circles on two linear scales. Series are
//! downsampled for drawing (first, last, lowest and highest value per pixel column, which keeps
//! every spike visible); marks and flags never are.

use std::fmt::Write;

use chrono::DateTime;

use super::{EntityView, Lag, Point, Report};
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
const COLUMNS: usize = 460;
/// Pixel width of a drawing column.
const COLUMN_W: f64 = (WIDTH - RIGHT - LEFT) / COLUMNS as f64;
/// Rows of the anomaly table under each chart; the marks are all drawn regardless.
const TABLE_ROWS: usize = 60;
/// Rows of the incident table (newest first); the card counts them all.
const INCIDENT_ROWS: usize = 100;

/// The whole page.
pub fn render(report: &Report, source: &str) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let s = &report.summary;
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pipeline report</title>
<style>{CSS}</style>
<script>window.reportErrors=[];window.addEventListener('error',function(e){{window.reportErrors.push(String(e.message));document.documentElement.setAttribute('data-errors',window.reportErrors.length);}});</script>
</head><body>
<header><h1>pipeline report</h1><p class="source">{source} · generated {now}</p></header>
<section id="summary"><h2>Summary</h2><div class="cards">
{records}{anomalies}{incidents}{quarantine}{entities}</div>
"#,
        source = esc(source),
        now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        records = card("records", s.records, "records stored"),
        anomalies = card("anomalies", s.anomalies, "flagged anomalous"),
        incidents = card("incidents", report.incidents.len(), "incidents"),
        quarantine = card("quarantine", s.quarantine, "quarantine entries"),
        entities = card("entities", s.entities, "entities"),
    );
    out.push_str("<div class=\"tables\">");
    let outcomes = [
        ("persisted", s.persisted),
        ("updated by a correction", s.updated),
        ("quarantine entries", s.quarantine),
        ("of which replayed since", s.replayed),
    ];
    table(&mut out, "Outcomes", "outcomes", outcomes.into_iter());
    table(
        &mut out,
        "Anomalies by reason",
        "anomaly-reasons",
        s.anomaly_reasons.iter().map(|(k, v)| (k.as_str(), *v)),
    );
    table(
        &mut out,
        "Quarantine by reason",
        "quarantine-reasons",
        s.quarantine_reasons.iter().map(|(k, v)| (k.as_str(), *v)),
    );
    table(
        &mut out,
        "Quarantine by stage",
        "quarantine-stages",
        s.quarantine_stages.iter().map(|(k, v)| (k.as_str(), *v)),
    );
    out.push_str("<table class=\"figures\" id=\"lag\"><caption>End-to-end lag</caption><tr><th></th><th>p50</th><th>p95</th><th>max</th></tr>");
    lag_row(&mut out, "occurred → received", s.ingestion_lag);
    lag_row(&mut out, "received → stored", s.pipeline_lag);
    out.push_str("</table></div>");
    if let Some(ev) = &report.evaluation {
        evaluation(&mut out, ev);
    }
    incidents(&mut out, &report.incidents);
    out.push_str("</section>\n");

    let _ = write!(
        out,
        "<section id=\"entities\"><h2>Entities</h2><p class=\"note\">Value over event time \
         (blue) with the range the detector expected before each event (shaded), anomalies \
         (red, reasons on hover and in the table), other flags on the track below{}. \
         Series are drawn at most {} points wide; every mark is drawn.</p>",
        if report.evaluation.is_some() {
            ", labelled windows behind (amber)"
        } else {
            ""
        },
        COLUMNS
    );
    if report.entities.is_empty() {
        out.push_str(if report.summary.records == 0 {
            "<p>No entity to draw: the store holds no records.</p>"
        } else {
            "<p>No entity drawn (<code>--top 0</code>).</p>"
        });
    }
    for e in &report.entities {
        entity(&mut out, e);
    }
    out.push_str("</section>\n");
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body></html>\n");
    out
}

/// The incident table: one row per episode, its alerts beside its events.
fn incidents(out: &mut String, rows: &[crate::inspect::IncidentRow]) {
    let _ = write!(
        out,
        "<table class=\"figures wide\" id=\"incidents\"><caption>Incidents{}</caption>\
         <tr><th>incident</th><th>entity</th><th>first event</th><th>last event</th>\
         <th class=\"num\">events</th><th class=\"num\">alerts</th><th class=\"num\">peak</th>\
         <th>state</th></tr>",
        if rows.len() > INCIDENT_ROWS {
            format!(" (newest {INCIDENT_ROWS} of {})", rows.len())
        } else {
            String::new()
        }
    );
    if rows.is_empty() {
        out.push_str("<tr><td class=\"none\" colspan=\"8\">none</td></tr>");
    }
    for r in rows.iter().take(INCIDENT_ROWS) {
        let _ = write!(
            out,
            "<tr data-incident=\"{id}\"><td>{id}</td><td>{entity}</td><td>{first}</td><td>{last}</td>\
             <td class=\"num\">{events}</td><td class=\"num\">{alerts}</td>\
             <td class=\"num\">{peak:.3}</td><td>{state}</td></tr>",
            id = esc(&r.id),
            entity = esc(&r.entity_id),
            first = esc(&r.first_at),
            last = esc(&r.last_at),
            events = r.events,
            alerts = r.alerts,
            peak = r.peak,
            state = if r.closed { "closed" } else { "open" },
        );
    }
    out.push_str("</table>");
}

fn card(key: &str, n: usize, what: &str) -> String {
    format!(
        "<div class=\"card\"><span class=\"n\" data-k=\"{key}\">{n}</span><span>{}</span></div>",
        esc(what)
    )
}

fn table<'a>(
    out: &mut String,
    caption: &str,
    id: &str,
    rows: impl Iterator<Item = (&'a str, usize)>,
) {
    let _ = write!(
        out,
        "<table class=\"figures\" id=\"{id}\"><caption>{}</caption>",
        esc(caption)
    );
    let mut any = false;
    for (k, v) in rows {
        any = true;
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\" data-k=\"{}\">{v}</td></tr>",
            esc(k),
            esc(k)
        );
    }
    if !any {
        out.push_str("<tr><td class=\"none\">none</td><td></td></tr>");
    }
    out.push_str("</table>");
}

fn lag_row(out: &mut String, name: &str, lag: Option<Lag>) {
    let _ = write!(out, "<tr><td>{name}</td>");
    match lag {
        Some(l) => {
            for ms in [l.p50_ms, l.p95_ms, l.max_ms] {
                let _ = write!(out, "<td class=\"num\">{}</td>", duration(ms));
            }
        }
        None => out.push_str("<td>-</td><td>-</td><td>-</td>"),
    }
    out.push_str("</tr>");
}

fn evaluation(out: &mut String, ev: &pipeline_core::evaluate::Evaluation) {
    out.push_str(
        "<table class=\"figures wide\" id=\"evaluation\"><caption>Against the labels \
         (the product's is_anomaly; see docs/detection.md)</caption><tr><th>streams</th>\
         <th>events</th><th>windows found</th><th>precision</th><th>recall</th><th>F1</th>\
         <th>median latency</th><th>FP / 1k</th><th>standard</th><th>low FP</th><th>low FN</th></tr>",
    );
    let opt = |x: Option<f64>, p: usize| x.map_or("-".to_owned(), |v| format!("{v:.p$}"));
    let rows = ev
        .by_kind
        .iter()
        .map(|(k, f)| (k.as_str(), f))
        .chain([("total", &ev.total)]);
    for (name, f) in rows {
        let _ = write!(
            out,
            "<tr data-k=\"{}\"><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}/{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\" data-score=\"standard\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(name),
            esc(name),
            f.events,
            f.windows_detected,
            f.windows,
            opt(f.precision, 2),
            opt(f.recall, 2),
            opt(f.f1, 2),
            f.median_latency_s
                .map_or("-".to_owned(), |s| duration((s * 1000.0) as i64)),
            opt(f.fp_per_1000, 2),
            opt(f.score_standard, 1),
            opt(f.score_low_fp, 1),
            opt(f.score_low_fn, 1),
        );
    }
    out.push_str("</table>");
}

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

fn entity(out: &mut String, e: &EntityView) {
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
pub(super) fn downsample(line: &[(f64, f64)]) -> Vec<(f64, f64)> {
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

fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.3e}", v)
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn duration(ms: i64) -> String {
    let a = ms.unsigned_abs();
    let sign = if ms < 0 { "−" } else { "" };
    if a < 1_000 {
        format!("{sign}{a} ms")
    } else if a < 120_000 {
        format!("{sign}{:.1} s", a as f64 / 1000.0)
    } else if a < 7_200_000 {
        format!("{sign}{:.1} min", a as f64 / 60_000.0)
    } else if a < 172_800_000 {
        format!("{sign}{:.1} h", a as f64 / 3_600_000.0)
    } else {
        format!("{sign}{:.1} d", a as f64 / 86_400_000.0)
    }
}

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
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

const CSS: &str = "
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--blue:#2563eb;--red:#dc2626}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);margin:0 auto;max-width:1100px;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:22px 0 2px;font-family:ui-monospace,monospace}
.source,.note,.counts{color:var(--muted);margin:2px 0 8px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid var(--line);border-radius:8px;padding:8px 16px;min-width:130px}
.card .n{display:block;font-size:24px;font-weight:600}.card span:last-child{color:var(--muted)}
.tables{display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start;margin-top:14px}
table{border-collapse:collapse;font-size:13px}caption{text-align:left;font-weight:600;padding-bottom:4px}
td,th{padding:2px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}.num{text-align:right;font-variant-numeric:tabular-nums}
.none{color:var(--muted)}table.wide{margin-top:16px}
svg.series{width:100%;height:auto;display:block;font-family:system-ui,sans-serif}
.frame{fill:none;stroke:var(--line)}.grid{stroke:#f1f5f9}.tick,.track-name{font-size:11px;fill:var(--muted)}
.band{fill:rgba(37,99,235,.13);stroke:none}.value{fill:none;stroke:var(--blue);stroke-width:1.1;stroke-linejoin:round}
.label-window{fill:rgba(245,158,11,.2)}.track{stroke:var(--line)}
.mark{fill:var(--red);stroke:#fff;stroke-width:1;cursor:help}.mark.hot,.flag.hot{stroke:#111;stroke-width:2.5}
.flag{fill:#7c3aed;cursor:help}.flag.failure_velocity{fill:#9333ea}.flag.event_velocity{fill:#0891b2}
.flag.new_country{fill:#16a34a}.flag.new_merchant{fill:#65a30d}.flag.late_event{fill:#9ca3af}
table.anomalies{margin:6px 0 0;width:100%}table.anomalies tr.hot{background:#fef2f2}
";

/// Hovering a table row highlights its mark, and hovering a mark its row.
const SCRIPT: &str = "
(function(){
  function hot(id,on){document.querySelectorAll('[data-event=\"'+CSS.escape(id)+'\"]').forEach(function(el){el.classList.toggle('hot',on);});}
  document.querySelectorAll('[data-event]').forEach(function(el){
    el.addEventListener('mouseenter',function(){hot(el.getAttribute('data-event'),true);});
    el.addEventListener('mouseleave',function(){hot(el.getAttribute('data-event'),false);});
  });
  document.documentElement.setAttribute('data-ready','1');
})();
";

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

    #[test]
    fn text_from_events_cannot_break_out_of_the_page() {
        assert_eq!(
            esc("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
