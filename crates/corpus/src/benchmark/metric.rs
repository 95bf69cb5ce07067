//! The metric streams of the corpus: one entity per stream, an archetype (sampling, seasonality,
//! trend, noise, counts) and the anomalies planted in it, each labelled as a window.

use super::*;

/// A metric archetype: how a stream of this kind behaves when nothing is wrong.
#[derive(Debug, Clone, Copy)]
struct Archetype {
    name: &'static str,
    interval_min: i64,
    /// Base level.
    level: f64,
    /// Daily amplitude, as a share of the level.
    daily: f64,
    /// Weekend factor (1 = none).
    weekend: f64,
    /// Trend per day, as a share of the level.
    trend: f64,
    /// Noise σ, as a share of the level.
    noise: f64,
    /// Heavy-tailed noise.
    heavy: bool,
    /// Poisson counts around the expectation instead of continuous noise.
    counts: bool,
    /// Clamp to [0, 100].
    percent: bool,
    /// AR(1) coefficient of a slowly wandering component (σ as a share of the level).
    wander: (f64, f64),
}

fn archetype(i: usize, rng: &mut ChaCha8Rng) -> Archetype {
    let mut a = match i % 7 {
        0 => Archetype {
            name: "cpu",
            interval_min: 5,
            level: rng.random_range(20.0..60.0),
            daily: rng.random_range(0.2..0.5),
            weekend: 1.0,
            trend: 0.0,
            noise: rng.random_range(0.03..0.08),
            heavy: false,
            counts: false,
            percent: true,
            wander: (0.98, 0.006),
        },
        1 => Archetype {
            name: "latency",
            interval_min: 1,
            level: rng.random_range(80.0..300.0),
            daily: rng.random_range(0.0..0.1),
            weekend: 1.0,
            trend: 0.0,
            noise: rng.random_range(0.05..0.12),
            heavy: true,
            counts: false,
            percent: false,
            wander: (0.99, 0.004),
        },
        2 => Archetype {
            name: "traffic",
            interval_min: 15,
            level: rng.random_range(60.0..600.0),
            daily: rng.random_range(0.4..0.8),
            weekend: rng.random_range(0.5..0.8),
            trend: 0.0,
            noise: 0.0,
            heavy: false,
            counts: true,
            percent: false,
            wander: (0.95, 0.01),
        },
        3 => Archetype {
            name: "disk",
            interval_min: 10,
            level: rng.random_range(30.0..50.0),
            daily: 0.0,
            weekend: 1.0,
            trend: rng.random_range(0.005..0.02),
            noise: rng.random_range(0.005..0.02),
            heavy: false,
            counts: false,
            percent: true,
            wander: (0.99, 0.003),
        },
        4 => Archetype {
            name: "temperature",
            interval_min: 5,
            level: rng.random_range(40.0..80.0),
            daily: rng.random_range(0.05..0.15),
            weekend: 1.0,
            trend: 0.0,
            noise: rng.random_range(0.005..0.015),
            heavy: false,
            counts: false,
            percent: false,
            wander: (0.995, 0.002),
        },
        5 => Archetype {
            name: "errors",
            interval_min: 5,
            level: rng.random_range(0.5..4.0),
            daily: rng.random_range(0.0..0.5),
            weekend: 1.0,
            trend: 0.0,
            noise: 0.0,
            heavy: false,
            counts: true,
            percent: false,
            wander: (0.9, 0.0),
        },
        _ => Archetype {
            name: "clicks",
            interval_min: 10,
            level: rng.random_range(20.0..200.0),
            daily: rng.random_range(0.3..0.7),
            weekend: rng.random_range(1.3..1.8),
            trend: 0.0,
            noise: 0.0,
            heavy: false,
            counts: true,
            percent: false,
            wander: (0.97, 0.008),
        },
    };
    if a.counts && a.level < 5.0 {
        a.daily = a.daily.min(0.3);
    }
    a
}

/// The planted anomaly of a metric stream, from sample `at` for `len` samples.
#[derive(Debug, Clone, Copy)]
struct Planted {
    kind: &'static str,
    at: usize,
    len: usize,
    /// Magnitude: spikes in noise deviations, shifts, drifts and trends in total deviations.
    size: f64,
}

