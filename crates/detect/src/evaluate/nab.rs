//! The Numenta Anomaly Benchmark's scoring (NAB v1.1), exactly, for `pipeline evaluate --nab`.
//!
//! NAB scores a detector on a corpus of streams, each a list of rows with labelled anomaly
//! windows. The rules, per stream of `n` rows (`docs/detection.md` works examples):
//!
//! - The first `min(⌊0.15 · n⌋, 750)` rows are the **probationary period**: detections there
//!   count for nothing, and a window with no row after it is not scored at all.
//! - A window covers the rows from its start to its end time, inclusive (NAB's labels start
//!   and end on a row); its width `w` is its number of rows.
//! - Inside a window only the **earliest detection** counts. At row `i` of a window ending at
//!   row `b` it earns `A_tp · σ(−(b − i + 1) / w) / σ(−1)`: exactly `A_tp` at the window's first
//!   row, less the later it comes. Later detections in the window are free.
//! - A detection **outside** every window costs `A_fp · σ(|i − b'| / (w' − 1))`, `b'` and `w'`
//!   the last row and width of the nearest window before it, so a detection just after a
//!   window costs little; with no window before it, or 3 or more window lengths after one,
//!   it costs `A_fp` in full.
//! - A scored window with no detection costs `A_fn`.
//! - `σ(y) = 2 / (1 + e^{5y}) − 1`, and `−1` for `y ≥ 3` (NAB's scaled sigmoid).
//! - The raw scores add up over the corpus and are **normalised** as NAB's runner does:
//!   `100 · (raw − null) / (perfect − null)`, with `null = −A_fn · (windows scored)` (flag
//!   nothing) and `perfect = A_tp · (windows labelled)`.
//!
//! Profiles: standard (`A_tp` 1, `A_fp` 0.11, `A_fn` 1), reward_low_FP_rate (`A_fp` 0.22) and
//! reward_low_FN_rate (`A_fn` 2), NAB's names.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{PROFILES, scaled_sigmoid};

/// One stream of a NAB corpus: its rows' times and its labelled windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// `group/file.csv`, as the labels name it.
    pub name: String,
    /// The folder under `data/` (`realTweets`, …).
    pub group: String,
    /// Each row's time, ms, in file order.
    pub t_ms: Vec<i64>,
    /// Labelled windows, first and last instant inside, ms.
    pub windows: Vec<(i64, i64)>,
}

/// A number per NAB profile, under NAB's profile names.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ByProfile {
    /// `A_tp` 1, `A_fp` 0.11, `A_fn` 1.
    pub standard: f64,
    /// `A_fp` 0.22.
    #[serde(rename = "reward_low_FP_rate")]
    pub reward_low_fp_rate: f64,
    /// `A_fn` 2.
    #[serde(rename = "reward_low_FN_rate")]
    pub reward_low_fn_rate: f64,
}

impl ByProfile {
    fn from_fn(f: impl Fn(usize) -> f64) -> Self {
        ByProfile {
            standard: f(0),
            reward_low_fp_rate: f(1),
            reward_low_fn_rate: f(2),
        }
    }

    fn get(&self, k: usize) -> f64 {
        [
            self.standard,
            self.reward_low_fp_rate,
            self.reward_low_fn_rate,
        ][k]
    }
}

/// What a stream, or a set of streams, counts.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Counts {
    /// Rows.
    pub rows: usize,
    /// Detections after the probationary period.
    pub flags: usize,
    /// Of those, detections outside every window.
    pub false_positives: usize,
    /// Windows labelled.
    pub windows: usize,
    /// Windows with a row after the probationary period (the others are not scored).
    pub windows_scored: usize,
    /// Scored windows with a detection.
    pub windows_found: usize,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.rows += o.rows;
        self.flags += o.flags;
        self.false_positives += o.false_positives;
        self.windows += o.windows;
        self.windows_scored += o.windows_scored;
        self.windows_found += o.windows_found;
    }
}

/// What one stream scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamScore {
    /// `group/file.csv`.
    pub stream: String,
    /// Its group.
    pub group: String,
    /// Rows of the probationary period.
    pub probation: usize,
    /// Rows, detections, windows.
    #[serde(flatten)]
    pub counts: Counts,
    /// Raw score.
    pub raw: ByProfile,
}

