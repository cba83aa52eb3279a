//! Servers of a test's own that it can stop and start: a private Redis and a private
//! PostgreSQL, for the fault tests (the shared ones must stay up for every other test).

use std::{net::TcpListener, path::PathBuf, process::Command, time::Duration};

use uuid::Uuid;

use super::wait::eventually;

/// A port of 127.0.0.1 nothing listens on (at the moment of asking).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Redis server of the test's own, on a free port, that the test can stop and start.
pub(crate) struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub(crate) async fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
        };
        redis.restart().await;
        redis
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli` against this server; its trimmed output.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli on PATH");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts the server again on the same port, and waits until it accepts connections.
    pub(crate) async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let port = self.port;
        eventually(
            Duration::from_secs(2),
            "the private Redis accepts connections",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map_err(|e| e.to_string())
            },
        )
        .await;
    }

    /// How many times this server has run each of `commands` (lower case, as
    /// `INFO commandstats` names them), summed.
    pub(crate) fn calls(&self, commands: &[&str]) -> u64 {
        self.cli(&["INFO", "commandstats"])
            .lines()
            .filter_map(|l| {
                let (name, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                commands.contains(&name).then_some(stats)
            })
            .filter_map(|stats| {
                stats
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL server of the test's own (initdb in a temporary directory, a free
/// port), that the test can stop and start. PostgreSQL refuses to run as root, so as
/// root it runs as the `postgres` user.
pub(crate) struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePostgres {
    pub(crate) fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("identity-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = Self { port, dir, bin };
        if pg.as_root() {
            std::os::unix::fs::chown(&pg.dir, Some(101), Some(104)).ok();
            let status = Command::new("chown")
                .args(["postgres:postgres", pg.dir.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        pg.run(
            "initdb",
            &[
                "-D",
                pg.data().as_str(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_server();
        pg
    }

    fn as_root(&self) -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server; `pg_ctl -w` returns once it accepts connections.
    pub(crate) fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    pub(crate) fn stop_server(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-cli -p port args…`, its output trimmed; panics if it fails.
pub(crate) fn redis_cli_at(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli on PATH");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A Sentinel set of the test's own, on free ports: a primary, its replica and one
/// sentinel (quorum 1, a server counts as down after a second), that the test can fail
/// over. The primary's name is `identity`.
pub(crate) struct PrivateSentinel {
    /// The two data servers; the first starts as the primary.
    pub data_ports: [u16; 2],
    pub sentinel_port: u16,
    dir: PathBuf,
    children: Vec<std::process::Child>,
}

impl PrivateSentinel {
    pub(crate) async fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("identity-sentinel-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut set = Self {
            data_ports: [free_port(), free_port()],
            sentinel_port: free_port(),
            dir,
            children: Vec::new(),
        };
        let [primary, replica] = set.data_ports;
        set.spawn_server(primary, &[]);
        let primary_arg = primary.to_string();
        set.spawn_server(replica, &["--replicaof", "127.0.0.1", &primary_arg]);
        // Synchronised first: a failover to a replica still waiting for its first
        // copy would lose everything.
        eventually(
            Duration::from_secs(20),
            "the replica is synchronised",
            || async move {
                let info = redis_cli_at(replica, &["info", "replication"]);
                info.lines()
                    .any(|l| l.trim() == "master_link_status:up")
                    .then_some(())
                    .ok_or(info)
            },
        )
        .await;
        let config = set.dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {sentinel}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor identity 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds identity 1000\n\
                 sentinel failover-timeout identity 5000\n",
                sentinel = set.sentinel_port,
                dir = set.dir.display(),
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        set.children.push(child);
        let sentinel = set.sentinel_port;
        // Ready for a failover once the sentinel has found the replica, connected and
        // up (it learns of it from the primary's INFO, within ten seconds).
        eventually(
            Duration::from_secs(20),
            "the sentinel knows the replica",
            || async move {
                let out = Command::new("redis-cli")
                    .args(["-p", &sentinel.to_string()])
                    .args(["sentinel", "replicas", "identity"])
                    .output()
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                let flags: Vec<&str> = text.lines().skip_while(|l| *l != "flags").collect();
                (flags.get(1) == Some(&"slave")).then_some(()).ok_or(text)
            },
        )
        .await;
        set
    }

    fn spawn_server(&mut self, port: u16, extra: &[&str]) {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            // A replica's first copy starts at once (the default waits 5 s for others).
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&self.dir)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.children.push(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `REDIS_URL` of the set.
    pub(crate) fn url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}?sentinelServiceName=identity",
            self.sentinel_port
        )
    }

    /// The port of the current primary, as the sentinel says.
    pub(crate) fn primary(&self) -> u16 {
        let addr = redis_cli_at(
            self.sentinel_port,
            &["sentinel", "get-master-addr-by-name", "identity"],
        );
        addr.lines().nth(1).unwrap().parse().unwrap()
    }

    /// Fails over (`SENTINEL FAILOVER`) once the replica holds every write made so far,
    /// as an operator's planned failover would (replication is asynchronous: a crash
    /// loses what the replica had not received yet), and returns the new primary's
    /// port once the sentinel names it and it answers as a primary.
    pub(crate) async fn failover(&self) -> u16 {
        let old = self.primary();
        let replica = self.data_ports.into_iter().find(|p| *p != old).unwrap();
        let offset = |port: u16, field: &str| -> i64 {
            let info = redis_cli_at(port, &["info", "replication"]);
            info.lines()
                .find_map(|l| l.trim().strip_prefix(field))
                .and_then(|v| v.strip_prefix(':'))
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1)
        };
        let written = offset(old, "master_repl_offset");
        eventually(
            Duration::from_secs(10),
            "the replica holds every write",
            || async move {
                let copied = offset(replica, "slave_repl_offset");
                (copied >= written)
                    .then_some(())
                    .ok_or(format!("{copied} of {written}"))
            },
        )
        .await;
        assert_eq!(
            redis_cli_at(self.sentinel_port, &["sentinel", "failover", "identity"]),
            "OK"
        );
        let new = eventually(
            Duration::from_secs(20),
            "the replica is promoted",
            || async move {
                let new = self.primary();
                let role = redis_cli_at(new, &["role"]);
                (new != old && role.starts_with("master"))
                    .then_some(new)
                    .ok_or(format!("{new}: {role}"))
            },
        )
        .await;
        // Until the sentinel turns the old primary into a replica (and drops its
        // clients), clients still connected to it write there, and lose it then.
        eventually(
            Duration::from_secs(30),
            "the old primary is a replica",
            || async move {
                let role = redis_cli_at(old, &["role"]);
                role.starts_with("slave").then_some(()).ok_or(role)
            },
        )
        .await;
        new
    }
}

impl Drop for PrivateSentinel {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
