//! Debian's nginx on loopback, run as the test's user with a directory of its own, from
//! `deploy/nginx.conf` with only the two upstream addresses and the listen port
//! changed: the proxy a deployment runs, in front of the test's service processes.

use std::{
    net::IpAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use uuid::Uuid;

use super::{servers::free_port, wait::eventually};

/// The deployment's proxy configuration, as committed.
const CONF: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf"));

pub(crate) struct Nginx {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

/// The nginx to run: `NGINX` if set, else `nginx` on `PATH`, else Debian's
/// `/usr/sbin/nginx`. Panics when there is none: the proxy tests run on the PostgreSQL
/// backend, where `.ci/run` installs it (scripts/services).
pub(crate) fn nginx_binary() -> PathBuf {
    if let Ok(path) = std::env::var("NGINX") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file());
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
        .expect(
            "nginx not found (NGINX, PATH, /usr/sbin/nginx): `apt-get install -y nginx` \
             (scripts/services installs it)",
        )
}

/// `conf` with `from` replaced by `to`, which must occur exactly once: a change to the
/// committed file that this substitution no longer fits fails loudly.
fn replace_once(conf: &str, from: &str, to: &str) -> String {
    assert_eq!(
        conf.matches(from).count(),
        1,
        "deploy/nginx.conf should hold {from:?} once"
    );
    conf.replacen(from, to, 1)
}

impl Nginx {
    /// Starts nginx in front of `upstreams` (`host:port` of the two instances) on a
    /// free port of 127.0.0.1, and waits until it accepts connections.
    pub(crate) async fn start(upstreams: [&str; 2]) -> Self {
        let binary = nginx_binary();
        let port = free_port();
        let conf = replace_once(CONF, "identity-a:8000", upstreams[0]);
        let conf = replace_once(&conf, "identity-b:8000", upstreams[1]);
        let conf = replace_once(&conf, "listen 8080;", &format!("listen 127.0.0.1:{port};"));
        let dir = std::env::temp_dir().join(format!("identity-nginx-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(&binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("access.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("error.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let nginx = Self { child, port, dir };
        eventually(
            Duration::from_secs(10),
            "nginx accepts connections",
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map_err(|e| format!("{e}; error log: {}", nginx.error_log()))
            },
        )
        .await;
        nginx
    }

    /// A client whose connections to the proxy come from `source` (any 127.x.y.z:
    /// every loopback address is the machine's own on Linux), so the proxy sees
    /// distinct clients.
    pub(crate) fn client(&self, source: &str) -> reqwest::Client {
        let source: IpAddr = source.parse().unwrap();
        reqwest::Client::builder()
            .local_address(source)
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One line per request: client, request, status, the instance(s) tried
    /// (`upstream=A, B` when nginx moved on to B) and their statuses.
    pub(crate) fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    pub(crate) fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would leave them running).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
