//! Backtesting detection against labels: point metrics, window metrics and a windowed score.
//!
//! The scoring follows the way streaming anomaly benchmarks score detectors (a window per
//! labelled anomaly, early detection rewarded, false positives charged), defined here exactly
//! so that a figure printed by `pipeline evaluate` can be recomputed by hand. `docs/detection.md`
//! states the same rules with worked examples.
//!
//! - A **stream** is one entity's events in event-time order (ties keep input order).
//! - An event is **labelled anomalous** when a window label covers it or a point label names
//!   it. Point metrics count those events: precision = flagged and labelled / flagged, recall =
//!   flagged and labelled / labelled.
//! - A **window** is a run of consecutive events of one stream, indices `a..=b`. A window label
//!   `{entity_id, start, end}` covers the entity's events with `start ≤ occurred_at ≤ end`; a
//!   point label `{event_id}` becomes a window centred on that event, `i − ⌊w/2⌋ ..= i + ⌈w/2⌉ − 1`
//!   cut at the stream's ends, whose width is `w = max(1, ⌊0.1 · n / k⌋)` events, `n` the
//!   stream's length and `k` its number of distinct labels (points and windows). Windows that
//!   overlap or touch are merged; a label that covers no event is dropped and counted.
//! - The **scaled sigmoid** is `σ(y) = 2 / (1 + e^{5y}) − 1` (`σ(y) = −1` for `y > 3`).
//! - Inside a window only the **first flag** counts: at index `i` it earns
//!   `A_tp · σ(−(b − i + 1) / len)`, `len = b − a + 1`; so the window's first event earns
//!   `A_tp · σ(−1) ≈ 0.987 A_tp` and its last `A_tp · σ(−1/len)` (0.245 for ten events, close
//!   to 0 for long windows, 0.987 for a one-event window). Later flags in the window are free.
//! - A flag **outside** every window adds `A_fp · σ(y)` with `y = (i − b) / len` of the
//!   nearest window before it (σ is negative there: a flag just after a window costs little,
//!   one far after it costs `A_fp`), or `−A_fp` when no window precedes it.
//! - A window with **no flag** costs `−A_fn`.
//! - Raw scores add up over streams; the **normalised score** is
//!   `100 · (raw − null) / (perfect − null)`, where `null = −A_fn · W` (flag nothing) and
//!   `perfect = A_tp · σ(−1) · W` (flag exactly the first event of every window), `W` the
//!   number of windows. It is undefined when there is no window.
//! - **Detection latency** is the event time from a window's first event to its first flag;
//!   the median over detected windows is reported (the mean of the middle two for an even
//!   count).
//!
//! This is our own definition, close to NAB's; [`nab`] is NAB v1.1's scorer exactly, for a
//! corpus in NAB's layout (`pipeline evaluate --nab`).
//!
//! (About 590 lines before the tests: labels, point and window metrics, the windowed score
//! and the sweep share their types and read as one definition of the scoring.)

use std::collections::{BTreeMap, HashMap};

use chrono::DateTime;
use serde::{Deserialize, Serialize};

pub mod nab;

/// Label values in a labels file that mark delivery cases, not anomalies (see `pipeline
/// generate`): they are skipped.
pub const DELIVERY_LABELS: &[&str] = &["malformed", "correction", "redelivery"];

/// One scored event, as the evaluation sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The event.
    pub event_id: String,
    /// Its entity (the stream it belongs to).
    pub entity_id: String,
    /// The stream kind it is reported under (e.g. the event's `source`).
    pub kind: String,
    /// Event time, ms.
    pub t_ms: i64,
    /// The detector's score.
    pub score: f64,
    /// The detector's verdict.
    pub is_anomaly: bool,
}

/// A ground-truth label.
#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    /// An anomalous stretch of one entity's stream, inclusive, in ms.
    Window {
        /// The entity.
        entity_id: String,
        /// First instant inside the window.
        start_ms: i64,
        /// Last instant inside the window.
        end_ms: i64,
    },
    /// One anomalous event.
    Point {
        /// The event.
        event_id: String,
    },
}

#[derive(Deserialize)]
struct LabelLine {
    entity_id: Option<String>,
    start: Option<String>,
    end: Option<String>,
    event_id: Option<String>,
    label: Option<String>,
}

