//! One `--endpoints` entry: where to connect, and whether over TLS.
//! `https://host:port` is TLS, `http://host:port` is plaintext, and a bare
//! `host:port` is TLS when a TLS flag (`--cacert`, `--cert`, `--key`,
//! `--insecure-skip-tls-verify`) was given. The host is an IP address or
//! `localhost` (keel-bench resolves no other names); under TLS it is the
//! name the server's certificate must carry (an IP address as an IP SAN).

use std::fmt;
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The host as written, brackets of an IPv6 address removed: the TLS
    /// server name.
    pub host: String,
    pub tls: bool,
}

impl Endpoint {
    /// Parses one entry; `tls_flags_given` decides a bare `host:port`.
    pub fn parse(text: &str, tls_flags_given: bool) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else if text.contains("://") {
            return Err(format!(
                "bad endpoint {text:?}: scheme is not http or https"
            ));
        } else {
            (tls_flags_given, text)
        };
        let authority = rest.trim_end_matches('/');
        let bad = || format!("bad endpoint {text:?}");
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = if host == "localhost" {
            "127.0.0.1".parse().expect("valid address")
        } else {
            host.parse().map_err(|_| bad())?
        };
        Ok(Endpoint {
            addr: SocketAddr::new(ip, port),
            host: host.to_string(),
            tls,
        })
    }

    /// The URI of `path` on this endpoint (its `:scheme` and `:authority`).
    pub fn uri(&self, path: &str) -> http::Uri {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
            .parse()
            .expect("valid uri")
    }
}

/// The address, prefixed by `https://` under TLS.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tls {
            write!(f, "https://{}", self.addr)
        } else {
            write!(f, "{}", self.addr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_decide_tls_and_bare_endpoints_follow_the_flags() {
        let https = Endpoint::parse("https://127.0.0.1:2379/", false).unwrap();
        assert_eq!(https.addr, "127.0.0.1:2379".parse().unwrap());
        assert!(https.tls);
        assert_eq!(https.host, "127.0.0.1");
        assert!(!Endpoint::parse("http://127.0.0.1:2379", true).unwrap().tls);
        assert!(Endpoint::parse("127.0.0.1:2379", true).unwrap().tls);
        assert!(!Endpoint::parse("127.0.0.1:2379", false).unwrap().tls);
        let local = Endpoint::parse("https://localhost:2379", false).unwrap();
        assert_eq!(
            (local.addr, local.host.as_str()),
            ("127.0.0.1:2379".parse().unwrap(), "localhost")
        );
        let v6 = Endpoint::parse("https://[::1]:2379", false).unwrap();
        assert_eq!(
            (v6.addr, v6.host.as_str()),
            ("[::1]:2379".parse().unwrap(), "::1")
        );
        assert_eq!(v6.uri("/p").scheme_str(), Some("https"));
        assert_eq!(v6.to_string(), "https://[::1]:2379");
        for bad in ["unix://x:1", "127.0.0.1", "example.com:2379", "1.2.3.4:x"] {
            assert!(Endpoint::parse(bad, false).is_err(), "{bad}");
        }
    }
}
