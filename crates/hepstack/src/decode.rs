//! `hepstack decode`: HEP from files, folders, pcaps or stdin to JSON lines.
//!
//! Inputs are recognised by content, not by name (the `.hepstream` extension is the one hint
//! used, because a length prefix has no magic):
//! - pcap / pcapng of HEP traffic: every UDP datagram is one HEP message; TCP is reassembled per
//!   connection direction and cut into messages by the HEPv3 framer;
//! - a `.hepstream` file: records of `u32 big-endian length` + one HEP message;
//! - a raw HEPv3 byte stream (one `.hep` datagram, or a TCP stream dump): framed by total length,
//!   resynchronising after garbage;
//! - a raw HEPv1/v2 datagram (`.hep` file starting with version byte 1 or 2);
//! - a folder: every `*.hep` file in it, in name order;
//! - `-` or nothing: standard input, sniffed the same way.
//!
//! Output: one JSON object per HEP message on stdout (see [`crate::decode::render`]); a
//! message that does not decode is printed as `{"src":…, "error":…}` and counted. A summary
//! goes to stderr. Exit status: 0 when every message decoded, 2 when some did not, 1 when an
//! input could not be read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

mod pcap;
mod render;

/// Options of `hepstack decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Inputs: pcap/pcapng files, `.hep` files, folders of `.hep` files, `.hepstream` files, raw
    /// HEP streams, or `-` for standard input (the default).
    #[arg(value_name = "FILE|-")]
    pub inputs: Vec<PathBuf>,

    /// Print the HEP authentication key (chunk 0x000e) instead of `"<redacted>"`.
    #[arg(long)]
    pub show_auth_key: bool,

    /// Print only the HEP layer: no SIP, RTCP, DNS, log or JSON payload fields.
    #[arg(long)]
    pub no_payload: bool,

    /// Largest size a compressed payload (chunk 0x0010) may inflate to, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_inflate: usize,
}

/// Where one HEP message came from, printed as `"src"`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// The input file (`-` for stdin).
    pub file: String,
    /// For folders: the `.hep` file inside it.
    pub member: Option<String>,
    /// 1-based position of the record (hepstream), frame (raw stream) or pcap packet.
    pub index: Option<u64>,
    /// pcap: capture time, transport and flow of the carrying packet.
    pub pcap: Option<pcap::PcapOrigin>,
}

impl Origin {
    fn to_json(&self) -> Value {
        let mut src = Map::new();
        src.insert(
            "file".into(),
            json!(self.member.as_deref().unwrap_or(&self.file)),
        );
        if let Some(i) = self.index {
            src.insert("index".into(), json!(i));
        }
        if let Some(p) = &self.pcap {
            p.add_to(&mut src);
        }
        Value::Object(src)
    }
}

/// Counts and output shared by every input of one run.
pub(crate) struct Emitter<W: Write> {
    out: W,
    opts: render::RenderOptions,
    /// Messages printed, decoded or not.
    pub messages: u64,
    /// Messages that failed to decode.
    pub errors: u64,
}

impl<W: Write> Emitter<W> {
    /// Decode one HEP message and print it.
    pub fn message(&mut self, origin: &Origin, bytes: &[u8]) -> io::Result<()> {
        self.messages += 1;
        let value = match hep::decode(bytes) {
            Ok(packet) => render::packet(&packet, origin.to_json(), &self.opts),
            Err(err) => {
                self.errors += 1;
                render::error(origin.to_json(), bytes, &err)
            }
        };
        serde_json::to_writer(&mut self.out, &value)?;
        self.out.write_all(b"\n")
    }

    /// Print something that is not a HEP message (garbage skipped in a stream, a pcap packet
    /// that could not be parsed) as an error record.
    pub fn problem(&mut self, origin: &Origin, what: &str) -> io::Result<()> {
        self.errors += 1;
        let value = json!({ "src": origin.to_json(), "error": what });
        serde_json::to_writer(&mut self.out, &value)?;
        self.out.write_all(b"\n")
    }
}

/// Run `hepstack decode`.
pub fn run(args: &DecodeArgs) -> Result<ExitCode> {
    let stdout = io::stdout().lock();
    let mut emitter = Emitter {
        out: BufWriter::with_capacity(1 << 16, stdout),
        opts: render::RenderOptions {
            show_auth_key: args.show_auth_key,
            payload: !args.no_payload,
            max_inflate: args.max_inflate,
        },
        messages: 0,
        errors: 0,
    };
    let stdin_only = [PathBuf::from("-")];
    let inputs: &[PathBuf] = if args.inputs.is_empty() {
        &stdin_only
    } else {
        &args.inputs
    };
    for path in inputs {
        decode_input(path, &mut emitter).with_context(|| format!("reading {}", path.display()))?;
    }
    emitter.out.flush()?;
    eprintln!(
        "hepstack decode: {} messages, {} errors",
        emitter.messages, emitter.errors
    );
    Ok(if emitter.errors > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn decode_input<W: Write>(path: &Path, emitter: &mut Emitter<W>) -> Result<()> {
    let name = path.display().to_string();
    if path.as_os_str() == "-" {
        return decode_reader(io::stdin().lock(), &name, false, emitter);
    }
    if path.is_dir() {
        return decode_folder(path, emitter);
    }
    let file = File::open(path)?;
    let hepstream = path.extension().is_some_and(|e| e == "hepstream");
    decode_reader(
        BufReader::with_capacity(1 << 16, file),
        &name,
        hepstream,
        emitter,
    )
}

/// Every `*.hep` file of a folder, one message each, in name order.
fn decode_folder<W: Write>(dir: &Path, emitter: &mut Emitter<W>) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "hep"))
        .collect();
    if files.is_empty() {
        bail!("no .hep files in folder");
    }
    files.sort();
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let origin = Origin {
            file: dir.display().to_string(),
            member: Some(file.display().to_string()),
            ..Origin::default()
        };
        emitter.message(&origin, &bytes)?;
    }
    Ok(())
}