/// A labels file that cannot be read: the line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LabelError(pub String);

/// Parses a labels file: JSON Lines of `{"entity_id","start","end"}` windows (RFC 3339) or
/// `{"event_id"}` points; other fields are ignored, as are lines whose `label` is one of
/// [`DELIVERY_LABELS`] and blank lines.
pub fn parse_labels(text: &str) -> Result<Vec<Label>, LabelError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| LabelError(format!("labels line {}: {m}", i + 1));
        let l: LabelLine = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if l.label
            .as_deref()
            .is_some_and(|k| DELIVERY_LABELS.contains(&k))
        {
            continue;
        }
        let time = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|e| bad(format!("`{s}` is not an RFC 3339 time: {e}")))
        };
        match (l.entity_id, l.start, l.end, l.event_id) {
            (Some(entity_id), Some(s), Some(e), _) => {
                let (start_ms, end_ms) = (time(&s)?, time(&e)?);
                if end_ms < start_ms {
                    return Err(bad("window ends before it starts".into()));
                }
                out.push(Label::Window {
                    entity_id,
                    start_ms,
                    end_ms,
                });
            }
            (_, None, None, Some(event_id)) => out.push(Label::Point { event_id }),
            _ => {
                return Err(bad(
                    "expected {\"entity_id\",\"start\",\"end\"} or {\"event_id\"}".into(),
                ));
            }
        }
    }
    Ok(out)
}

/// Costs of one scoring profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Profile {
    /// Profile name.
    pub name: &'static str,
    /// Weight of a detected window.
    pub a_tp: f64,
    /// Cost of a false positive.
    pub a_fp: f64,
    /// Cost of a missed window.
    pub a_fn: f64,
}

/// The three profiles: standard, low false positives, low false negatives.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        a_tp: 1.0,
        a_fp: 0.11,
        a_fn: 1.0,
    },
    Profile {
        name: "low_fp",
        a_tp: 1.0,
        a_fp: 0.22,
        a_fn: 1.0,
    },
    Profile {
        name: "low_fn",
        a_tp: 1.0,
        a_fp: 0.11,
        a_fn: 2.0,
    },
];

/// The scaled sigmoid of the windowed score.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// Additive totals for a set of streams; [`Figures`] are derived from them.
#[derive(Debug, Clone, Default, PartialEq)]
struct Tally {
    events: usize,
    labelled: usize,
    flagged: usize,
    true_flags: usize,
    windows: usize,
    detected: usize,
    latency_ms: Vec<i64>,
    outside: usize,
    flagged_outside: usize,
    raw: [f64; 3],
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.events += o.events;
        self.labelled += o.labelled;
        self.flagged += o.flagged;
        self.true_flags += o.true_flags;
        self.windows += o.windows;
        self.detected += o.detected;
        self.latency_ms.extend_from_slice(&o.latency_ms);
        self.outside += o.outside;
        self.flagged_outside += o.flagged_outside;
        for (r, x) in self.raw.iter_mut().zip(o.raw) {
            *r += x;
        }
    }

    fn figures(&self) -> Figures {
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                None
            } else {
                Some(round4(a as f64 / b as f64))
            }
        };
        let precision = ratio(self.true_flags, self.flagged);
        let recall = ratio(self.true_flags, self.labelled);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(round4(2.0 * p * r / (p + r))),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        let mut lat = self.latency_ms.clone();
        lat.sort_unstable();
        let median_latency_s = match lat.len() {
            0 => None,
            n if n % 2 == 1 => Some(lat[n / 2] as f64 / 1000.0),
            n => Some((lat[n / 2 - 1] + lat[n / 2]) as f64 / 2000.0),
        };
        let scores: [Option<f64>; 3] = std::array::from_fn(|k| {
            let (p, w) = (PROFILES[k], self.windows as f64);
            let null = -p.a_fn * w;
            let perfect = p.a_tp * scaled_sigmoid(-1.0) * w;
            (self.windows > 0).then(|| round2(100.0 * (self.raw[k] - null) / (perfect - null)))
        });
        Figures {
            events: self.events,
            flagged: self.flagged,
            labelled: self.labelled,
            precision,
            recall,
            f1,
            windows: self.windows,
            windows_detected: self.detected,
            median_latency_s,
            events_outside: self.outside,
            fp_outside: self.flagged_outside,
            fp_per_1000: if self.outside == 0 {
                None
            } else {
                Some(round2(
                    1000.0 * self.flagged_outside as f64 / self.outside as f64,
                ))
            },
            score_standard: scores[0],
            score_low_fp: scores[1],
            score_low_fn: scores[2],
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// What a set of streams scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Events scored.
    pub events: usize,
    /// Events flagged.
    pub flagged: usize,
    /// Events labelled anomalous (covered by a window label or named by a point label).
    pub labelled: usize,
    /// Flagged events labelled anomalous / flagged events.
    pub precision: Option<f64>,
    /// Flagged events labelled anomalous / events labelled anomalous.
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall.
    pub f1: Option<f64>,
    /// Windows.
    pub windows: usize,
    /// Windows with at least one flag.
    pub windows_detected: usize,
    /// Median time from a window's first event to its first flag, over detected windows.
    pub median_latency_s: Option<f64>,
    /// Events outside every window.
    pub events_outside: usize,
    /// Flags outside every window.
    pub fp_outside: usize,
    /// Flags outside windows per 1,000 events outside windows.
    pub fp_per_1000: Option<f64>,
    /// Normalised windowed score, standard profile.
    pub score_standard: Option<f64>,
    /// Normalised windowed score, low-FP profile.
    pub score_low_fp: Option<f64>,
    /// Normalised windowed score, low-FN profile.
    pub score_low_fn: Option<f64>,
}

