//! The value detector (v3): how surprising is this value for this entity, at this time of its
//! day and week? `docs/detection.md` explains the choices and the measurements behind them.
//!
//! The model, per entity, on a scale chosen from the entity's own first values:
//!
//! 1. **Scale.** The first [`WARMUP`] values are kept raw. Then `c` is fixed to their median
//!    magnitude and every value is read as `y = asinh(v / c)`: linear near zero and for values
//!    close to `c` (readings, percentages, counts), logarithmic far from it (amounts, spikes).
//!    The warm-up values seed the level (their median) and the noise (their mean deviation).
//! 2. **Context.** Two daily profiles of 24 hourly bins (weekdays; Saturdays and Sundays) and a
//!    day-of-week profile (7 bins), read by linear interpolation in local time, learn what the
//!    slow level does not explain,
//!    at rates set per day and per week of event time (so sampling does not matter). Streams
//!    without a rhythm learn offsets near zero, so context costs nothing there.
//! 3. **Two levels.** A fast level (`α = 0.2` per event) predicts the next value; its residual
//!    over a robust noise estimate is the point z (spikes, dips, drops, shifts at onset). A slow
//!    level with two days of memory follows the fast one; their gap over its own noise is the
//!    level z (drift, trend changes, a missing daily peak).
//! 4. **Variance, flatline, shift, rate.** A short average of z² catches noise bursts; a run of
//!    exactly repeated values is scored once against the entity's own frequencies of long runs
//!    (stuck sensors, not an idle counter); three same-sided outliers in a row are a level
//!    shift, as improbable as such runs have been for the entity; the events in the velocity
//!    window are compared with the entity's usual count (event-rate bursts).
//! 5. **Calibration.** Each test's tail probability comes from the entity's own history of that
//!    test: how often it exceeded a ladder of levels (13 for the z tests, up to 10⁵σ), read
//!    log-linearly between the levels it has learned and, beyond them, falling as the prior
//!    does but at least as a power law (`z_tail`, `ladder_tail`). A stream whose ordinary
//!    spikes are huge learns that they are ordinary; one with Gaussian noise keeps a Gaussian
//!    tail. The event's probability `p` is the smallest of the six, times six (Bonferroni).
//! 6. **Adaptation.** Updates are winsorised at 3σ, so spikes do not teach the entity that
//!    spikes are normal; a shift moves both levels to the new value at once, and a reported
//!    level move is accepted by the slow level, so a change is flagged at its onset, then learned.
//! 7. **Records.** The point and level tests keep the largest |z| the entity has had (taken at
//!    the end of each episode of surprise, fading over weeks): up to it the z tail falls
//!    slowly, and the test flags only beyond 1.05 times it, so a surprise the
//!    entity has produced before (the daily edge of a square wave, a tweet burst like the last
//!    one) is not news again.
//!
//! The expected range is read back through `sinh`, which is linear near zero, so for noisy
//! amounts it would reach below zero; an entity that has never had a value below zero is
//! told a range that does not either (the smallest value absorbed is kept for that).
//!
//! State is 107 `f32` (or the warm-up values), stored packed: about 570 characters of JSON;
//! states stored by v2, and by v3 before the records, still read. Every update is rounded to
//! `f32`, so a state read back from the store continues exactly as the one in memory would
//! have (detection does not depend on where batches split). The file is long because the
//! model, its stored form and its tests belong together.

use serde::{Deserialize, Serialize};

mod record;
mod tail;
mod wire;

use record::{episode, record};
use tail::{run_tail, tail, z_tail};
use wire::Wire;

