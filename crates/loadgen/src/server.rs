//! Starting a server process and reading its peak memory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Server {
    child: Child,
    pub url: String,
    pub data: std::path::PathBuf,
    /// `--database URL` when the server runs on PostgreSQL.
    pub extra: Vec<String>,
}

impl Server {
    pub fn start(bin: &Path, data: &Path) -> Result<Self, String> {
        Self::start_with(bin, data, &[])
    }

    /// A server with more arguments (`--database postgres://…`).
    pub fn start_with(bin: &Path, data: &Path, extra: &[String]) -> Result<Self, String> {
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let port: u16 = line
            .trim()
            .strip_prefix("listening on port ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("unexpected server output {line:?}"))?;
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data: data.to_path_buf(),
            extra: extra.to_vec(),
        })
    }

    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Peak resident set size so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    /// CPU time the server process has used so far (user + system), seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_of(&format!("/proc/{}/stat", self.child.id()))
    }

    pub fn enroll_code(&self, bin: &Path, user: &str, team: &str) -> Result<String, String> {
        let out = Command::new(bin)
            .args(["enroll-code", "--user", user, "--team", team, "--data"])
            .arg(&self.data)
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) and resident memory (KiB, summed; shared
/// buffers counted in each process) of every PostgreSQL server process on
/// this machine, read from /proc.
pub fn postgres_usage() -> (f64, u64) {
    let mut cpu = 0.0;
    let mut rss = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0.0, 0);
    };
    for e in dir.flatten() {
        let path = e.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != "postgres" {
            continue;
        }
        // Its own time, and that of its children reaped so far (the
        // postmaster's, for the connections that have closed).
        cpu += cpu_of(&path.join("stat").display().to_string())
            + children_cpu_of(&path.join("stat").display().to_string());
        rss += std::fs::read_to_string(path.join("status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0);
    }
    (cpu, rss)
}

fn children_cpu_of(path: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let cutime: f64 = f.get(13)?.parse().ok()?;
            let cstime: f64 = f.get(14)?.parse().ok()?;
            Some((cutime + cstime) / 100.0)
        })
        .unwrap_or(0.0)
}

pub fn own_cpu_seconds() -> f64 {
    cpu_of("/proc/self/stat")
}

fn cpu_of(path: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}
