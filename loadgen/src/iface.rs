//! What loadgen needs to know about a network interface, read in the current namespace:
//! index, MAC (SIOCGIFHWADDR), MTU (SIOCGIFMTU) and first IPv4 address (getifaddrs).

use crate::sys;
use std::net::Ipv4Addr;
use thiserror::Error;

/// The interface could not be used.
#[derive(Debug, Error)]
pub enum InterfaceError {
    #[error("unknown interface {name:?} in this network namespace (see `ip link`)")]
    Unknown { name: String },
    #[error("cannot read {what} of interface {name:?}: {source}")]
    Query {
        name: String,
        what: &'static str,
        source: std::io::Error,
    },
}

/// Facts about one interface.
#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// First IPv4 address, if the interface has one.
    pub ipv4: Option<Ipv4Addr>,
}

/// The interface index of `name`, or [`InterfaceError::Unknown`].
pub fn index_of(name: &str) -> Result<u32, InterfaceError> {
    nix::net::if_::if_nametoindex(name).map_err(|_| InterfaceError::Unknown {
        name: name.to_string(),
    })
}

/// The first IPv4 address of `name` in the current namespace.
pub fn ipv4_of(name: &str) -> Result<Option<Ipv4Addr>, InterfaceError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| InterfaceError::Query {
        name: name.to_string(),
        what: "addresses",
        source: e.into(),
    })?;
    for ifa in addrs {
        if ifa.interface_name != name {
            continue;
        }
        if let Some(sin) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) {
            return Ok(Some(sin.ip()));
        }
    }
    Ok(None)
}

/// Looks the interface up.
pub fn lookup(name: &str) -> Result<Interface, InterfaceError> {
    let index = index_of(name)?;
    let query = |what: &'static str| {
        move |source: std::io::Error| InterfaceError::Query {
            name: name.to_string(),
            what,
            source,
        }
    };
    let mac = sys::interface_mac(name).map_err(query("MAC address"))?;
    let mtu = sys::interface_mtu(name).map_err(query("MTU"))?;
    let ipv4 = ipv4_of(name)?;
    Ok(Interface {
        name: name.to_string(),
        index,
        mac,
        mtu,
        ipv4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found() {
        let lo = lookup("lo").unwrap();
        assert!(lo.index > 0);
        assert_eq!(lo.ipv4, Some(Ipv4Addr::LOCALHOST));
        assert!(lo.mtu >= 1500);
        assert_eq!(lo.mac, [0u8; 6]);
    }

    #[test]
    fn unknown_interface_is_an_error() {
        let err = lookup("mlab-nope0").unwrap_err();
        assert!(matches!(err, InterfaceError::Unknown { .. }), "{err}");
    }
}