/// Totals over a set of streams (a group, or the corpus).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Streams.
    pub streams: usize,
    /// Rows, detections, windows, added up.
    #[serde(flatten)]
    pub counts: Counts,
    /// Raw score.
    pub raw: ByProfile,
    /// The raw score of flagging nothing.
    pub null: ByProfile,
    /// The raw score of detecting every window at its first row, and nothing else.
    pub perfect: ByProfile,
    /// The normalised score, 0 (flag nothing) … 100 (perfect); `None` without windows.
    pub normalised: Option<ByProfile>,
}

impl Summary {
    fn of<'a>(scores: impl Iterator<Item = &'a StreamScore>) -> Summary {
        let mut s = Summary {
            streams: 0,
            counts: Counts::default(),
            raw: ByProfile::default(),
            null: ByProfile::default(),
            perfect: ByProfile::default(),
            normalised: None,
        };
        let mut raw = [0.0; 3];
        for x in scores {
            s.streams += 1;
            s.counts.add(&x.counts);
            for (k, r) in raw.iter_mut().enumerate() {
                *r += x.raw.get(k);
            }
        }
        s.raw = ByProfile::from_fn(|k| raw[k]);
        let c = s.counts;
        s.null = ByProfile::from_fn(|k| 0.0 - PROFILES[k].a_fn * c.windows_scored as f64);
        s.perfect = ByProfile::from_fn(|k| PROFILES[k].a_tp * c.windows as f64);
        s.normalised = (c.windows > 0).then(|| {
            ByProfile::from_fn(|k| {
                let (raw, null, perfect) = (s.raw.get(k), s.null.get(k), s.perfect.get(k));
                100.0 * (raw - null) / (perfect - null)
            })
        });
        s
    }
}

/// The corpus's scores: per stream, per group and in total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// One row per stream, in input order.
    pub streams: Vec<StreamScore>,
    /// Per group.
    pub groups: BTreeMap<String, Summary>,
    /// The corpus.
    pub total: Summary,
}

/// Rows of a stream's probationary period: `min(⌊0.15 · rows⌋, 750)`.
pub fn probation(rows: usize) -> usize {
    ((0.15 * rows as f64).floor() as usize).min(750)
}

/// NAB's scaled sigmoid: [`scaled_sigmoid`], but `−1` from `y = 3` on (inclusive, as NAB has it).
fn sigmoid(y: f64) -> f64 {
    if y >= 3.0 { -1.0 } else { scaled_sigmoid(y) }
}

/// Scores one stream's detections (`flags[i]` for row `i`).
pub fn score_stream(stream: &Stream, flags: &[bool]) -> StreamScore {
    let n = stream.t_ms.len();
    let probation = probation(n);
    // Each window as the rows it covers; one that covers no row is labelled but never scored.
    let rows: Vec<Option<(usize, usize)>> = stream
        .windows
        .iter()
        .map(|&(start, end)| {
            let a = stream.t_ms.partition_point(|t| *t < start);
            let b = stream.t_ms.partition_point(|t| *t <= end);
            (b > a).then(|| (a, b - 1))
        })
        .collect();
    let mut spans: Vec<(usize, usize)> = rows.iter().flatten().copied().collect();
    spans.sort_unstable();
    let mut best: Vec<Option<f64>> = vec![None; spans.len()]; // σ-weight of the earliest flag
    let mut fp_cost = 0.0; // Σ σ over false positives, before the profile's A_fp
    let mut flagged = 0;
    let mut false_positives = 0;
    let mut w = 0; // the first window that does not end before row i
    for i in probation..n {
        while w < spans.len() && spans[w].1 < i {
            w += 1;
        }
        if !flags.get(i).copied().unwrap_or(false) {
            continue;
        }
        flagged += 1;
        match spans.get(w) {
            Some(&(a, b)) if a <= i => {
                let width = (b - a + 1) as f64;
                let weight = sigmoid(-((b - i + 1) as f64) / width) / sigmoid(-1.0);
                let slot = &mut best[w];
                *slot = Some(slot.map_or(weight, |x: f64| x.max(weight)));
            }
            _ => {
                false_positives += 1;
                fp_cost += match w.checked_sub(1).map(|p| spans[p]) {
                    // A one-row window: NAB divides by zero there; count it as far past.
                    Some((a, b)) if b > a => sigmoid((i - b) as f64 / (b - a) as f64),
                    _ => -1.0,
                };
            }
        }
    }
    let scored: Vec<usize> = (0..spans.len())
        .filter(|&k| spans[k].1 >= probation)
        .collect();
    let found = scored.iter().filter(|&&k| best[k].is_some()).count();
    let raw = ByProfile::from_fn(|p| {
        let cost = PROFILES[p];
        let windows: f64 = scored
            .iter()
            .map(|&k| best[k].map_or(-cost.a_fn, |x| cost.a_tp * x))
            .sum();
        windows + cost.a_fp * fp_cost
    });
    StreamScore {
        stream: stream.name.clone(),
        group: stream.group.clone(),
        probation,
        counts: Counts {
            rows: n,
            flags: flagged,
            false_positives,
            windows: stream.windows.len(),
            windows_scored: scored.len(),
            windows_found: found,
        },
        raw,
    }
}

