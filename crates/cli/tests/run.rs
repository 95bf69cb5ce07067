//! `pipeline run` end to end on the sample stream: the summary reconciles, `--output` has one
//! line per input event, and a second run on the same database changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{pipeline, repo};
use pipeline_core::store::Inspect;
use pipeline_sqlite::SqliteStore;
use serde_json::Value;

fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// A fresh database holding the sample stream, in a temporary directory of its own.
fn sample_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    pipeline(&[
        "run",
        "events/streams/transactions.jsonl",
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]);
    (tmp, db)
}

async fn dump(db: &Path) -> pipeline_core::store::StoreDump {
    SqliteStore::open(db).unwrap().dump().await.unwrap()
}

#[tokio::test]
async fn run_twice_changes_nothing_the_second_time() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let (db_s, out1, out2) = (
        db.to_str().unwrap(),
        tmp.path().join("o1.jsonl"),
        tmp.path().join("o2.jsonl"),
    );
    let stream = "events/streams/transactions.jsonl";
    let lines = std::fs::read_to_string(repo().join(stream))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;

    let first = summary(&pipeline(&[
        "run",
        stream,
        "--db",
        db_s,
        "--json",
        "--output",
        out1.to_str().unwrap(),
    ]));
    assert_eq!(n(&first, "input"), lines);
    assert!(first["reconciled"].as_bool().unwrap());
    let accounted: u64 = pipeline_core::persist::Status::ALL
        .iter()
        .map(|s| n(&first, s.as_str()))
        .sum();
    assert_eq!(accounted, lines);
    assert!(n(&first, "persisted") > lines * 9 / 10);
    assert!(
        n(&first, "quarantined") >= 10,
        "the stream carries malformed lines"
    );
    assert!(
        n(&first, "anomalies") >= 10,
        "the stream carries injected anomalies"
    );
    assert!(
        first["quarantined_by_reason"]["malformed_json"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let state_after_first = dump(&db).await;
    detection_quality(&out1);
    incidents_listed(db_s, &out1, n(&first, "anomalies"));

    let second = summary(&pipeline(&[
        "run",
        stream,
        "--db",
        db_s,
        "--json",
        "--output",
        out2.to_str().unwrap(),
    ]));
    assert_eq!(n(&second, "input"), lines);
    for k in ["persisted", "updated", "conflict", "anomalies"] {
        assert_eq!(n(&second, k), 0, "second run {k}: {second}");
    }
    assert_eq!(
        n(&second, "duplicate") + n(&second, "stale") + n(&second, "quarantined"),
        lines
    );
    assert_eq!(
        n(&second, "quarantined"),
        n(&first, "quarantined"),
        "invalid ones are quarantined again"
    );
    assert_eq!(
        dump(&db).await,
        state_after_first,
        "the second run changed the database"
    );

    // --output: one line per input event, quarantined ones with their reasons.
    for (path, allowed) in [
        (
            &out1,
            &["persisted", "duplicate", "updated", "quarantined"][..],
        ),
        (&out2, &["duplicate", "stale", "quarantined"][..]),
    ] {
        let text = std::fs::read_to_string(path).unwrap();
        let rows: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len() as u64, lines);
        for r in &rows {
            let status = r["status"].as_str().unwrap();
            assert!(
                allowed.contains(&status),
                "{path:?}: unexpected status in {r}"
            );
            for k in ["event_id", "score", "is_anomaly", "reasons"] {
                assert!(r.get(k).is_some(), "{k} missing in {r}");
            }
            if status == "quarantined" {
                assert!(
                    !r["reasons"].as_array().unwrap().is_empty(),
                    "quarantined without reasons: {r}"
                );
            }
        }
    }
}

