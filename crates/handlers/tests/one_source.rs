//! One source for metric names, error types, the list of stages and the settings' defaults:
//! every custom metric that `template.yaml`'s dashboard and alarms, `docs/deploy.md` and the
//! end-to-end test name is one the code writes (`telemetry::metric::ALL`), and the docs list
//! every one of them; `docs/errors.md` lists exactly the `error_type` names of
//! `pipeline_core::Error` with their retry class; the template's parameter defaults and
//! `config.rs`'s table give the code's defaults; the template sets, on each function, the
//! variables that function needs (`config::deployed_variables`) and no variable the code does
//! not read; every stack output the docs and the CLI name is one the template declares. Each
//! check is also run on a planted mismatch, to show that it can fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use pipeline_core::batch::Stage;
use pipeline_core::{Error, ErrorClass};
use pipeline_handlers::telemetry::metric;

fn repo(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The word of metric-name characters at the start of `s`.
fn word(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The custom metrics (namespace `MetricsNamespace`) that the template names: in the
/// dashboard's search expressions and metric arrays, and in alarms of that namespace.
fn template_metrics(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut ours_next = false;
    for line in text.lines() {
        if line.contains("${MetricsNamespace}") {
            for part in line.split("MetricName=\\\"").skip(1) {
                out.insert(word(part).to_owned());
            }
            for part in line.split("[\"${MetricsNamespace}\", \"").skip(1) {
                out.insert(word(part).to_owned());
            }
        }
        if line.contains("Namespace: !Ref MetricsNamespace") {
            match line.split("MetricName: ").nth(1) {
                Some(rest) => {
                    out.insert(word(rest).to_owned());
                }
                None => ours_next = true,
            }
            continue;
        }
        if ours_next {
            if let Some(rest) = line.trim().strip_prefix("MetricName: ") {
                out.insert(word(rest).to_owned());
                ours_next = false;
            }
        }
    }
    out
}

/// The names in the first column of `docs/deploy.md`'s metric table.
fn documented_metrics(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("| metric | unit |") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with('|') {
                break;
            }
            let first = line.split('|').nth(1).unwrap_or_default();
            for part in first.split('`').skip(1).step_by(2) {
                out.insert(part.to_owned());
            }
        }
    }
    out.remove("---");
    out
}

/// The metric names the end-to-end test expects in the EMF documents.
fn e2e_metrics(text: &str) -> BTreeSet<String> {
    let line = text
        .lines()
        .find(|l| l.contains("\"ColdStart\"") && l.contains("<= names"))
        .expect("the e2e test's metric-name assertion");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn unknown(names: &BTreeSet<String>) -> Vec<String> {
    names
        .iter()
        .filter(|n| !metric::ALL.contains(&n.as_str()))
        .cloned()
        .collect()
}

#[test]
fn every_metric_named_outside_the_code_is_one_the_code_writes() {
    let template = repo("template.yaml");
    let in_template = template_metrics(&template);
    assert!(in_template.len() >= 10, "found {in_template:?}");
    assert_eq!(unknown(&in_template), Vec::<String>::new(), "template.yaml");
    let docs = documented_metrics(&repo("docs/deploy.md"));
    let all: BTreeSet<String> = metric::ALL.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(unknown(&docs), Vec::<String>::new(), "docs/deploy.md names");
    let undocumented: Vec<&String> = all.difference(&docs).collect();
    assert!(
        undocumented.is_empty(),
        "docs/deploy.md lacks {undocumented:?}"
    );
    let e2e = e2e_metrics(&repo("tests/e2e/test_local_aws.py"));
    assert_eq!(unknown(&e2e), Vec::<String>::new(), "tests/e2e");

    // Planted: a renamed metric in the template and one missing from the docs are caught.
    let planted = template.replacen(
        "MetricName=\\\"EventsIn\\\"",
        "MetricName=\\\"EventsInn\\\"",
        1,
    );
    assert_eq!(unknown(&template_metrics(&planted)), ["EventsInn"]);
    let planted = template.replacen("MetricName: EndToEndLagMs", "MetricName: EndToEndLag", 1);
    assert_eq!(unknown(&template_metrics(&planted)), ["EndToEndLag"]);
    let docs_text = repo("docs/deploy.md").replacen("| `ColdStart` |", "| `Cold` |", 1);
    assert!(!documented_metrics(&docs_text).contains("ColdStart"));
}

/// `docs/errors.md`'s table: (error_type, retried?) per row.
fn documented_errors(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .filter(|l| l.starts_with("| `Pipeline."))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2] == "yes")
        })
        .collect()
}

