//! Who a per-client limit counts: an IPv4 address, or the network an IPv6 address
//! belongs to. One host usually holds a whole IPv6 /64 and can pick any address in
//! it, so counting single IPv6 addresses would give it 2^64 budgets.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr},
};

/// The key every per-client limit is counted under (per-IP budgets, the login
/// back-off per account and client, the share of the hashing queue). Made only by
/// [`ClientKey::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    network: IpAddr,
    prefix: u8,
}

impl ClientKey {
    /// The IPv4 address (IPv4-mapped IPv6 counts as IPv4), or the IPv6 address masked
    /// to its first `ipv6_prefix` bits (at most 128).
    pub fn new(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self {
                network: IpAddr::V4(v4),
                prefix: 32,
            },
            IpAddr::V6(v6) => {
                let prefix = ipv6_prefix.min(128);
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                Self {
                    network: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)),
                    prefix,
                }
            }
        }
    }
}

/// `203.0.113.7`, or `2001:db8:1:2::/64`.
impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.network {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/{}", self.prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str, prefix: u8) -> ClientKey {
        ClientKey::new(ip.parse().unwrap(), prefix)
    }

    #[test]
    fn ipv6_addresses_in_one_network_are_one_client() {
        assert_eq!(key("2001:db8:1:2::1", 64), key("2001:db8:1:2:ffff::9", 64));
        assert_ne!(key("2001:db8:1:2::1", 64), key("2001:db8:1:3::1", 64));
        assert_eq!(key("2001:db8:1:2::1", 64).to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2::1", 48), key("2001:db8:1:3::1", 48));
        assert_ne!(key("2001:db8::1", 128), key("2001:db8::2", 128));
        assert_eq!(key("2001:db8::1", 128).to_string(), "2001:db8::1/128");
    }

    #[test]
    fn ipv4_and_ipv4_mapped_are_the_address_itself() {
        assert_eq!(key("::ffff:203.0.113.7", 64), key("203.0.113.7", 64));
        assert_ne!(key("203.0.113.7", 64), key("203.0.113.8", 64));
        assert_eq!(key("203.0.113.7", 64).to_string(), "203.0.113.7");
    }
}
