//! Checks the query corpus against Grafana's published TraceQL grammar
//! (`@grafana/lezer-traceql`, driven by `tests/clients/traceql-grammar.js`) and our parser:
//!
//! - every `ok` query is accepted by Grafana's grammar and by our parser;
//! - every query Grafana's grammar rejects is rejected by our parser;
//! - every `no` query is rejected by our parser.
//!
//! Needs `node` and `npm ci` in `tests/clients`; fails (never skips) without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

struct Entry {
    line: usize,
    ok: bool,
    query: String,
}

fn corpus() -> Vec<Entry> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus.txt");
    let text = std::fs::read_to_string(&path).expect("read tests/corpus.txt");
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let (ok, query) = if let Some(q) = raw.strip_prefix("ok ") {
            (true, q)
        } else if let Some(q) = raw.strip_prefix("no ") {
            (false, q)
        } else if raw == "no" {
            (false, "")
        } else {
            panic!(
                "corpus.txt:{}: line must start with \"ok \" or \"no \"",
                i + 1
            );
        };
        out.push(Entry {
            line: i + 1,
            ok,
            query: query.to_string(),
        });
    }
    out
}

/// Asks Grafana's grammar about every query.
fn grafana_accepts(queries: &[&str]) -> Vec<bool> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/traceql-grammar.js");
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/clients/node_modules/@grafana/lezer-traceql");
    assert!(
        module.exists(),
        "the npm package @grafana/lezer-traceql is missing: run `npm ci` in tests/clients (looked for {})",
        module.display()
    );
    let mut child = Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "could not run `node {}`: {e} (is Node.js installed?)",
                script.display()
            )
        });
    let input = serde_json::to_vec(queries).unwrap();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write queries to node");
    let out = child.wait_with_output().expect("wait for node");
    assert!(
        out.status.success(),
        "node {} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "node printed something else than a JSON array of booleans ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(verdicts.len(), queries.len(), "one verdict per query");
    verdicts
}

#[test]
fn corpus_agrees_with_grafana_grammar() {
    let entries = corpus();
    assert!(entries.len() >= 120, "corpus has {} queries", entries.len());
    let queries: Vec<&str> = entries.iter().map(|e| e.query.as_str()).collect();
    let grafana = grafana_accepts(&queries);

    let mut failures = Vec::new();
    let (mut ok, mut no, mut grafana_rejects) = (0, 0, 0);
    for (e, &g) in entries.iter().zip(&grafana) {
        let ours = tempest_traceql::parse(&e.query);
        if e.ok {
            ok += 1;
        } else {
            no += 1;
        }
        if !g {
            grafana_rejects += 1;
        }
        if e.ok && !g {
            failures.push(format!(
                "line {}: `ok` but Grafana's grammar rejects it: {}",
                e.line, e.query
            ));
        }
        if let (true, Err(err)) = (e.ok, &ours) {
            failures.push(format!(
                "line {}: `ok` but our parser rejects it ({err}): {}",
                e.line, e.query
            ));
        }
        if (!e.ok || !g) && ours.is_ok() {
            failures.push(format!(
                "line {}: our parser accepts it but {}: {}",
                e.line,
                if e.ok {
                    "Grafana's grammar rejects it"
                } else {
                    "it is marked `no`"
                },
                e.query
            ));
        }
    }
    println!(
        "corpus: {} queries ({ok} ok, {no} no); Grafana's grammar rejects {grafana_rejects}; {} mismatches",
        entries.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn rejected_queries_have_useful_errors() {
    for e in corpus().iter().filter(|e| !e.ok) {
        let err = tempest_traceql::parse(&e.query)
            .err()
            .unwrap_or_else(|| panic!("line {} parses: {}", e.line, e.query));
        assert!(!err.message.is_empty());
        assert!(err.offset <= e.query.len(), "{err:?}");
        assert!(err.line >= 1 && err.column >= 1, "{err:?}");
    }
}