fn error_mismatches(documented: &[(String, bool)]) -> Vec<String> {
    let code: Vec<(String, bool)> = Error::ALL_ERROR_TYPES
        .iter()
        .map(|(name, class)| ((*name).to_owned(), *class == ErrorClass::Retryable))
        .collect();
    let mut out = Vec::new();
    for c in &code {
        if !documented.contains(c) {
            out.push(format!(
                "not documented (or with another retry class): {c:?}"
            ));
        }
    }
    for d in documented {
        if !code.contains(d) {
            out.push(format!("documented but not in the code: {d:?}"));
        }
    }
    out
}

#[test]
fn docs_errors_lists_exactly_the_error_types_with_their_retry_class() {
    let text = repo("docs/errors.md");
    let documented = documented_errors(&text);
    assert_eq!(documented.len(), Error::ALL_ERROR_TYPES.len());
    assert_eq!(error_mismatches(&documented), Vec::<String>::new());

    // Planted: a renamed type and a flipped retry class are both caught.
    let planted = documented_errors(&text.replacen(
        "`Pipeline.Fatal.BadBatch` | no",
        "`Pipeline.Fatal.BadBatch` | yes",
        1,
    ));
    assert_eq!(error_mismatches(&planted).len(), 2);
    let planted = documented_errors(&text.replacen(
        "Pipeline.Retryable.StoreThrottled",
        "Pipeline.Retryable.Throttled",
        1,
    ));
    assert_eq!(error_mismatches(&planted).len(), 2);
}

#[test]
fn every_list_of_stages_is_stage_all() {
    // The functions, the local stack's list of them and the cold-start bench's, against the
    // one list in the code.
    let stages: Vec<&str> = pipeline_core::batch::Stage::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let mut dirs: Vec<String> =
        std::fs::read_dir(format!("{}/../../functions", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    dirs.sort();
    let mut sorted = stages.clone();
    sorted.sort_unstable();
    assert_eq!(dirs, sorted, "functions/");
    // The local stack builds the function binaries it runs (its resources come from the
    // template's stack, whose functions `template_variables` checks).
    let local = repo("scripts/local-aws");
    let line = local
        .lines()
        .find(|l| l.trim_start().starts_with("cargo build -q -p "))
        .expect("the local stack's build");
    let built: Vec<&str> = line
        .split(" -p ")
        .skip(1)
        .map(str::trim)
        .filter(|p| *p != "lambda-router")
        .collect();
    assert_eq!(built, stages, "scripts/local-aws");
    let bench = repo("bench/cold-start");
    let line = bench
        .lines()
        .find(|l| l.starts_with("for f in "))
        .expect("the bench's loop");
    let listed: Vec<&str> = line["for f in ".len()..]
        .split(';')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(listed, stages, "bench/cold-start");
}

/// The settings the template passes to the functions: environment variable → its parameter's
/// `Default`.
fn template_defaults(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut param_default = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    let mut in_parameters = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_parameters = line.starts_with("Parameters:");
            current = None;
            continue;
        }
        if !in_parameters {
            continue;
        }
        if let Some(name) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
            current = name.strip_suffix(':').map(str::to_owned);
        } else if let (Some(p), Some(v)) = (&current, line.trim().strip_prefix("Default: ")) {
            param_default.insert(p.clone(), v.trim_matches('"').to_owned());
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some((var, rest)) = line.trim().split_once(": !Ref ") else {
            continue;
        };
        if var.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            if let Some(d) = param_default.get(rest.trim()) {
                out.insert(var.to_owned(), d.clone());
            }
        }
    }
    out
}

/// The default column of `crates/handlers/src/config.rs`'s table of variables.
fn documented_defaults(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| {
            let (var, rest) = l.split_once('`')?;
            let default = rest.rsplit('|').nth(1)?.trim();
            Some((var.to_owned(), default.to_owned()))
        })
        .collect()
}

