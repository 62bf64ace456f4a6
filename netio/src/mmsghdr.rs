//! Empty `mmsghdr`s and iovecs for the batch types to point at their own buffers.

/// `count` all-empty message headers (null pointers, zero lengths).
pub(crate) fn empty_headers(count: usize) -> Vec<libc::mmsghdr> {
    (0..count)
        .map(|_| {
            // SAFETY: mmsghdr is a plain C struct of pointers and integers; all-zero bytes
            // (null pointers, zero lengths) is a valid empty value.
            unsafe { std::mem::zeroed() }
        })
        .collect()
}

/// `count` empty iovecs.
pub(crate) fn empty_iovecs(count: usize) -> Vec<libc::iovec> {
    (0..count)
        .map(|_| libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        })
        .collect()
}