/// Scores a corpus: `flags[s][i]` is the detection for row `i` of stream `s`.
pub fn score(streams: &[Stream], flags: &[Vec<bool>]) -> Scores {
    let per: Vec<StreamScore> = streams
        .iter()
        .zip(flags)
        .map(|(s, f)| score_stream(s, f))
        .collect();
    let mut groups: BTreeMap<String, Vec<&StreamScore>> = BTreeMap::new();
    for s in &per {
        groups.entry(s.group.clone()).or_default().push(s);
    }
    let groups = groups
        .into_iter()
        .map(|(g, v)| (g, Summary::of(v.into_iter())))
        .collect();
    Scores {
        total: Summary::of(per.iter()),
        groups,
        streams: per,
    }
}

/// The best threshold over `scores` (`scores[s][i]` for row `i` of stream `s`) for each
/// profile, as NAB optimises one per profile, with the corpus's normalised score there:
/// candidates as [`super::Prepared::sweep`] takes them, and flagging nothing.
pub fn sweep(streams: &[Stream], scores: &[Vec<f64>]) -> [(f64, f64); 3] {
    let candidates = super::thresholds(scores.iter().flatten().copied());
    // Flagging nothing scores 0 on every profile.
    let mut best = [(f64::INFINITY, 0.0); 3];
    for th in candidates {
        let flags: Vec<Vec<bool>> = scores
            .iter()
            .map(|s| s.iter().map(|x| *x >= th).collect())
            .collect();
        if let Some(n) = score(streams, &flags).total.normalised {
            for (k, b) in best.iter_mut().enumerate() {
                if n.get(k) > b.1 {
                    *b = (th, n.get(k));
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of `n` rows one second apart with windows given as row ranges.
    fn stream(n: usize, windows: &[(usize, usize)]) -> Stream {
        Stream {
            name: "g/s.csv".into(),
            group: "g".into(),
            t_ms: (0..n as i64).map(|i| i * 1000).collect(),
            windows: windows
                .iter()
                .map(|&(a, b)| (a as i64 * 1000, b as i64 * 1000))
                .collect(),
        }
    }

    fn flags(n: usize, at: &[usize]) -> Vec<bool> {
        (0..n).map(|i| at.contains(&i)).collect()
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    /// σ(y) = 2 / (1 + e^{5y}) − 1, written out for the expected values.
    fn sig(y: f64) -> f64 {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }

    #[test]
    fn probation_is_fifteen_percent_up_to_750_rows() {
        assert_eq!(probation(4032), 604);
        assert_eq!(probation(100), 15);
        assert_eq!(probation(5000), 750);
        assert_eq!(probation(22_695), 750);
    }

    #[test]
    fn detections_in_the_probationary_period_count_for_nothing() {
        // 100 rows: probation 15. A flag at row 3 is ignored, as is a window inside probation.
        let s = stream(100, &[(5, 10), (50, 59)]);
        let r = score_stream(&s, &flags(100, &[3, 7]));
        assert_eq!((r.counts.flags, r.counts.false_positives), (0, 0));
        let c = r.counts;
        assert_eq!((c.windows, c.windows_scored, c.windows_found), (2, 1, 0));
        close(r.raw.standard, -1.0);
        // A window that straddles the end of probation is scored on its later rows only,
        // by their position in the whole window.
        let s = stream(100, &[(10, 19)]);
        let r = score_stream(&s, &flags(100, &[12, 16]));
        assert_eq!((r.counts.windows_scored, r.counts.windows_found), (1, 1));
        close(r.raw.standard, sig(-(19.0 - 16.0 + 1.0) / 10.0) / sig(-1.0));
    }

    #[test]
    fn only_the_first_detection_in_a_window_counts() {
        let s = stream(100, &[(50, 59)]);
        let first = score_stream(&s, &flags(100, &[50]));
        close(first.raw.standard, 1.0);
        // At the window's sixth row: σ(−0.5) / σ(−1); the later flags add nothing.
        let late = score_stream(&s, &flags(100, &[55, 56, 59]));
        close(late.raw.standard, sig(-0.5) / sig(-1.0));
        close(
            late.raw.standard,
            0.848_283_639_957_513 / 0.986_614_298_151_430_3,
        );
        assert_eq!((late.counts.flags, late.counts.false_positives), (3, 0));
    }

    #[test]
    fn a_false_positive_after_a_window_is_discounted_by_its_distance() {
        // Window 50..=59 (w = 10) found at its first row; flags 2 and 9 rows after its end:
        // σ(2/9) and σ(9/9); one 40 rows after (≥ 3 window lengths): −1; one before: −1.
        let s = stream(100, &[(50, 59)]);
        let r = score_stream(&s, &flags(100, &[20, 50, 61, 68, 99]));
        let fp = -1.0 + sig(2.0 / 9.0) + sig(1.0) - 1.0;
        close(r.raw.standard, 1.0 + 0.11 * fp);
        close(r.raw.reward_low_fp_rate, 1.0 + 0.22 * fp);
        close(r.raw.reward_low_fn_rate, 1.0 + 0.11 * fp);
        assert_eq!(r.counts.false_positives, 4);
        // Just after the window a false positive costs almost nothing.
        assert!(sig(1.0 / 9.0) > -0.6 && sig(1.0 / 9.0) < 0.0);
    }

    #[test]
    fn a_missed_window_costs_a_fn() {
        let s = stream(200, &[(50, 59), (150, 159)]);
        let r = score_stream(&s, &flags(200, &[150]));
        close(r.raw.standard, 1.0 - 1.0);
        close(r.raw.reward_low_fn_rate, 1.0 - 2.0);
        assert_eq!(r.counts.windows_found, 1);
    }

    #[test]
    fn normalised_is_zero_for_nothing_and_hundred_for_first_rows() {
        let streams = [stream(200, &[(50, 59), (150, 159)]), stream(100, &[])];
        let nothing = score(&streams, &[flags(200, &[]), flags(100, &[])]);
        let perfect = score(&streams, &[flags(200, &[50, 150]), flags(100, &[])]);
        for k in 0..3 {
            close(nothing.total.normalised.unwrap().get(k), 0.0);
            close(perfect.total.normalised.unwrap().get(k), 100.0);
        }
        // One window found at its first row, the other missed, two false positives in the
        // stream without windows: (1 − 1 − 0.22) − (−2)) / (2 − (−2)).
        let some = score(&streams, &[flags(200, &[50]), flags(100, &[40, 60])]);
        let n = some.total.normalised.unwrap();
        close(n.standard, 100.0 * (0.0 - 0.22 + 2.0) / 4.0);
        close(n.reward_low_fp_rate, 100.0 * (0.0 - 0.44 + 2.0) / 4.0);
        close(n.reward_low_fn_rate, 100.0 * (1.0 - 2.0 - 0.22 + 4.0) / 6.0);
        assert_eq!(some.groups["g"].counts.false_positives, 2);
        assert_eq!(some.total.counts.windows_found, 1);
        // A window left in probation still counts in `perfect` (NAB counts every label).
        let probation_window = [stream(100, &[(2, 4), (50, 59)])];
        let p = score(&probation_window, &[flags(100, &[50])]);
        close(
            p.total.normalised.unwrap().standard,
            100.0 * (1.0 + 1.0) / (2.0 + 1.0),
        );
    }

    #[test]
    fn the_sweep_picks_each_profiles_best_threshold() {
        let streams = [stream(200, &[(50, 59), (150, 159)])];
        // Scores: 0.9 at both windows' first rows, 0.5 at ten rows outside.
        let mut s = vec![0.0; 200];
        s[50] = 0.9;
        s[150] = 0.9;
        for i in (60..140).step_by(8) {
            s[i] = 0.5;
        }
        let best = sweep(&streams, &[s]);
        for (th, score) in best {
            close(th, 0.9);
            close(score, 100.0);
        }
        // Nothing to find: flagging nothing wins.
        let best = sweep(&[stream(100, &[])], &[vec![0.7; 100]]);
        assert_eq!(best[0], (f64::INFINITY, 0.0));
    }
}
