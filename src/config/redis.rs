//! Redis, for tokens and counters shared by several instances; unset, they stay in
//! process.
//!
//! `REDIS_URL` names one of three topologies by its scheme:
//!
//! - `redis://` / `rediss://`: one server (or a proxy in front of several);
//! - `redis-cluster://host:port[,host:port…]` (`rediss-cluster://` with TLS): a Redis
//!   Cluster, the nodes listed being seeds from which the client learns the slots;
//! - `redis-sentinel://host:port[,host:port…][/db]?sentinelServiceName=<name>`
//!   (`rediss-sentinel://`): the primary that the listed sentinels elect, followed
//!   through failovers.
//!
//! The comma-separated host list is the form operators write; `fred` takes the first
//! host in the authority and the others as `node=host:port` query parameters (that
//! form is accepted too). [`read`] rewrites the first into the second, so the URL kept
//! in [`RedisConfig`] is the one `fred`'s own parser (`Config::from_url`) reads, and
//! that parser validates it at start.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{
    ConfigError,
    vars::{Described, Vars, mask_url, secs},
};

pub(super) const VARS: &[&str] = &[
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "REDIS_POOL_SIZE",
    "REDIS_TIMEOUT",
];

/// Which deployment of Redis `REDIS_URL` points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server.
    Standalone,
    /// A Redis Cluster: keys spread over the primaries by hash slot.
    Cluster,
    /// One primary found through Sentinel, replaced by a replica on failover.
    Sentinel,
}

impl RedisTopology {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Cluster => "cluster",
            Self::Sentinel => "sentinel",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `REDIS_URL` in the form `fred` parses (see the module).
    pub url: SecretString,
    pub topology: RedisTopology,
    /// Prepended to every key, so several deployments (or tests) can share a server.
    pub key_prefix: String,
    pub pool_size: usize,
    pub command_timeout: Duration,
}

/// `None` without `REDIS_URL`; the other variables are then not read.
pub(super) fn read(vars: &Vars<'_>) -> Result<Option<RedisConfig>, ConfigError> {
    let Some(url) = vars.get("REDIS_URL") else {
        return Ok(None);
    };
    let (url, topology) =
        fred_url(url.trim()).map_err(|message| ConfigError::new("REDIS_URL", message))?;
    if let Err(e) = fred::types::config::Config::from_url(&url) {
        return Err(ConfigError::new("REDIS_URL", e.to_string()));
    }
    let key_prefix = vars
        .get("REDIS_KEY_PREFIX")
        .unwrap_or_else(|| "identity:".into());
    // The service puts the part of a key that must share a slot with others in braces
    // (a hash tag); a brace in the prefix would take that choice away from it.
    if topology == RedisTopology::Cluster && key_prefix.contains(['{', '}']) {
        return Err(ConfigError::new(
            "REDIS_KEY_PREFIX",
            "must not contain braces on a Redis Cluster: they would choose the hash slot",
        ));
    }
    Ok(Some(RedisConfig {
        url: SecretString::from(url),
        topology,
        key_prefix,
        pool_size: vars.positive("REDIS_POOL_SIZE", 4, 256)?,
        command_timeout: vars.secs("REDIS_TIMEOUT", 2, 1, 60)?,
    }))
}