/// The defaults the code applies, as numbers, for the settings the template passes.
fn code_defaults() -> Vec<(&'static str, f64)> {
    let c = pipeline_handlers::Config::defaults().unwrap();
    vec![
        ("PIPELINE_MAX_FAILURES", f64::from(c.detect.max_failures)),
        ("PIPELINE_WINDOW_SECS", c.detect.window.num_seconds() as f64),
        ("PIPELINE_VALUE_PROBABILITY", c.detect.value_probability),
        (
            "PIPELINE_INCIDENT_QUIET_SECS",
            c.detect.incident_quiet.num_seconds() as f64,
        ),
        (
            "PIPELINE_MAX_FUTURE_SKEW_SECS",
            c.validate.max_future_skew.num_seconds() as f64,
        ),
        ("INGEST_MAX_CONCURRENCY", c.ingest_concurrency as f64),
        (
            "PIPELINE_QUARANTINE_RETENTION_DAYS",
            c.persist
                .quarantine_retention
                .map_or(0.0, |d| d.num_days() as f64),
        ),
    ]
}

fn default_mismatches(written: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    code_defaults()
        .into_iter()
        .filter_map(|(var, code)| match written.get(var) {
            None => Some(format!("{var}: not set")),
            Some(w) if w.parse::<f64>().ok() != Some(code) => {
                Some(format!("{var}: {w} written, {code} in the code"))
            }
            Some(_) => None,
        })
        .collect()
}

#[test]
fn the_template_and_the_config_docs_give_the_code_s_defaults() {
    // The defaults are written three times (the code, config.rs's table, the template's
    // parameters), because a template cannot read Rust: they are held to agree.
    let template = repo("template.yaml");
    assert_eq!(
        default_mismatches(&template_defaults(&template)),
        Vec::<String>::new()
    );
    let docs = documented_defaults(&repo("crates/handlers/src/config.rs"));
    assert_eq!(default_mismatches(&docs), Vec::<String>::new());

    // Planted: a template default that drifted, and one the table lost.
    let planted = template.replacen("Default: 43200", "Default: 3600", 1);
    assert_eq!(
        default_mismatches(&template_defaults(&planted)),
        ["PIPELINE_INCIDENT_QUIET_SECS: 3600 written, 43200 in the code"]
    );
    let mut lost = docs.clone();
    lost.remove("PIPELINE_WINDOW_SECS");
    assert_eq!(default_mismatches(&lost), ["PIPELINE_WINDOW_SECS: not set"]);
}

/// The variables `config.rs` reads: the upper-case string literals of its code (the module
/// docs' table is checked against the same list), less the few that are values, not names.
fn code_variables() -> BTreeSet<String> {
    let text = repo("crates/handlers/src/config.rs");
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut vars = BTreeSet::new();
    for piece in code.split('"').skip(1).step_by(2) {
        if piece.len() > 3
            && piece
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && piece.contains('_')
        {
            vars.insert(piece.to_owned());
        }
    }
    vars.remove("CARGO_MANIFEST_DIR");
    vars
}

/// The variables the template sets on each function (`Globals` and the function's own), by
/// the function's logical id.
fn template_variables(text: &str) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut globals = BTreeSet::new();
    let mut per_function: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let mut section = "";
    let mut current: Option<String> = None;
    let mut in_vars: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 0 {
            section = trimmed.trim_end_matches(':');
            current = None;
            in_vars = None;
            continue;
        }
        if section == "Resources" && indent == 2 {
            current = Some(trimmed.trim_end_matches(':').to_owned());
            in_vars = None;
            continue;
        }
        if let Some(at) = in_vars {
            if indent > at {
                if let Some((name, _)) = trimmed.split_once(':') {
                    let target = match (section, &current) {
                        ("Globals", _) => &mut globals,
                        (_, Some(id)) if per_function.contains_key(id) => {
                            per_function.entry(id.clone()).or_default()
                        }
                        _ => continue,
                    };
                    target.insert(name.trim().to_owned());
                }
                continue;
            }
            in_vars = None;
        }
        if trimmed == "Type: AWS::Serverless::Function" {
            if let Some(id) = &current {
                per_function.entry(id.clone()).or_default();
            }
        }
        if trimmed == "Variables:" {
            in_vars = Some(indent);
        }
    }
    let functions: Vec<String> = per_function.keys().cloned().collect();
    for f in &functions {
        if let Some(vars) = per_function.get_mut(f) {
            vars.extend(globals.iter().cloned());
        }
    }
    per_function
}

