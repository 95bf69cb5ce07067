//! The value detector (v2): how surprising is this value for this entity, at this time of its
//! day and week? `docs/detection.md` explains the choices and the measurements behind them.
//!
//! The model, per entity, on a scale chosen from the entity's own first values:
//!
//! 1. **Scale.** The first [`WARMUP`] values are kept raw. Then `c` is fixed to their median
//!    magnitude and every value is read as `y = asinh(v / c)`: linear near zero and for values
//!    close to `c` (readings, percentages, counts), logarithmic far from it (amounts, spikes).
//!    The warm-up values seed the level (their median) and the noise (their mean deviation).
//! 2. **Context.** A daily profile (24 hourly bins) and a day-of-week profile (7 bins), both
//!    read by linear interpolation in local time, learn what the slow level does not explain,
//!    at rates set per day and per week of event time (so sampling does not matter). Streams
//!    without a rhythm learn offsets near zero, so context costs nothing there.
//! 3. **Two levels.** A fast level (`α = 0.2` per event) predicts the next value; its residual
//!    over a robust noise estimate is the point z (spikes, dips, drops, shifts at onset). A slow
//!    level with two days of memory follows the fast one; their gap over its own noise is the
//!    level z (drift, trend changes, a missing daily peak).
//! 4. **Variance, flatline, shift, rate.** A short average of z² catches noise bursts; a run of
//!    exactly repeated values is scored once against the entity's repeat rate (stuck sensors);
//!    three same-sided outliers in a row are a level shift; the events in the velocity window
//!    are compared with the entity's usual count (event-rate bursts).
//! 5. **Calibration.** Each test's tail probability comes from the entity's own history of that
//!    test: how often it exceeded a ladder of three levels, log-linear between them and an
//!    exponential tail beyond, whose rate is the decay across the ladder. An entity with
//!    heavy-tailed noise learns a slow decay, so one threshold means the same on every entity.
//!    The event's probability `p` is the smallest of the six, times six (Bonferroni).
//! 6. **Adaptation.** Updates are winsorised at 3σ, so spikes do not teach the entity that
//!    spikes are normal; a shift moves both levels to the new value at once, and a reported
//!    level move is accepted by the slow level, so a change is flagged at its onset, then learned.
//!
//! The expected range is read back through `sinh`, which is linear near zero, so for noisy
//! amounts it would reach below zero; an entity that has never had a value below zero is
//! told a range that does not either (the smallest value absorbed is kept for that).
//!
//! State is 55 `f32` (or the warm-up values), stored packed: under 400 bytes of JSON. Every
//! update is rounded to `f32`, so a state read back from the store continues exactly as the
//! one in memory would have (detection does not depend on where batches split). The file is
//! a little over 500 lines because the model, its stored form and its tests belong together.

use serde::{Deserialize, Serialize};

/// Values kept raw before the model is initialised and scoring starts.
pub const WARMUP: usize = 12;
const LEVELS: [f32; 3] = [2.0, 3.0, 4.0];
/// Two-sided Gaussian tail probabilities at [`LEVELS`]: the prior of the z tests.
const GAUSS_TAIL: [f32; 3] = [4.55e-2, 2.7e-3, 6.3e-5];
/// Levels of the short z² average, and its prior tail (about 9 effective degrees of freedom).
const VAR_LEVELS: [f32; 3] = [2.0, 3.0, 4.0];
const VAR_TAIL: [f32; 3] = [2.0e-2, 1.0e-3, 5.0e-5];
const ALPHA_FAST: f64 = 0.2;
const ALPHA_DEV: f64 = 0.02;
const ALPHA_VAR: f64 = 0.2;
/// The slow level's memory, in event time: rates per event follow the entity's sampling.
const SLOW_MINUTES: f64 = 2.0 * 1440.0;
/// Share of an hour bin's error learned per day, and of a day bin's per week.
const GAMMA_HOUR_PER_DAY: f64 = 0.5;
const GAMMA_DAY_PER_WEEK: f64 = 0.7;
const MAD_TO_SIGMA: f64 = 1.2533;
/// Smallest noise on the asinh scale: about 0.1 % of a value near `c`.
const MIN_SIGMA: f64 = 1e-3;
const SHIFT_RUN: f32 = 3.0;
const FLAGGED_WEIGHT: f64 = 0.3;

