//! Live capture through libpcap, loaded at run time with `dlopen`: the binary neither links
//! libpcap nor needs its headers to build, and every other command works where it is missing.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::ptr;

use capture::{LinkType, Packet, Timestamp};
use libloading::Library;

/// Library names tried in order (Debian/Ubuntu ship `.so.0.8`, others `.so.1`).
pub const LIBPCAP_NAMES: [&str; 3] = ["libpcap.so.0.8", "libpcap.so.1", "libpcap.so"];

const PCAP_ERRBUF_SIZE: usize = 256;
const PCAP_NETMASK_UNKNOWN: u32 = 0xffff_ffff;
const PCAP_TSTAMP_PRECISION_NANO: c_int = 1;

/// Errors of live capture.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// libpcap is not installed (or lacks a needed function).
    #[error(
        "live capture needs libpcap at run time ({tried}); install it (Debian/Ubuntu: apt-get install libpcap0.8) or read a file with -r: {detail}"
    )]
    NoLibpcap {
        /// The names tried.
        tried: String,
        /// The loader's last error.
        detail: String,
    },
    /// A libpcap call failed.
    #[error("libpcap {call} on {device}: {message}")]
    Pcap {
        /// The function.
        call: &'static str,
        /// The interface.
        device: String,
        /// libpcap's message.
        message: String,
    },
    /// The interface name or filter contains a NUL byte.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

/// Options of a live capture handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOptions {
    /// Interface name, or `any` (Linux cooked capture over every interface).
    pub device: String,
    /// Bytes captured per packet at most.
    pub snaplen: u32,
    /// Promiscuous mode.
    pub promisc: bool,
    /// Kernel capture buffer, bytes.
    pub buffer_size: u32,
    /// Read timeout, milliseconds: how long `next` may block without a packet.
    pub timeout_ms: u32,
    /// BPF filter expression (empty = everything).
    pub filter: String,
}

#[repr(C)]
struct Timeval {
    tv_sec: libc_long,
    tv_usec: libc_long,
}

#[allow(non_camel_case_types)]
type libc_long = std::ffi::c_long;

#[repr(C)]
struct PcapPkthdr {
    ts: Timeval,
    caplen: u32,
    len: u32,
}

#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut c_void,
}

#[repr(C)]
#[derive(Default)]
struct PcapStat {
    ps_recv: c_uint,
    ps_drop: c_uint,
    ps_ifdrop: c_uint,
}

type PcapT = c_void;

/// The libpcap functions used, resolved once.
struct Api {
    create: unsafe extern "C" fn(*const c_char, *mut c_char) -> *mut PcapT,
    set_snaplen: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_promisc: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_timeout: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_buffer_size: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    setnonblock: unsafe extern "C" fn(*mut PcapT, c_int, *mut c_char) -> c_int,
    get_selectable_fd: unsafe extern "C" fn(*mut PcapT) -> c_int,
    set_tstamp_precision: Option<unsafe extern "C" fn(*mut PcapT, c_int) -> c_int>,
    activate: unsafe extern "C" fn(*mut PcapT) -> c_int,
    geterr: unsafe extern "C" fn(*mut PcapT) -> *const c_char,
    statustostr: unsafe extern "C" fn(c_int) -> *const c_char,
    compile: unsafe extern "C" fn(*mut PcapT, *mut BpfProgram, *const c_char, c_int, u32) -> c_int,
    setfilter: unsafe extern "C" fn(*mut PcapT, *mut BpfProgram) -> c_int,
    freecode: unsafe extern "C" fn(*mut BpfProgram),
    next_ex: unsafe extern "C" fn(*mut PcapT, *mut *mut PcapPkthdr, *mut *const u8) -> c_int,
    datalink: unsafe extern "C" fn(*mut PcapT) -> c_int,
    stats: unsafe extern "C" fn(*mut PcapT, *mut PcapStat) -> c_int,
    close: unsafe extern "C" fn(*mut PcapT),
    // Keeps the library mapped while the function pointers live.
    _lib: Library,
}

impl Api {
    fn load() -> Result<Api, LiveError> {
        let mut detail = String::new();
        for name in LIBPCAP_NAMES {
            // SAFETY: loading libpcap runs its (side-effect free) initialisers only.
            match unsafe { Library::new(name) } {
                Ok(lib) => return Api::resolve(lib),
                Err(e) => detail = e.to_string(),
            }
        }
        Err(LiveError::NoLibpcap {
            tried: LIBPCAP_NAMES.join(", "),
            detail,
        })
    }

