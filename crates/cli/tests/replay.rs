//! `pipeline replay` with the real binary on the embedded store: an event quarantined because
//! the FX table lacked its currency is stored once the table has it; an invalid event stays
//! quarantined; a second replay and a dry run change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{pipeline, repo};
use pipeline_core::store::Inspect;
use pipeline_core::store::QuarantineStore;
use pipeline_core::store::StoreDump;
use pipeline_sqlite::SqliteStore;
use serde_json::{Value, json};

async fn dump(db: &Path) -> StoreDump {
    SqliteStore::open(db).unwrap().dump().await.unwrap()
}

/// `pipeline replay ARGS --json` (with `env`), its JSON lines: the attempts, then the summary.
fn replay(db: &Path, args: &[&str], env: &[(&str, &str)]) -> (Vec<Value>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["replay", "--db", db.to_str().unwrap(), "--json"])
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.pop().unwrap();
    (lines, summary)
}

fn event(id: &str, currency: &str, value: Value) -> Value {
    json!({"event_id": id, "event_type": "payment.authorized", "source": "replay-test",
           "entity_id": "acct-r", "occurred_at": "2026-11-01T10:00:00Z", "value": value,
           "currency": currency, "attributes": {"status": "approved"}})
}

#[tokio::test]
async fn fix_then_replay_stores_the_events_and_a_second_replay_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let lines = [
        event("evt-r-ok", "EUR", json!(10.0)),
        // ISK is a currency, but the built-in FX table has no rate for it: enrich quarantines.
        event("evt-r-isk", "ISK", json!(1500.0)),
        // Not a number: validate quarantines, and no fix of ours changes that.
        event("evt-r-bad", "EUR", json!("ten")),
    ];
    std::fs::write(
        &input,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let db = tmp.path().join("r.db");
    pipeline(&[
        "run",
        input.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]);
    let before = dump(&db).await;
    assert_eq!(before.events.len(), 1);
    assert_eq!(before.quarantine.len(), 2);

    // Nothing fixed yet, dry: both would stay quarantined, nothing is written.
    let (attempts, summary) = replay(&db, &["--dry-run"], &[]);
    assert_eq!(summary["selected"], 2);
    assert_eq!(summary["still_quarantined"], 2);
    assert!(attempts.iter().all(|a| a["wrote"] == false));
    assert_eq!(dump(&db).await, before, "a dry run writes nothing");

    // The fix: an FX table with ISK. Only the fx entry is chosen with --reason.
    let mut fx: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("config/fx.json")).unwrap())
            .unwrap();
    fx["rates"]["ISK"] = json!(0.0072);
    let fx_path = tmp.path().join("fx.json");
    std::fs::write(&fx_path, fx.to_string()).unwrap();
    let env = [("PIPELINE_FX_TABLE", fx_path.to_str().unwrap())];
    let (dry, _) = replay(&db, &["--dry-run", "--reason", "fx_rate_missing"], &env);
    assert_eq!(dry.len(), 1);
    assert_eq!(dry[0]["status"], "persisted", "what replaying would do");
    assert_eq!(dump(&db).await, before);

    let (attempts, summary) = replay(&db, &[], &env);
    assert_eq!(summary["selected"], 2);
    assert_eq!(summary["stored"], 1);
    let isk = attempts
        .iter()
        .find(|a| a["event_id"] == "evt-r-isk")
        .unwrap();
    assert_eq!(isk["status"], "persisted");
    let bad = attempts
        .iter()
        .find(|a| a["event_id"] == "evt-r-bad")
        .unwrap();
    assert_eq!(bad["status"], "quarantined");
    assert!(
        bad["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "schema")
    );

    let after = dump(&db).await;
    let stored = after
        .events
        .iter()
        .find(|r| r.event_id == "evt-r-isk")
        .expect("the replayed event is stored");
    assert_eq!(stored.enrichment.fx_rate, Some(0.0072));
    let entity = after
        .entities
        .iter()
        .find(|e| e.entity_id == "acct-r")
        .unwrap();
    assert_eq!(
        entity.count, 2,
        "counted once, with the event already stored"
    );
    let entries = SqliteStore::open(&db)
        .unwrap()
        .list_quarantine()
        .await
        .unwrap();
    assert_eq!(entries.len(), 2, "entries are marked, not removed");
    let marked = |id: &str| {
        entries
            .iter()
            .find(|q| q.item.event_id.as_deref() == Some(id))
            .and_then(|q| q.replayed.clone())
            .map(|r| r.status.as_str())
    };
    assert_eq!(marked("evt-r-isk"), Some("persisted"));
    assert_eq!(marked("evt-r-bad"), Some("quarantined"));

    // Again: the stored one is not chosen, the other fails exactly as before. Nothing changes.
    let (attempts, summary) = replay(&db, &[], &env);
    assert_eq!(summary["selected"], 1);
    assert_eq!(attempts[0]["wrote"], false);
    assert_eq!(dump(&db).await, after, "a second replay changes nothing");
}

#[tokio::test]
async fn replay_applies_the_ingest_rules_and_keeps_the_first_reason() {
    // Issue 25, case 2: replaying an ingest entry re-parsed its text with plain serde_json, so a
    // line quarantined for a repeated key was stored with the second `entity_id` and `value`,
    // and a malformed line came back as `schema`. Case 14: a byte-order mark cost the first
    // event.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let good = event("evt-r-1", "EUR", json!(10.0)).to_string();
    let dup = r#"{"event_id":"evt-r-dup","event_type":"payment.authorized","source":"replay-test","entity_id":"acct-r","entity_id":"acct-evil","occurred_at":"2026-11-01T10:00:00Z","value":10,"value":99999}"#;
    let malformed = r#"{"event_id":"evt-r-cut","value":"#;
    std::fs::write(&input, format!("\u{feff}{good}\n{dup}\n{malformed}\n")).unwrap();
    let db = tmp.path().join("p.db");
    let out = pipeline(&[
        "run",
        input.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--json",
    ]);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        s["persisted"], 1,
        "the line with a byte-order mark is an event: {s}"
    );
    assert_eq!(s["quarantined"], 2, "{s}");

    let (attempts, summary) = replay(&db, &[], &[]);
    assert_eq!(summary["stored"], 0, "{summary}");
    let mut codes: Vec<&str> = attempts
        .iter()
        .map(|a| a["reasons"][0]["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, ["duplicate_key", "malformed_json"], "{attempts:?}");
    let d = dump(&db).await;
    assert_eq!(d.events.len(), 1);
    assert!(d.events.iter().all(|r| r.event_id == "evt-r-1"));
    for q in &d.quarantine {
        assert_eq!(q.item.stage, pipeline_core::batch::Stage::Ingest, "{q:?}");
        assert!(q.replayed.is_some());
    }
}

#[test]
fn replay_never_prints_stored_escape_sequences() {
    // Issue 25, case 10: replay printed a quarantined event id, and the quarantine id built
    // from it, raw: the terminal-escape fix of `anomalies` missed this path.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let mut bad = event("x", "EUR", json!(1.0));
    bad["event_id"] = json!("evt-\u{1b}[2J\u{1b}]0;owned\u{7}");
    std::fs::write(&input, format!("{bad}\n")).unwrap();
    let db = tmp.path().join("p.db");
    pipeline(&["run", input.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["replay", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("evt-\\u{1b}[2J"), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text}"
    );
}
