//! A fake kernel for the pool's tests: every socket refuses joins past `limit` memberships with
//! ENOBUFS (the real kernel's answer at `igmp_max_memberships` or `optmem_max`), and opening can
//! be made to fail. Mixing any-source and source-specific joins of one group on one socket
//! behaves as in Linux (net/ipv4/igmp.c): an any-source join of a group the socket already holds
//! (either way) is refused with EADDRINUSE; a source-specific join of a group the socket holds
//! any-source is accepted but silently turns that membership into INCLUDE {source} (counted in
//! [`FakeKernel::silent_mode_switches`]); source-specific joins from several sources share one
//! filter. [`FakeKernel::refuse`] injects refusals the pool cannot foresee.

use super::socket::{JoinSocket, JoinTarget, SocketFactory};
use std::cell::RefCell;
use std::io;
use std::net::Ipv4Addr;
use std::rc::Rc;

/// What the fake kernel saw.
#[derive(Default)]
pub struct FakeKernel {
    pub opened: usize,
    pub open_sockets: usize,
    /// (socket number, group) of every accepted join, in order.
    pub joins: Vec<(usize, Ipv4Addr)>,
    /// (socket number, group) of every leave, in order.
    pub leaves: Vec<(usize, Ipv4Addr)>,
    /// (socket number, group, errno) of every refused join, in order.
    pub refusals: Vec<(usize, Ipv4Addr, i32)>,
    /// Any-source memberships silently turned source-specific by a source-specific join on
    /// the same socket (what Linux does; a pool must never cause one).
    pub silent_mode_switches: usize,
    /// Injected refusals: (socket number, group, errno); the socket refuses every join of
    /// that group with that errno.
    pub refuse: Vec<(usize, Ipv4Addr, i32)>,
}

pub struct FakeSocket {
    id: usize,
    limit: usize,
    /// (group, source) of every membership.
    members: Vec<(Ipv4Addr, Option<Ipv4Addr>)>,
    kernel: Rc<RefCell<FakeKernel>>,
}

impl FakeSocket {
    /// The kernel's answer to `target`, before the per-socket limit.
    fn check(&self, target: &JoinTarget) -> Result<(), i32> {
        let kernel = self.kernel.borrow();
        if let Some(&(_, _, errno)) = kernel
            .refuse
            .iter()
            .find(|(id, group, _)| *id == self.id && *group == target.group)
        {
            return Err(errno);
        }
        let same_group = || self.members.iter().filter(|(g, _)| *g == target.group);
        match target.source {
            None if same_group().next().is_some() => Err(libc::EADDRINUSE),
            Some(source) if same_group().any(|(_, s)| *s == Some(source)) => {
                Err(libc::EADDRNOTAVAIL)
            }
            _ => Ok(()),
        }
    }

    /// Refuses `target` with `errno`, noting it.
    fn refuse(&self, target: &JoinTarget, errno: i32) -> io::Error {
        self.kernel
            .borrow_mut()
            .refusals
            .push((self.id, target.group, errno));
        io::Error::from_raw_os_error(errno)
    }
}

impl Drop for FakeSocket {
    fn drop(&mut self) {
        self.kernel.borrow_mut().open_sockets -= 1;
    }
}

impl JoinSocket for FakeSocket {
    fn join(&mut self, target: &JoinTarget) -> io::Result<()> {
        if let Err(errno) = self.check(target) {
            return Err(self.refuse(target, errno));
        }
        if self.members.len() >= self.limit {
            return Err(self.refuse(target, libc::ENOBUFS));
        }
        let mut kernel = self.kernel.borrow_mut();
        if target.source.is_some() {
            let before = self.members.len();
            self.members
                .retain(|(g, s)| !(*g == target.group && s.is_none()));
            kernel.silent_mode_switches += before - self.members.len();
        }
        self.members.push((target.group, target.source));
        kernel.joins.push((self.id, target.group));
        Ok(())
    }

    fn leave(&mut self, target: &JoinTarget) -> io::Result<()> {
        let before = self.members.len();
        self.members
            .retain(|(g, s)| !(*g == target.group && *s == target.source));
        if self.members.len() == before {
            return Err(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL));
        }
        self.kernel
            .borrow_mut()
            .leaves
            .push((self.id, target.group));
        Ok(())
    }
}

pub struct FakeFactory {
    /// Memberships each socket accepts.
    pub limit: usize,
    /// When set, opening a socket fails with this errno (e.g. EMFILE).
    pub open_errno: Option<i32>,
    pub kernel: Rc<RefCell<FakeKernel>>,
}

impl FakeFactory {
    pub fn new(limit: usize) -> (FakeFactory, Rc<RefCell<FakeKernel>>) {
        let kernel = Rc::new(RefCell::new(FakeKernel::default()));
        let factory = FakeFactory {
            limit,
            open_errno: None,
            kernel: kernel.clone(),
        };
        (factory, kernel)
    }
}

impl SocketFactory for FakeFactory {
    type Socket = FakeSocket;

    fn open(&mut self, _interface: &str) -> io::Result<FakeSocket> {
        if let Some(errno) = self.open_errno {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let mut k = self.kernel.borrow_mut();
        k.opened += 1;
        k.open_sockets += 1;
        Ok(FakeSocket {
            id: k.opened,
            limit: self.limit,
            members: Vec::new(),
            kernel: self.kernel.clone(),
        })
    }
}