/// Where an event sits in its entity's week, in the event's own UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Context {
    /// Hour of day, fractional, `0 ≤ hour < 24`.
    pub hour: f64,
    /// Day of week, 0 = Monday.
    pub day: u8,
}

impl Context {
    /// The context of a local time given as milliseconds since the epoch in local time.
    pub fn of_local_ms(local_ms: i64) -> Self {
        let day_ms = 86_400_000;
        Context {
            hour: local_ms.rem_euclid(day_ms) as f64 / 3_600_000.0,
            // 1970-01-01 was a Thursday (3 when Monday is 0).
            day: ((local_ms.div_euclid(day_ms) + 3).rem_euclid(7)) as u8,
        }
    }
}

/// Which test found the value surprising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// Far from the fast level: a spike, dip, drop or the onset of a shift.
    Point,
    /// Far from the slow level in this hour's context: drift, trend change, missing rhythm.
    Level,
    /// Recent values much noisier than usual.
    Variance,
    /// The same value repeated far more often than this entity repeats values.
    Flatline,
    /// Several consecutive outliers on one side: the level has shifted.
    Shift,
    /// Far more events in the velocity window than this entity usually has.
    Rate,
}

/// Number of tests: the smallest probability is multiplied by it (Bonferroni).
const TESTS: f64 = 6.0;
/// Levels of the events-in-window count, and their prior (a person: sessions of a few).
const RATE_LEVELS: [f32; 3] = [2.0, 4.0, 8.0];
const RATE_TAIL: [f32; 3] = [0.15, 0.02, 1.0e-4];

/// What the value model says about one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// Calibrated probability of a surprise at least this large (1 during warm-up).
    pub p: f64,
    /// The test with the smallest probability.
    pub test: Test,
    /// The statistic of that test (z, z², or run length).
    pub stat: f64,
    /// Expected value (fast level with context), in value units.
    pub expected: f64,
    /// Expected range at ±4σ, in value units.
    pub low: f64,
    /// Upper end of the expected range.
    pub high: f64,
    /// The context offset applied, in asinh units (0 for streams without rhythm).
    pub seasonal: f64,
    y: f64,
    r: f64,
    r_slow: f64,
    sigma: f64,
    sigma_slow: f64,
    var: f64,
    same: f64,
    window_events: f64,
}

/// The per-entity value model. See the module doc.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(into = "Wire", try_from = "Wire")]
pub struct ValueModel {
    /// Values absorbed.
    pub n: u64,
    warm: Vec<f32>,
    c: f32,
    level: f32,
    slow: f32,
    dev: f32,
    dev_slow: f32,
    var: f32,
    run: f32,
    last: f32,
    same: f32,
    repeat: f32,
    /// Typical minutes between events (exponentially weighted).
    gap: f32,
    cal: [f32; 3],
    cal_slow: [f32; 3],
    cal_var: [f32; 3],
    cal_rate: [f32; 3],
    hours: [f32; 24],
    days: [f32; 7],
    /// The smallest value absorbed: only where it is below zero may the range be.
    lowest: f32,
}

/// Stored form: the count and every number packed as little-endian `f32`.
#[derive(Serialize, Deserialize)]
struct Wire {
    n: u64,
    #[serde(with = "super::packed::f32s")]
    p: Vec<f32>,
}

const FIXED: usize = 11 + 12 + 24 + 7 + 1;
/// The stored form before `lowest` was kept; read with `lowest` from the last value's sign.
const FIXED_V1: usize = FIXED - 1;

