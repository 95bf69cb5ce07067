//! The business accounts of the corpus: payment streams with a home country, usual merchants
//! and the anomalies planted in them (bursts of failures, takeovers, spikes), each labelled as a
//! window.

use super::*;

const HOMES: &[(&str, &str, f64)] = &[
    ("DE", "EUR", 1.0),
    ("FR", "EUR", 1.0),
    ("GB", "GBP", 1.0),
    ("US", "USD", 1.0),
    ("JP", "JPY", 150.0),
    ("SE", "SEK", 10.0),
    ("BR", "BRL", 5.0),
    ("PL", "PLN", 4.0),
];
const FAR: &[&str] = &["NG", "VN", "PE", "KZ", "MN", "PK", "RO", "TH"];
/// Merchants an account-takeover uses, after the everyday ones of [`crate::stream::MERCHANTS`].
const RISKY_MERCHANTS: &[&str] = &["jeweller", "casino", "crypto", "giftcards"];

/// Merchant `i` of the everyday list followed by the risky one.
fn merchant(i: usize) -> &'static str {
    let everyday = crate::stream::MERCHANTS;
    everyday
        .get(i)
        .or_else(|| RISKY_MERCHANTS.get(i - everyday.len()))
        .copied()
        .unwrap_or("other")
}

/// How many merchants [`merchant`] knows.
fn merchants() -> usize {
    crate::stream::MERCHANTS.len() + RISKY_MERCHANTS.len()
}

/// Writes business account `a` with the anomalies `kinds`; like [`metric_stream`], the
/// account without anomalies is its clean twin up to the first onset.
#[allow(clippy::too_many_lines)]
pub fn business_account(seed: u64, c: &mut Corpus, a: usize, kinds: &[&str], prefix: &str) {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed.wrapping_mul(999_983).wrapping_add(a as u64));
    let plan =
        &mut ChaCha8Rng::seed_from_u64(seed.wrapping_mul(7_907).wrapping_add(a as u64) ^ 0x5a5a);
    let entity = format!("{prefix}{a:03}");
    let (country, currency, scale) = HOMES[rng.random_range(0..HOMES.len())];
    let median = scale * rng.random_range(8.0..300.0);
    let sigma: f64 = rng.random_range(0.3..0.8);
    let per_day: f64 = rng.random_range(3.0..14.0);
    let usual: Vec<&str> = (0..rng.random_range(3..8))
        .map(|_| merchant(rng.random_range(0..12)))
        .collect();
    let decline_rate = rng.random_range(0.01..0.05);
    let days = 30;
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let seq = std::cell::Cell::new(0usize);
    let mut t = start() + Duration::minutes(rng.random_range(0..600));
    let end = start() + Duration::days(days);
    // Each anomaly at a random moment after the account's first 40 events and ~10 days.
    let mut at: Vec<(DateTime<Utc>, &str)> = kinds
        .iter()
        .enumerate()
        .map(|(j, k)| {
            let day = 10 + j as i64 * 9 + plan.random_range(0..7);
            (
                start() + Duration::days(day) + Duration::minutes(plan.random_range(600..1200)),
                *k,
            )
        })
        .collect();
    at.reverse();
    let event = |t: DateTime<Utc>, value: f64, country: &str, merchant: &str, status: &str| {
        seq.set(seq.get() + 1);
        (
            t.timestamp_millis(),
            json!({
                "event_id": format!("{entity}-{:05}", seq.get()),
                "event_type": if status == "approved" { "payment.authorized" } else { "payment.declined" },
                "source": "bench.business",
                "entity_id": entity,
                "occurred_at": iso(t),
                "value": round2(value),
                "currency": currency,
                "attributes": {"country": country, "merchant": merchant, "status": status, "channel": "card"},
            }),
        )
    };
    while t < end {
        // Arrivals: exponential gaps at the account's rate, thinned at night (UTC 0–6).
        let gap_min = -(1440.0 / per_day) * rng.random_range(f64::EPSILON..1.0f64).ln();
        t += Duration::seconds((gap_min * 60.0) as i64 + 1);
        let hour = t.timestamp().rem_euclid(86_400) / 3600;
        if hour < 6 && rng.random_bool(0.85) {
            continue;
        }
        if let Some((when, kind)) = at.last().copied() {
            if t >= when && seq.get() >= 40 {
                at.pop();
                let from = t;
                let mut to = t;
                let usual_amount = |rng: &mut ChaCha8Rng| median * (sigma * normal(rng)).exp();
                match kind {
                    "amount_spike" => {
                        let v = median * rng.random_range(30.0..100.0);
                        let m = usual[rng.random_range(0..usual.len())];
                        c.events.push(event(t, v, country, m, "approved"));
                    }
                    "failure_burst" => {
                        let n = rng.random_range(6..10);
                        let m = usual[rng.random_range(0..usual.len())];
                        let mut bt = t;
                        for k in 0..n {
                            let v = usual_amount(rng);
                            c.events.push(event(bt, v, country, m, "declined"));
                            if k == 5 {
                                // The anomaly, as the product defines it, is the sixth failure.
                                c.labels
                                    .push(window(&entity, bt, bt + Duration::hours(1), kind));
                            }
                            bt += Duration::seconds(rng.random_range(10..70));
                        }
                        t = bt;
                        continue;
                    }
                    "rate_burst" => {
                        let n = rng.random_range(20..70);
                        let mut bt = t;
                        for _ in 0..n {
                            let v = median * 0.2 * (0.3 * normal(rng)).exp();
                            c.events
                                .push(event(bt, v, country, "giftcards", "approved"));
                            bt += Duration::seconds(rng.random_range(3..15));
                        }
                        to = bt;
                        t = bt;
                    }
                    "new_country" => {
                        let far = FAR[rng.random_range(0..FAR.len())];
                        let m = usual[rng.random_range(0..usual.len())];
                        c.events
                            .push(event(t, usual_amount(rng), far, m, "approved"));
                    }
                    _ => {
                        // Account takeover: a new country, unfamiliar merchants, large amounts,
                        // a few minutes apart.
                        let far = FAR[rng.random_range(0..FAR.len())];
                        let mut bt = t;
                        for _ in 0..rng.random_range(3..6) {
                            let m = merchant(rng.random_range(12..merchants()));
                            let v = median * rng.random_range(5.0..20.0);
                            c.events.push(event(bt, v, far, m, "approved"));
                            bt += Duration::seconds(rng.random_range(60..400));
                        }
                        to = bt;
                        t = bt;
                    }
                }
                c.labels
                    .push(window(&entity, from, to + Duration::hours(1), kind));
                continue;
            }
        }
        // Ordinary activity, sometimes a short session of 2–4 payments minutes apart.
        let session = if rng.random_bool(0.15) {
            rng.random_range(2..5)
        } else {
            1
        };
        for _ in 0..session {
            let merchant = if rng.random_bool(0.03) {
                merchant(rng.random_range(0..12))
            } else {
                usual[rng.random_range(0..usual.len())]
            };
            let status = if rng.random_bool(decline_rate) {
                "declined"
            } else {
                "approved"
            };
            let v = median * (sigma * normal(rng)).exp();
            c.events.push(event(t, v, country, merchant, status));
            t += Duration::seconds(rng.random_range(30..400));
        }
    }
}
