//! The `bpf(2)` system call, as far as the relay needs it: a hash map (create, update,
//! delete, lookup), a `BPF_PROG_TYPE_SCHED_CLS` program loaded from instructions (with the
//! verifier's log when it refuses), a tcx link that attaches a program to an interface's
//! ingress and detaches it when the link is dropped, and `BPF_PROG_TEST_RUN` to run a
//! program on a frame without an interface.
//!
//! No eBPF compiler is involved: the few programs the project uses are written with
//! [`Insn`]'s constructors (see [`crate::input_drop`]). Every object is an owned descriptor:
//! closing it is the kernel's cue to free the map, unload the program or detach the link.
//!
//! The kernel reads `union bpf_attr` (`Attr`: zeroed, fields written at their ABI offsets);
//! the only pointers put into it are to buffers the calling function holds across the call.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_TEST_RUN: u32 = 10;
const BPF_PROG_QUERY: u32 = 16;
const BPF_LINK_CREATE: u32 = 28;

const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
/// `attach_type` of a tcx link at an interface's ingress (Linux 6.6+).
const BPF_TCX_INGRESS: u32 = 46;
/// Entries are allocated as they are added, not all at creation.
const BPF_F_NO_PREALLOC: u32 = 1;
/// `src_reg` of a 64-bit immediate load whose immediate is a map's descriptor.
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// Size of the verifier's log kept when a program is refused.
const VERIFIER_LOG_BYTES: usize = 64 * 1024;
/// Offset of `ingress_ifindex` in `struct __sk_buff` (the program context).
pub const SKB_INGRESS_IFINDEX: i16 = 36;
/// Size of `struct __sk_buff` (a test run's context).
const SKB_CONTEXT_BYTES: usize = 192;
/// Room beyond the input frame for what a test run returns (a program may grow the frame).
const TEST_RUN_HEADROOM: usize = 256;

/// `union bpf_attr`, zeroed, written field by field at the kernel ABI's offsets. 144 bytes:
/// more than every command used here reads; the kernel checks that what it does not know is
/// zero.
#[repr(C, align(8))]
struct Attr([u8; 144]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 144])
    }

    fn u32_at(mut self, offset: usize, value: u32) -> Attr {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn u64_at(mut self, offset: usize, value: u64) -> Attr {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn bytes_at(mut self, offset: usize, value: &[u8]) -> Attr {
        self.0[offset..offset + value.len()].copy_from_slice(value);
        self
    }

    fn read_u32(&self, offset: usize) -> u32 {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(&self.0[offset..offset + 4]);
        u32::from_ne_bytes(bytes)
    }
}

/// The address of `value` as the kernel ABI's 64-bit pointer field.
fn address<T: ?Sized>(value: &T) -> u64 {
    (value as *const T).cast::<u8>() as u64
}

/// `bpf(cmd, attr)`; the descriptor or value it returns.
///
/// # Safety
/// Every pointer field `cmd` reads from `attr` must point to memory that is live for the
/// call and as large as the field next to it says (or, for keys and values, as the map's key
/// and value size), writable where the kernel writes (logs, test-run outputs, lookups).
unsafe fn sys_bpf(cmd: u32, attr: &mut Attr) -> io::Result<i32> {
    // SAFETY: `attr` is a live, aligned 144-byte buffer and its size is passed; the caller
    // guarantees the pointers inside it (see `# Safety`).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.0.as_mut_ptr(),
            attr.0.len() as libc::c_long,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as i32)
}

/// `sys_bpf` for a command that returns a new descriptor.
///
/// # Safety
/// As [`sys_bpf`].
unsafe fn sys_bpf_fd(cmd: u32, attr: &mut Attr) -> io::Result<OwnedFd> {
    // SAFETY: forwarded from the caller.
    let fd = unsafe { sys_bpf(cmd, attr)? };
    // SAFETY: on success these commands return a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An object name: at most 15 bytes of `name`, NUL-padded to the ABI's 16.
fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0; 16];
    let len = name.len().min(15);
    out[..len].copy_from_slice(&name.as_bytes()[..len]);
    out
}

