//! The `tayori worker` binary as a child process: started with a configuration file and the AWS
//! settings pointing at the fault proxy (SQS) and the stand-in (SES), read through `/proc`
//! (RSS, open file descriptors, CPU), stopped with SIGTERM, and killed on every other way out:
//! dropping a [`WorkerProcess`] kills the child and waits for it, so no stray worker outlives
//! the soak (an error, a panic, or the soak's own SIGINT/SIGTERM handler all drop it).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// A running `tayori worker`.
pub struct WorkerProcess {
    child: Child,
    pid: u32,
    log: PathBuf,
}

/// Where the worker's AWS clients go.
pub struct Endpoints<'a> {
    /// `AWS_ENDPOINT_URL`: every service but SES (the fault proxy in front of the stand-in).
    pub sqs: &'a str,
    /// `AWS_ENDPOINT_URL_SESV2`: the stand-in itself.
    pub ses: &'a str,
}

impl WorkerProcess {
    /// Starts `bin --log-format json worker --config config`, its output into `log`. The environment
    /// is the bench's without its `TAYORI_*` variables (the worker would read them as settings)
    /// and without AWS profiles, plus static credentials, a region and the endpoints.
    pub fn start(
        bin: &Path,
        config: &Path,
        endpoints: &Endpoints<'_>,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone().context("cannot share the worker's log file")?;
        let mut command = Command::new(bin);
        // JSON lines, as the container image logs (deploy/Dockerfile).
        command.args(["--log-format", "json", "worker", "--config"]).arg(config);
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("TAYORI_") || text.starts_with("AWS_") {
                command.env_remove(&name);
            }
        }
        command
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", endpoints.sqs)
            .env("AWS_ENDPOINT_URL_SESV2", endpoints.ses)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command.spawn().with_context(|| {
            format!("cannot start {} (build it: cargo build --release -p tayori)", bin.display())
        })?;
        let pid = child.id();
        Ok(Self { child, pid, log: log.to_owned() })
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How it ended, when it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `VmRSS`, MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let kib = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
        let kib: f64 = kib.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Open file descriptors (entries of `/proc/<pid>/fd`).
    pub fn fds(&self) -> Option<usize> {
        Some(std::fs::read_dir(format!("/proc/{}/fd", self.pid)).ok()?.count())
    }

    /// CPU seconds used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        crate::cpu::process_seconds(self.pid)
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// SIGTERM (the graceful stop `tayori worker` handles), then up to `grace` for it to exit,
    /// then SIGKILL. Returns how it ended, for the report.
    pub fn stop(mut self, grace: Duration) -> String {
        if let Some(status) = self.exited() {
            return format!("had already exited ({status})");
        }
        // `kill(1)`: the workspace forbids the `unsafe` a direct kill(2) would take.
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .is_ok_and(|status| status.success());
        let started = Instant::now();
        while started.elapsed() < grace {
            if let Some(status) = self.exited() {
                return format!(
                    "stopped on SIGTERM in {:.1} s ({status})",
                    started.elapsed().as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if signalled {
            format!("did not stop within {grace:?} of SIGTERM: killed")
        } else {
            "could not be sent SIGTERM: killed".to_owned()
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