/// The evaluation of one set of flags.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// All streams.
    pub total: Figures,
    /// Per stream kind.
    pub by_kind: BTreeMap<String, Figures>,
    /// Per entity.
    pub by_entity: BTreeMap<String, Figures>,
    /// Labels that matched no event (windows covering none, points of unknown events).
    pub unmatched_labels: usize,
}

struct Stream<'a> {
    kind: &'a str,
    events: Vec<&'a Outcome>,
    /// Merged windows as inclusive index ranges, sorted.
    windows: Vec<(usize, usize)>,
    /// Whether each event is labelled anomalous (point metrics).
    anomalous: Vec<bool>,
}

/// Outcomes and labels prepared once, so that many thresholds can be scored cheaply.
pub struct Prepared<'a> {
    streams: BTreeMap<&'a str, Stream<'a>>,
    unmatched: usize,
}

impl<'a> Prepared<'a> {
    /// Groups outcomes into streams and turns labels into windows. An event id seen twice
    /// (a redelivery) counts once, with its first outcome.
    pub fn new(outcomes: &'a [Outcome], labels: &[Label]) -> Self {
        let mut seen = std::collections::HashSet::new();
        let mut streams: BTreeMap<&str, Stream<'a>> = BTreeMap::new();
        for o in outcomes {
            if !seen.insert(o.event_id.as_str()) {
                continue;
            }
            streams
                .entry(o.entity_id.as_str())
                .or_insert_with(|| Stream {
                    kind: o.kind.as_str(),
                    events: Vec::new(),
                    windows: Vec::new(),
                    anomalous: Vec::new(),
                })
                .events
                .push(o);
        }
        let mut position: HashMap<&str, (&str, usize)> = HashMap::new();
        for (entity, s) in streams.iter_mut() {
            s.events.sort_by_key(|o| o.t_ms); // stable: ties keep input order
            s.anomalous = vec![false; s.events.len()];
            for (i, o) in s.events.iter().enumerate() {
                position.insert(o.event_id.as_str(), (entity, i));
            }
        }
        let mut unmatched = 0;
        // A point label given twice is one label.
        let mut points: BTreeMap<&str, std::collections::BTreeSet<usize>> = BTreeMap::new();
        let mut ranges: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
        for l in labels {
            match l {
                Label::Point { event_id } => match position.get(event_id.as_str()) {
                    Some((entity, i)) => {
                        points.entry(entity).or_default().insert(*i);
                    }
                    None => unmatched += 1,
                },
                Label::Window {
                    entity_id,
                    start_ms,
                    end_ms,
                } => {
                    let Some((entity, s)) = streams.get_key_value(entity_id.as_str()) else {
                        unmatched += 1;
                        continue;
                    };
                    let a = s.events.partition_point(|o| o.t_ms < *start_ms);
                    let b = s.events.partition_point(|o| o.t_ms <= *end_ms);
                    if b > a {
                        ranges.entry(entity).or_default().push((a, b - 1));
                    } else {
                        unmatched += 1;
                    }
                }
            }
        }
        for (entity, r) in &ranges {
            if let Some(s) = streams.get_mut(entity) {
                for &(a, b) in r {
                    s.anomalous[a..=b].fill(true);
                }
            }
        }
        for (entity, idx) in points {
            let Some(s) = streams.get_mut(entity) else {
                continue;
            };
            let n = s.events.len();
            // Distinct labels: a window label given twice (same events) counts once, as a
            // point label given twice does.
            let windows = ranges.get(entity).map_or(0, |r| {
                r.iter().collect::<std::collections::BTreeSet<_>>().len()
            });
            let k = idx.len() + windows;
            let width = ((0.1 * n as f64 / k as f64).floor() as usize).max(1);
            for i in idx {
                s.anomalous[i] = true;
                let a = i.saturating_sub(width / 2);
                let b = (i + (width - 1 - width / 2)).min(n - 1);
                ranges.entry(entity).or_default().push((a, b));
            }
        }
        for (entity, mut r) in ranges {
            r.sort_unstable();
            let mut merged: Vec<(usize, usize)> = Vec::new();
            for (a, b) in r {
                match merged.last_mut() {
                    Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            if let Some(s) = streams.get_mut(entity) {
                s.windows = merged;
            }
        }
        Prepared { streams, unmatched }
    }

    /// Each entity's labelled windows in event time (first and last event inside, ms),
    /// merged and sorted, as they are scored: point labels already widened.
    pub fn windows_ms(&self) -> BTreeMap<&'a str, Vec<(i64, i64)>> {
        self.streams
            .iter()
            .filter(|(_, s)| !s.windows.is_empty())
            .map(|(entity, s)| {
                let spans = s
                    .windows
                    .iter()
                    .map(|&(a, b)| (s.events[a].t_ms, s.events[b].t_ms))
                    .collect();
                (*entity, spans)
            })
            .collect()
    }

    /// Scores the flags chosen by `flag`.
    pub fn evaluate(&self, flag: impl Fn(&Outcome) -> bool) -> Evaluation {
        let mut total = Tally::default();
        let mut kinds: BTreeMap<String, Tally> = BTreeMap::new();
        let mut by_entity = BTreeMap::new();
        for (entity, s) in &self.streams {
            let t = tally(s, &flag);
            total.add(&t);
            kinds.entry(s.kind.to_owned()).or_default().add(&t);
            by_entity.insert((*entity).to_owned(), t.figures());
        }
        Evaluation {
            total: total.figures(),
            by_kind: kinds.into_iter().map(|(k, t)| (k, t.figures())).collect(),
            by_entity,
            unmatched_labels: self.unmatched,
        }
    }

    /// The threshold over `score` with the best standard score on all streams, and its
    /// evaluation. Candidates are the distinct scores, or about 200 quantiles of them when
    /// there are more, always including the highest; and flagging nothing (threshold
    /// `f64::INFINITY`, score 0), chosen when no threshold scores above it. `None` without
    /// windows: with nothing to find, the best threshold is "flag nothing".
    pub fn sweep(&self) -> Option<(f64, Evaluation)> {
        if self.streams.values().all(|s| s.windows.is_empty()) {
            return None;
        }
        let candidates = thresholds(
            self.streams
                .values()
                .flat_map(|s| s.events.iter().map(|o| o.score)),
        );
        if candidates.is_empty() {
            return None;
        }
        let mut best: Option<(f64, Evaluation)> = None;
        for th in candidates {
            let ev = self.evaluate(|o| o.score >= th);
            let better = match &best {
                None => true,
                Some((_, b)) => {
                    ev.total.score_standard.unwrap_or(f64::MIN)
                        > b.total.score_standard.unwrap_or(f64::MIN)
                }
            };
            if better {
                best = Some((th, ev));
            }
        }
        let beats_nothing =
            |b: &(f64, Evaluation)| b.1.total.score_standard.is_some_and(|x| x > 0.0);
        match best {
            Some(b) if beats_nothing(&b) => Some(b),
            _ => Some((f64::INFINITY, self.evaluate(|_| false))),
        }
    }
}

/// The thresholds a sweep tries over `scores`: the distinct finite scores, or about 200
/// quantiles of them when there are more, always including the highest.
pub(crate) fn thresholds(scores: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut scores: Vec<f64> = scores.filter(|x| x.is_finite()).collect();
    scores.sort_by(f64::total_cmp);
    scores.dedup();
    let step = (scores.len() / 200).max(1);
    let highest = scores.last().copied();
    let mut candidates: Vec<f64> = scores.iter().step_by(step).copied().collect();
    if candidates.last().copied() != highest {
        candidates.extend(highest);
    }
    candidates
}

fn tally(s: &Stream<'_>, flag: &impl Fn(&Outcome) -> bool) -> Tally {
    let mut t = Tally {
        events: s.events.len(),
        windows: s.windows.len(),
        ..Tally::default()
    };
    let mut w = 0usize; // the first window not entirely before the current event
    let mut detected = vec![false; s.windows.len()];
    for (i, o) in s.events.iter().enumerate() {
        while w < s.windows.len() && s.windows[w].1 < i {
            w += 1;
        }
        let inside = w < s.windows.len() && s.windows[w].0 <= i;
        let anomalous = s.anomalous.get(i).copied().unwrap_or(false);
        let flagged = flag(o);
        if anomalous {
            t.labelled += 1;
        }
        if !inside {
            t.outside += 1;
        }
        if !flagged {
            continue;
        }
        t.flagged += 1;
        if anomalous {
            t.true_flags += 1;
        }
        if inside {
            if !detected[w] {
                detected[w] = true;
                let (a, b) = s.windows[w];
                let len = (b - a + 1) as f64;
                let y = -((b - i + 1) as f64) / len;
                for (r, p) in t.raw.iter_mut().zip(PROFILES) {
                    *r += p.a_tp * scaled_sigmoid(y);
                }
                t.latency_ms.push(o.t_ms - s.events[a].t_ms);
            }
        } else {
            t.flagged_outside += 1;
            let sig = match w.checked_sub(1).map(|p| s.windows[p]) {
                Some((a, b)) => scaled_sigmoid((i - b) as f64 / (b - a + 1) as f64),
                None => -1.0,
            };
            for (r, p) in t.raw.iter_mut().zip(PROFILES) {
                *r += p.a_fp * sig;
            }
        }
    }
    let missed = detected.iter().filter(|d| !**d).count();
    t.detected = detected.len() - missed;
    for (r, p) in t.raw.iter_mut().zip(PROFILES) {
        *r -= p.a_fn * missed as f64;
    }
    t
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// One entity, events at t = 0, 1, …, n−1 seconds; `flags` lists flagged indices.
    fn stream(n: usize, flags: &[usize]) -> Vec<Outcome> {
        (0..n)
            .map(|i| Outcome {
                event_id: format!("e{i}"),
                entity_id: "x".into(),
                kind: "k".into(),
                t_ms: i as i64 * 1000,
                score: if flags.contains(&i) { 1.0 } else { 0.0 },
                is_anomaly: flags.contains(&i),
            })
            .collect()
    }

    fn window(a: i64, b: i64) -> Label {
        Label::Window {
            entity_id: "x".into(),
            start_ms: a * 1000,
            end_ms: b * 1000,
        }
    }

    fn score(n: usize, flags: &[usize], labels: &[Label]) -> Figures {
        let o = stream(n, flags);
        Prepared::new(&o, labels).evaluate(|o| o.is_anomaly).total
    }

    fn close(a: Option<f64>, b: f64) {
        let a = a.unwrap();
        assert!((a - b).abs() < 0.006, "{a} != {b}");
    }

    #[test]
    fn sigmoid_end_points() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_298).abs() < 1e-9);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    #[test]
    fn nothing_flagged_is_zero_and_first_event_is_hundred() {
        let labels = [window(10, 19), window(50, 59)];
        close(score(100, &[], &labels).score_standard, 0.0);
        let perfect = score(100, &[10, 50], &labels);
        close(perfect.score_standard, 100.0);
        close(perfect.score_low_fp, 100.0);
        close(perfect.score_low_fn, 100.0);
        assert_eq!(perfect.windows_detected, 2);
        assert_eq!(perfect.median_latency_s, Some(0.0));
    }

    #[test]
    fn late_detection_and_later_flags_in_a_window() {
        // One window of 10 events, flagged at its 6th event (i = 15) and again at 16:
        // y = −(19 − 15 + 1)/10 = −0.5, σ = 2/(1+e^−2.5) − 1 = 0.848284; the second flag is free.
        let f = score(100, &[15, 16], &[window(10, 19)]);
        let expected = 100.0 * (0.848_283_639 + 1.0) / (0.986_614_298 + 1.0);
        close(f.score_standard, expected);
        assert_eq!(f.median_latency_s, Some(5.0));
        assert_eq!(f.fp_outside, 0);
    }

    #[test]
    fn false_positives_before_and_just_after_a_window() {
        // Window 10..=19 detected at 10; a flag at 5 (no window before: −A_fp) and one at 24
        // (y = (24 − 19)/10 = 0.5: σ = 2/(1+e^2.5) − 1 = −0.848284).
        let f = score(100, &[5, 10, 24], &[window(10, 19)]);
        let raw = 0.986_614_298 - 0.11 - 0.11 * 0.848_283_639;
        close(
            f.score_standard,
            100.0 * (raw + 1.0) / (0.986_614_298 + 1.0),
        );
        let raw_low_fp = 0.986_614_298 - 0.22 - 0.22 * 0.848_283_639;
        close(
            f.score_low_fp,
            100.0 * (raw_low_fp + 1.0) / (0.986_614_298 + 1.0),
        );
        assert_eq!(f.fp_outside, 2);
        assert_eq!(f.events_outside, 90);
        close(f.fp_per_1000, 1000.0 * 2.0 / 90.0);
    }

    #[test]
    fn missed_window_costs_a_fn() {
        // Two windows, one detected at its first event, one missed; low-FN doubles the miss.
        let labels = [window(10, 19), window(50, 59)];
        let f = score(100, &[10], &labels);
        let s = 0.986_614_298;
        close(f.score_standard, 100.0 * (s - 1.0 + 2.0) / (2.0 * s + 2.0));
        close(f.score_low_fn, 100.0 * (s - 2.0 + 4.0) / (2.0 * s + 4.0));
        assert_eq!(f.windows_detected, 1);
    }

    #[test]
    fn point_labels_become_centred_windows() {
        // n = 200, two point labels: width ⌊0.1·200/2⌋ = 10, window of e100 = 95..=104.
        let labels = [
            Label::Point {
                event_id: "e100".into(),
            },
            Label::Point {
                event_id: "e150".into(),
            },
        ];
        let f = score(200, &[95, 100], &labels);
        assert_eq!(f.windows, 2);
        assert_eq!(f.true_flags_for_test(), 2, "both flags are inside a window");
        // First flag at the window's first event: full reward; the other window is missed.
        let s = 0.986_614_298;
        close(f.score_standard, 100.0 * (s - 1.0 + 2.0) / (2.0 * s + 2.0));
        // Point metrics count the labelled events only, not the widened windows: e100 is
        // labelled and flagged, e95 flagged but not labelled, e150 labelled but missed.
        assert_eq!(f.labelled, 2);
        close(f.precision, 0.5);
        close(f.recall, 0.5);
        // As drawn: the same widened windows, in event time.
        let o = stream(200, &[]);
        let spans = Prepared::new(&o, &labels).windows_ms();
        assert_eq!(spans["x"], vec![(95_000, 104_000), (145_000, 154_000)]);
    }

    fn point(i: usize) -> Label {
        Label::Point {
            event_id: format!("e{i}"),
        }
    }

    fn spans(n: usize, labels: &[Label]) -> Vec<(i64, i64)> {
        let o = stream(n, &[]);
        Prepared::new(&o, labels)
            .windows_ms()
            .remove("x")
            .unwrap_or_default()
    }

    #[test]
    fn point_windows_are_cut_at_the_stream_ends_and_k_counts_distinct_labels() {
        // n = 100, one label: width 10, i − 5 ..= i + 4, cut at both ends.
        assert_eq!(spans(100, &[point(0)]), vec![(0, 4_000)]);
        assert_eq!(spans(100, &[point(99)]), vec![(94_000, 99_000)]);
        assert_eq!(spans(100, &[point(50)]), vec![(45_000, 54_000)]);
        // The same point label twice is one label: still width 10.
        assert_eq!(spans(100, &[point(50), point(50)]), vec![(45_000, 54_000)]);
        // A window label counts too: k = 2, width 5, 50 − 2 ..= 50 + 2; given twice, once.
        for labels in [
            &[point(50), window(80, 81)][..],
            &[point(50), window(80, 81), window(80, 81)][..],
        ] {
            assert_eq!(spans(100, labels), vec![(48_000, 52_000), (80_000, 81_000)]);
        }
    }

    #[test]
    fn median_latency_of_an_even_count_is_the_mean_of_the_middle_two() {
        // Detected 2 s and 5 s after the windows open.
        let f = score(100, &[12, 55], &[window(10, 19), window(50, 59)]);
        assert_eq!(f.median_latency_s, Some(3.5));
    }

    #[test]
    fn overlapping_windows_merge_and_empty_ones_are_counted() {
        let labels = [window(10, 19), window(15, 30), window(1000, 2000)];
        let f = score(100, &[], &labels);
        assert_eq!(f.windows, 1);
        assert_eq!(f.labelled, 21);
        // Touching windows merge too: one anomaly labelled in two parts is one window.
        assert_eq!(
            score(100, &[], &[window(10, 19), window(20, 29)]).windows,
            1
        );
        let o = stream(100, &[]);
        assert_eq!(
            Prepared::new(&o, &labels)
                .evaluate(|_| false)
                .unmatched_labels,
            1
        );
    }

    #[test]
    fn sweep_finds_the_threshold_that_separates() {
        let mut o = stream(100, &[]);
        o[10].score = 0.9;
        o[50].score = 0.7; // a false alarm, below the true one
        let labels = [window(10, 19)];
        let (th, ev) = Prepared::new(&o, &labels).sweep().unwrap();
        assert_eq!(th, 0.9);
        close(ev.total.score_standard, 100.0);
    }

    #[test]
    fn sweep_always_tries_the_highest_score_and_flagging_nothing() {
        // 500 distinct scores, tried every second one (the 500th, the highest, would be
        // skipped), but the highest, the only event in the window, must be tried: it scores 100.
        let mut o = stream(500, &[]);
        for (i, e) in o.iter_mut().enumerate() {
            e.score = i as f64 / 1000.0;
        }
        o[200].score = 0.999;
        let (th, ev) = Prepared::new(&o, &[window(200, 209)]).sweep().unwrap();
        assert_eq!(th, 0.999);
        close(ev.total.score_standard, 100.0);

        // The only high score is a false alarm, and flagging everything costs 98 of them for
        // one window: no threshold beats flagging nothing.
        let mut o = stream(100, &[]);
        o[80].score = 0.9;
        let (th, ev) = Prepared::new(&o, &[window(10, 11)]).sweep().unwrap();
        assert_eq!(th, f64::INFINITY);
        assert_eq!(ev.total.flagged, 0);
        close(ev.total.score_standard, 0.0);
    }

    #[test]
    fn labels_file_forms() {
        let text = r#"{"entity_id":"x","start":"2026-01-01T00:00:00Z","end":"2026-01-01T01:00:00Z","kind":"spike"}
{"event_id":"e1","label":"spike"}
{"event_id":"e2","label":"redelivery"}

"#;
        let l = parse_labels(text).unwrap();
        assert_eq!(l.len(), 2);
        assert!(parse_labels(r#"{"entity_id":"x"}"#).is_err());
        assert!(
            parse_labels(
                r#"{"entity_id":"x","start":"2026-01-02T00:00:00Z","end":"2026-01-01T00:00:00Z"}"#
            )
            .is_err()
        );
    }

    impl Figures {
        fn true_flags_for_test(&self) -> usize {
            self.flagged - self.fp_outside
        }
    }
}
