//! The stored form of a [`ValueModel`]: its count and every number packed as little-endian
//! `f32`, and the older forms (detector v2, with and without `lowest`) it still reads.

use serde::{Deserialize, Serialize};

use super::*;

/// Stored form: the count and every number packed as little-endian `f32`.
#[derive(Serialize, Deserialize)]
pub(super) struct Wire {
    pub(super) n: u64,
    #[serde(with = "crate::packed::f32s")]
    pub(super) p: Vec<f32>,
}

/// Numbers of the stored form once warmed up.
const FIXED: usize = FIXED_V3_0 + 4;
/// The first form of detector v3, before the point and level tests kept their records: it
/// reads with no record, so the records start from the next event.
const FIXED_V3_0: usize = 10 + 2 * Z_LEVELS + 2 * 3 + RUNS + 1 + 48 + 7 + 1;
/// The stored forms of detector v2 (with and without `lowest`): three-level ladders and a
/// repeat rate. They read with the new ladders' upper levels and the run and shift
/// frequencies at their priors, so a stored entity keeps its level, noise and rhythm.
const FIXED_V2: usize = 11 + 12 + 24 + 7 + 1;
const FIXED_V1: usize = FIXED_V2 - 1;

impl From<ValueModel> for Wire {
    fn from(m: ValueModel) -> Wire {
        if m.n < WARMUP as u64 {
            // Warming up: the raw values so far, then the typical gap.
            let mut p = m.warm;
            p.push(m.gap);
            return Wire { n: m.n, p };
        }
        let mut p = Vec::with_capacity(FIXED);
        p.extend([
            m.c, m.level, m.slow, m.dev, m.dev_slow, m.var, m.run, m.last, m.same, m.gap,
        ]);
        p.extend(m.cal);
        p.extend(m.cal_slow);
        p.extend(m.cal_var);
        p.extend(m.cal_rate);
        p.extend(m.cal_run);
        p.push(m.cal_shift);
        p.extend(m.hours);
        p.extend(m.weekend);
        p.extend(m.days);
        p.push(m.lowest);
        p.extend([m.top, m.top_slow, m.peak, m.peak_slow]);
        Wire { n: m.n, p }
    }
}

/// Reads numbers off the stored form in order.
struct Cursor<'a>(std::slice::Iter<'a, f32>);

impl Cursor<'_> {
    fn one(&mut self) -> f32 {
        self.0.next().copied().unwrap_or_default()
    }
    fn array<const N: usize>(&mut self) -> [f32; N] {
        std::array::from_fn(|_| self.one())
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
        let v2 = match w.p.len() {
            FIXED | FIXED_V3_0 => false,
            FIXED_V1 | FIXED_V2 => true,
            n => {
                return Err(format!(
                    "value model has {n} numbers, expected {FIXED} (or {FIXED_V3_0} of \
                     detector v3's first form, {FIXED_V1} or {FIXED_V2} of detector v2)"
                ));
            }
        };
        let mut c = Cursor(w.p.iter());
        let mut m = ValueModel {
            n: w.n,
            c: c.one(),
            level: c.one(),
            slow: c.one(),
            dev: c.one(),
            dev_slow: c.one(),
            var: c.one(),
            run: c.one(),
            last: c.one(),
            same: c.one(),
            ..ValueModel::default()
        };
        if v2 {
            c.one(); // v2's repeat rate: the run ladder replaces it
            m.gap = c.one();
            let (low, slow): ([f32; 3], [f32; 3]) = (c.array(), c.array());
            m.cal = GAUSS_TAIL;
            m.cal_slow = GAUSS_TAIL;
            m.cal[..3].copy_from_slice(&low);
            m.cal_slow[..3].copy_from_slice(&slow);
            m.cal_var = c.array();
            m.cal_rate = c.array();
            m.cal_run = RUN_TAIL;
            m.cal_shift = SHIFT_PRIOR;
        } else {
            m.gap = c.one();
            m.cal = c.array();
            m.cal_slow = c.array();
            m.cal_var = c.array();
            m.cal_rate = c.array();
            m.cal_run = c.array();
            m.cal_shift = c.one();
        }
        m.hours = c.array();
        m.weekend = if v2 { m.hours } else { c.array() };
        m.days = c.array();
        // v1 did not keep `lowest`: take it from the last value's sign.
        m.lowest = match w.p.len() {
            FIXED_V1 => m.last.min(0.0),
            _ => c.one(),
        };
        if w.p.len() == FIXED {
            (m.top, m.top_slow, m.peak, m.peak_slow) = (c.one(), c.one(), c.one(), c.one());
        }
        Ok(m)
    }
}
