//! DESIGN §6 on the real binary: a store killed with SIGKILL under create load, then
//! damaged the ways disks and operators damage it. `paykeep serve` and
//! `paykeep store check` refuse every store they cannot vouch for (exit code 3, a message
//! naming the file and what was expected, never a panic); a torn tail starts and loses
//! nothing acknowledged; `serve --accept-data-loss` starts anyway, logs what it drops and
//! writes a critical `system.store_recovered_with_loss` event.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{create_load, get_at, spawn_binary, Binary, MERCHANT_KEY};
use paykeep::store::wal;
use serde_json::Value;

/// The exit code of a store recovery cannot vouch for.
const EXIT_DAMAGED: i32 = 3;

/// A store killed under load, and what its clients were told.
struct Loaded {
    data: PathBuf,
    /// (idempotency key, request body, acknowledged response).
    acked: Vec<(String, Value, String)>,
}

/// One loaded store for every test of this file (each damages a copy of it).
fn loaded() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| {
        let root = scratch("loaded");
        let data = root.join("db");
        let loading = data.clone();
        // On a thread of its own: the first caller may be inside a test's runtime.
        let acked = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let bin = spawn_binary(&loading, &[]);
                let stop = Instant::now() + Duration::from_secs(20);
                let load = tokio::spawn(create_load(bin.base.clone(), 16, stop));
                tokio::time::sleep(Duration::from_millis(1500)).await;
                bin.kill9();
                load.await.unwrap()
            })
        })
        .join()
        .unwrap();
        assert!(
            acked.len() > 50,
            "load ran before the kill ({} acks)",
            acked.len()
        );
        Loaded { data, acked }
    })
}

/// This process's directory under the test target's scratch space. The first call removes
/// what earlier runs of this file left there (their loaded stores and failed tests' copies),
/// so the scratch space holds one run's data at most.
fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for entry in std::fs::read_dir(target).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("damage-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        target.join(format!("damage-{}", std::process::id()))
    })
}

/// A new directory under this process's scratch space.
fn scratch(name: &str) -> PathBuf {
    let dir = scratch_root().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of the loaded store to damage: removed when the test passes, kept for a look when
/// it fails.
struct StoreCopy(PathBuf);

impl std::ops::Deref for StoreCopy {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for StoreCopy {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for StoreCopy {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(self.0.parent().expect("a scratch directory"));
        }
    }
}

/// A copy of the loaded store to damage.
fn copy(name: &str) -> StoreCopy {
    let data = scratch(name).join("db");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&loaded().data)
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success());
    StoreCopy(data)
}

fn newest_segment(data: &Path) -> PathBuf {
    let (ids, _) = wal::list(data).unwrap();
    wal::segment_path(data, *ids.last().expect("a log segment"))
}