/// The topology a URL names, and the URL with any comma-separated host list moved
/// into `node=` query parameters.
fn fred_url(url: &str) -> Result<(String, RedisTopology), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(
            "expected a redis://, rediss://, redis-cluster:// or redis-sentinel:// URL".into(),
        );
    };
    let topology = match scheme {
        "redis" | "rediss" => RedisTopology::Standalone,
        "redis-cluster" | "rediss-cluster" => RedisTopology::Cluster,
        "redis-sentinel" | "rediss-sentinel" => RedisTopology::Sentinel,
        _ => {
            return Err(format!(
                "unknown scheme {scheme:?}: expected redis://, rediss://, redis-cluster://, \
                 rediss-cluster://, redis-sentinel:// or rediss-sentinel://"
            ));
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let mut hosts = hosts.split(',');
    let first = hosts.next().unwrap_or_default();
    if first.is_empty() {
        return Err("no host".into());
    }
    let others: Vec<&str> = hosts.collect();
    if !others.is_empty() && topology == RedisTopology::Standalone {
        return Err(
            "a list of hosts needs redis-cluster:// (cluster seeds) or redis-sentinel:// \
             (sentinels)"
                .into(),
        );
    }
    for host in &others {
        match host.rsplit_once(':') {
            Some((name, port))
                if !name.is_empty()
                    && !name.contains([':', '['])
                    && port.parse::<u16>().is_ok() => {}
            _ => {
                return Err(format!(
                    "{host:?} in the host list: expected host:port (an IPv6 address only as \
                     the first host)"
                ));
            }
        }
    }
    let (path_and_query, fragment) = match tail.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (tail, None),
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    if topology == RedisTopology::Cluster && !matches!(path, "" | "/" | "/0") {
        return Err("a Redis Cluster has only database 0: drop the path".into());
    }
    let query_has = |name: &str| {
        query.is_some_and(|q| {
            q.split('&').any(|p| {
                p.split_once('=')
                    .is_some_and(|(k, v)| k == name && !v.is_empty())
            })
        })
    };
    if topology == RedisTopology::Sentinel && !query_has("sentinelServiceName") {
        return Err(
            "redis-sentinel:// needs ?sentinelServiceName=<name>, the primary's name in the \
             sentinels' configuration (often mymaster)"
                .into(),
        );
    }
    let mut params: Vec<String> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    params.extend(others.iter().map(|host| format!("node={host}")));
    let mut out = format!("{scheme}://{userinfo}{first}{path}");
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    Ok((out, topology))
}

pub(super) fn describe(redis: Option<&RedisConfig>) -> Described {
    vec![
        (
            "REDIS_URL",
            redis.map_or("(unset: in-process token store)".into(), |r| {
                format!(
                    "{} ({})",
                    mask_url(r.url.expose_secret()),
                    r.topology.as_str()
                )
            }),
        ),
        (
            "REDIS_KEY_PREFIX",
            redis.map_or(String::new(), |r| r.key_prefix.clone()),
        ),
        (
            "REDIS_POOL_SIZE",
            redis.map_or(String::new(), |r| r.pool_size.to_string()),
        ),
        (
            "REDIS_TIMEOUT",
            redis.map_or(String::new(), |r| secs(r.command_timeout)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, RedisTopology) {
        // `rediss://` URLs build a TLS configuration (as `cli` does before reading).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (fred, topology) = fred_url(url).unwrap();
        fred::types::config::Config::from_url(&fred).unwrap();
        (fred, topology)
    }

    #[test]
    fn one_server_stays_as_written() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://user:p%40ss@cache.example:6380/2",
            "redis://localhost",
        ] {
            assert_eq!(ok(url), (url.to_owned(), RedisTopology::Standalone));
        }
    }

    #[test]
    fn host_lists_become_fred_nodes() {
        let (url, topology) = ok("redis-cluster://u:pw@10.0.0.1:7001,10.0.0.2:7002,node3:7003");
        assert_eq!(topology, RedisTopology::Cluster);
        assert_eq!(
            url,
            "redis-cluster://u:pw@10.0.0.1:7001?node=10.0.0.2:7002&node=node3:7003"
        );
        let config = fred::types::config::Config::from_url(&url).unwrap();
        assert_eq!(config.server.hosts().len(), 3);

        let (url, topology) =
            ok("redis-sentinel://127.0.0.1:26379,127.0.0.1:26380/1?sentinelServiceName=mymaster");
        assert_eq!(topology, RedisTopology::Sentinel);
        assert_eq!(
            url,
            "redis-sentinel://127.0.0.1:26379/1?sentinelServiceName=mymaster&node=127.0.0.1:26380"
        );
        assert!(
            fred::types::config::Config::from_url(&url)
                .unwrap()
                .server
                .is_sentinel()
        );
        // fred's own form is accepted as it is.
        let native = "redis-cluster://a:7001?node=b:7002";
        assert_eq!(ok(native).0, native);
    }

    #[test]
    fn wrong_forms_are_named() {
        for (url, says) in [
            ("http://x:1", "unknown scheme"),
            ("127.0.0.1:6379", "expected a redis://"),
            ("redis://a:1,b:2", "needs redis-cluster://"),
            ("redis-cluster://a:1,b", "expected host:port"),
            ("redis-cluster://a:1,[::1]:2", "expected host:port"),
            ("redis-cluster://a:1/3", "only database 0"),
            ("redis-sentinel://a:26379", "sentinelServiceName"),
            ("redis-cluster://", "no host"),
        ] {
            let error = fred_url(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
        }
    }
}
