//! The records of the point and level tests (item 7 of the value model's doc): the largest
//! |z| each test has had, taken at the end of an episode of surprise and fading slowly, and
//! the bound it puts on a test's probability near it.

use super::{TESTS, f};

/// How much an event must exceed the entity's record for the point or level test (the
/// largest |z| it has had) before that test may flag it: a surprise no
/// larger than one the entity has already produced is part of its normal.
const RECORD_MARGIN: f64 = 1.05;
/// Share of ln(record) forgotten per event: the record halves on a log scale in about
/// 14,000 events (seven weeks of 5-minute samples), so an entity that has calmed down is
/// judged by its recent self again.
const RECORD_FADE: f64 = 5e-5;

/// Exponent of the power law by which the record's bound falls beyond [`RECORD_MARGIN`]
/// times the record: steep, so that the bound decides near the record and the ladder beyond.
const RECORD_STEEPNESS: i32 = 10;

/// The least probability a z test gives `x` against the entity's record `top` (0 with no
/// record yet): at [`RECORD_MARGIN`] times the record it is exactly the flagging threshold,
/// below it more, beyond it falling as a power law of exponent [`RECORD_STEEPNESS`]: at
/// twice the record it is 600 times below the threshold.
pub(super) fn record(x: f64, top: f32, epsilon: f64) -> f64 {
    if top <= 0.0 || x.is_nan() {
        return 0.0;
    }
    let at = RECORD_MARGIN * f64::from(top);
    (epsilon / TESTS) * (x / at).powi(-RECORD_STEEPNESS).min(1e300)
}

/// A record one event later: ln(record) shrinks by [`RECORD_FADE`], never below 1σ.
fn fade(top: f32) -> f64 {
    f64::from(top).max(1.0).powf(1.0 - RECORD_FADE)
}

/// Below this |z| an episode of surprise is over: the outlier threshold of the shift test.
const EPISODE_END: f64 = 3.0;

/// The record and the episode's peak after an event with surprise `z`: the peak grows
/// during an episode and becomes the record when it ends.
pub(super) fn episode(top: f32, peak: f32, z: f64) -> (f32, f32) {
    let peak = f64::from(peak).max(z);
    if z < EPISODE_END {
        (f(fade(top).max(peak)), 0.0)
    } else {
        (f(fade(top)), f(peak))
    }
}