/// Values kept raw before the model is initialised and scoring starts.
pub const WARMUP: usize = 12;
/// Levels of |z| at which the point and level tests learn how often the entity exceeds them:
/// half a decade apart above 10σ, up to surprises 100,000 times the noise, so that an entity whose
/// ordinary spikes are huge against its quiet noise (a counter that is mostly zero) learns
/// that they are ordinary, and is flagged only beyond what it has done before.
const LEVELS: [f32; Z_LEVELS] = [
    2.0, 3.0, 4.0, 6.0, 10.0, 30.0, 100.0, 300.0, 1.0e3, 3.0e3, 1.0e4, 3.0e4, 1.0e5,
];
const Z_LEVELS: usize = 13;
/// The prior of the z tests at [`LEVELS`]: two-sided Gaussian tail probabilities up to 4σ,
/// then a somewhat heavier tail (real noise is), reaching the floor of 1e-30 at 100σ.
const GAUSS_TAIL: [f32; Z_LEVELS] = [
    4.55e-2, 2.7e-3, 6.3e-5, 1.0e-7, 1.0e-12, 1.0e-25, 1.0e-30, 1.0e-30, 1.0e-30, 1.0e-30, 1.0e-30,
    1.0e-30, 1.0e-30,
];
/// Levels of log₂ of the number of repeats of one value (2, 4, 8 and 32 repeats), and their
/// prior: values that repeat 2 % of the time, at random.
const RUN_LEVELS: [f32; RUNS] = [1.0, 2.0, 3.0, 5.0];
const RUN_TAIL: [f32; RUNS] = [4.0e-4, 1.6e-7, 2.6e-14, 1.0e-27];
const RUNS: usize = 4;
/// Prior of how often an event completes a same-sided run of [`SHIFT_RUN`] 3σ outliers:
/// that of Gaussian noise.
const SHIFT_PRIOR: f32 = 2.5e-9;
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
    /// Typical minutes between events (exponentially weighted).
    gap: f32,
    cal: [f32; Z_LEVELS],
    cal_slow: [f32; Z_LEVELS],
    cal_var: [f32; 3],
    cal_rate: [f32; 3],
    cal_run: [f32; RUNS],
    cal_shift: f32,
    hours: [f32; 24],
    /// The daily profile of Saturdays and Sundays (weekday bins in `hours`).
    weekend: [f32; 24],
    days: [f32; 7],
    /// The smallest value absorbed: only where it is below zero may the range be.
    lowest: f32,
    /// The records of the point and level tests: the largest |z| each has had, fading
    /// slowly (`record::RECORD_FADE`). Up to its record a z ladder's tail falls slowly (the
    /// entity has been there), and a test flags only beyond 1.05 times it
    /// (`record::RECORD_MARGIN`).
    top: f32,
    top_slow: f32,
    /// The largest |z| of each test in the episode going on (0 when none is): it becomes
    /// the record when the episode ends, so a surprise that keeps growing (a drift) is
    /// judged against the entity's earlier episodes, not against its own last step.
    peak: f32,
    peak_slow: f32,
}

fn f(x: f64) -> f32 {
    // Saturate instead of overflowing to infinity: state stays finite whatever the input.
    if x.is_nan() {
        return 0.0;
    }
    x.clamp(-f64::from(f32::MAX), f64::from(f32::MAX)) as f32
}

impl ValueModel {
    /// The context offset at `ctx`, and the bins it was read from with their weights: two
    /// hour bins and two day bins, each read by linear interpolation between bin centres so
    /// that the expectation has no step at the top of an hour or at midnight.
    fn season(&self, ctx: Context) -> (f64, Weights) {
        let h = interpolate(ctx.hour, 24).map(|(i, wt)| {
            // The bin's own day: the one before for the last hour read just after midnight,
            // the next for the first hour read just before it.
            let day = if ctx.hour < 0.5 && i == 23 {
                (ctx.day + 6) % 7
            } else if ctx.hour >= 23.5 && i == 0 {
                (ctx.day + 1) % 7
            } else {
                ctx.day
            };
            let weekend = day >= 5;
            (i + if weekend { 24 } else { 0 }, wt)
        });
        let week = f64::from(ctx.day % 7) + ctx.hour / 24.0;
        let d = interpolate(week, 7);
        let s = h
            .iter()
            .map(|(i, wt)| f64::from(self.hour_bin(*i)) * wt)
            .chain(d.iter().map(|(i, wt)| f64::from(self.days[*i]) * wt))
            .sum::<f64>();
        (s, Weights { hours: h, days: d })
    }

