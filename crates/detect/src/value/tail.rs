//! Reading a tail probability off a ladder of exceedance frequencies: the z ladders (read
//! log-linearly between learned levels, falling as the prior beyond them), the three- and
//! four-level ladders of the variance, rate and run tests.

use super::*;

/// A frequency at or above this is taken as learned from the entity's own events (about
/// one exceedance in the last few thousand); below it, a level's frequency is still its
/// prior or has decayed to almost nothing, and says little.
pub(super) const LEARNED: f64 = 1e-5;

/// Tail probability at `x` from a three- or four-level ladder of exceedance frequencies
/// `freq` at positions `pos` (increasing, on the ladder's own scale: run lengths on log₂, the
/// variance and rate statistics as they are). Up to the highest level whose frequency is
/// learned ([`LEARNED`]), log-linear between the two levels around `x`; beyond it, an
/// exponential tail whose rate is the decay from the first level to that one, between 0.5
/// and 10 per unit. So a surprise past everything the entity has done is improbable in
/// proportion to how fast its own tail falls, and its unlearned upper levels (priors of
/// almost nothing) do not make the next step up look impossible. The z tests have their own
/// reading, [`z_tail`].
pub(super) fn ladder_tail<const N: usize>(freq: &[f32; N], pos: &[f64; N], x: f64) -> f64 {
    let fr = |k: usize| f64::from(freq[k]).clamp(1e-30, 1.0);
    // NaN is not in the tail either.
    if x.is_nan() || x < pos[0] {
        return 1.0;
    }
    let last = (0..N).rev().find(|&k| fr(k) >= LEARNED).unwrap_or(0);
    if x >= pos[last] {
        let rate = if last == 0 {
            10.0
        } else {
            ((fr(0) / fr(last)).ln() / (pos[last] - pos[0])).clamp(0.5, 10.0)
        };
        return (fr(last) * (-rate * (x - pos[last])).exp()).min(1.0);
    }
    let k = pos.partition_point(|p| *p <= x).saturating_sub(1);
    let w = (x - pos[k]) / (pos[k + 1] - pos[k]);
    (fr(k).ln() * (1.0 - w) + fr(k + 1).ln() * w).exp()
}

/// The z levels up to this index (6σ) are always read as learned: their prior is an honest
/// tail for any entity. A level above is learned once the entity has exceeded it clearly
/// more often than its prior says: [`Z_LEARNED`] times.
pub(super) const Z_PRIOR_LEVELS: usize = 3;
pub(super) const Z_LEARNED: f64 = 10.0;
/// The slowest a z tail falls beyond the learned levels: a power law of this exponent.
pub(super) const Z_MIN_DECAY: f64 = 3.0;

/// ln of [`LEVELS`]: the z ladders are read on a log scale.
pub(super) const LN_LEVELS: [f64; Z_LEVELS] = [
    std::f64::consts::LN_2,
    1.098_612_288_668_109_8,
    1.386_294_361_119_890_6,
    1.791_759_469_228_055,
    std::f64::consts::LN_10,
    3.401_197_381_662_155_5,
    4.605_170_185_988_092,
    5.703_782_474_656_201,
    6.907_755_278_982_137,
    8.006_367_567_650_246,
    9.210_340_371_976_184,
    10.308_952_660_644_293,
    11.512_925_464_970_229,
];

/// Tail of |z| = `x` on a z ladder, read on a log scale. The levels up to 6σ, and every
/// level above that the entity has exceeded clearly more often than its prior says, are
/// learned: between them, log-linear. Beyond the last learned level the tail falls as the
/// prior does from there, but at least as a power law of exponent [`Z_MIN_DECAY`]: a stream
/// with Gaussian noise is flagged a little beyond what it has done, and a counter whose
/// ordinary spikes are ten thousand times its quiet noise, and that has had such spikes,
/// only for a spike several times larger than those.
pub(super) fn z_tail(freq: &[f32; Z_LEVELS], x: f64, top: f32) -> f64 {
    if x.is_nan() || x < f64::from(LEVELS[0]) {
        return 1.0;
    }
    let lx = x.ln();
    let fr = |k: usize| f64::from(freq[k]).clamp(1e-30, 1.0);
    let prior = |k: usize| f64::from(GAUSS_TAIL[k]);
    let last = (0..Z_LEVELS)
        .rev()
        .find(|&k| k <= Z_PRIOR_LEVELS || fr(k) > Z_LEARNED * prior(k))
        .unwrap_or(0);
    if lx <= LN_LEVELS[last] {
        return ln_ladder(freq, lx, Z_MIN_DECAY).exp();
    }
    // Up to the entity's record it has been before: the slowest fall, a power law of
    // exponent [`Z_MIN_DECAY`] (a daily edge of a noise-free square wave, 20σ every day,
    // between two levels it learned at 10σ and never reached at 30σ). Beyond the record, and
    // beyond the last learned level without one, the prior's fall, but at least that.
    let ln_top = f64::from(top).max(1.0).ln().max(LN_LEVELS[last]);
    let seen = lx.min(ln_top);
    let fall = |from: f64| {
        let prior_fall =
            ln_ladder(&GAUSS_TAIL, lx, Z_MIN_DECAY) - ln_ladder(&GAUSS_TAIL, from, Z_MIN_DECAY);
        prior_fall.min(-Z_MIN_DECAY * (lx - from))
    };
    let beyond = if lx > ln_top { fall(ln_top) } else { 0.0 };
    (fr(last).ln() - Z_MIN_DECAY * (seen - LN_LEVELS[last]) + beyond)
        .exp()
        .min(1.0)
}

/// ln of the ladder `freq` at `lx` (log-linear between [`LN_LEVELS`], a power law of
/// exponent `decay` beyond the last).
pub(super) fn ln_ladder(freq: &[f32; Z_LEVELS], lx: f64, decay: f64) -> f64 {
    let fr = |k: usize| f64::from(freq[k]).clamp(1e-30, 1.0).ln();
    let top = Z_LEVELS - 1;
    if lx >= LN_LEVELS[top] {
        return fr(top) - decay * (lx - LN_LEVELS[top]);
    }
    let k = LN_LEVELS.partition_point(|p| *p <= lx).saturating_sub(1);
    let w = (lx - LN_LEVELS[k]) / (LN_LEVELS[k + 1] - LN_LEVELS[k]);
    fr(k) * (1.0 - w) + fr(k + 1) * w
}

/// Tail on a three-level ladder read as it is (the variance and rate tests).
pub(super) fn tail(freq: &[f32; 3], levels: &[f32; 3], x: f64) -> f64 {
    ladder_tail(freq, &levels.map(f64::from), x)
}

/// Tail probability of a value repeated `same` times, from the entity's frequencies of runs
/// at [`RUN_LEVELS`] (on a log₂ scale: runs of zeros in a counter that is mostly idle are
/// long, and their lengths spread over orders of magnitude).
pub(super) fn run_tail(freq: &[f32; RUNS], same: f64) -> f64 {
    if same < 1.0 {
        return 1.0;
    }
    ladder_tail(freq, &RUN_LEVELS.map(f64::from), same.log2())
}