impl From<ValueModel> for Wire {
    fn from(m: ValueModel) -> Wire {
        if m.n < WARMUP as u64 {
            // Warming up: the raw values so far, then the typical gap.
            let mut p = m.warm;
            p.push(m.gap);
            return Wire { n: m.n, p };
        }
        let mut p = Vec::with_capacity(FIXED);
        {
            p.extend([
                m.c, m.level, m.slow, m.dev, m.dev_slow, m.var, m.run, m.last, m.same, m.repeat,
                m.gap,
            ]);
            p.extend(m.cal);
            p.extend(m.cal_slow);
            p.extend(m.cal_var);
            p.extend(m.cal_rate);
            p.extend(m.hours);
            p.extend(m.days);
            p.push(m.lowest);
        }
        Wire { n: m.n, p }
    }
}

impl TryFrom<Wire> for ValueModel {
    type Error = String;
    fn try_from(w: Wire) -> Result<Self, String> {
        if w.n < WARMUP as u64 {
            let mut warm = w.p;
            let gap = warm.pop().unwrap_or_default();
            if warm.len() as u64 != w.n {
                return Err(format!(
                    "value model warming up with {} of {} values",
                    warm.len(),
                    w.n
                ));
            }
            return Ok(ValueModel {
                n: w.n,
                warm,
                gap,
                ..ValueModel::default()
            });
        }
        if w.p.len() != FIXED && w.p.len() != FIXED_V1 {
            return Err(format!(
                "value model has {} numbers, expected {FIXED_V1} or {FIXED}",
                w.p.len()
            ));
        }
        let p = &w.p;
        let arr3 = |i: usize| -> [f32; 3] { std::array::from_fn(|k| p[i + k]) };
        Ok(ValueModel {
            n: w.n,
            warm: Vec::new(),
            c: p[0],
            level: p[1],
            slow: p[2],
            dev: p[3],
            dev_slow: p[4],
            var: p[5],
            run: p[6],
            last: p[7],
            same: p[8],
            repeat: p[9],
            gap: p[10],
            cal: arr3(11),
            cal_slow: arr3(14),
            cal_var: arr3(17),
            cal_rate: arr3(20),
            hours: std::array::from_fn(|k| p[23 + k]),
            days: std::array::from_fn(|k| p[47 + k]),
            lowest: p.get(FIXED_V1).copied().unwrap_or(p[7].min(0.0)),
        })
    }
}

fn f(x: f64) -> f32 {
    // Saturate instead of overflowing to infinity: state stays finite whatever the input.
    x.clamp(-f64::from(f32::MAX), f64::from(f32::MAX)) as f32
}

/// Tail probability of `x` from the entity's exceedance frequencies at `levels`:
/// log-linear between the levels, and beyond the last one an exponential tail whose rate is
/// the decay from the first level to the last. Those levels are exceeded often enough to be
/// learned from ordinary events, so one rare anomaly barely moves the tail, while an entity
/// with heavy-tailed noise learns a slow decay and needs a far larger surprise to be flagged.
fn tail(freq: &[f32; 3], levels: &[f32; 3], x: f64) -> f64 {
    let fr = |k: usize| f64::from(freq[k]).clamp(1e-30, 1.0);
    let lv = |k: usize| f64::from(levels[k]);
    if x < lv(0) {
        return 1.0;
    }
    let rate = ((fr(0) / fr(2)).ln() / (lv(2) - lv(0))).clamp(0.5, 10.0);
    if x >= lv(2) {
        return (fr(2) * (-rate * (x - lv(2))).exp()).min(1.0);
    }
    let k = usize::from(x >= lv(1));
    let w = (x - lv(k)) / (lv(k + 1) - lv(k));
    (fr(k).ln() * (1.0 - w) + fr(k + 1).ln() * w).exp()
}

impl ValueModel {
    /// The context offset at `ctx`, and the bins it was read from with their weights: two
    /// hour bins and two day bins, each read by linear interpolation between bin centres so
    /// that the expectation has no step at the top of an hour or at midnight.
    fn season(&self, ctx: Context) -> (f64, Weights) {
        let h = interpolate(ctx.hour, 24);
        let week = f64::from(ctx.day % 7) + ctx.hour / 24.0;
        let d = interpolate(week, 7);
        let s = h
            .iter()
            .map(|(i, wt)| f64::from(self.hours[*i]) * wt)
            .chain(d.iter().map(|(i, wt)| f64::from(self.days[*i]) * wt))
            .sum::<f64>();
        (s, Weights { hours: h, days: d })
    }

