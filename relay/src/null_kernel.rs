//! A membership "kernel" that accepts every join and leave without a system call: lets the
//! control plane ([`crate::service::Relay`]) run in benches, the control-protocol fuzz target
//! and tests without joining real groups. Nothing in `relay run` uses it.

use netio::membership::{JoinSocket, JoinTarget, SocketFactory};
use std::io;

/// A helper socket that accepts everything.
#[derive(Debug, Default)]
pub struct NullSocket;

impl JoinSocket for NullSocket {
    fn join(&mut self, _: &JoinTarget) -> io::Result<()> {
        Ok(())
    }
    fn leave(&mut self, _: &JoinTarget) -> io::Result<()> {
        Ok(())
    }
}

/// Opens [`NullSocket`]s.
#[derive(Debug, Default)]
pub struct NullKernel;

impl SocketFactory for NullKernel {
    type Socket = NullSocket;
    fn open(&mut self, _: &str) -> io::Result<NullSocket> {
        Ok(NullSocket)
    }
}
