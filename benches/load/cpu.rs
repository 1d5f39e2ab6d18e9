//! CPU time by thread group, of the bench process (`/proc/self/task/*/stat`) or of the soak's
//! server (`/proc/<pid>/task/*/stat`); proc(5): fields 14 `utime` and 15 `stime`, in clock
//! ticks of `sysconf(_SC_CLK_TCK)`.
//!
//! Divided by the requests of a window, it gives the CPU one request costs in each part of
//! paykeep: work done rather than time waited, so a change to one part shows in its own
//! column. It still moves with the host's speed (the same build's echo took 19.5 to 30.3 µs
//! per request across invocations, BENCHMARKS.md): compare columns within one invocation,
//! or medians of alternated ones. The load generator and the echo server run on the same
//! tokio runtime as paykeep's HTTP side, so `http` is both ends of every connection.

/// The thread groups, in the order [`Cpu::groups`] holds them.
pub const GROUPS: [&str; 5] = ["http", "shards", "committer", "applier", "other"];

/// Where group `name` is in [`GROUPS`] (and in [`Cpu::per_request_us`]'s answer); a name
/// not in it fails the build where the index is a constant.
pub const fn group_index(name: &str) -> usize {
    let mut i = 0;
    while i < GROUPS.len() {
        let (a, b) = (GROUPS[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("no such thread group")
}

/// Which group a thread belongs to, by the name it gave itself (`comm`, at most 15 bytes).
fn group_of(comm: &str) -> usize {
    match comm {
        "tokio-rt-worker" => 0,
        c if c.starts_with("actix-rt") => 1,
        c if c.starts_with("paykeep-committ") => 2,
        c if c.starts_with("paykeep-applier") => 3,
        _ => 4,
    }
}

/// CPU seconds used so far per group by the threads alive now (the groups' threads live as
/// long as paykeep; a short-lived thread's time leaves `other` when it exits).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub groups: [f64; GROUPS.len()],
}

impl Cpu {
    /// Reads every thread of this process now.
    pub fn sample() -> Cpu {
        Cpu::sample_of("/proc/self/task")
    }

    /// Reads every thread of process `pid` now (the soak's server, a child process; its
    /// `tokio-rt-worker` threads are then paykeep's HTTP side alone).
    pub fn sample_process(pid: u32) -> Cpu {
        Cpu::sample_of(&format!("/proc/{pid}/task"))
    }

    fn sample_of(tasks_dir: &str) -> Cpu {
        // SAFETY: sysconf has no preconditions.
        let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut cpu = Cpu::default();
        let Ok(tasks) = std::fs::read_dir(tasks_dir) else {
            return cpu;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ...`: comm may hold spaces and parentheses.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            // After the comm, field 3 (state) is index 0, so utime (14) is 11, stime 12.
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
            if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
                cpu.groups[group_of(&stat[open + 1..close])] += (user + system) / ticks_per_s;
            }
        }
        cpu
    }

    /// Microseconds of CPU per request in each group between `self` and the later `after`,
    /// then their total.
    pub fn per_request_us(&self, after: &Cpu, requests: f64) -> [f64; GROUPS.len() + 1] {
        let mut out = [0.0; GROUPS.len() + 1];
        for (i, slot) in out.iter_mut().take(GROUPS.len()).enumerate() {
            *slot = (after.groups[i] - self.groups[i]).max(0.0) * 1e6 / requests.max(1.0);
        }
        out[GROUPS.len()] = out[..GROUPS.len()].iter().sum();
        out
    }
}
