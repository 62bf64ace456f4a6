//! Network interfaces of the relay's namespace: index, MAC address and first IPv4 address.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// What the relay needs to know about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub ipv4: Option<Ipv4Addr>,
}

/// Why an interface cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    #[error("unknown interface {0:?}: check `ip link` in the relay's namespace")]
    Unknown(String),
    #[error(
        "interface {0:?} has no IPv4 address: the relay needs one as the source of its output packets (add one with `ip addr add`)"
    )]
    NoIpv4(String),
    #[error("listing interfaces failed: {0}")]
    List(#[from] nix::Error),
}

/// Every interface of the current namespace by name.
pub fn list() -> Result<HashMap<String, Interface>, InterfaceError> {
    let mut found: HashMap<String, Interface> = HashMap::new();
    for entry in nix::ifaddrs::getifaddrs()? {
        let Some(address) = entry.address else {
            continue;
        };
        let slot = found
            .entry(entry.interface_name.clone())
            .or_insert_with(|| Interface {
                name: entry.interface_name.clone(),
                index: 0,
                mac: [0; 6],
                ipv4: None,
            });
        if let Some(link) = address.as_link_addr() {
            slot.index = link.ifindex() as u32;
            if let Some(mac) = link.addr() {
                slot.mac = mac;
            }
        } else if let Some(inet) = address.as_sockaddr_in()
            && slot.ipv4.is_none()
        {
            slot.ipv4 = Some(inet.ip());
        }
    }
    found.retain(|_, i| i.index != 0);
    Ok(found)
}

/// Looks one interface up by name.
pub fn find(name: &str) -> Result<Interface, InterfaceError> {
    list()?
        .remove(name)
        .ok_or_else(|| InterfaceError::Unknown(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_and_unknown_names_are_errors() {
        let all = list().unwrap();
        let lo = all.get("lo").expect("every namespace has lo");
        assert!(lo.index > 0);
        assert!(matches!(
            find("mlab-nope-x"),
            Err(InterfaceError::Unknown(_))
        ));
    }
}