/// `anomalies --incidents` lists every incident of the run once, with the run's alerts and
/// every event the run put in it.
fn incidents_listed(db: &str, output: &Path, alerts: u64) {
    let listed = pipeline(&[
        "anomalies",
        "--incidents",
        "--json",
        "--limit",
        "100000",
        "--db",
        db,
    ]);
    let rows: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut per_incident: std::collections::HashMap<String, u64> = Default::default();
    for line in std::fs::read_to_string(output).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(id) = v["incident"]["id"].as_str() {
            *per_incident.entry(id.to_owned()).or_default() += 1;
        }
    }
    assert_eq!(rows.len(), per_incident.len());
    assert_eq!(rows.iter().map(|r| n(r, "alerts")).sum::<u64>(), alerts);
    for r in &rows {
        assert_eq!(
            Some(&n(r, "events")),
            per_incident.get(r["id"].as_str().unwrap()),
            "{r}"
        );
    }
    let one = pipeline(&["anomalies", "--incidents", "--limit", "1", "--db", db]);
    let text = String::from_utf8_lossy(&one.stdout);
    assert_eq!(text.lines().count(), 2, "a header and one incident: {text}");
    assert!(text.contains("alerts") && (text.contains("open") || text.contains("closed")));
}

/// The injected anomalies of the sample stream are found, without drowning them in noise.
/// Recall is counted per incident: a labelled event is found when it belongs to an incident
/// that raised an alert (a burst of failures is one alert, its later failures continue it);
/// precision is over the alerts.
fn detection_quality(output: &Path) {
    let labels: std::collections::HashMap<String, String> =
        std::fs::read_to_string(repo().join("events/streams/transactions.labels.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| {
                (
                    v["event_id"].as_str().unwrap().to_owned(),
                    v["label"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
    let truth: std::collections::HashSet<&str> = labels
        .iter()
        .filter(|(_, l)| matches!(l.as_str(), "failure_burst" | "spike" | "new_country"))
        .map(|(k, _)| k.as_str())
        .collect();
    let rows: Vec<Value> = std::fs::read_to_string(output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    let flagged: std::collections::HashSet<&str> = rows
        .iter()
        .filter(|v| v["is_anomaly"] == true)
        .map(|v| v["event_id"].as_str().unwrap())
        .collect();
    let in_incident: std::collections::HashSet<&str> = rows
        .iter()
        .filter(|v| v["incident"]["id"].is_string())
        .map(|v| v["event_id"].as_str().unwrap())
        .collect();
    // Every alert opens or escalates an incident, and is in it.
    assert!(flagged.is_subset(&in_incident));
    let hits = flagged.iter().filter(|id| truth.contains(*id)).count() as f64;
    let found = truth.iter().filter(|id| in_incident.contains(*id)).count() as f64;
    let (precision, recall) = (hits / flagged.len() as f64, found / truth.len() as f64);
    assert!(
        recall >= 0.9,
        "recall per incident {recall:.2} (alerts {}, labelled {})",
        flagged.len(),
        truth.len()
    );
    assert!(
        precision >= 0.7,
        "precision {precision:.2} (alerts {}, labelled {})",
        flagged.len(),
        truth.len()
    );
}

#[test]
fn text_summary_show_and_anomalies() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let db_s = db.to_str().unwrap();
    let out = pipeline(&[
        "run",
        "events/ingest/msk-good.json",
        "events/ingest/eventbridge-bad.json",
        "--db",
        db_s,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "valid",
        "quarantined",
        "anomalies",
        "persisted",
        "duplicate",
        "updated",
        "stale",
        "conflict",
        "events/s",
        "reconciled",
    ] {
        assert!(text.contains(word), "summary lacks {word}: {text}");
    }
    let shown: Value =
        serde_json::from_slice(&pipeline(&["show", "evt-demo-007", "--db", db_s]).stdout).unwrap();
    assert_eq!(shown["record"]["is_anomaly"], true);
    assert_eq!(shown["record"]["reasons"][0]["code"], "failure_velocity");
    let shown: Value =
        serde_json::from_slice(&pipeline(&["show", "evt-bad-001", "--db", db_s]).stdout).unwrap();
    assert!(shown["record"].is_null());
    assert_eq!(shown["quarantine"][0]["item"]["stage"], "validate");

    let listed = pipeline(&["anomalies", "--json", "--entity", "acct-0042", "--db", db_s]);
    let rows: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["event_id"], "evt-demo-007");

    let missing = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["show", "nope", "--db", db_s])
        .output()
        .unwrap();
    assert!(!missing.status.success());

    // A report of entities the store does not hold fails and writes nothing, rather than a
    // page saying the store is empty.
    let page = tmp.path().join("r.html");
    let page_s = page.to_str().unwrap();
    let nobody = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["report", "--db", db_s, "--entity", "nobody", "-o", page_s])
        .output()
        .unwrap();
    assert!(!nobody.status.success(), "{nobody:?}");
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no records for entity nobody"));
    assert!(!page.exists());
    pipeline(&[
        "report",
        "--db",
        db_s,
        "--entity",
        "acct-0042",
        "--entity",
        "nobody",
        "-o",
        page_s,
    ]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("data-entity=\"acct-0042\"").count(), 1);
}

#[tokio::test]
async fn a_file_that_is_mostly_not_json_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let db_s = db.to_str().unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["run", "README.md", "--db", db_s])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("are not JSON") && err.contains("nothing was written"),
        "{err}"
    );
    let d = dump(&db).await;
    assert!(d.events.is_empty() && d.quarantine.is_empty(), "{d:?}");

    // Asked for explicitly, every line is quarantined as before.
    let out = pipeline(&[
        "run",
        "README.md",
        "--db",
        db_s,
        "--json",
        "--max-undecodable",
        "1",
    ]);
    let s = summary(&out);
    assert_eq!(n(&s, "quarantined"), n(&s, "input"));
    // A file with a few bad lines among events is processed as always.
    pipeline(&[
        "run",
        "events/source/payments-bad.jsonl",
        "--db",
        db_s,
        "--json",
    ]);
}

