//! Payload header carried at the start of every UDP payload loadgen sends.
//!
//! Layout (network byte order, 28 bytes, see `docs/interfaces.md`):
//! magic `0x4D4C4142` ("MLAB"), version 1, flags 0, header length 28, stream id (u32),
//! sequence number (u64), CLOCK_MONOTONIC send time in nanoseconds (u64).

use thiserror::Error;

/// "MLAB" in ASCII.
pub const MAGIC: u32 = 0x4D4C_4142;
/// Header version this code writes and accepts.
pub const VERSION: u8 = 1;
/// Encoded size of [`Header`] in bytes.
pub const HEADER_LEN: usize = 28;

/// Byte offset of the sequence number inside the header.
const SEQ_OFFSET: usize = 12;
/// Byte offset of the send time inside the header.
const SEND_NS_OFFSET: usize = 20;

/// The decoded payload header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 0-based stream id.
    pub stream: u32,
    /// 0-based per-stream sequence number.
    pub seq: u64,
    /// CLOCK_MONOTONIC nanoseconds when the packet was sent.
    pub send_ns: u64,
}

/// Why a payload is not a loadgen payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("payload of {len} bytes is shorter than the {HEADER_LEN}-byte loadgen header")]
    Short { len: usize },
    #[error("payload magic {found:#010x} is not loadgen's {MAGIC:#010x}")]
    ForeignMagic { found: u32 },
    #[error("payload header version {found} is not the supported version {VERSION}")]
    UnsupportedVersion { found: u8 },
    #[error("payload header length {found} is not {HEADER_LEN}")]
    BadHeaderLength { found: u16 },
    #[error("buffer of {len} bytes cannot hold the {HEADER_LEN}-byte header")]
    BufferTooSmall { len: usize },
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    u32::from_be_bytes(bytes)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(bytes)
}

impl Header {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`.
    pub fn encode(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let Some(out) = buf.get_mut(..HEADER_LEN) else {
            return Err(WireError::BufferTooSmall { len: buf.len() });
        };
        out[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        out[4] = VERSION;
        out[5] = 0;
        out[6..8].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
        out[8..12].copy_from_slice(&self.stream.to_be_bytes());
        out[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&self.seq.to_be_bytes());
        out[SEND_NS_OFFSET..SEND_NS_OFFSET + 8].copy_from_slice(&self.send_ns.to_be_bytes());
        Ok(())
    }

    /// Reads a header from the start of a UDP payload.
    pub fn decode(payload: &[u8]) -> Result<Header, WireError> {
        if payload.len() < HEADER_LEN {
            return Err(WireError::Short { len: payload.len() });
        }
        let magic = u32_at(payload, 0);
        if magic != MAGIC {
            return Err(WireError::ForeignMagic { found: magic });
        }
        if payload[4] != VERSION {
            return Err(WireError::UnsupportedVersion { found: payload[4] });
        }
        let header_len = u16_at(payload, 6);
        if usize::from(header_len) != HEADER_LEN {
            return Err(WireError::BadHeaderLength { found: header_len });
        }
        Ok(Header {
            stream: u32_at(payload, 8),
            seq: u64_at(payload, SEQ_OFFSET),
            send_ns: u64_at(payload, SEND_NS_OFFSET),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let header = Header {
            stream: 7,
            seq: 0x0102_0304_0506_0708,
            send_ns: u64::MAX - 3,
        };
        let mut buf = [0u8; 64];
        header.encode(&mut buf).unwrap();
        assert_eq!(&buf[0..4], b"MLAB");
        assert_eq!(buf[4], 1);
        assert_eq!(&buf[6..8], &[0, 28]);
        assert_eq!(Header::decode(&buf).unwrap(), header);
    }

    #[test]
    fn rejects_short_payload() {
        let mut buf = [0u8; HEADER_LEN];
        Header {
            stream: 1,
            seq: 2,
            send_ns: 3,
        }
        .encode(&mut buf)
        .unwrap();
        assert_eq!(
            Header::decode(&buf[..HEADER_LEN - 1]),
            Err(WireError::Short {
                len: HEADER_LEN - 1
            })
        );
        assert_eq!(Header::decode(&[]), Err(WireError::Short { len: 0 }));
    }

    #[test]
    fn rejects_foreign_payloads() {
        let mut buf = [0u8; 40];
        Header {
            stream: 1,
            seq: 2,
            send_ns: 3,
        }
        .encode(&mut buf)
        .unwrap();
        let mut other = buf;
        other[0] = b'X';
        assert!(matches!(
            Header::decode(&other),
            Err(WireError::ForeignMagic { .. })
        ));
        let mut other = buf;
        other[4] = 2;
        assert_eq!(
            Header::decode(&other),
            Err(WireError::UnsupportedVersion { found: 2 })
        );
        let mut other = buf;
        other[7] = 30;
        assert_eq!(
            Header::decode(&other),
            Err(WireError::BadHeaderLength { found: 30 })
        );
    }

    #[test]
    fn encode_refuses_small_buffer() {
        let mut buf = [0u8; 10];
        assert_eq!(
            Header {
                stream: 0,
                seq: 0,
                send_ns: 0
            }
            .encode(&mut buf),
            Err(WireError::BufferTooSmall { len: 10 })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Header::decode(&bytes);
        }

        #[test]
        fn any_header_round_trips(stream: u32, seq: u64, send_ns: u64) {
            let header = Header { stream, seq, send_ns };
            let mut buf = [0u8; HEADER_LEN];
            header.encode(&mut buf).unwrap();
            prop_assert_eq!(Header::decode(&buf), Ok(header));
        }
    }
}