    fn to_value(&self, y: f64) -> f64 {
        f64::from(self.c) * y.sinh()
    }

    /// Scores `v` without changing the model; `window_events` is the number of the entity's
    /// events in the velocity window around this one (`None` for a late event), and `epsilon`
    /// the probability below which the caller flags, so that a stuck run is reported once,
    /// when it becomes improbable.
    pub fn assess(
        &self,
        v: f64,
        ctx: Context,
        window_events: Option<u32>,
        epsilon: f64,
    ) -> Assessment {
        if self.n < WARMUP as u64 || !v.is_finite() {
            return Assessment {
                p: 1.0,
                test: Test::Point,
                stat: 0.0,
                expected: v,
                low: v,
                high: v,
                seasonal: 0.0,
                y: 0.0,
                r: 0.0,
                r_slow: 0.0,
                sigma: 0.0,
                sigma_slow: 0.0,
                var: 0.0,
                same: 0.0,
                window_events: 0.0,
            };
        }
        let y = (v / f64::from(self.c)).asinh();
        let (s, _) = self.season(ctx);
        let young = (self.n - WARMUP as u64) as f64;
        let small_sample = 1.0 + 8.0 / (young + 4.0);
        let sigma = (MAD_TO_SIGMA * f64::from(self.dev)).max(MIN_SIGMA) * small_sample;
        let predicted = f64::from(self.level) + s;
        let r = y - predicted;
        // The slow test compares the fast level, once it has taken this value in, with the
        // slow level: noise is averaged out, what remains is how far the recent level has moved.
        let moved = f64::from(self.level) + ALPHA_FAST * r.clamp(-3.0 * sigma, 3.0 * sigma);
        let r_slow = moved - f64::from(self.slow);
        let sigma_slow = (MAD_TO_SIGMA * f64::from(self.dev_slow))
            .max(MIN_SIGMA)
            .max(sigma / 3.0)
            * small_sample;
        let z = r / sigma;
        let z_slow = r_slow / sigma_slow;
        let var = (1.0 - ALPHA_VAR) * f64::from(self.var) + ALPHA_VAR * z.powi(2).min(9.0);
        let same = if v as f32 == self.last {
            f64::from(self.same) + 1.0
        } else {
            0.0
        };
        let tests = [
            (Test::Point, z.abs(), tail(&self.cal, &LEVELS, z.abs())),
            (
                Test::Level,
                z_slow.abs(),
                tail(&self.cal_slow, &LEVELS, z_slow.abs()),
            ),
            (Test::Variance, var, tail(&self.cal_var, &VAR_LEVELS, var)),
            (Test::Flatline, same, {
                let q = f64::from(self.repeat).clamp(0.005, 0.95);
                // Only the repeat that makes the run improbable counts; the rest of the run is
                // the same anomaly, not a new one.
                if same >= 3.0 && q.powf(same - 1.0) * TESTS >= epsilon {
                    q.powf(same)
                } else {
                    1.0
                }
            }),
            (Test::Shift, f64::from(self.run.abs()) + 1.0, {
                // This outlier would make the run long enough to shift the level: the chance
                // of that many same-sided exceedances of 3σ in a row.
                let same_side = (z > 3.0 && self.run >= 0.0) || (z < -3.0 && self.run <= 0.0);
                if same_side && f64::from(self.run.abs()) + 1.0 >= f64::from(SHIFT_RUN) {
                    (f64::from(self.cal[1]) / 2.0).powf(f64::from(SHIFT_RUN))
                } else {
                    1.0
                }
            }),
            (
                Test::Rate,
                f64::from(window_events.unwrap_or(0)),
                tail(
                    &self.cal_rate,
                    &RATE_LEVELS,
                    f64::from(window_events.unwrap_or(0)),
                ),
            ),
        ];
        let (test, stat, p) = tests
            .into_iter()
            .min_by(|a, b| a.2.total_cmp(&b.2))
            .unwrap_or((Test::Point, 0.0, 1.0));
        // An entity that has never gone below zero is not told it might.
        let floor = if self.lowest >= 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        Assessment {
            p: (p * TESTS).min(1.0),
            test,
            stat,
            expected: self.to_value(predicted).max(floor),
            low: self.to_value(predicted - 4.0 * sigma).max(floor),
            high: self.to_value(predicted + 4.0 * sigma).max(floor),
            seasonal: s,
            y,
            r,
            r_slow,
            sigma,
            sigma_slow,
            var,
            same,
            window_events: f64::from(window_events.unwrap_or(0)),
        }
    }