#[test]
fn huge_values_and_control_characters_break_neither_the_store_nor_the_terminal() {
    // Issue 9, cases 1 (a 1e307 value once stored a null and corrupted the store) and 8
    // (escape sequences in an entity id were stored and reached the terminal raw; the
    // contract now refuses control characters in identifiers, and output escapes them).
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let db_s = db.to_str().unwrap();
    let input = tmp.path().join("in.jsonl");
    let hostile = "acct-\u{1b}[31mred\u{7}";
    let mut lines = Vec::new();
    for i in 0..15 {
        let (value, country) = match i {
            13 => (1e307, "DE"),
            14 => (12.0, "BR"),
            _ => (10.0 + f64::from(i % 9), "DE"),
        };
        lines.push(
            serde_json::json!({
                "event_id": format!("h-{i}"), "event_type": "payment.authorized", "source": "t",
                "entity_id": "acct-huge", "occurred_at": format!("2026-06-01T{i:02}:00:00Z"),
                "value": value, "attributes": {"country": country},
            })
            .to_string(),
        );
    }
    lines.push(
        serde_json::json!({
            "event_id": "h-esc", "event_type": "payment.authorized", "source": "t",
            "entity_id": hostile, "occurred_at": "2026-06-01T16:00:00Z", "value": 1.0,
        })
        .to_string(),
    );
    std::fs::write(&input, lines.join("\n")).unwrap();
    let first = summary(&pipeline(&[
        "run",
        input.to_str().unwrap(),
        "--db",
        db_s,
        "--json",
    ]));
    assert_eq!(n(&first, "persisted"), 15, "{first}");
    assert_eq!(n(&first, "quarantined"), 1, "{first}");
    assert!(n(&first, "anomalies") >= 2, "{first}");
    let again = summary(&pipeline(&[
        "run",
        input.to_str().unwrap(),
        "--db",
        db_s,
        "--json",
    ]));
    assert_eq!(n(&again, "duplicate"), 15, "{again}");

    let shown: Value =
        serde_json::from_slice(&pipeline(&["show", "h-13", "--db", db_s]).stdout).unwrap();
    let reasons = shown["record"]["reasons"].to_string();
    assert!(
        reasons.contains("value_outlier") && !reasons.contains("null"),
        "{reasons}"
    );

    let refused = pipeline(&["show", "h-esc", "--db", db_s]).stdout;
    assert!(
        !refused.iter().any(|b| *b == 0x1b || *b == 0x07),
        "raw control bytes printed"
    );
    let refused: Value = serde_json::from_slice(&refused).unwrap();
    assert!(refused["record"].is_null(), "{refused}");
    let reason = &refused["quarantine"][0]["item"]["reasons"][0];
    assert_eq!(reason["path"], "/entity_id", "{refused}");

    let listed = pipeline(&["anomalies", "--db", db_s]).stdout;
    assert!(
        !listed.iter().any(|b| *b == 0x1b || *b == 0x07),
        "raw control bytes printed"
    );
}

