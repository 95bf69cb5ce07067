//! The page: inline CSS, static SVG charts and a few lines of script, nothing fetched, so the
//! file opens anywhere and can be attached to a ticket.
//!
//! The charts (`chart`) are SVG written by hand rather than with a charting crate: each anomaly must be its
//! own element carrying its reasons (`<title>`, shown on hover without any script) and its event
//! id (so the table beside the chart can highlight it), which `plotters`' SVG backend does not
//! offer, and the drawing is a few paths and circles on two linear scales. Series are
//! downsampled for drawing (first, last, lowest and highest value per pixel column, which keeps
//! every spike visible); marks and flags never are.

use std::fmt::Write;

use super::format::{duration, esc};
use super::{Lag, Report};

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
        super::chart::COLUMNS
    );
    if report.entities.is_empty() {
        out.push_str(if report.summary.records == 0 {
            "<p>No entity to draw: the store holds no records.</p>"
        } else {
            "<p>No entity drawn (<code>--top 0</code>).</p>"
        });
    }
    for e in &report.entities {
        super::chart::entity(&mut out, e);
    }
    out.push_str("</section>\n");
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body></html>\n");
    out
}

/// The incident table: one row per episode, its alerts beside its events.
fn incidents(out: &mut String, rows: &[crate::incidents::IncidentRow]) {
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
    use super::*;

    #[test]
    fn text_from_events_cannot_break_out_of_the_page() {
        assert_eq!(
            esc("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