/// The newest segment's file name, as messages name it.
fn newest_name(data: &Path) -> String {
    newest_segment(data)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The whole records of the newest segment.
fn records(data: &Path) -> Vec<wal::Record> {
    wal::scan(&newest_segment(data)).unwrap().records
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// Runs `paykeep ARGS` to its exit (at most 30 s: a start that should have been refused
/// is killed and fails the test).
fn run(args: &[&str], data: &Path) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_paykeep"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (exited, exit) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if exit.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let output = child.wait_with_output().unwrap();
    let _ = exited.send(());
    watchdog.join().unwrap();
    output
}

/// Asserts that `serve` and `store check` both refuse `data` with exit code 3, name
/// `names` in their messages, and do not panic; returns serve's message.
fn refused(data: &Path, names: &str) -> String {
    let serve = run(&["serve", "--bind", "127.0.0.1:0"], data);
    let stderr = String::from_utf8_lossy(&serve.stderr).into_owned();
    assert_eq!(serve.status.code(), Some(EXIT_DAMAGED), "serve: {stderr}");
    assert!(stderr.contains(names), "serve names {names}: {stderr}");
    assert!(
        stderr.contains("expected"),
        "serve says what was expected: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    let check = run(&["store", "check"], data);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(check.status.code(), Some(EXIT_DAMAGED), "check: {said}");
    assert!(said.contains(names), "check names {names}: {said}");
    assert!(!said.contains("panicked"), "no panic: {said}");
    stderr
}

/// Every acknowledged create of the loaded store is present and identical on `bin`, and its
/// key replays it.
async fn all_acknowledged_present(bin: &Binary) {
    common::assert_acknowledged_present(&bin.base, &loaded().acked).await;
}

/// `paykeep serve --accept-data-loss` on `data` with `RUST_LOG=warn`, stderr piped; returns
/// the child and its base URL once `/readyz` says 200.
async fn serve_accepting_loss(data: &Path) -> (std::process::Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paykeep"));
    command
        .args([
            "serve",
            "--accept-data-loss",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (child, addr) = common::spawn_listening(command);
    let base = format!("http://{addr}");
    let ready = get_at(&reqwest::Client::new(), &base, MERCHANT_KEY, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sound_store_passes_the_check_and_loses_nothing() {
    let data = copy("sound");
    let check = run(&["store", "check"], &data);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("is sound"), "{stdout}");
    let bin = spawn_binary(&data, &[]);
    all_acknowledged_present(&bin).await;
    bin.kill9();
}

/// A crash in the middle of an append leaves the record's first bytes and the
/// preallocated zeros after them (the process died before the sync, so the record was
/// never acknowledged): the log's last record is cut mid-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_starts_and_loses_nothing_acknowledged() {
    let data = copy("torn");
    let segment = newest_segment(&data);
    let last = records(&data).pop().expect("records");
    let mut torn = std::fs::read(&segment).unwrap();
    let end = last.offset as usize + wal::RECORD_HEADER_LEN + last.payload.len();
    // A copy of the last record as the next one, cut after half its payload.
    let cut = wal::RECORD_HEADER_LEN + last.payload.len() / 2;
    let record = torn[last.offset as usize..last.offset as usize + cut].to_vec();
    torn[end..end + cut].copy_from_slice(&record);
    torn[end + 8..end + 16].copy_from_slice(&(last.lsn + 1).to_le_bytes());
    std::fs::write(&segment, &torn).unwrap();
    assert_eq!(wal::scan(&segment).unwrap().damage.len(), 1);

    let check = run(&["store", "check"], &data);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("torn tail"), "{stdout}");
    let bin = spawn_binary(&data, &[]);
    all_acknowledged_present(&bin).await;
    let ready = get_at(&reqwest::Client::new(), &bin.base, MERCHANT_KEY, "/readyz").await;
    assert_eq!(ready.status, 200);
    bin.kill9();
}

#[test]
fn a_flipped_byte_near_the_start_of_the_newest_segment_is_refused() {
    let data = copy("flip-start");
    let records = records(&data);
    assert!(records.len() >= 2, "a valid record follows the first");
    flip(
        &newest_segment(&data),
        records[0].offset as usize + wal::RECORD_HEADER_LEN + 10,
    );
    let said = refused(
        &data,
        &format!("{} at offset {}", newest_name(&data), records[0].offset),
    );
    assert!(said.contains("a valid one"), "{said}");
}

#[test]
fn a_flipped_byte_mid_segment_is_refused() {
    let data = copy("flip-mid");
    let records = records(&data);
    let middle = &records[records.len() / 2];
    assert!(middle.lsn < records.last().unwrap().lsn);
    flip(
        &newest_segment(&data),
        middle.offset as usize + wal::RECORD_HEADER_LEN + 40,
    );
    refused(&data, &format!("at offset {}", middle.offset));
}

#[test]
fn a_segment_cut_to_half_its_length_is_refused() {
    let data = copy("cut");
    let segment = newest_segment(&data);
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let said = refused(&data, &newest_name(&data));
    assert!(said.contains("preallocated"), "{said}");
}

#[test]
fn a_removed_log_is_refused() {
    let data = copy("no-wal");
    std::fs::remove_dir_all(data.join("wal")).unwrap();
    let said = refused(&data, "wal");
    assert!(said.contains("no log segment"), "{said}");
}

#[test]
fn a_removed_sled_file_is_refused() {
    let data = copy("no-db");
    std::fs::remove_file(data.join("db")).unwrap();
    let said = refused(&data, "db");
    assert!(said.contains("no sled store"), "{said}");
    assert!(!data.join("db").exists(), "the refusal created nothing");
}

/// sled checks its `conf` file's CRC and its log's, but a flipped byte in a stale region
/// of `db` changes nothing it reads: so a flip in `db` either refuses (sled fails, or it
/// lost records sled's `meta` says it had) or starts with every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_sled_refuses_or_loses_nothing_and_never_panics() {
    let data = copy("conf-flip");
    flip(&data.join("conf"), 9);
    refused(&data, "db");
    let len = std::fs::metadata(loaded().data.join("db")).unwrap().len() as usize;
    for eighth in 0..8 {
        let data = copy(&format!("sled-flip-{eighth}"));
        flip(&data.join("db"), len * eighth / 8 + 7);
        let check = run(&["store", "check"], &data);
        let said = format!("{check:?}");
        assert!(!said.contains("panicked"), "{said}");
        match check.status.code() {
            Some(EXIT_DAMAGED) => {
                refused(&data, "db");
            }
            Some(0) => {
                let bin = spawn_binary(&data, &[]);
                all_acknowledged_present(&bin).await;
                bin.kill9();
            }
            other => panic!("store check exited {other:?}: {said}"),
        }
    }
}

#[test]
fn a_zeroed_sled_file_is_refused() {
    let data = copy("sled-zero");
    let len = std::fs::metadata(data.join("db")).unwrap().len();
    std::fs::write(data.join("db"), vec![0u8; len as usize]).unwrap();
    refused(&data, "db");
}

/// Garbage in any file of the data directory: a clear refusal naming the path.
#[test]
fn garbage_in_any_file_is_refused_naming_the_path() {
    let data = copy("conf-garbage");
    std::fs::write(data.join("conf"), b"\x13\x37 not sled's conf at all").unwrap();
    refused(&data, "db");

    let data = copy("segment-zeros");
    let segment = newest_segment(&data);
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::write(&segment, vec![0u8; len as usize]).unwrap();
    refused(&data, "no paykeep log magic");

    let data = copy("segment-directory");
    let segment = newest_segment(&data);
    std::fs::remove_file(&segment).unwrap();
    std::fs::create_dir(&segment).unwrap();
    refused(&data, &newest_name(&data));

    let data = copy("db-directory");
    std::fs::remove_file(data.join("db")).unwrap();
    std::fs::create_dir(data.join("db")).unwrap();
    refused(&data, "db");

    // The log of another store beside this one's sled.
    let data = copy("foreign-log");
    let other = scratch("other-store").join("db");
    let bin = spawn_binary(&other, &[]);
    bin.kill9();
    std::fs::remove_dir_all(data.join("wal")).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(other.join("wal"))
        .arg(data.join("wal"))
        .status()
        .unwrap();
    assert!(status.success());
    let said = refused(&data, "a log segment of store");
    assert!(said.contains("sled's meta says"), "{said}");
}

/// The `system.store_recovered_with_loss` event in the outbox (paging `GET /admin/events`,
/// oldest first), if there is one.
async fn loss_event(client: &reqwest::Client, base: &str) -> Option<Value> {
    let mut after = String::from("0");
    for _ in 0..1000 {
        let page: Value = client
            .get(format!("{base}/admin/events?limit=100&after={after}"))
            .bearer_auth("admin_demo_token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = page["data"].as_array().unwrap();
        if let Some(loss) = events
            .iter()
            .find(|e| e["type"] == "system.store_recovered_with_loss")
        {
            return Some(loss.clone());
        }
        if page["has_more"] != true {
            return None;
        }
        after = page["next_after"].as_str().unwrap().to_owned();
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_data_loss_starts_logs_the_loss_and_emits_the_event() {
    let data = copy("accept");
    let name = newest_name(&data);
    let records = records(&data);
    let middle = &records[records.len() / 2];
    flip(
        &newest_segment(&data),
        middle.offset as usize + wal::RECORD_HEADER_LEN + 40,
    );

    let (mut child, base) = serve_accepting_loss(&data).await;
    let client = reqwest::Client::new();
    let loss = loss_event(&client, &base).await.expect("a loss event");
    assert_eq!(loss["level"], "critical");
    let payload = loss["payload"].to_string();
    assert!(
        payload.contains(&format!("at offset {}", middle.offset)),
        "{payload}"
    );
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ERROR"), "error-level lines: {stderr}");
    assert!(
        stderr.contains(&format!("the bytes from offset {}", middle.offset)),
        "says what it drops: {stderr}"
    );
    let moved = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("damaged-"))
        .expect("the damaged segment is kept aside");
    assert!(moved.path().join("wal").join(&name).exists());

    // The store it left is sound: the next start needs no flag.
    let check = run(&["store", "check"], &data);
    assert_eq!(check.status.code(), Some(0), "{:?}", check);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_data_loss_starts_on_a_log_without_its_sled() {
    let data = copy("accept-no-db");
    std::fs::remove_file(data.join("db")).unwrap();
    let (mut child, base) = serve_accepting_loss(&data).await;
    let client = reqwest::Client::new();
    let loss = loss_event(&client, &base).await.expect("a loss event");
    assert!(
        loss["payload"].to_string().contains("no sled store"),
        "{loss}"
    );
    child.kill().unwrap();
    let _ = child.wait();
}