#[test]
fn reads_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["run", "-", "--json", "--db", db.to_str().unwrap()])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(&std::fs::read(repo().join("events/source/payments-good.jsonl")).unwrap())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let s = summary(&out);
    assert_eq!((n(&s, "input"), n(&s, "persisted")), (9, 9));
}

#[test]
fn generate_is_deterministic_and_writes_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let labels = tmp.path().join("labels.jsonl");
    let a = pipeline(&[
        "generate",
        "--events",
        "500",
        "--entities",
        "10",
        "--seed",
        "9",
        "--labels",
        labels.to_str().unwrap(),
    ]);
    let b = pipeline(&[
        "generate",
        "--events",
        "500",
        "--entities",
        "10",
        "--seed",
        "9",
    ]);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(String::from_utf8_lossy(&a.stdout).lines().count(), 500);
    assert!(std::fs::read_to_string(labels).unwrap().lines().count() > 0);
}

#[tokio::test]
async fn a_line_of_invalid_utf8_is_quarantined_and_the_rest_is_processed() {
    // Issue 9, case 2: one line of `\xff\xfe` used to fail the whole file ("stream did not
    // contain valid UTF-8"), nothing processed, no line number.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let input = tmp.path().join("in.jsonl");
    let good = std::fs::read(repo().join("events/source/payments-good.jsonl")).unwrap();
    let mut bytes = b"\xff\xfe not text\n".to_vec();
    bytes.extend_from_slice(&good);
    std::fs::write(&input, &bytes).unwrap();
    let good_lines = good
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;

    let out = summary(&pipeline(&[
        "run",
        input.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(n(&out, "input"), good_lines + 1, "{out}");
    assert_eq!(n(&out, "persisted"), good_lines, "{out}");
    assert_eq!(n(&out, "quarantined"), 1, "{out}");
    assert!(out["reconciled"].as_bool().unwrap());
    let dump = dump(&db).await;
    let q = &dump.quarantine[0].item;
    assert_eq!(q.reasons[0].code, "invalid_utf8");
    assert!(q.reasons[0].message.contains("line 1"), "{:?}", q.reasons);
}

#[test]
fn an_output_that_is_an_input_or_the_store_is_refused_and_nothing_changes() {
    // Issue 25, case 4: `run in --output in` truncated the unread input, `report --db X -o X`
    // and `run --db X --output X` replaced the database.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::copy(repo().join("events/streams/transactions.jsonl"), &input).unwrap();
    let db = tmp.path().join("p.db");
    let (input_s, db_s) = (input.to_str().unwrap(), db.to_str().unwrap());
    pipeline(&["run", input_s, "--db", db_s, "--json"]);
    let (input_before, db_before) = (std::fs::read(&input).unwrap(), std::fs::read(&db).unwrap());
    let link = tmp.path().join("link.jsonl");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let same_input_by_another_name = tmp.path().join("sub/../in.jsonl");
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", input_s, "--db", db_s, "--output", input_s],
        vec![
            "run",
            input_s,
            "--db",
            db_s,
            "--output",
            link.to_str().unwrap(),
        ],
        vec![
            "run",
            link.to_str().unwrap(),
            "--db",
            db_s,
            "--output",
            same_input_by_another_name.to_str().unwrap(),
        ],
        vec!["run", input_s, "--db", db_s, "--output", db_s],
        vec!["report", "--db", db_s, "-o", db_s],
        vec![
            "report",
            "--db",
            db_s,
            "-o",
            link.to_str().unwrap(),
            "--labels",
            input_s,
        ],
    ];
    for args in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was not refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("same file") && err.contains("othing was written"),
            "{err}"
        );
        assert_eq!(std::fs::read(&input).unwrap(), input_before, "{args:?}");
        assert_eq!(std::fs::read(&db).unwrap(), db_before, "{args:?}");
    }
    // An output elsewhere is written, whole, and nothing is left beside it.
    let page = tmp.path().join("r.html");
    pipeline(&["report", "--db", db_s, "-o", page.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .ends_with("</html>\n")
    );
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// A one-line MSK trigger payload of `n` records (about 330 bytes each).
fn kafka_line(n: usize) -> String {
    use base64::Engine;
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let event = serde_json::json!({
                "event_id": format!("big-{i}"), "event_type": "payment.authorized",
                "source": "t", "entity_id": format!("acct-{}", i % 50),
                "occurred_at": "2026-11-01T09:00:00Z", "value": 10.0 + (i % 7) as f64,
            });
            serde_json::json!({
                "topic": "payments", "partition": 0, "offset": i, "timestamp": 1761984000000_i64,
                "timestampType": "CREATE_TIME",
                "value": base64::engine::general_purpose::STANDARD.encode(event.to_string()),
                "headers": [],
            })
        })
        .collect();
    serde_json::json!({
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/x",
        "records": {"payments-0": records},
    })
    .to_string()
}

