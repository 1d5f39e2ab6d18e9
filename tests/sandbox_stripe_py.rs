//! `paykeep sandbox` driven by Stripe's official Python library: starts the real binary on
//! 127.0.0.1:0, makes (once) a virtualenv `target/stripe-venv` with [`STRIPE_PY`] from PyPI
//! (`common::python`),
//! and runs `tests/sandbox_stripe_py/flows.py`, which walks every flow the sandbox serves
//! (create and replay, expand, each test card, validation, manual capture, cancel, refunds,
//! lists and paging, Basic auth, signed webhooks) and asserts Stripe's documented answers.
//! Any failed Python assertion fails this test. Without `python3` or its `venv` module the
//! test says so in one line and passes (CI installs both: `.ci/run`).

mod common;
mod provider_common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use provider_common::spawn_sandbox;

/// The library the flows are written against (PyPI name, version).
const STRIPE_PY: (&str, &str) = ("stripe", "16.1.0");
const KEY: &str = "sk_test_python";
const WEBHOOK_SECRET: &str = "whsec_python_flows";
/// Longest the flows may run before the test gives up on them.
const FLOWS_TIMEOUT: Duration = Duration::from_secs(300);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn the_official_stripe_library_gets_stripes_answers() {
    let python = match common::python::venv_python("stripe-venv", STRIPE_PY.0, STRIPE_PY.1) {
        Ok(python) => python,
        Err(why) => {
            println!("skipped sandbox_stripe_py: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let webhook_port = free_port();
    let webhook_url = format!("http://127.0.0.1:{webhook_port}/");
    let sandbox = spawn_sandbox(
        dir.path(),
        &[
            "--secret-key",
            KEY,
            "--webhook-url",
            &webhook_url,
            "--webhook-secret",
            WEBHOOK_SECRET,
        ],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sandbox_stripe_py/flows.py");
    let started = Instant::now();
    let mut command = Command::new(&python);
    command
        .arg(script)
        .env("SANDBOX_BASE", &sandbox.base)
        .env("SANDBOX_KEY", KEY)
        .env("WEBHOOK_PORT", webhook_port.to_string())
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET);
    let (status, output) =
        common::python::run_logged(command, &dir.path().join("flows.log"), FLOWS_TIMEOUT);
    println!("{output}flows.py took {:?}", started.elapsed());
    assert!(
        status.success(),
        "Stripe's Python library got answers Stripe would not give:\n{output}"
    );
    assert!(output.contains(" 0 flow(s) failed"), "{output}");
}
