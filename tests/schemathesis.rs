//! The server against its own OpenAPI document: schemathesis (PyPI, pinned [`SCHEMATHESIS`],
//! installed once into the virtualenv `target/schemathesis-venv` by `common::python`) runs
//! `--checks all` against the real binary on 127.0.0.1:0, reading the document from its
//! `/openapi.json`: once over the merchant routes with a merchant key, once over the admin
//! routes with the admin token. Any finding fails the test; its report is printed.
//!
//! Left out, and why: `PUT /admin/settings/notifications` (it changes the running
//! notification settings under the other operations' feet) and `POST /v1/provider/webhooks`
//! (every request needs a `Stripe-Signature` of its own body, which a generator cannot make:
//! tests/provider_webhooks.rs drives it). The run's settings, and the statuses it accepts for
//! what no schema can say, are in `tests/schemathesis/schemathesis.toml`; the hook that makes
//! generated `Idempotency-Key`s unique is `tests/schemathesis/hooks.py`. Both say why.
//!
//! Without `python3` or its `venv` module the test says so in one line and passes (CI
//! installs both: `.ci/run`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The schemathesis release the runs are tuned for (PyPI name, version).
const SCHEMATHESIS: (&str, &str) = ("schemathesis", "4.32.5");
/// Test cases per operation and phase: enough to cover every constraint of the document
/// (the coverage phase adds one case per keyword besides), small enough for a debug build
/// on two shared cores.
const EXAMPLES_PER_OPERATION: &str = "50";
/// Fixed, so a finding replays: `--seed` and `--generation-deterministic` (which also keeps
/// no example database between runs).
const SEED: &str = "20261202";
/// Longest one run may take before the test gives up on it (a run takes about 20 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(150);
const ADMIN_TOKEN: &str = "admin_demo_token";

/// One schemathesis run over the operations `filters` select, authenticated with `token`.
fn run(python: &Path, base: &str, token: &str, filters: &[&str], log: &Path) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let mut command = Command::new(python);
    command
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--checks", "all", "--max-examples", EXAMPLES_PER_OPERATION])
        .args(["--seed", SEED, "--generation-deterministic"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "10", "--no-color"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(filters)
        .env("SCHEMATHESIS_HOOKS", dir.join("hooks.py"))
        // Reports and caches go to the log's directory, not the repository.
        .current_dir(log.parent().expect("log dir"));
    let started = Instant::now();
    let (status, output) = common::python::run_logged(command, log, RUN_TIMEOUT);
    println!("{output}schemathesis took {:?}", started.elapsed());
    assert!(
        status.success(),
        "schemathesis found the server and its document disagreeing (above)"
    );
    output
}

#[test]
fn the_server_answers_as_its_document_says() {
    let python =
        match common::python::venv_python("schemathesis-venv", SCHEMATHESIS.0, SCHEMATHESIS.1) {
            Ok(python) => python,
            Err(why) => {
                println!("skipped schemathesis: {why}");
                return;
            }
        };
    let dir = tempfile::tempdir().unwrap();
    let binary = common::spawn_binary(&dir.path().join("db"), &[]);
    let merchant = run(
        &python,
        &binary.base,
        common::MERCHANT_KEY,
        &[
            "--include-path-regex",
            "^/v1/",
            "--exclude-path",
            "/v1/provider/webhooks",
        ],
        &dir.path().join("merchant.log"),
    );
    let admin = run(
        &python,
        &binary.base,
        ADMIN_TOKEN,
        &[
            "--include-path-regex",
            "^/admin/",
            "--exclude-operation-id",
            "putNotificationSettings",
        ],
        &dir.path().join("admin.log"),
    );
    // A run that tested nothing would pass too: each must have reached its operations.
    for (output, selected) in [(&merchant, "/v1/"), (&admin, "/admin/")] {
        assert!(output.contains("Tested: "), "{selected}: {output}");
        assert!(!output.contains("Tested: 0"), "{selected}: nothing tested");
    }
}