/// A stage's function's logical id: `ingest` → `IngestFunction`.
fn function_id(stage: Stage) -> String {
    let name = stage.as_str();
    format!("{}{}Function", name[..1].to_uppercase(), &name[1..])
}

fn environment_mismatches(template: &str) -> Vec<String> {
    let set = template_variables(template);
    let read = code_variables();
    let mut out = Vec::new();
    for stage in Stage::ALL {
        let id = function_id(stage);
        let Some(vars) = set.get(&id) else {
            out.push(format!("{id}: not in the template"));
            continue;
        };
        for needed in pipeline_handlers::config::deployed_variables(stage) {
            if !vars.contains(needed) {
                out.push(format!("{id}: {needed} not set"));
            }
            if !read.contains(needed) {
                out.push(format!("{needed}: needed but config.rs does not read it"));
            }
        }
        for v in vars {
            if !read.contains(v) {
                out.push(format!("{id}: sets {v}, which no code reads"));
            }
        }
    }
    out
}

#[test]
fn the_template_sets_what_each_function_reads_and_nothing_else() {
    let template = repo("template.yaml");
    assert_eq!(environment_mismatches(&template), Vec::<String>::new());
    // config.rs's table lists exactly the variables its code reads.
    let documented: BTreeSet<String> = repo("crates/handlers/src/config.rs")
        .lines()
        .filter(|l| l.starts_with("//! | `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or_default().to_owned();
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(documented, code_variables());

    // Planted: a variable the detect function loses, and a misspelt one persist sets.
    let planted = template.replacen("          ENTITIES_TABLE: !Ref EntitiesTable\n", "", 1);
    assert_eq!(
        environment_mismatches(&planted),
        ["DetectFunction: ENTITIES_TABLE not set"]
    );
    let planted = template.replacen(
        "          QUARANTINE_TABLE: !Ref QuarantineTable",
        "          QUARANTINE_TABLES: !Ref QuarantineTable",
        1,
    );
    assert_eq!(
        environment_mismatches(&planted),
        [
            "PersistFunction: QUARANTINE_TABLE not set",
            "PersistFunction: sets QUARANTINE_TABLES, which no code reads"
        ]
    );
}

/// The stack outputs a text names: "output `X`", "stack output `X`", `OutputKey=='X'`.
fn named_outputs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for marker in ["output `", "OutputKey=='"] {
        for piece in text.split(marker).skip(1) {
            let name = word(piece);
            if !name.is_empty() && name.starts_with(|c: char| c.is_ascii_uppercase()) {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

fn template_outputs(text: &str) -> BTreeSet<String> {
    let Some((_, outputs)) = text.split_once("\nOutputs:\n") else {
        return BTreeSet::new();
    };
    outputs
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':').to_owned())
        .collect()
}

fn missing_outputs(named: &BTreeSet<String>, declared: &BTreeSet<String>) -> Vec<String> {
    named.difference(declared).cloned().collect()
}

#[test]
fn every_output_the_docs_and_the_cli_name_is_declared() {
    let declared = template_outputs(&repo("template.yaml"));
    assert!(declared.len() >= 10, "found {declared:?}");
    let mut texts = vec![repo("README.md"), repo("tests/e2e/test_local_aws.py")];
    for dir in [
        "docs",
        "crates/cli/src",
        "crates/cli/src/watch",
        "crates/cli/src/backfill",
    ] {
        let path = format!("{}/../../{dir}", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(&path).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "md" || e == "rs") {
                texts.push(std::fs::read_to_string(p).unwrap());
            }
        }
    }
    let named: BTreeSet<String> = texts.iter().flat_map(|t| named_outputs(t)).collect();
    assert!(
        named.contains("StateMachineArn") && named.contains("IngestBusName"),
        "found {named:?}"
    );
    assert_eq!(missing_outputs(&named, &declared), Vec::<String>::new());
    // Planted: a page that tells users to copy an output the template does not have.
    let planted = named_outputs("put events on the ingest bus (output `IngestBusNam`)");
    assert_eq!(missing_outputs(&planted, &declared), ["IngestBusNam"]);
}