/// A `BPF_MAP_TYPE_HASH` map of fixed-size keys and values.
#[derive(Debug)]
pub struct HashMap {
    fd: OwnedFd,
    key_size: usize,
    value_size: usize,
}

impl HashMap {
    /// A new map for up to `max_entries` entries, allocated as they are added.
    pub fn create(
        name: &str,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> io::Result<HashMap> {
        let mut attr = Attr::new()
            .u32_at(0, BPF_MAP_TYPE_HASH)
            .u32_at(4, key_size)
            .u32_at(8, value_size)
            .u32_at(12, max_entries)
            .u32_at(16, BPF_F_NO_PREALLOC)
            .bytes_at(28, &object_name(name));
        // SAFETY: BPF_MAP_CREATE reads no pointer from `attr`.
        let fd = unsafe { sys_bpf_fd(BPF_MAP_CREATE, &mut attr)? };
        Ok(HashMap {
            fd,
            key_size: key_size as usize,
            value_size: value_size as usize,
        })
    }

    fn check(&self, key: &[u8], value: Option<&[u8]>) -> io::Result<()> {
        let value_ok = value.is_none_or(|v| v.len() == self.value_size);
        if key.len() != self.key_size || !value_ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "BPF map entry of {} + {:?} bytes, the map's are {} + {}",
                    key.len(),
                    value.map(<[u8]>::len),
                    self.key_size,
                    self.value_size
                ),
            ));
        }
        Ok(())
    }

    /// Sets `key` to `value` (added or replaced).
    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.check(key, Some(value))?;
        let mut attr = Attr::new()
            .u32_at(0, self.fd.as_raw_fd() as u32)
            .u64_at(8, address(key))
            .u64_at(16, address(value));
        // SAFETY: `key` and `value` are live for the call and exactly the map's key and value
        // sizes (checked above); the kernel only reads them.
        unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr)? };
        Ok(())
    }

    /// Removes `key`; false if it was not there.
    pub fn delete(&self, key: &[u8]) -> io::Result<bool> {
        self.check(key, None)?;
        let mut attr = Attr::new()
            .u32_at(0, self.fd.as_raw_fd() as u32)
            .u64_at(8, address(key));
        // SAFETY: `key` is live for the call and exactly the map's key size (checked above);
        // the kernel only reads it.
        match unsafe { sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether `key` is in the map.
    pub fn contains(&self, key: &[u8]) -> io::Result<bool> {
        Ok(self.lookup(key)?.is_some())
    }

    /// A copy of `key`'s value, if `key` is in the map.
    pub fn lookup(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.check(key, None)?;
        let mut value = vec![0u8; self.value_size];
        let mut attr = Attr::new()
            .u32_at(0, self.fd.as_raw_fd() as u32)
            .u64_at(8, address(key))
            .u64_at(16, value.as_mut_ptr() as u64);
        // SAFETY: `key` is live and exactly the key size; `value` is a live, writable buffer of
        // exactly the value size, which is all the kernel writes.
        match unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) } {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for HashMap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    /// Destination register in the low nibble, source in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

/// Registers: r0 return value, r1-r5 arguments (clobbered by calls and packet loads), r6-r9
/// kept across calls, r10 the read-only frame pointer.
pub type Reg = u8;

/// Operand sizes of loads and stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Byte,
    Half,
    Word,
    /// 64 bits (memory loads and stores only; not a packet load).
    Double,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::Word => 0x00,
            Size::Half => 0x08,
            Size::Byte => 0x10,
            Size::Double => 0x18,
        }
    }
}

/// 64-bit arithmetic operations ([`Insn::alu`], [`Insn::alu_imm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alu {
    Add = 0x00,
    Sub = 0x10,
    Mul = 0x20,
    Or = 0x40,
    And = 0x50,
    Lsh = 0x60,
    Rsh = 0x70,
    Xor = 0xa0,
}

/// Jump conditions, unsigned ([`Asm::jump`], [`Asm::jump_reg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Eq = 0x10,
    Gt = 0x20,
    Ge = 0x30,
    Ne = 0x50,
    Lt = 0xa0,
    Le = 0xb0,
}

