//! Who the client is: the socket peer, unless the peer is a trusted proxy; only then
//! is `X-Forwarded-For` read, from the right, skipping trusted hops. A header sent by
//! anyone else changes nothing.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

pub(super) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop).map(|ip| ip.to_canonical()) else {
            // Garbage where an address should be: trust nothing further left.
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// An address as proxies write it: bare, bracketed IPv6, or either with a port
/// (`203.0.113.7:4711`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse::<IpAddr>().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, &headers(&["1.2.3.4"]), &[]), peer);
        assert_eq!(
            client_ip(peer, &headers(&["1.2.3.4"]), &nets(&["10.0.0.0/8"])),
            peer
        );
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        // The client forged the leftmost entry; the proxies appended the rest.
        let h = headers(&["6.6.6.6, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, &headers(&[]), &trusted), proxy);
        assert_eq!(
            client_ip(proxy, &headers(&["10.0.0.9"]), &trusted),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(proxy, &headers(&["not-an-ip, 10.0.0.7"]), &trusted),
            "10.0.0.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn an_entry_with_a_port_is_the_client_not_the_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        for (entry, client) in [
            ("203.0.113.7:4711", "203.0.113.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::2]", "2001:db8::2"),
            ("6.6.6.6, 203.0.113.8:80", "203.0.113.8"),
        ] {
            assert_eq!(
                client_ip(proxy, &headers(&[entry]), &trusted),
                client.parse::<IpAddr>().unwrap(),
                "{entry}"
            );
        }
        // A trusted hop with a port is skipped like one without.
        assert_eq!(
            client_ip(proxy, &headers(&["198.51.100.7, 10.0.0.5:8080"]), &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_the_ipv4_address() {
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let h = headers(&["198.51.100.7"]);
        assert_eq!(
            client_ip(mapped, &h, &nets(&["10.0.0.0/8"])),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }
}