    /// Folds `v` into the model; `a` is what [`ValueModel::assess`] said of it, `flagged`
    /// whether the event was reported as an anomaly, and `gap_minutes` the event time since
    /// the entity's previous event (when it is later than that).
    pub fn absorb(
        &mut self,
        v: f64,
        ctx: Context,
        a: &Assessment,
        flagged: bool,
        gap_minutes: Option<f64>,
    ) {
        if !v.is_finite() {
            return;
        }
        if let Some(g) = gap_minutes.filter(|g| g.is_finite() && *g > 0.0) {
            self.gap = if self.gap > 0.0 {
                f(f64::from(self.gap) + 0.05 * (g.min(1e6) - f64::from(self.gap)))
            } else {
                f(g.min(1e6))
            };
        }
        // Per-event rates that give the same memory in event time whatever the sampling.
        let gap = if self.gap > 0.0 {
            f64::from(self.gap)
        } else {
            60.0
        };
        let per_hour = 60.0 / gap;
        let alpha_slow = (gap / SLOW_MINUTES).clamp(5e-4, 0.05);
        let gamma_hour = (GAMMA_HOUR_PER_DAY / per_hour).min(0.2);
        let gamma_day = (GAMMA_DAY_PER_WEEK / (per_hour * 24.0)).min(0.2);
        self.n += 1;
        if self.n <= WARMUP as u64 {
            self.warm.push(f(v));
            if self.n == WARMUP as u64 {
                self.initialise();
            }
            return;
        }
        self.lowest = self.lowest.min(f(v));
        let z = a.r / a.sigma;
        let z_slow = a.r_slow / a.sigma_slow;
        self.run = f(next_run(self.run, z));
        let deseasoned = a.y - a.seasonal;
        if self.run.abs() >= SHIFT_RUN {
            // A level shift: learn the new level now instead of flagging it for hundreds of events.
            self.level = f(deseasoned);
            self.slow = f(deseasoned);
            self.run = 0.0;
        } else {
            let rc = a.r.clamp(-3.0 * a.sigma, 3.0 * a.sigma);
            self.level = f(f64::from(self.level) + ALPHA_FAST * rc);
            if flagged && a.test == Test::Level {
                // The move was reported: accept the new level rather than report it again.
                self.slow = self.level;
            } else {
                let rs = a.r_slow.clamp(-3.0 * a.sigma_slow, 3.0 * a.sigma_slow);
                self.slow = f(f64::from(self.slow) + alpha_slow * rs);
            }
        }
        // Noise: a running mean while young, then exponentially weighted.
        let young = (self.n - WARMUP as u64) as f64;
        let dev = a.r.abs().min(3.0 * a.sigma);
        let rate = ALPHA_DEV.max(1.0 / (young + 10.0));
        self.dev = f(f64::from(self.dev) + rate * (dev - f64::from(self.dev)));
        let dev_slow = a.r_slow.abs().min(2.0 * a.sigma_slow);
        let rate = (alpha_slow / 2.0).max(1.0 / (young + 10.0));
        self.dev_slow = f(f64::from(self.dev_slow) + rate * (dev_slow - f64::from(self.dev_slow)));
        // Context learns what the slow level leaves unexplained.
        let (_, w) = self.season(ctx);
        let e = (a.y - f64::from(self.slow) - a.seasonal)
            .clamp(-3.0 * a.sigma_slow, 3.0 * a.sigma_slow);
        for (i, wt) in w.hours {
            self.hours[i] = f(f64::from(self.hours[i]) + gamma_hour * wt * e);
        }
        for (i, wt) in w.days {
            self.days[i] = f(f64::from(self.days[i]) + gamma_day * wt * e);
        }
        self.var = f(a.var);
        self.repeat = f(f64::from(self.repeat)
            + 0.01 * (if a.same > 0.0 { 1.0 } else { 0.0 } - f64::from(self.repeat)));
        self.same = f(a.same);
        self.last = f(v);
        {
            let rate = (1.0 / (young + 50.0)).max(1.0 / 2000.0)
                * if flagged { FLAGGED_WEIGHT } else { 1.0 };
            learn(&mut self.cal, &LEVELS, z.abs(), rate);
            learn(&mut self.cal_slow, &LEVELS, z_slow.abs(), rate);
            learn(&mut self.cal_var, &VAR_LEVELS, a.var, rate);
            learn(&mut self.cal_rate, &RATE_LEVELS, a.window_events, rate);
        }
    }

