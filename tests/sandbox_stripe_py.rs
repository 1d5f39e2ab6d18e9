//! `paykeep sandbox` driven by Stripe's official Python library: starts the real binary on
//! 127.0.0.1:0, makes (once) a virtualenv `target/stripe-venv` with [`STRIPE_PY`] from PyPI,
//! and runs `tests/sandbox_stripe_py/flows.py`, which walks every flow the sandbox serves
//! (create and replay, expand, each test card, validation, manual capture, cancel, refunds,
//! lists and paging, Basic auth, signed webhooks) and asserts Stripe's documented answers.
//! Any failed Python assertion fails this test. Without `python3` or its `venv` module the
//! test says so in one line and passes (CI installs both: `.ci/run`).

mod common;
mod provider_common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use provider_common::spawn_sandbox;

/// The library the flows are written against.
const STRIPE_PY: &str = "stripe==16.1.0";
const KEY: &str = "sk_test_python";
const WEBHOOK_SECRET: &str = "whsec_python_flows";
/// Longest the flows may run before the test gives up on them.
const FLOWS_TIMEOUT: Duration = Duration::from_secs(300);

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The virtualenv's interpreter with [`STRIPE_PY`] installed, or why there is none.
fn venv_python() -> Result<PathBuf, String> {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let venv = target.join("stripe-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        if !succeeds(Command::new("python3").arg("--version")) {
            return Err("python3 is not installed".into());
        }
        if !succeeds(Command::new("python3").args(["-m", "venv"]).arg(&venv)) {
            let _ = std::fs::remove_dir_all(&venv);
            return Err("python3 cannot make a virtualenv (install python3-venv)".into());
        }
    }
    let pinned = format!(
        "import stripe, sys; sys.exit(stripe.VERSION != '{}')",
        STRIPE_PY.trim_start_matches("stripe==")
    );
    if !succeeds(Command::new(&python).args(["-c", &pinned])) {
        let install = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(STRIPE_PY)
            .output()
            .expect("run pip");
        assert!(
            install.status.success(),
            "pip install {STRIPE_PY} failed:\n{}{}",
            String::from_utf8_lossy(&install.stdout),
            String::from_utf8_lossy(&install.stderr)
        );
    }
    Ok(python)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn the_official_stripe_library_gets_stripes_answers() {
    let python = match venv_python() {
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
    // Into a file, not a pipe: a full pipe would stall the script until the timeout.
    let log_path = dir.path().join("flows.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let started = Instant::now();
    let mut child = Command::new(&python)
        .arg(script)
        .env("SANDBOX_BASE", &sandbox.base)
        .env("SANDBOX_KEY", KEY)
        .env("WEBHOOK_PORT", webhook_port.to_string())
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("PYTHONUNBUFFERED", "1")
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("run flows.py");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for flows.py") {
            break status;
        }
        if started.elapsed() > FLOWS_TIMEOUT {
            let _ = child.kill();
            panic!("flows.py ran longer than {FLOWS_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log_path).expect("read log");
    println!("{output}flows.py took {:?}", started.elapsed());
    assert!(
        status.success(),
        "Stripe's Python library got answers Stripe would not give:\n{output}"
    );
    assert!(output.contains(" 0 flow(s) failed"), "{output}");
}