    fn resolve(lib: Library) -> Result<Api, LiveError> {
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the signature matches libpcap's documented prototype of $name.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| {
                    LiveError::NoLibpcap {
                        tried: format!("symbol {}", $name),
                        detail: e.to_string(),
                    }
                })?
            };
        }
        Ok(Api {
            create: sym!("pcap_create"),
            set_snaplen: sym!("pcap_set_snaplen"),
            set_promisc: sym!("pcap_set_promisc"),
            set_timeout: sym!("pcap_set_timeout"),
            set_buffer_size: sym!("pcap_set_buffer_size"),
            setnonblock: sym!("pcap_setnonblock"),
            get_selectable_fd: sym!("pcap_get_selectable_fd"),
            // SAFETY: as above; optional (libpcap >= 1.5).
            set_tstamp_precision: unsafe { lib.get(b"pcap_set_tstamp_precision\0") }
                .ok()
                .map(|s| *s),
            activate: sym!("pcap_activate"),
            geterr: sym!("pcap_geterr"),
            statustostr: sym!("pcap_statustostr"),
            compile: sym!("pcap_compile"),
            setfilter: sym!("pcap_setfilter"),
            freecode: sym!("pcap_freecode"),
            next_ex: sym!("pcap_next_ex"),
            datalink: sym!("pcap_datalink"),
            stats: sym!("pcap_stats"),
            close: sym!("pcap_close"),
            _lib: lib,
        })
    }
}

/// Whether libpcap can be loaded on this machine.
pub fn libpcap_available() -> bool {
    Api::load().is_ok()
}

/// Kernel statistics of a live capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets received by the filter.
    pub received: u64,
    /// Packets dropped for lack of buffer space.
    pub dropped: u64,
    /// Packets dropped by the interface or driver.
    pub if_dropped: u64,
}

/// An activated libpcap handle.
pub struct LiveCapture {
    api: Api,
    handle: *mut PcapT,
    link_type: LinkType,
    nanos: bool,
    device: String,
    /// Descriptor to poll for readability (-1: none, reads just return).
    fd: c_int,
    /// Longest wait for a packet in one [`LiveCapture::next_packet`], milliseconds.
    poll_ms: c_int,
}

// SAFETY: a pcap_t may be used from any thread as long as only one uses it at a time, which
// `&mut self` on every call guarantees.
unsafe impl Send for LiveCapture {}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("device", &self.device)
            .field("link_type", &self.link_type)
            .finish_non_exhaustive()
    }
}

fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libpcap returns NUL-terminated strings that live at least until the next call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl LiveCapture {
    /// Opens, configures and activates `opts.device`, and installs the filter.
    pub fn open(opts: &LiveOptions) -> Result<LiveCapture, LiveError> {
        let api = Api::load()?;
        let device = CString::new(opts.device.as_str())
            .map_err(|_| LiveError::InvalidArgument("interface"))?;
        let filter =
            CString::new(opts.filter.as_str()).map_err(|_| LiveError::InvalidArgument("filter"))?;
        let mut errbuf = [0 as c_char; PCAP_ERRBUF_SIZE];
        // SAFETY: valid C string and an errbuf of PCAP_ERRBUF_SIZE bytes.
        let handle = unsafe { (api.create)(device.as_ptr(), errbuf.as_mut_ptr()) };
        if handle.is_null() {
            return Err(LiveError::Pcap {
                call: "pcap_create",
                device: opts.device.clone(),
                message: cstr_lossy(errbuf.as_ptr()),
            });
        }
        let mut cap = LiveCapture {
            api,
            handle,
            link_type: LinkType::ETHERNET,
            nanos: false,
            device: opts.device.clone(),
            fd: -1,
            poll_ms: 100,
        };
        let clamp = |v: u32| c_int::try_from(v).unwrap_or(c_int::MAX);
        // SAFETY: `handle` is a created, not yet activated pcap_t for all setters below.
        unsafe {
            (cap.api.set_snaplen)(handle, clamp(opts.snaplen));
            (cap.api.set_promisc)(handle, c_int::from(opts.promisc));
            (cap.api.set_timeout)(handle, clamp(opts.timeout_ms.max(1)));
            (cap.api.set_buffer_size)(handle, clamp(opts.buffer_size));
            if let Some(precision) = cap.api.set_tstamp_precision {
                cap.nanos = precision(handle, PCAP_TSTAMP_PRECISION_NANO) == 0;
            }
        }
        // SAFETY: valid handle.
        let status = unsafe { (cap.api.activate)(handle) };
        if status < 0 {
            return Err(cap.error("pcap_activate", Some(status)));
        }
        if status > 0 {
            tracing::warn!(device = %opts.device, warning = %cap.error("pcap_activate", Some(status)), "libpcap");
        }
        // SAFETY: valid, activated handle.
        cap.link_type = LinkType(unsafe { (cap.api.datalink)(handle) } as u32);
        // libpcap's read timeout does not bound how long a read blocks when no packet arrives
        // (pcap(3PCAP); Linux TPACKET_V3 waits for a first packet), so a quiet interface would
        // never let the loop see a cancellation. Non-blocking reads plus our own poll() with
        // the timeout do.
        // SAFETY: valid, activated handle; errbuf of PCAP_ERRBUF_SIZE bytes.
        if unsafe { (cap.api.setnonblock)(handle, 1, errbuf.as_mut_ptr()) } != 0 {
            return Err(LiveError::Pcap {
                call: "pcap_setnonblock",
                device: opts.device.clone(),
                message: cstr_lossy(errbuf.as_ptr()),
            });
        }
        // SAFETY: valid, activated handle.
        cap.fd = unsafe { (cap.api.get_selectable_fd)(handle) };
        cap.poll_ms = clamp(opts.timeout_ms.max(1));
        if !opts.filter.is_empty() {
            let mut program = BpfProgram {
                bf_len: 0,
                bf_insns: ptr::null_mut(),
            };
            // SAFETY: valid handle, program out-parameter and filter string.
            let rc = unsafe {
                (cap.api.compile)(
                    handle,
                    &mut program,
                    filter.as_ptr(),
                    1,
                    PCAP_NETMASK_UNKNOWN,
                )
            };
            if rc != 0 {
                return Err(cap.error("pcap_compile", None));
            }
            // SAFETY: `program` was filled by pcap_compile; freed right after installing.
            let rc = unsafe { (cap.api.setfilter)(handle, &mut program) };
            // SAFETY: as above.
            unsafe { (cap.api.freecode)(&mut program) };
            if rc != 0 {
                return Err(cap.error("pcap_setfilter", None));
            }
        }
        Ok(cap)
    }

    fn error(&self, call: &'static str, status: Option<c_int>) -> LiveError {
        // SAFETY: valid handle; the strings are copied at once.
        let mut message = cstr_lossy(unsafe { (self.api.geterr)(self.handle) });
        if let Some(status) = status {
            // SAFETY: any status value is accepted.
            let text = cstr_lossy(unsafe { (self.api.statustostr)(status) });
            message = if message.is_empty() {
                text
            } else {
                format!("{text}: {message}")
            };
        }
        LiveError::Pcap {
            call,
            device: self.device.clone(),
            message,
        }
    }

    /// The link type of captured frames.
    pub fn link_type(&self) -> LinkType {
        self.link_type
    }

    /// The next packet: `Ok(None)` when the read timeout passed without one.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, LiveError> {
        let mut header: *mut PcapPkthdr = ptr::null_mut();
        let mut data: *const u8 = ptr::null();
        // SAFETY: valid handle and out-parameters.
        let mut rc = unsafe { (self.api.next_ex)(self.handle, &mut header, &mut data) };
        if rc == 0 && self.fd >= 0 {
            // Nothing buffered: wait for the descriptor at most the read timeout, then try once
            // more (a still-empty read is the timeout).
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; EINTR or a timeout just return without packets.
            if unsafe { libc::poll(&mut pfd, 1, self.poll_ms) } > 0 {
                // SAFETY: as above.
                rc = unsafe { (self.api.next_ex)(self.handle, &mut header, &mut data) };
            }
        }
        match rc {
            1 if !header.is_null() && !data.is_null() => {
                // SAFETY: on success libpcap points both at a packet valid until the next call,
                // which `&mut self` on the returned borrow prevents.
                let (h, bytes) = unsafe {
                    let h = &*header;
                    (h, std::slice::from_raw_parts(data, h.caplen as usize))
                };
                let frac = u32::try_from(h.ts.tv_usec).unwrap_or(0);
                let nanos = if self.nanos {
                    frac
                } else {
                    frac.saturating_mul(1000)
                };
                Ok(Some(Packet {
                    timestamp: Timestamp::new(h.ts.tv_sec, nanos.min(999_999_999)),
                    link_type: self.link_type,
                    orig_len: h.len,
                    data: bytes,
                    interface_id: 0,
                }))
            }
            0 | 1 => Ok(None),
            _ => Err(self.error("pcap_next_ex", None)),
        }
    }

    /// Kernel statistics so far.
    pub fn stats(&mut self) -> Option<LiveStats> {
        let mut s = PcapStat::default();
        // SAFETY: valid handle and out-parameter.
        let rc = unsafe { (self.api.stats)(self.handle, &mut s) };
        (rc == 0).then(|| LiveStats {
            received: u64::from(s.ps_recv),
            dropped: u64::from(s.ps_drop),
            if_dropped: u64::from(s.ps_ifdrop),
        })
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        // SAFETY: the handle is valid and closed exactly once.
        unsafe { (self.api.close)(self.handle) };
    }
}