/// What the first bytes of an input say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputKind {
    Pcap,
    HepStream,
    RawHep3,
    RawHepV12,
}

fn sniff(head: &[u8], hepstream_hint: bool) -> Option<InputKind> {
    const PCAP_MAGICS: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    let magic = head.get(..4)?;
    if PCAP_MAGICS.iter().any(|m| m == magic) {
        return Some(InputKind::Pcap);
    }
    if hep::HEP3_MAGICS.iter().any(|m| m.as_slice() == magic) {
        return Some(InputKind::RawHep3);
    }
    let looks_v12 = |b: &[u8]| matches!(b, [1 | 2, _, 2 | 10, ..]);
    let prefixed = head.get(4..).unwrap_or_default();
    let record_starts_hep = prefixed
        .get(..4)
        .is_some_and(|m| hep::HEP3_MAGICS.iter().any(|h| h.as_slice() == m))
        || looks_v12(prefixed);
    if hepstream_hint || (magic[..2] == [0, 0] && record_starts_hep) {
        return Some(InputKind::HepStream);
    }
    if looks_v12(head) {
        return Some(InputKind::RawHepV12);
    }
    None
}

/// Read up to `n` bytes without losing them: returns them and a reader that yields them again.
fn peek<R: Read>(mut reader: R, n: usize) -> io::Result<(Vec<u8>, Cursor<Vec<u8>>, R)> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok((head.clone(), Cursor::new(head), reader))
}

fn decode_reader<R: Read, W: Write>(
    reader: R,
    name: &str,
    hepstream_hint: bool,
    emitter: &mut Emitter<W>,
) -> Result<()> {
    let (head, replay, rest) = peek(reader, 8)?;
    if head.is_empty() {
        bail!("empty input");
    }
    let reader = BufReader::with_capacity(1 << 16, replay.chain(rest));
    match sniff(&head, hepstream_hint) {
        Some(InputKind::Pcap) => pcap::decode_capture(reader, name, emitter),
        Some(InputKind::HepStream) => decode_hepstream(reader, name, emitter),
        Some(InputKind::RawHep3) => decode_raw_stream(reader, name, emitter),
        Some(InputKind::RawHepV12) => {
            let mut bytes = Vec::new();
            reader
                .take(hep::MAX_MESSAGE_LEN as u64 + 1)
                .read_to_end(&mut bytes)?;
            let origin = Origin {
                file: name.to_string(),
                ..Origin::default()
            };
            emitter.message(&origin, &bytes)?;
            Ok(())
        }
        None => bail!(
            "not a pcap, pcapng, .hepstream or HEP input (starts with {})",
            render::hex(&head)
        ),
    }
}

/// `.hepstream`: `u32` big-endian length, then that many bytes, repeated.
fn decode_hepstream<R: BufRead, W: Write>(
    mut reader: R,
    name: &str,
    emitter: &mut Emitter<W>,
) -> Result<()> {
    let mut record = Vec::new();
    let mut index = 0u64;
    loop {
        let mut len = [0u8; 4];
        match reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        index += 1;
        let len = u32::from_be_bytes(len) as usize;
        let origin = Origin {
            file: name.to_string(),
            index: Some(index),
            ..Origin::default()
        };
        if len > hep::MAX_MESSAGE_LEN {
            emitter.problem(
                &origin,
                &format!("record length {len} exceeds the HEP maximum; stream abandoned"),
            )?;
            return Ok(());
        }
        record.resize(len, 0);
        if let Err(e) = reader.read_exact(&mut record) {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                emitter.problem(&origin, "record cut short by the end of the file")?;
                return Ok(());
            }
            return Err(e.into());
        }
        emitter.message(&origin, &record)?;
    }
}