    /// Hour bin `i` of the profiles: 0–23 weekdays, 24–47 the weekend.
    fn hour_bin(&self, i: usize) -> f32 {
        if i < 24 {
            self.hours[i]
        } else {
            self.weekend[i % 24]
        }
    }

    fn hour_bin_mut(&mut self, i: usize) -> &mut f32 {
        if i < 24 {
            &mut self.hours[i]
        } else {
            &mut self.weekend[i % 24]
        }
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
            (Test::Point, z.abs(), {
                z_tail(&self.cal, z.abs(), self.top).max(record(z.abs(), self.top, epsilon))
            }),
            (
                Test::Level,
                z_slow.abs(),
                z_tail(&self.cal_slow, z_slow.abs(), self.top_slow).max(record(
                    z_slow.abs(),
                    self.top_slow,
                    epsilon,
                )),
            ),
            (Test::Variance, var, tail(&self.cal_var, &VAR_LEVELS, var)),
            (Test::Flatline, same, {
                // Only the repeat that makes the run improbable counts; the rest of the run is
                // the same anomaly, not a new one.
                if same >= 3.0 && run_tail(&self.cal_run, same - 1.0) * TESTS >= epsilon {
                    run_tail(&self.cal_run, same)
                } else {
                    1.0
                }
            }),
            (Test::Shift, f64::from(self.run.abs()) + 1.0, {
                // This outlier would make the run long enough to shift the level: how often
                // the entity has had such runs (a regular cycle that the context has not
                // learned has them every day; a real shift is rare).
                let same_side = (z > 3.0 && self.run >= 0.0) || (z < -3.0 && self.run <= 0.0);
                if same_side && f64::from(self.run.abs()) + 1.0 >= f64::from(SHIFT_RUN) {
                    f64::from(self.cal_shift).max(1e-30)
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
        let shifted = self.run.abs() >= SHIFT_RUN;
        let deseasoned = a.y - a.seasonal;
        if shifted {
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
        if w.hours.iter().any(|(i, _)| *i >= 24) && self.weekend.iter().all(|x| *x == 0.0) {
            // The first weekend: its profile starts as the weekdays' has become.
            self.weekend = self.hours;
        }
        for (i, wt) in w.hours {
            let bin = self.hour_bin_mut(i);
            *bin = f(f64::from(*bin) + gamma_hour * wt * e);
        }
        for (i, wt) in w.days {
            self.days[i] = f(f64::from(self.days[i]) + gamma_day * wt * e);
        }
        self.var = f(a.var);
        self.same = f(a.same);
        self.last = f(v);
        {
            let rate = (1.0 / (young + 50.0)).max(1.0 / 2000.0)
                * if flagged { FLAGGED_WEIGHT } else { 1.0 };
            learn(&mut self.cal, &LEVELS, z.abs(), rate);
            learn(&mut self.cal_slow, &LEVELS, z_slow.abs(), rate);
            learn(&mut self.cal_var, &VAR_LEVELS, a.var, rate);
            learn(&mut self.cal_rate, &RATE_LEVELS, a.window_events, rate);
            learn(&mut self.cal_run, &RUN_LEVELS, a.same.max(0.5).log2(), rate);
            // Flagged events count too: a spike reported once is not news the next time.
            (self.top, self.peak) = episode(self.top, self.peak, z.abs());
            (self.top_slow, self.peak_slow) = episode(self.top_slow, self.peak_slow, z_slow.abs());
            let hit = if shifted { 1.0 } else { 0.0 };
            self.cal_shift =
                f(f64::from(self.cal_shift) + rate * (hit - f64::from(self.cal_shift)));
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
        self.cal_run = RUN_TAIL;
        self.cal_shift = SHIFT_PRIOR;
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

fn learn<const N: usize>(freq: &mut [f32; N], levels: &[f32; N], x: f64, rate: f64) {
    for (f_k, l) in freq.iter_mut().zip(levels) {
        let hit = if x >= f64::from(*l) { 1.0 } else { 0.0 };
        *f_k = f(f64::from(*f_k) + rate * (hit - f64::from(*f_k)));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::tail::LN_LEVELS;
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
    fn a_state_stored_by_detector_v2_still_reads() {
        // v2's layout: 11 scalars (with its repeat rate), four 3-level ladders, 24 hour bins,
        // 7 day bins, and `lowest` (absent in its first form).
        let scalars = [2.0, 0.5, 0.4, 0.1, 0.05, 1.0, 0.0, -3.0, 0.0, 0.02, 10.0];
        let ladders = [[0.05, 3e-3, 7e-5], [0.04, 2e-3, 5e-5], VAR_TAIL, RATE_TAIL];
        let hours: Vec<f32> = (0..24).map(|h| h as f32 / 100.0).collect();
        let days = [0.01_f32; 7];
        let mut p: Vec<f32> = scalars.to_vec();
        p.extend(ladders.iter().flatten());
        p.extend(&hours);
        p.extend(days);
        p.push(-5.0);
        let m = ValueModel::try_from(Wire {
            n: 500,
            p: p.clone(),
        })
        .unwrap();
        assert_eq!(
            (m.c, m.level, m.slow, m.last, m.gap),
            (2.0, 0.5, 0.4, -3.0, 10.0)
        );
        assert_eq!(&m.cal[..3], &[0.05, 3e-3, 7e-5]);
        assert_eq!(&m.cal[3..], &GAUSS_TAIL[3..]);
        assert_eq!(&m.cal_slow[..3], &[0.04, 2e-3, 5e-5]);
        assert_eq!((m.cal_run, m.cal_shift), (RUN_TAIL, SHIFT_PRIOR));
        assert_eq!(m.hours.to_vec(), hours);
        assert_eq!(
            m.weekend, m.hours,
            "weekends start from the weekday profile"
        );
        assert_eq!((m.days, m.lowest), (days, -5.0));
        // It is written back in the new layout, and reads back the same.
        let back = ValueModel::try_from(Wire::from(m.clone())).unwrap();
        assert_eq!(back, m);
        // v3's first form had no records: it reads with none.
        let mut v30 = Wire::from(m.clone());
        v30.p.truncate(v30.p.len() - 4);
        let read = ValueModel::try_from(v30).unwrap();
        assert_eq!((read.top, read.top_slow), (0.0, 0.0));
        assert_eq!(read.cal, m.cal);
        // v2's first form had no `lowest`: the last value's sign stands in for it.
        p.pop();
        let first = ValueModel::try_from(Wire { n: 500, p }).unwrap();
        assert_eq!(first.lowest, -3.0);
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
    fn a_three_level_tail_follows_its_ladder_and_extrapolates() {
        let ladder = [4.55e-2, 2.7e-3, 6.3e-5];
        let levels = [2.0, 3.0, 4.0];
        assert_eq!(tail(&ladder, &levels, 1.9), 1.0);
        assert!((tail(&ladder, &levels, 3.0) - 2.7e-3).abs() < 1e-9);
        assert!((tail(&ladder, &levels, 4.0) - 6.3e-5).abs() < 1e-9);
        // Beyond the last level: rate ln(4.55e-2 / 6.3e-5) / 2 ≈ 3.29 per unit.
        let p6 = tail(&ladder, &levels, 6.0);
        assert!(
            (p6 - 6.3e-5 * (-2.0 * 3.2914_f64).exp()).abs() < 1e-9,
            "{p6}"
        );
        // A heavy tail decays at the floor rate of 0.5 per unit.
        let heavy = [0.1, 0.1, 0.1];
        assert!((tail(&heavy, &levels, 8.0) - 0.1 * (-2.0_f64).exp()).abs() < 1e-6);
        // A level whose frequency has decayed to nothing is not learned: the tail is
        // extrapolated from the levels below it instead of collapsing towards it.
        let decayed = [0.2, 1e-3, 1e-9];
        let rate = (0.2_f64 / 1e-3).ln();
        assert!((tail(&decayed, &levels, 3.5) - 1e-3 * (-rate * 0.5).exp()).abs() < 1e-9);
    }

    #[test]
    fn the_log_levels_are_the_logs_of_the_levels() {
        for (l, ln) in LEVELS.iter().zip(LN_LEVELS) {
            assert!((f64::from(*l).ln() - ln).abs() < 1e-6, "{l}: {ln}");
        }
    }

    #[test]
    fn the_z_tail_is_the_prior_until_the_entity_teaches_it_otherwise() {
        // A fresh entity: its prior, log-linear in |z| between levels.
        assert_eq!(z_tail(&GAUSS_TAIL, 1.5, 0.0), 1.0);
        assert!((z_tail(&GAUSS_TAIL, 4.0, 0.0) - 6.3e-5).abs() < 1e-9);
        let between = z_tail(&GAUSS_TAIL, 5.0, 0.0);
        let w = (5.0_f64 / 4.0).ln() / (6.0_f64 / 4.0).ln();
        let expected = ((6.3e-5_f64).ln() * (1.0 - w) + (1.0e-7_f64).ln() * w).exp();
        assert!(
            (between / expected - 1.0).abs() < 1e-5,
            "{between} {expected}"
        );
        // Beyond 6σ (the last level always read as learned) it falls as the prior does.
        let p10 = z_tail(&GAUSS_TAIL, 10.0, 0.0);
        assert!((p10 / 1.0e-12 - 1.0).abs() < 1e-4, "{p10}");

        // An entity whose ordinary spikes are a thousand times its noise, 1 % of its events:
        // its levels up to 1000σ are learned, and a spike three times larger falls by a
        // power law of exponent 3 from there, not towards the prior's 1e-30.
        let mut spiky = GAUSS_TAIL;
        for f in spiky.iter_mut().take(9) {
            *f = f.max(1e-2);
        }
        let p = z_tail(&spiky, 3000.0, 0.0);
        assert!((p / (1e-2 / 27.0) - 1.0).abs() < 1e-4, "{p}");
        assert!(
            p * TESTS > 1e-4,
            "an ordinary spike of that stream is not flagged"
        );
        assert!(
            z_tail(&spiky, 1.0e6, 0.0) * TESTS < 1e-4,
            "one far beyond them is"
        );
    }

    #[test]
    fn a_stream_whose_spikes_are_its_normal_stops_flagging_them() {
        // Mostly exactly zero, a spike to 5,000 every 40 events (a disk-write counter).
        let mut m = ValueModel::default();
        let mut flagged = Vec::new();
        for i in 0..4000 {
            let v = if i % 40 == 39 { 5000.0 } else { 0.0 };
            let ctx = Context::of_local_ms(i * 300_000);
            let a = m.assess(v, ctx, Some(1), 1e-4);
            let flag = a.p < 1e-4;
            if flag {
                flagged.push(i);
            }
            m.absorb(v, ctx, &a, flag, Some(5.0));
        }
        assert!(
            flagged.iter().all(|i| *i < 1000),
            "spikes still flagged after the first thousand events: {flagged:?}"
        );
        // A level it has never held is still found.
        let ctx = Context::of_local_ms(4000 * 300_000);
        assert!(m.assess(5.0e7, ctx, Some(1), 1e-4).p < 1e-4);
    }

    /// A deterministic uniform number in [−1, 1) from `i`.
    fn jitter(i: i64) -> f64 {
        let x = (i as u64)
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    #[test]
    fn a_daily_square_wave_is_not_flagged_at_every_edge() {
        // 5-minute samples: 20 ± 2 at night, 67 from 09:00, 80 ± 7 from 10:00 to 18:00 (an
        // artificial daily square wave). The hourly profile cannot follow an edge within one
        // sample, so each rising edge is a surprise of about 20σ of the quiet night's noise,
        // every day, between two z levels (10σ learned, 30σ never reached).
        let mut m = ValueModel::default();
        let mut flagged = Vec::new();
        for i in 0..288 * 14 {
            let hour = (i % 288) / 12;
            let v = match hour {
                9 => 67.0 + 4.0 * jitter(i),
                10..18 => 80.0 + 7.0 * jitter(i),
                _ => 20.0 + 2.0 * jitter(i),
            };
            let ctx = Context::of_local_ms(i * 300_000);
            let a = m.assess(v, ctx, Some(1), 1e-4);
            let flag = a.p < 1e-4;
            if flag {
                flagged.push(i / 288);
            }
            m.absorb(v, ctx, &a, flag, Some(5.0));
        }
        assert!(
            flagged.iter().all(|day| *day < 3),
            "edges still flagged after the first days (days: {flagged:?})"
        );
    }

    #[test]
    fn a_surprise_no_larger_than_the_entity_has_had_is_not_flagged_again() {
        // Readings of 100 ± 2 with a spike to 125 every 200 events: about 13σ, at a
        // frequency (1 in 200) that its ladder learns at 10σ but never at 30σ. Before the
        // records, every one of the twenty spikes was flagged.
        let mut m = ValueModel::default();
        let mut flags = Vec::new();
        for i in 0..4000 {
            let v = if i % 200 == 199 {
                125.0
            } else {
                100.0 + 2.0 * jitter(i)
            };
            let ctx = Context::of_local_ms(i * 600_000);
            let a = m.assess(v, ctx, Some(1), 1e-4);
            let flag = a.p < 1e-4;
            if flag {
                flags.push(i);
            }
            m.absorb(v, ctx, &a, flag, Some(10.0));
        }
        assert!(flags.contains(&199), "the first spike is news: {flags:?}");
        assert!(
            flags.iter().all(|i| *i < 1000),
            "a spike the entity has had many times is still flagged: {flags:?}"
        );
        // One well beyond its record is news again.
        let ctx = Context::of_local_ms(4000 * 600_000);
        assert!(m.assess(1000.0, ctx, Some(1), 1e-4).p < 1e-4);
    }

    #[test]
    fn weekends_learn_their_own_daily_profile() {
        // Hourly readings: 20 at night, a working-day peak of 100 from 9 to 17 on weekdays
        // only (road traffic, requests to an office system), with a little noise.
        let at = |h: i64| 4 * 86_400_000 + h * 3_600_000; // 1970-01-05 was a Monday
        let value = |h: i64| {
            let (day, hour) = ((h / 24) % 7, h % 24);
            let noise = ((h * 7919) % 13) as f64 / 13.0;
            let peak = if day < 5 && (9..=17).contains(&hour) {
                80.0
            } else {
                0.0
            };
            20.0 + peak + noise
        };
        let mut m = ValueModel::default();
        let mut flags_in_last_week = 0;
        for h in 0..24 * 7 * 6 {
            let ctx = Context::of_local_ms(at(h));
            let a = m.assess(value(h), ctx, Some(1), 1e-4);
            let flag = a.p < 1e-4;
            if flag && h >= 24 * 7 * 5 {
                flags_in_last_week += 1;
            }
            m.absorb(value(h), ctx, &a, flag, Some(60.0));
        }
        assert_eq!(flags_in_last_week, 0, "a regular weekend is not an anomaly");
        // The weekend profile has no working-day peak.
        assert!(
            m.weekend[13] < m.hours[13] - 1.0,
            "{:?} {:?}",
            m.weekend,
            m.hours
        );
    }
}
