//! A Python virtualenv under `target/` with one pinned PyPI package, for the tests that
//! drive paykeep with a Python tool (Stripe's library, schemathesis). Made once and kept;
//! the pinned version is checked on every run and installed again when it differs.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The interpreter of `target/<venv>` with `package==version` installed from PyPI, or why
/// there is none: `python3` absent, or without its `venv` module (the caller then skips).
///
/// # Panics
/// When pip cannot install the package (no network, no such version): a test that
/// needs it must not pass silently.
pub fn venv_python(venv: &str, package: &str, version: &str) -> Result<PathBuf, String> {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let venv = target.join(venv);
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
        "import importlib.metadata as m, sys; sys.exit(m.version('{package}') != '{version}')"
    );
    if !succeeds(Command::new(&python).args(["-c", &pinned])) {
        let requirement = format!("{package}=={version}");
        let install = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(&requirement)
            .output()
            .expect("run pip");
        assert!(
            install.status.success(),
            "pip install {requirement} failed:\n{}{}",
            String::from_utf8_lossy(&install.stdout),
            String::from_utf8_lossy(&install.stderr)
        );
    }
    Ok(python)
}

/// Runs `command` (a Python program) with its output into `log_path` and returns its exit
/// status and output. Into a file, not a pipe: a full pipe would stall the program until
/// the timeout.
///
/// # Panics
/// When it runs longer than `timeout` (it is killed first).
pub fn run_logged(
    mut command: Command,
    log_path: &Path,
    timeout: Duration,
) -> (ExitStatus, String) {
    let log = std::fs::File::create(log_path).expect("log file");
    let started = Instant::now();
    let mut child = command
        .env("PYTHONUNBUFFERED", "1")
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("run python");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("{command:?} ran longer than {timeout:?}:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(log_path).expect("read log");
    (status, output)
}