    fn initialise(&mut self) {
        let mut mags: Vec<f64> = self.warm.iter().map(|v| f64::from(*v).abs()).collect();
        mags.sort_by(f64::total_cmp);
        let median = mags[mags.len() / 2];
        let mean = mags.iter().sum::<f64>() / mags.len() as f64;
        let c = if median > 0.0 {
            median
        } else if mean > 0.0 {
            mean
        } else {
            1.0
        };
        self.c = f(c.clamp(1e-30, 1e30));
        self.lowest = self.warm.iter().copied().fold(f32::INFINITY, f32::min);
        let mut ys: Vec<f64> = self
            .warm
            .iter()
            .map(|v| (f64::from(*v) / f64::from(self.c)).asinh())
            .collect();
        let mean_dev = {
            let m = ys.iter().sum::<f64>() / ys.len() as f64;
            ys.iter().map(|y| (y - m).abs()).sum::<f64>() / ys.len() as f64
        };
        ys.sort_by(f64::total_cmp);
        let level = ys[ys.len() / 2];
        self.level = f(level);
        self.slow = f(level);
        self.dev = f(mean_dev);
        self.dev_slow = f(mean_dev);
        self.var = 1.0;
        self.cal = GAUSS_TAIL;
        self.cal_slow = GAUSS_TAIL;
        self.cal_var = VAR_TAIL;
        self.cal_rate = RATE_TAIL;
        self.repeat = 0.02;
        self.last = self.warm.last().copied().unwrap_or_default();
        self.warm = Vec::new();
    }
}

/// Which context bins an expectation was read from.
struct Weights {
    hours: [(usize, f64); 2],
    days: [(usize, f64); 2],
}

/// The two bins around `pos` (bin k centred on k + 0.5, `bins` of them, cyclic) and weights.
fn interpolate(pos: f64, bins: usize) -> [(usize, f64); 2] {
    let p = (pos - 0.5).rem_euclid(bins as f64);
    let i0 = (p.floor() as usize) % bins;
    let w1 = p - p.floor();
    [(i0, 1.0 - w1), ((i0 + 1) % bins, w1)]
}

fn next_run(run: f32, z: f64) -> f64 {
    let run = f64::from(run);
    if z > 3.0 {
        run.max(0.0) + 1.0
    } else if z < -3.0 {
        run.min(0.0) - 1.0
    } else {
        0.0
    }
}