#[tokio::test]
async fn a_document_of_any_size_is_read_as_one_and_never_taken_for_an_event() {
    // Issue 25, case 3: a one-line KafkaEvent larger than the whole-document limit (16 MiB) was
    // read as JSON Lines: one `too_large` event with 8 KiB kept, "1 events … reconciled".
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.json");
    let line = kafka_line(60_000);
    assert!(line.len() > 16 << 20, "{} bytes", line.len());
    std::fs::write(&big, format!("{line}\n")).unwrap();
    let db = tmp.path().join("p.db");
    let s = summary(&pipeline(&[
        "run",
        big.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(n(&s, "input"), 60_000, "{s}");
    assert_eq!(n(&s, "persisted"), 60_000, "{s}");

    // A document with more after it, or among event lines, is refused, and nothing written.
    let small = kafka_line(3);
    let event = r#"{"event_id":"e1","event_type":"t","source":"s","entity_id":"a","occurred_at":"2026-11-01T09:00:00Z","value":1}"#;
    for (name, text) in [
        ("doc-then-events.jsonl", format!("{small}\n{event}\n")),
        (
            "events-then-doc.jsonl",
            format!("{event}\n{event}\n{small}\n"),
        ),
        ("bad-then-doc.jsonl", format!("not json\n{small}\n")),
        ("huge-doc-then-more.jsonl", format!("{line}\n{event}\n")),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        let fresh = tmp.path().join(format!("{name}.db"));
        let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args([
                "run",
                path.to_str().unwrap(),
                "--db",
                fresh.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("MSK (Kafka) trigger payload") && err.contains("Nothing was written"),
            "{name}: {err}"
        );
        if fresh.exists() {
            let d = dump(&fresh).await;
            assert!(d.events.is_empty() && d.quarantine.is_empty(), "{name}");
        }
    }
}

#[test]
fn one_unreadable_record_does_not_hide_the_others() {
    // Issue 25, case 1: a record stored with a `null` number could not be decoded, and
    // `anomalies`, `report` (and every read of the whole store) failed because of it.
    let (tmp, db) = sample_db();
    let db_s = db.to_str().unwrap();
    let listed = |extra: &[&str]| -> (usize, String) {
        let mut args = vec!["anomalies", "--json", "--limit", "100000", "--db", db_s];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).lines().count(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (before, _) = listed(&[]);
    let victim: String = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let id: String = conn
            .query_row(
                "SELECT event_id FROM events WHERE is_anomaly = 1 ORDER BY event_id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        conn.execute(
            "UPDATE events SET record = replace(record, '\"score\":', '\"score\":null,\"was\":') \
             WHERE event_id = ?1",
            [&id],
        )
        .unwrap();
        id
    };
    let (after, warning) = listed(&[]);
    assert_eq!(after, before - 1);
    assert!(
        warning.contains("skipped") && warning.contains(&victim),
        "{warning}"
    );
    let (_, warning) = listed(&["--incidents"]);
    assert!(warning.contains(&victim), "{warning}");
    let page = tmp.path().join("r.html");
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["report", "--db", db_s, "-o", page.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&victim));
}

#[test]
fn a_live_stream_on_stdin_is_received_as_it_is_read() {
    // Issue 25, case 8: `received_at` was fixed when stdin opened, so on a live stream every
    // event written after the skew allowance had passed was quarantined as `future_timestamp`.
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args([
            "run",
            "-",
            "--json",
            "--batch-size",
            "1",
            "--db",
            db.to_str().unwrap(),
        ])
        .env("PIPELINE_MAX_FUTURE_SKEW_SECS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..3 {
        if i > 0 {
            // The producer's next event comes later than the skew allowance.
            std::thread::sleep(std::time::Duration::from_millis(1600));
        }
        let at = chrono::Utc::now().to_rfc3339();
        writeln!(
            stdin,
            r#"{{"event_id":"live-{i}","event_type":"metric.cpu","source":"s","entity_id":"h","occurred_at":"{at}","value":1}}"#
        )
        .unwrap();
        stdin.flush().unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let s = summary(&out);
    assert_eq!(n(&s, "persisted"), 3, "{s}");
}

#[test]
fn shares_out_of_range_and_an_in_memory_database_are_refused() {
    // Issue 25, case 19: `--max-undecodable=-1` and `NaN` were accepted, and `--db :memory:`
    // reported events persisted and kept none.
    for args in [
        vec![
            "run",
            "events/streams/transactions.jsonl",
            "--max-undecodable=-1",
        ],
        vec![
            "run",
            "events/streams/transactions.jsonl",
            "--max-undecodable",
            "NaN",
        ],
        vec![
            "run",
            "events/streams/transactions.jsonl",
            "--max-undecodable",
            "1.5",
        ],
        vec![
            "run",
            "events/streams/transactions.jsonl",
            "--db",
            ":memory:",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(&args)
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("share") || err.contains(":memory:"), "{err}");
    }
}

#[test]
fn read_commands_change_nothing_and_a_foreign_database_is_refused_untouched() {
    // Issue 25, case 12: show, anomalies and report ran schema statements and switched the
    // file to WAL on open, so they failed on a read-only database and changed an unrelated
    // SQLite file (three tables added; with its own `events` table, the error printed the
    // whole schema).
    let (tmp, db) = sample_db();
    let db_s = db.to_str().unwrap();
    let files = || -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            // The database itself; a WAL database's readers may leave its (empty) -wal and
            // -shm companions, which hold no data.
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let before = files();
    let page = tmp.path().join("r.html");
    for args in [
        vec!["show", "evt-42-0000001", "--db", db_s],
        vec!["anomalies", "--db", db_s],
        vec!["anomalies", "--incidents", "--db", db_s],
        vec!["report", "--db", db_s, "-o", page.to_str().unwrap()],
    ] {
        let _ = Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(&args)
            .output()
            .unwrap();
        assert!(files() == before, "{args:?} changed the database's files");
    }

    let foreign = tmp.path().join("other.sqlite");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE events (id INTEGER, body TEXT); CREATE TABLE notes (x);")
            .unwrap();
    }
    let original = std::fs::read(&foreign).unwrap();
    let f = foreign.to_str().unwrap();
    for args in [
        vec!["show", "x", "--db", f],
        vec!["anomalies", "--db", f],
        vec!["report", "--db", f, "-o", page.to_str().unwrap()],
        vec!["run", "events/streams/transactions.jsonl", "--db", f],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(&args)
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not a pipeline store") && err.lines().count() <= 2,
            "{err}"
        );
        assert!(!err.contains("CREATE"), "{err}");
        assert_eq!(std::fs::read(&foreign).unwrap(), original, "{args:?}");
        for suffix in ["-wal", "-shm"] {
            assert!(!tmp.path().join(format!("other.sqlite{suffix}")).exists());
        }
    }
}

#[test]
fn a_line_quarantined_at_ingest_is_found_by_its_event_id() {
    // Issue 25, case 13.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let good = r#"{"event_id":"ok-1","event_type":"metric.cpu","source":"s","entity_id":"h","occurred_at":"2026-11-01T00:00:00Z","value":1}"#;
    let overflow = r#"{"event_id":"big-1","event_type":"metric.cpu","source":"s","entity_id":"h","occurred_at":"2026-11-01T00:01:00Z","value":1e309}"#;
    std::fs::write(&input, format!("{good}\n{good}\n{overflow}\n")).unwrap();
    let db = tmp.path().join("p.db");
    let db_s = db.to_str().unwrap();
    pipeline(&["run", input.to_str().unwrap(), "--db", db_s]);
    let shown: Value =
        serde_json::from_slice(&pipeline(&["show", "big-1", "--db", db_s]).stdout).unwrap();
    assert_eq!(shown["quarantine"][0]["item"]["stage"], "ingest", "{shown}");
    assert_eq!(
        shown["quarantine"][0]["item"]["reasons"][0]["code"],
        "malformed_json"
    );
}

#[tokio::test]
async fn identical_bad_inputs_from_different_origins_keep_an_entry_each() {
    // Issue 25, case 7: a quarantine id hashed stage, event id and payload only, so identical
    // bad lines at different line numbers (and empty Kafka values at different offsets) left
    // one entry, and the other origins could not be found.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let good = r#"{"event_id":"ok-1","event_type":"metric.cpu","source":"s","entity_id":"h","occurred_at":"2026-11-01T00:00:00Z","value":1}"#;
    std::fs::write(
        &input,
        format!("{good}\nnot json\nnot json\n{{\"value\":1}}\n{{\"value\":1}}\n"),
    )
    .unwrap();
    let kafka = tmp.path().join("msk.json");
    let record = |offset: i64| {
        serde_json::json!({"topic":"t","partition":0,"offset":offset,"timestamp":0,
                           "timestampType":"CREATE_TIME","value":"","headers":[]})
    };
    std::fs::write(
        &kafka,
        serde_json::json!({"eventSource":"aws:kafka","records":{"t-0":[record(5), record(6)]}})
            .to_string(),
    )
    .unwrap();
    let db = tmp.path().join("p.db");
    let db_s = db.to_str().unwrap();
    let run = |path: &str| {
        Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(["run", path, "--db", db_s, "--max-undecodable", "1"])
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    assert!(run("in.jsonl").status.success());
    assert!(run("msk.json").status.success());
    let first = dump(&db).await.quarantine;
    let origins: std::collections::BTreeSet<String> = first
        .iter()
        .map(|q| serde_json::to_string(&q.item.provenance).unwrap())
        .collect();
    assert_eq!(first.len(), 6, "{origins:?}");
    assert_eq!(origins.len(), 6);
    // The same inputs again, under another spelling of the path: nothing new.
    assert!(run("./in.jsonl").status.success());
    assert!(run(kafka.to_str().unwrap()).status.success());
    assert_eq!(dump(&db).await.quarantine.len(), 6);
}

#[tokio::test]
async fn a_correction_may_not_move_an_event_to_another_entity() {
    // Issue 25, case 6: a correction that changed entity_id left the old entity counting a
    // record it no longer had, and the new one holding a record its state never counted.
    let tmp = tempfile::tempdir().unwrap();
    let line = |version: u32, entity: &str, value: f64| {
        format!(
            r#"{{"event_id":"mv-1","event_type":"metric.cpu","source":"s","entity_id":"{entity}","occurred_at":"2026-11-01T00:00:00Z","value":{value},"version":{version}}}"#
        )
    };
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        [
            line(1, "host-a", 1.0),
            line(2, "host-b", 2.0),
            line(3, "host-a", 3.0),
        ]
        .join("\n"),
    )
    .unwrap();
    let db = tmp.path().join("p.db");
    let s = summary(&pipeline(&[
        "run",
        input.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--json",
        "--batch-size",
        "1",
    ]));
    assert_eq!(
        (n(&s, "persisted"), n(&s, "updated"), n(&s, "conflict")),
        (1, 1, 1),
        "{s}"
    );
    let d = dump(&db).await;
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.events[0].entity_id, "host-a");
    assert_eq!(
        d.events[0].version, 3,
        "the correction that kept the entity applies"
    );
    for e in &d.entities {
        let records = d
            .events
            .iter()
            .filter(|r| r.entity_id == e.entity_id)
            .count() as u64;
        assert_eq!(e.count, records, "{}", e.entity_id);
    }
    assert!(d.entities.iter().all(|e| e.entity_id != "host-b"));
    let conflict = d
        .quarantine
        .iter()
        .find(|q| q.item.reasons.iter().any(|r| r.code == "conflict"))
        .unwrap();
    assert!(conflict.item.reasons[0].message.contains("host-b"));
}

#[tokio::test]
async fn sigterm_ends_a_run_between_batches_with_output_and_store_agreeing() {
    // Issue 25, case 9: after SIGTERM or SIGINT, --output listed events as persisted whose
    // group commit was rolled back, and its last line could be cut.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    pipeline(&[
        "generate",
        "--events",
        "20000",
        "-o",
        input.to_str().unwrap(),
    ]);
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let db = tmp.path().join(format!("{signal}.db"));
        let out = tmp.path().join(format!("{signal}.jsonl"));
        let child = Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(["run", input.to_str().unwrap(), "--db", db.to_str().unwrap()])
            .args(["--output", out.to_str().unwrap(), "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Signal once the run is writing (its WAL has grown), not at a guessed time.
        let wal = tmp.path().join(format!("{signal}.db-wal"));
        let started = std::time::Instant::now();
        while std::fs::metadata(&wal).map_or(0, |m| m.len()) < 64 * 1024
            && started.elapsed() < std::time::Duration::from_secs(30)
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let done = child.wait_with_output().unwrap();
        assert_eq!(done.status.code(), Some(code), "{done:?}");
        assert!(String::from_utf8_lossy(&done.stderr).contains(&format!("SIG{signal}")));
        let lines: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            !lines.is_empty() && lines.len() < 20000,
            "{} lines",
            lines.len()
        );
        let d = dump(&db).await;
        let stored: std::collections::BTreeSet<&str> =
            d.events.iter().map(|r| r.event_id.as_str()).collect();
        let listed: std::collections::BTreeSet<&str> = lines
            .iter()
            .filter(|l| l["status"] == "persisted")
            .map(|l| l["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(stored, listed, "--output lists exactly what is stored");
        let s = summary(&done);
        assert_eq!(n(&s, "input") as usize, lines.len());
    }
}

/// `pipeline stage` goes by the stage a document names: an empty batch for detect is detect's
/// (its keys say nothing), each stage's output names the next one, and a document for another
/// stage is refused, naming what it is.
#[test]
fn a_batch_document_is_taken_for_the_stage_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.db");
    let db = db.to_str().unwrap();
    let doc = tmp.path().join("empty.json");
    std::fs::write(
        &doc,
        r#"{"stage":"detect","batch_id":"b-empty","received_at":"2026-11-01T00:00:00Z","input_count":0,"events":[],"quarantine":[]}"#,
    )
    .unwrap();
    let out = pipeline(&["stage", "detect", doc.to_str().unwrap(), "--db", db]);
    let scored: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scored["stage"], "persist", "{scored}");
    assert_eq!(scored["batch_id"], "b-empty");

    let raw = repo().join("events/validate/good.json");
    let out = pipeline(&["stage", "validate", raw.to_str().unwrap(), "--db", db]);
    let valid: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(valid["stage"], "enrich");

    // The empty document for detect, given to validate.
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["stage", "validate", doc.to_str().unwrap(), "--db", db])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this is a batch document for detect"), "{err}");
}