impl Insn {
    const LD: u8 = 0x00;
    const LDX: u8 = 0x01;
    const STX: u8 = 0x03;
    const JMP: u8 = 0x05;
    const ALU: u8 = 0x04;
    const ALU64: u8 = 0x07;
    const ABS: u8 = 0x20;
    const MEM: u8 = 0x60;
    const ATOMIC: u8 = 0xc0;
    const END: u8 = 0xd0;
    const TO_BE: u8 = 0x08;
    const X: u8 = 0x08;

    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }

    /// `dst = src` (64 bits).
    pub fn mov(dst: Reg, src: Reg) -> Insn {
        Insn::new(Self::ALU64 | 0xb0 | Self::X, dst, src, 0, 0)
    }

    /// `dst = imm` (sign-extended to 64 bits).
    pub fn mov_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(Self::ALU64 | 0xb0, dst, 0, 0, imm)
    }

    /// `dst += imm` (64 bits).
    pub fn add_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(Self::ALU64, dst, 0, 0, imm)
    }

    /// `r0 = packet[offset]` in host order (`BPF_LD | BPF_ABS`; needs the context in r6;
    /// ends the program with 0 if the packet is shorter; clobbers r1-r5).
    pub fn load_packet(size: Size, offset: i32) -> Insn {
        Insn::new(Self::LD | Self::ABS | size.bits(), 0, 0, 0, offset)
    }

    /// `dst = *(u32 *)(src + off)`.
    pub fn load_word(dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(Self::LDX | Self::MEM | Size::Word.bits(), dst, src, off, 0)
    }

    /// `*(u32 *)(dst + off) = src`.
    pub fn store_word(dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(Self::STX | Self::MEM | Size::Word.bits(), dst, src, off, 0)
    }

    /// `dst = map` (the two instructions of a 64-bit immediate load of a map descriptor).
    pub fn load_map(dst: Reg, map: &HashMap) -> [Insn; 2] {
        [
            Insn::new(0x18, dst, BPF_PSEUDO_MAP_FD, 0, map.fd.as_raw_fd()),
            Insn::new(0, 0, 0, 0, 0),
        ]
    }

    /// `if dst != imm: skip off instructions`.
    pub fn jump_if_not(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(Self::JMP | 0x50, dst, 0, off, imm)
    }

    /// `if dst == imm: skip off instructions`.
    pub fn jump_if(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(Self::JMP | 0x10, dst, 0, off, imm)
    }

    /// Calls kernel helper number `helper` (arguments in r1-r5, result in r0).
    pub fn call(helper: i32) -> Insn {
        Insn::new(Self::JMP | 0x80, 0, 0, 0, helper)
    }

    /// Returns r0.
    pub fn exit() -> Insn {
        Insn::new(Self::JMP | 0x90, 0, 0, 0, 0)
    }

    /// `dst = dst op src` (64 bits).
    pub fn alu(op: Alu, dst: Reg, src: Reg) -> Insn {
        Insn::new(Self::ALU64 | op as u8 | Self::X, dst, src, 0, 0)
    }

    /// `dst = dst op imm` (64 bits, `imm` sign-extended).
    pub fn alu_imm(op: Alu, dst: Reg, imm: i32) -> Insn {
        Insn::new(Self::ALU64 | op as u8, dst, 0, 0, imm)
    }

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub fn load(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(Self::LDX | Self::MEM | size.bits(), dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = src` (its low bytes).
    pub fn store(size: Size, dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(Self::STX | Self::MEM | size.bits(), dst, src, off, 0)
    }

    /// `lock *(u64 *)(dst + off) += src`: an atomic add (a counter shared between CPUs).
    pub fn atomic_add(dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(
            Self::STX | Self::ATOMIC | Size::Double.bits(),
            dst,
            src,
            off,
            0,
        )
    }

    /// `dst = htobe16(dst)`: the low 16 bits in network order, the rest cleared (a value
    /// read in host order, stored as a 16-bit word, lands in memory as the wire's bytes).
    pub fn to_be16(dst: Reg) -> Insn {
        Insn::new(Self::ALU | Self::END | Self::TO_BE, dst, 0, 0, 16)
    }

    fn jump_to(code: u8, dst: Reg, src: Reg, imm: i32) -> Insn {
        Insn::new(Self::JMP | code, dst, src, 0, imm)
    }
}

/// A program under construction with named jump targets: jumps name a label, and
/// [`Asm::finish`] turns each into the instruction count to skip.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: std::collections::HashMap<&'static str, usize>,
    jumps: Vec<(usize, &'static str)>,
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    /// Appends instructions.
    pub fn push(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.insns.extend(insns);
    }

    /// Names the position of the next instruction.
    pub fn label(&mut self, name: &'static str) {
        self.labels.insert(name, self.insns.len());
    }

    /// `if dst cond imm: goto target`.
    pub fn jump(&mut self, cond: Cond, dst: Reg, imm: i32, target: &'static str) {
        self.jump_insn(Insn::jump_to(cond as u8, dst, 0, imm), target);
    }

    /// `if dst cond src: goto target`.
    pub fn jump_reg(&mut self, cond: Cond, dst: Reg, src: Reg, target: &'static str) {
        self.jump_insn(Insn::jump_to(cond as u8 | Insn::X, dst, src, 0), target);
    }

    /// `goto target`.
    pub fn goto(&mut self, target: &'static str) {
        self.jump_insn(Insn::jump_to(0x00, 0, 0, 0), target);
    }

    fn jump_insn(&mut self, insn: Insn, target: &'static str) {
        self.jumps.push((self.insns.len(), target));
        self.insns.push(insn);
    }

    /// The instructions, every jump resolved; an unknown label or a jump too far is an error
    /// in the program's source.
    pub fn finish(mut self) -> Result<Vec<Insn>, String> {
        for (at, target) in &self.jumps {
            let to = *self
                .labels
                .get(target)
                .ok_or_else(|| format!("jump to unknown label {target:?}"))?;
            let off = to as i64 - (*at as i64 + 1);
            self.insns[*at].off = i16::try_from(off)
                .map_err(|_| format!("jump to {target:?} too far ({off} instructions)"))?;
        }
        Ok(self.insns)
    }
}

/// Helper `bpf_map_lookup_elem(map, key)`: the value's address, or 0.
pub const HELPER_MAP_LOOKUP: i32 = 1;
/// Helper `bpf_ktime_get_ns()`: the monotonic clock, nanoseconds.
pub const HELPER_KTIME_GET_NS: i32 = 5;
/// Helper `bpf_skb_store_bytes(skb, offset, from, len, flags)`: 0 or a negative errno.
pub const HELPER_SKB_STORE_BYTES: i32 = 9;
/// Helper `bpf_l4_csum_replace(skb, offset, from, to, flags)`: 0 or a negative errno.
pub const HELPER_L4_CSUM_REPLACE: i32 = 11;
/// Helper `bpf_clone_redirect(skb, ifindex, flags)`: 0 or a negative errno.
pub const HELPER_CLONE_REDIRECT: i32 = 13;
/// Helper `bpf_redirect(ifindex, flags)`: the verdict that sends the frame itself there.
pub const HELPER_REDIRECT: i32 = 23;
/// `bpf_skb_store_bytes` flag: keep a `CHECKSUM_COMPLETE` packet's sum up to date.
pub const F_RECOMPUTE_CSUM: i32 = 1;
/// `bpf_l4_csum_replace` flag: the change is in the pseudo header (addresses), which a
/// checksum the device still has to finish (`CHECKSUM_PARTIAL`) includes too.
pub const F_PSEUDO_HDR: i32 = 1 << 4;
/// `bpf_l4_csum_replace` flag: a UDP checksum of 0 (none) stays 0, a computed 0 becomes 0xffff.
pub const F_MARK_MANGLED_0: i32 = 1 << 5;
/// Offset of `vlan_present` in `struct __sk_buff`: non-zero when the kernel took an 802.1Q
/// tag off the frame.
pub const SKB_VLAN_PRESENT: i16 = 20;

/// Why a program was not loaded.
#[derive(Debug, thiserror::Error)]
#[error("the kernel refused the BPF program: {errno}{}", verifier_tail(.log))]
pub struct LoadError {
    pub errno: io::Error,
    /// The verifier's log of the refused program (empty if it gave none).
    pub log: String,
}

fn verifier_tail(log: &str) -> String {
    let last: Vec<&str> = log.lines().rev().take(3).collect();
    if last.is_empty() {
        return String::new();
    }
    let mut last = last;
    last.reverse();
    format!("; verifier: {}", last.join(" | "))
}

/// A loaded `BPF_PROG_TYPE_SCHED_CLS` program.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
}

impl Program {
    /// Loads `insns` as a traffic-control classifier program named `name`; on refusal the
    /// load is repeated with the verifier's log on, and the log is returned.
    pub fn load_sched_cls(name: &str, insns: &[Insn]) -> Result<Program, LoadError> {
        match Self::load(name, insns, None) {
            Ok(fd) => Ok(Program { fd }),
            Err(errno) => {
                let mut log = vec![0u8; VERIFIER_LOG_BYTES];
                let log = match Self::load(name, insns, Some(&mut log)) {
                    Ok(_) => String::new(),
                    Err(_) => CStr::from_bytes_until_nul(&log)
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                };
                Err(LoadError { errno, log })
            }
        }
    }

    fn load(name: &str, insns: &[Insn], log: Option<&mut Vec<u8>>) -> io::Result<OwnedFd> {
        let license = c"Dual MIT/GPL";
        let mut attr = Attr::new()
            .u32_at(0, BPF_PROG_TYPE_SCHED_CLS)
            .u32_at(4, insns.len() as u32)
            .u64_at(8, address(insns))
            .u64_at(16, address(license.to_bytes_with_nul()))
            .bytes_at(48, &object_name(name));
        if let Some(log) = log {
            attr = attr
                .u32_at(24, 1)
                .u32_at(28, log.len() as u32)
                .u64_at(32, log.as_mut_ptr() as u64);
        }
        // SAFETY: `insns` (insn_cnt instructions of the kernel's 8-byte layout, `Insn` is
        // `repr(C)`), the NUL-terminated license and, if any, the writable log of `log_size`
        // bytes are all live for the call.
        unsafe { sys_bpf_fd(BPF_PROG_LOAD, &mut attr) }
    }

    /// Runs the program once on `frame` as if it had arrived on interface `ingress_ifindex`;
    /// its return value.
    pub fn test_run(&self, frame: &[u8], ingress_ifindex: u32) -> io::Result<i32> {
        Ok(self.test_run_output(frame, ingress_ifindex)?.0)
    }

    /// [`Program::test_run`], with the frame as the program left it (its rewrites applied).
    pub fn test_run_output(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
    ) -> io::Result<(i32, Vec<u8>)> {
        let run = self.test_run_measured(frame, ingress_ifindex)?;
        Ok((run.verdict, run.output))
    }

    /// [`Program::test_run_output`], with the run's duration as the kernel measured it.
    pub fn test_run_measured(&self, frame: &[u8], ingress_ifindex: u32) -> io::Result<TestRun> {
        let mut context = [0u8; SKB_CONTEXT_BYTES];
        let at = SKB_INGRESS_IFINDEX as usize;
        context[at..at + 4].copy_from_slice(&ingress_ifindex.to_ne_bytes());
        let mut output = vec![0u8; frame.len() + TEST_RUN_HEADROOM];
        let mut attr = Attr::new()
            .u32_at(0, self.fd.as_raw_fd() as u32)
            .u32_at(8, frame.len() as u32)
            .u32_at(12, output.len() as u32)
            .u64_at(16, address(frame))
            .u64_at(24, output.as_mut_ptr() as u64)
            .u32_at(32, 1)
            .u32_at(40, context.len() as u32)
            .u64_at(48, address(&context[..]));
        // SAFETY: `frame` (data_size_in bytes) and `context` (ctx_size_in bytes) are live for
        // the call and only read; `output` is live and writable for data_size_out bytes, the
        // most the kernel writes there (it reports ENOSPC rather than write more); ctx_out is
        // null.
        unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr)? };
        output.truncate((attr.read_u32(12) as usize).min(output.len()));
        Ok(TestRun {
            verdict: attr.read_u32(4) as i32,
            output,
            duration_ns: attr.read_u32(36),
        })
    }
}

/// One `BPF_PROG_TEST_RUN`: the program's return value, the frame as it left it, and the
/// run's duration in ns (the kernel's clock around the program alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    pub verdict: i32,
    pub output: Vec<u8>,
    pub duration_ns: u32,
}

impl AsFd for Program {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A program attached to an interface's ingress through a tcx link: it runs for every frame
/// the interface receives, after the packet sockets' taps. Dropping the link detaches it; the
/// kernel detaches it by itself when the interface goes away.
#[derive(Debug)]
pub struct TcxLink {
    _fd: OwnedFd,
    ifindex: u32,
}

impl TcxLink {
    /// Attaches `program` at `ifindex`'s ingress, after any program already there.
    pub fn attach_ingress(program: &Program, ifindex: u32) -> io::Result<TcxLink> {
        let mut attr = Attr::new()
            .u32_at(0, program.fd.as_raw_fd() as u32)
            .u32_at(4, ifindex)
            .u32_at(8, BPF_TCX_INGRESS);
        // SAFETY: BPF_LINK_CREATE for tcx reads no pointer from `attr`.
        let fd = unsafe { sys_bpf_fd(BPF_LINK_CREATE, &mut attr)? };
        Ok(TcxLink { _fd: fd, ifindex })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

/// How many programs run at `ifindex`'s tcx ingress (`BPF_PROG_QUERY`), whoever attached
/// them: what the kernel says, for checks that a link is gone.
pub fn tcx_ingress_programs(ifindex: u32) -> io::Result<u32> {
    let mut attr = Attr::new().u32_at(0, ifindex).u32_at(4, BPF_TCX_INGRESS);
    // SAFETY: every output array pointer (prog_ids, prog_attach_flags, link_ids,
    // link_attach_flags) is null, so the kernel only writes the count and revision into
    // `attr` itself.
    unsafe { sys_bpf(BPF_PROG_QUERY, &mut attr)? };
    Ok(attr.read_u32(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_have_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        let store = Insn::store_word(10, -8, 1);
        assert_eq!((store.code, store.regs, store.off), (0x63, 0x1a, -8));
        assert_eq!(Insn::load_packet(Size::Half, 12).code, 0x28);
        assert_eq!(Insn::load_packet(Size::Byte, 23).code, 0x30);
        assert_eq!(Insn::mov_imm(0, -1).code, 0xb7);
        assert_eq!(Insn::exit().code, 0x95);
    }

    #[test]
    fn object_names_are_cut_to_fifteen_bytes_and_nul_padded() {
        assert_eq!(&object_name("relay")[..6], b"relay\0");
        let long = object_name("a-very-long-object-name");
        assert_eq!((&long[..15], long[15]), (&b"a-very-long-obj"[..], 0));
    }

    #[test]
    fn a_refused_program_comes_with_the_verifiers_reason() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "SKIPPED a_refused_program_comes_with_the_verifiers_reason: needs root (bpf)"
            );
            return;
        }
        // Returns r0 without setting it.
        let err = Program::load_sched_cls("refused", &[Insn::exit()]).unwrap_err();
        assert_eq!(err.errno.raw_os_error(), Some(libc::EACCES), "{err}");
        assert!(err.log.contains("R0 !read_ok"), "{}", err.log);
        assert!(err.to_string().contains("verifier: "), "{err}");
    }

    #[test]
    fn a_map_refuses_entries_of_the_wrong_size() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED a_map_refuses_entries_of_the_wrong_size: needs root (bpf)");
            return;
        }
        let map = HashMap::create("sizes", 8, 1, 4).unwrap();
        let err = map.update(&[0; 4], &[1]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(map.update(&[0; 8], &[1, 2]).is_err());
        map.update(&[0; 8], &[1]).unwrap();
        assert!(map.contains(&[0; 8]).unwrap());
        assert!(!map.contains(&[1; 8]).unwrap());
    }

    #[test]
    fn the_verifier_tail_keeps_the_last_three_lines() {
        assert_eq!(verifier_tail(""), "");
        assert_eq!(verifier_tail("a\nb\nc\nd\n"), "; verifier: b | c | d");
    }
}