/// A raw HEPv3 byte stream (one datagram or a TCP dump), cut by the framer.
fn decode_raw_stream<R: Read, W: Write>(
    mut reader: R,
    name: &str,
    emitter: &mut Emitter<W>,
) -> Result<()> {
    let mut framer = hep::StreamFramer::new(hep::FramerConfig::default());
    let mut chunk = vec![0u8; 1 << 15];
    let mut index = 0u64;
    let mut skipped_reported = 0u64;
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n > 0 {
            // After draining, the framer always has room for a 32 KiB push (see its docs).
            framer.push(&chunk[..n]).context("HEP stream framer")?;
        }
        while let Some(frame) = framer.next_frame() {
            index += 1;
            let origin = Origin {
                file: name.to_string(),
                index: Some(index),
                ..Origin::default()
            };
            let frame = frame.to_vec();
            emitter.message(&origin, &frame)?;
        }
        let skipped = framer.bytes_skipped();
        if skipped > skipped_reported {
            let origin = Origin {
                file: name.to_string(),
                ..Origin::default()
            };
            emitter.problem(
                &origin,
                &format!("{} bytes of garbage skipped", skipped - skipped_reported),
            )?;
            skipped_reported = skipped;
        }
        if n == 0 {
            let pending = framer.pending_len();
            if pending > 0 {
                let origin = Origin {
                    file: name.to_string(),
                    ..Origin::default()
                };
                emitter.problem(
                    &origin,
                    &format!("{pending} bytes at the end do not form a whole HEP message"),
                )?;
            }
            return Ok(());
        }
    }
}

/// The parsed payload of a message: SIP through the SIP indexer, everything else through the
/// payload parsers. `None` when the message has no payload.
pub(crate) fn payload_fields(p: &hep::HepPacket<'_>, max_inflate: usize) -> Option<Value> {
    let inflated;
    let bytes = match (p.payload, p.payload_compressed) {
        (Some(b), _) => b,
        (None, Some(_)) => match p.inflate_payload(max_inflate) {
            Ok(v) => {
                inflated = v;
                &inflated
            }
            Err(e) => return Some(json!({ "kind": "error", "error": e.to_string() })),
        },
        (None, None) => return None,
    };
    // HEPv1/v2 have no protocol type: they only ever carried SIP.
    let proto_type = p.proto_type.unwrap_or(if p.version < 3 { 1 } else { 0 });
    let mut value = if proto_type == 1 {
        let msg = sip::index(bytes);
        let mut v = serde_json::to_value(&msg).unwrap_or(Value::Null);
        if let Value::Object(o) = &mut v {
            o.insert("kind".into(), json!("sip"));
            // HOMER's flat search keys next to the structured view: `method` holds the status
            // code for replies, as heplify-server's `data_header` does.
            let method = match msg.status_code() {
                Some(code) => Some(code.to_string()),
                None => msg.method().map(|m| m.to_string()),
            };
            let text = |t: Option<sip::Text<'_>>| t.map(|t| t.to_string());
            let flat = [
                ("method", method),
                ("ruri_user", text(msg.ruri_user())),
                ("ruri_domain", text(msg.ruri_domain())),
                ("from_user", text(msg.from_user())),
                ("from_domain", text(msg.from_domain())),
                ("from_tag", text(msg.from_tag())),
                ("to_user", text(msg.to_user())),
                ("to_domain", text(msg.to_domain())),
                ("to_tag", text(msg.to_tag())),
                ("contact_user", text(msg.contact_user())),
                ("pid_user", text(msg.pid_user())),
                ("via_branch", text(msg.via_branch())),
                ("cseq_method", text(msg.cseq_method())),
            ];
            for (key, value) in flat {
                o.insert(key.into(), json!(value));
            }
            o.insert("status".into(), json!(msg.status_code()));
        }
        v
    } else {
        serde_json::to_value(payload::parse(proto_type, bytes)).unwrap_or(Value::Null)
    };
    if p.payload.is_none() {
        if let Value::Object(o) = &mut value {
            o.insert("inflated_len".into(), json!(bytes.len()));
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_every_input_kind() {
        assert_eq!(
            sniff(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0], false),
            Some(InputKind::Pcap)
        );
        assert_eq!(
            sniff(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0x1c], false),
            Some(InputKind::Pcap)
        );
        assert_eq!(
            sniff(b"HEP3\x01\xcb\x00\x00", false),
            Some(InputKind::RawHep3)
        );
        assert_eq!(
            sniff(b"\x00\x00\x01\xcbHEP3", false),
            Some(InputKind::HepStream)
        );
        assert_eq!(
            sniff(&[0, 0, 1, 0x6d, 2, 16, 2, 17], false),
            Some(InputKind::HepStream)
        );
        assert_eq!(
            sniff(&[2, 16, 2, 17, 0x13, 0xcf, 0x13, 0xc4], false),
            Some(InputKind::RawHepV12)
        );
        assert_eq!(sniff(b"hello wo", false), None);
        assert_eq!(sniff(b"abc", false), None);
    }

    #[test]
    fn peek_gives_the_bytes_back() {
        let (head, replay, rest) = peek(&b"0123456789"[..], 4).unwrap();
        assert_eq!(head, b"0123");
        let mut all = Vec::new();
        replay.chain(rest).read_to_end(&mut all).unwrap();
        assert_eq!(all, b"0123456789");
    }
}
