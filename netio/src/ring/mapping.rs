//! The one owner of a receive ring's memory: maps the ring of a packet socket and unmaps it
//! exactly once, when dropped.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;

/// A shared, pre-faulted mapping of the receive ring the kernel allocated for a socket.
pub(crate) struct RingMapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; the rings built on it hand out references
// into it only for the duration of one call, so moving it to another thread is sound.
unsafe impl Send for RingMapping {}

impl RingMapping {
    /// Maps the `len`-byte ring of `fd` (after `PACKET_RX_RING` was set), read/write, shared.
    pub(crate) fn new(fd: impl AsFd, len: usize) -> io::Result<RingMapping> {
        // SAFETY: a fresh shared mapping of the socket's ring; no existing memory is touched
        // and the result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_fd().as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null ring"))?;
        Ok(RingMapping { base, len })
    }

    /// Start of the mapping.
    pub(crate) fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for RingMapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `new`, once; the rings let no reference
        // into it outlive the call that created it.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}
