//! A fake kernel for the pool's tests: every socket refuses joins past `limit` memberships with
//! ENOBUFS (the real kernel's answer at `igmp_max_memberships` or `optmem_max`), a second join
//! of the same group with EADDRINUSE, and opening can be made to fail.

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
}

pub struct FakeSocket {
    id: usize,
    limit: usize,
    members: Vec<Ipv4Addr>,
    kernel: Rc<RefCell<FakeKernel>>,
}

impl Drop for FakeSocket {
    fn drop(&mut self) {
        self.kernel.borrow_mut().open_sockets -= 1;
    }
}

impl JoinSocket for FakeSocket {
    fn join(&mut self, target: &JoinTarget) -> io::Result<()> {
        if self.members.contains(&target.group) {
            return Err(io::Error::from_raw_os_error(libc::EADDRINUSE));
        }
        if self.members.len() >= self.limit {
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        self.members.push(target.group);
        self.kernel.borrow_mut().joins.push((self.id, target.group));
        Ok(())
    }

    fn leave(&mut self, target: &JoinTarget) -> io::Result<()> {
        self.members.retain(|g| *g != target.group);
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