/// Writes metric stream `s` (archetype `s % 7`) with the anomalies `kinds` planted in turn.
/// The stream's behaviour and noise come from `(seed, s)` alone, and the anomalies' from
/// another generator, so the stream without anomalies is the same stream up to the first onset:
/// its clean twin.
pub fn metric_stream(seed: u64, c: &mut Corpus, s: usize, kinds: &[&str], prefix: &str) {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(s as u64));
    let plan =
        &mut ChaCha8Rng::seed_from_u64(seed.wrapping_mul(7_919).wrapping_add(s as u64) ^ 0xa5a5);
    let a = archetype(s, rng);
    let n = 2_200usize;
    let entity = format!("{prefix}-{}-{s:02}", a.name);
    // The stream's normal variability (noise and wander), in value units: anomaly sizes are
    // multiples of it, so that every planted anomaly is visible on a plot of its stream.
    let wander_sd = a.wander.1 / (1.0 - a.wander.0.powi(2)).sqrt();
    let noise_rel = if a.counts {
        1.0 / a.level.max(0.5).sqrt()
    } else {
        a.noise
    };
    let sd_total = a.level * (noise_rel.powi(2) + wander_sd.powi(2)).sqrt();
    // Anomalies spaced over the last two thirds.
    let mut planted: Vec<Planted> = Vec::new();
    let slot = (n - n / 3) / kinds.len().max(1);
    for (k, kind) in kinds.iter().enumerate() {
        let kind: &'static str = match METRIC_ANOMALIES.iter().find(|x| *x == kind) {
            Some(&"contextual") if a.daily * a.level < 5.0 * sd_total => "dip",
            Some(x) => x,
            None => continue,
        };
        let rng = &mut *plan;
        let at = n / 3 + k * slot + rng.random_range(slot / 6..slot / 2);
        let len = match kind {
            "spike" | "dip" => 1,
            "variance_burst" => rng.random_range(20..60),
            "flatline" => rng.random_range(24..96),
            "drop_to_zero" => rng.random_range(6..36),
            "drift" => rng.random_range(150..300),
            "contextual" => (180 / a.interval_min) as usize,
            _ => slot - slot / 2 - 1, // shifts and trend changes last to the next slot
        };
        let size = match kind {
            "spike" | "dip" => rng.random_range(6.0..12.0),
            "level_shift_up" | "level_shift_down" => rng.random_range(5.0..9.0),
            "variance_burst" => rng.random_range(4.0..6.0),
            "trend_change" => rng.random_range(8.0..12.0),
            "drift" => rng.random_range(6.0..10.0),
            _ => 1.0,
        };
        planted.push(Planted {
            kind,
            at,
            len,
            size,
        });
    }

    let t0 = start() + Duration::minutes(rng.random_range(0..a.interval_min));
    let step = Duration::minutes(a.interval_min);
    let offset_h: i64 = [0, 1, -5, 9][s % 4];
    let mut wander = 0.0;
    let mut shift = 0.0_f64; // cumulative level change from shifts, trends and drifts
    let mut slope = 0.0_f64; // extra trend per sample
    let mut last = 0.0;
    let sd_of = |mean: f64| {
        if a.counts {
            mean.max(0.5).sqrt()
        } else {
            a.noise * a.level
        }
    };
    for i in 0..n {
        let t = t0 + step * i as i32;
        let local = t + Duration::hours(offset_h);
        let hour = (local.timestamp().rem_euclid(86_400)) as f64 / 3600.0;
        let dow = (local.timestamp().div_euclid(86_400) + 3).rem_euclid(7); // 0 = Monday
        let mut season = 1.0 + a.daily * (TAU * (hour - 9.0) / 24.0).sin();
        if dow >= 5 {
            season *= a.weekend;
        }
        wander = a.wander.0 * wander + a.wander.1 * a.level * normal(rng);
        let days = i as f64 * a.interval_min as f64 / 1440.0;
        shift += slope;
        let mut expected = a.level * season * (1.0 + a.trend * days) + wander + shift;
        let mut noise_scale = 1.0;
        let mut value: Option<f64> = None;
        for p in &planted {
            let inside = i >= p.at && i < p.at + p.len;
            match p.kind {
                "level_shift_up" | "level_shift_down" if i == p.at => {
                    let sign = if p.kind == "level_shift_up" {
                        1.0
                    } else {
                        -1.0
                    };
                    shift += sign * p.size * sd_total;
                    expected += sign * p.size * sd_total;
                }
                "trend_change" if i == p.at => {
                    // Reaches `size` deviations over half the anomaly's length, then keeps climbing.
                    slope += p.size * sd_total / (p.len as f64 / 2.0);
                }
                "trend_change" if i == p.at + p.len => slope = 0.0,
                "drift" if inside => {
                    let d = p.size * sd_total / p.len as f64;
                    shift += d;
                    expected += d;
                }
                "variance_burst" if inside => noise_scale = p.size,
                "flatline" if inside => value = Some(last),
                "drop_to_zero" if inside => value = Some(0.0),
                "contextual" if inside => {
                    // The daily swing stops: the value holds the level of 6 hours earlier.
                    let h = hour - 6.0;
                    expected =
                        a.level * (1.0 + a.daily * (TAU * (h - 9.0) / 24.0).sin()) + wander + shift;
                }
                _ => {}
            }
        }
        let mean = expected.max(0.0);
        let mut v = value.unwrap_or_else(|| {
            let sd = sd_of(mean) * noise_scale;
            if a.counts {
                if noise_scale > 1.0 {
                    (mean + sd * normal(rng)).round().max(0.0)
                } else {
                    poisson(rng, mean)
                }
            } else if a.heavy {
                mean + sd * heavy(rng)
            } else {
                mean + sd * normal(rng)
            }
        });
        for p in &planted {
            if i == p.at && (p.kind == "spike" || p.kind == "dip") {
                let sd = sd_of(mean).max(0.05 * a.level);
                let sign = if p.kind == "spike" { 1.0 } else { -1.0 };
                v += sign * p.size * sd;
                if a.counts {
                    v = v.round();
                }
            }
        }
        if a.percent {
            v = v.clamp(0.0, 100.0);
        }
        if !a.counts {
            v = (v * 1000.0).round() / 1000.0;
        }
        v = v.max(0.0);
        last = v;
        c.events.push((
            t.timestamp_millis(),
            json!({
                "event_id": format!("{entity}-{i:05}"),
                "event_type": format!("metric.{}", a.name),
                "source": "bench.metric",
                "entity_id": entity,
                "occurred_at": iso(t),
                "value": v,
                "attributes": {"metric": a.name},
            }),
        ));
    }
    for p in &planted {
        let tolerance = (n / 40).max(p.len.min(n / 20));
        let from = t0 + step * p.at as i32;
        let to = t0 + step * (p.at + p.len.max(1) - 1 + tolerance) as i32;
        c.labels.push(window(&entity, from, to, p.kind));
    }
}
