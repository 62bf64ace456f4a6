//! Network interfaces of the current network namespace: index, MAC address, MTU and first
//! IPv4 address, from one lookup ([`list`], [`lookup`]).
//!
//! Index, MAC and addresses come from `getifaddrs` (the link-layer entry and the first
//! AF_INET entry), the MTU from `SIOCGIFMTU`.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// What the relay and the load generator need to know about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    /// Hardware address (all zero on loopback).
    pub mac: [u8; 6],
    pub mtu: u32,
    /// First IPv4 address, if the interface has one.
    pub ipv4: Option<Ipv4Addr>,
    /// IFF_LOOPBACK: whatever is sent on it comes straight back in.
    pub loopback: bool,
}

impl Interface {
    /// The first IPv4 address, or [`InterfaceError::NoIpv4`].
    pub fn require_ipv4(&self) -> Result<Ipv4Addr, InterfaceError> {
        self.ipv4.ok_or_else(|| InterfaceError::NoIpv4 {
            name: self.name.clone(),
        })
    }
}

/// Why an interface cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    #[error("unknown interface {name:?} in this network namespace (see `ip link`)")]
    Unknown { name: String },
    #[error("interface {name:?} has no IPv4 address (add one with `ip addr add`)")]
    NoIpv4 { name: String },
    #[error("cannot read the {what} of interface {name:?}: {source}")]
    Query {
        name: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("listing the interfaces of this network namespace failed: {0}")]
    List(#[source] io::Error),
}

/// Every interface of the current namespace by name.
pub fn list() -> Result<HashMap<String, Interface>, InterfaceError> {
    let entries = nix::ifaddrs::getifaddrs().map_err(|e| InterfaceError::List(e.into()))?;
    let mut found: HashMap<String, Interface> = HashMap::new();
    for entry in entries {
        let Some(address) = entry.address else {
            continue;
        };
        let slot = found
            .entry(entry.interface_name.clone())
            .or_insert_with(|| Interface {
                name: entry.interface_name.clone(),
                index: 0,
                mac: [0; 6],
                mtu: 0,
                ipv4: None,
                loopback: false,
            });
        slot.loopback |= entry
            .flags
            .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK);
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
    let socket = query_socket().map_err(InterfaceError::List)?;
    let mut vanished = Vec::new();
    for interface in found.values_mut() {
        match mtu_of(&socket, &interface.name) {
            Ok(mtu) => interface.mtu = mtu,
            // Removed since getifaddrs: as if it had never been listed.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                vanished.push(interface.name.clone())
            }
            Err(source) => {
                return Err(InterfaceError::Query {
                    name: interface.name.clone(),
                    what: "MTU",
                    source,
                });
            }
        }
    }
    for name in vanished {
        found.remove(&name);
    }
    Ok(found)
}

/// Looks one interface up by name.
pub fn lookup(name: &str) -> Result<Interface, InterfaceError> {
    list()?.remove(name).ok_or_else(|| InterfaceError::Unknown {
        name: name.to_string(),
    })
}

/// The MTU of the interface with index `ifindex` (`if_indextoname` + `SIOCGIFMTU`).
pub fn mtu_by_index(ifindex: u32) -> io::Result<u32> {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` is a writable buffer of IF_NAMESIZE bytes, the size if_indextoname
    // writes at most (a NUL-terminated name); the result is checked before use.
    let found = unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) };
    if found.is_null() {
        return Err(io::Error::last_os_error());
    }
    let bytes: Vec<u8> = name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    let name = String::from_utf8(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    mtu_of(&query_socket()?, &name)
}

/// Sets IFF_UP on an interface (tests bring up the loopback of a fresh namespace with it).
pub fn set_up(name: &str) -> io::Result<()> {
    let socket = query_socket()?;
    let mut req = ifreq_ioctl(&socket, libc::SIOCGIFFLAGS, name)?;
    // SAFETY: SIOCGIFFLAGS filled the ifru_flags member of the union; setting a bit in it
    // keeps it a valid c_short.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name and the flags to set;
    // SIOCSIFFLAGS only reads it.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A socket to address interface ioctls to.
fn query_socket() -> io::Result<socket2::Socket> {
    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM.cloexec(), None)
}

fn mtu_of(socket: &socket2::Socket, name: &str) -> io::Result<u32> {
    let req = ifreq_ioctl(socket, libc::SIOCGIFMTU, name)?;
    // SAFETY: SIOCGIFMTU filled the ifru_mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(mtu.max(0) as u32)
}

/// An `ifreq` for `name` after the `request` ioctl (a SIOCGIF* query) filled it in.
fn ifreq_ioctl(
    socket: &socket2::Socket,
    request: libc::Ioctl,
    name: &str,
) -> io::Result<libc::ifreq> {
    let cname = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let bytes = cname.as_bytes_with_nul();
    // SAFETY: ifreq is plain data (a name array and a union of plain data); all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if bytes.len() > req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name; the SIOCGIF* queries used
    // here write only within it.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), request, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_with_index_mtu_and_address() {
        let lo = lookup("lo").unwrap();
        assert!(lo.index > 0);
        assert_eq!(lo.index, nix::net::if_::if_nametoindex("lo").unwrap());
        assert!(lo.loopback, "lo carries IFF_LOOPBACK");
        assert_eq!(lo.ipv4, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(lo.require_ipv4().unwrap(), Ipv4Addr::LOCALHOST);
        assert!(lo.mtu >= 1500);
        assert_eq!(lo.mac, [0u8; 6]);
        assert_eq!(list().unwrap().get("lo"), Some(&lo));
        assert_eq!(mtu_by_index(lo.index).unwrap(), lo.mtu);
    }

    #[test]
    fn unknown_and_unnameable_interfaces_are_errors() {
        let err = lookup("mlab-nope0").unwrap_err();
        assert!(matches!(err, InterfaceError::Unknown { .. }), "{err}");
        assert!(err.to_string().contains("mlab-nope0"));
        let socket = query_socket().unwrap();
        assert!(mtu_of(&socket, "x\0y").is_err());
        assert!(mtu_of(&socket, &"x".repeat(40)).is_err());
        assert!(
            mtu_by_index(u32::MAX).is_err(),
            "no interface has that index"
        );
        let no_address = Interface {
            name: "dummy0".into(),
            index: 9,
            mac: [0; 6],
            mtu: 1500,
            ipv4: None,
            loopback: false,
        };
        assert!(matches!(
            no_address.require_ipv4(),
            Err(InterfaceError::NoIpv4 { .. })
        ));
    }
}
