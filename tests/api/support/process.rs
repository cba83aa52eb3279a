//! The service binary as a child process, as an operator runs it: the test's storage,
//! its output in a file, stopped with a signal.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, ExitStatus},
    time::Duration,
};

use super::{
    app::{check_overrides, test_vars},
    mail_sink::MailSink,
    storage::Storage,
    wait::eventually,
};

/// Variables the process reads besides its settings, which a test may also set.
const PROCESS_VARIABLES: &[&str] = &[
    // The log filter (identity::telemetry).
    "RUST_LOG",
    // Whether errors capture a backtrace (std, anyhow).
    "RUST_BACKTRACE",
];

pub(crate) struct ServiceProcess {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
    /// `host:port` it listens on.
    pub addr: String,
}

impl ServiceProcess {
    /// Starts `identity serve` and waits until `/readyz` answers 200. `overrides` are
    /// settings (see `check_overrides`) or `PROCESS_VARIABLES`.
    pub(crate) async fn start(
        storage: &Storage,
        mail: &MailSink,
        overrides: &[(&str, &str)],
    ) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(storage, mail, overrides, port).await
    }

    /// As `start`, on `port` of 127.0.0.1 (the same instance started again after a
    /// stop: its log goes on in the same file).
    pub(crate) async fn start_on(
        storage: &Storage,
        mail: &MailSink,
        overrides: &[(&str, &str)],
        port: u16,
    ) -> Self {
        check_overrides(overrides, PROCESS_VARIABLES);
        let bind = format!("127.0.0.1:{port}");
        let mut vars = test_vars(storage, mail, &[("BIND_ADDR", bind.as_str())]);
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let log = storage.dir.join(format!("service-{port}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_identity"))
            .arg("serve")
            .env_clear()
            .envs(&vars)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let process = Self {
            child,
            url: format!("http://{bind}"),
            log,
            addr: bind.clone(),
        };
        let client = reqwest::Client::new();
        let readyz = format!("{}/readyz", process.url);
        eventually(Duration::from_secs(6), "the service is ready", || async {
            match client.get(&readyz).send().await {
                Ok(r) if r.status() == 200 => Ok(()),
                Ok(r) => Err(format!(
                    "/readyz {}; output: {}",
                    r.status(),
                    process.output()
                )),
                Err(e) => Err(format!("{e}; output: {}", process.output())),
            }
        })
        .await;
        process
    }

    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, as an orchestrator stopping a container does.
    pub(crate) fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the process has exited, and returns how.
    pub(crate) async fn exited(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        eventually(timeout, "the process exits", || {
            std::future::ready(
                child
                    .try_wait()
                    .unwrap()
                    .ok_or_else(|| "still running".to_owned()),
            )
        })
        .await
    }

    /// CPU time, in clock ticks (1/100 s), used so far by the process's threads whose
    /// name starts with `prefix` (from /proc: Linux only).
    pub(crate) fn thread_cpu_ticks(&self, prefix: &str) -> u64 {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id()));
        tasks
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
            .filter_map(|stat| {
                // "tid (name) state ppid …": utime and stime are the 14th and 15th fields.
                let (head, rest) = stat.rsplit_once(')')?;
                let (_, name) = head.split_once('(')?;
                if !name.starts_with(prefix) {
                    return None;
                }
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let utime: u64 = fields.get(11)?.parse().ok()?;
                let stime: u64 = fields.get(12)?.parse().ok()?;
                Some(utime + stime)
            })
            .sum()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
