//! How the page writes numbers, times, durations and text from events (escaped, so that it can
//! never break out of the page).

use chrono::DateTime;

pub(super) fn number(v: f64) -> String {
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

pub(super) fn time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| ms.to_string())
}

pub(super) fn duration(ms: i64) -> String {
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
pub(super) fn esc(s: &str) -> String {
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