fn learn(freq: &mut [f32; 3], levels: &[f32; 3], x: f64, rate: f64) {
    for (f_k, l) in freq.iter_mut().zip(levels) {
        let hit = if x >= f64::from(*l) { 1.0 } else { 0.0 };
        *f_k = f(f64::from(*f_k) + rate * (hit - f64::from(*f_k)));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_exactly_through_its_stored_form() {
        let mut m = ValueModel::default();
        for i in 0..40 {
            let ctx = Context::of_local_ms(i * 600_000);
            let v = 10.0 + (i % 7) as f64;
            let a = m.assess(v, ctx, Some(1), 1e-5);
            m.absorb(v, ctx, &a, false, Some(10.0));
            let back: ValueModel =
                serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(back, m, "after {i} values");
        }
    }

    /// Feeds `values` (one every 10 minutes) and returns the model and what it says of `next`.
    fn fed(values: &[f64], next: f64) -> (ValueModel, Assessment) {
        let mut m = ValueModel::default();
        for (i, v) in values.iter().enumerate() {
            let ctx = Context::of_local_ms(i as i64 * 600_000);
            let a = m.assess(*v, ctx, Some(1), 1e-4);
            m.absorb(*v, ctx, &a, false, Some(10.0));
        }
        let ctx = Context::of_local_ms(values.len() as i64 * 600_000);
        let a = m.assess(next, ctx, Some(1), 1e-4);
        (m, a)
    }

    #[test]
    fn the_range_of_an_entity_never_below_zero_stays_at_or_above_zero() {
        // Noisy amounts: on the asinh scale ±4σ reaches far below the level, and sinh is
        // linear near zero, so the unclamped lower end would be negative.
        let amounts: Vec<f64> = (0..60)
            .map(|i| [3.0, 250.0, 12.0, 90.0, 1.5, 400.0, 40.0][i % 7])
            .collect();
        let (m, a) = fed(&amounts, 55.0);
        assert!(m.to_value(f64::from(m.level) - 4.0 * 1.2533 * f64::from(m.dev)) < 0.0);
        assert_eq!(a.low, 0.0, "{a:?}");
        assert!(a.expected >= 0.0 && a.high > 0.0, "{a:?}");

        // One value below zero, and the range may go below zero again.
        let mut signed = amounts.clone();
        signed[30] = -2.0;
        let (_, a) = fed(&signed, 55.0);
        assert!(a.low < 0.0, "{a:?}");
    }

    #[test]
    fn a_state_stored_before_lowest_was_kept_still_reads() {
        let (m, _) = fed(
            &[
                10.0, 12.0, 11.0, 13.0, 9.0, 10.5, 11.5, 12.5, 10.0, 9.5, 11.0, 12.0, 10.0,
            ],
            10.0,
        );
        let mut wire = Wire::from(m.clone());
        wire.p.pop();
        let old = ValueModel::try_from(wire).unwrap();
        assert_eq!(old.lowest, 0.0, "the last value is not below zero");
        assert_eq!(
            ValueModel {
                lowest: m.lowest,
                ..old
            },
            m
        );
    }

    #[test]
    fn context_of_local_time() {
        // 2026-05-04 was a Monday; 13:30 local.
        let ms = chrono::NaiveDate::from_ymd_opt(2026, 5, 4)
            .unwrap()
            .and_hms_opt(13, 30, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let c = Context::of_local_ms(ms);
        assert_eq!(c.day, 0);
        assert!((c.hour - 13.5).abs() < 1e-9);
    }

    #[test]
    fn tail_follows_the_prior_and_extrapolates() {
        assert_eq!(tail(&GAUSS_TAIL, &LEVELS, 1.9), 1.0);
        assert!((tail(&GAUSS_TAIL, &LEVELS, 3.0) - 2.7e-3).abs() < 1e-9);
        assert!((tail(&GAUSS_TAIL, &LEVELS, 4.0) - 6.3e-5).abs() < 1e-9);
        // Beyond the last level: rate ln(4.55e-2 / 6.3e-5) / 2 ≈ 3.29 per unit.
        let p6 = tail(&GAUSS_TAIL, &LEVELS, 6.0);
        assert!(
            (p6 - 6.3e-5 * (-2.0 * 3.2914_f64).exp()).abs() < 1e-9,
            "{p6}"
        );
        // A heavy tail decays at the floor rate of 0.5 per unit.
        let heavy = [0.1, 0.1, 0.1];
        assert!((tail(&heavy, &LEVELS, 8.0) - 0.1 * (-2.0_f64).exp()).abs() < 1e-6);
    }
}
