//! Readers of recorded HEP: pcap/pcapng captures of HEP traffic, folders of `.hep` files and
//! `.hepstream` files. Each yields the HEP messages in recorded order, one at a time, with
//! bounded memory.
//!
//! * **pcap / pcapng** (through the `capture` crate): every UDP payload is one message; TCP
//!   streams are reassembled per direction and cut into messages by the HEPv3 stream framer
//!   (garbage between messages is skipped). The message time is the packet's capture time.
//! * **`.hep` folder**: every `*.hep` file of the folder, one message each, in name order.
//! * **`.hepstream`**: records of a `u32` big-endian length followed by that many bytes.
//!
//! For the last two the message time is the HEP timestamp inside the message (when it has one).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use capture::{
    CaptureReader, Defragmenter, FlowKey, PacketSource, StreamEvent, TcpReassembler, TcpSegment,
    Transport,
};

/// One recorded HEP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedHep {
    /// When it was recorded (capture time, or its HEP timestamp), µs since the Unix epoch.
    pub time_micros: Option<u64>,
    /// The message bytes as recorded.
    pub bytes: Vec<u8>,
}

/// Errors of the replay readers.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The capture file is malformed.
    #[error("{}: {source}", path.display())]
    Capture {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: capture::CaptureError,
    },
    /// A `.hepstream` record is malformed.
    #[error("{}: record {record}: {why}", path.display())]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// 1-based record number.
        record: u64,
        /// What is wrong.
        why: String,
    },
    /// The folder holds no `.hep` file.
    #[error("{}: no .hep files in the folder", .0.display())]
    EmptyFolder(PathBuf),
}

/// A source of recorded HEP messages.
pub trait HepSource {
    /// The next message, `None` at the end.
    fn next_hep(&mut self) -> Result<Option<RecordedHep>, ReplayError>;
}

/// HEP timestamp of a message, if it decodes and has one.
pub fn hep_time(bytes: &[u8]) -> Option<u64> {
    hep::decode(bytes).ok()?.timestamp_micros()
}

/// `.hepstream` reader.
#[derive(Debug)]
pub struct HepstreamReader<R> {
    reader: R,
    path: PathBuf,
    record: u64,
}

impl HepstreamReader<BufReader<File>> {
    /// Open a `.hepstream` file.
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let file = File::open(path).map_err(|source| ReplayError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(HepstreamReader::new(
            BufReader::with_capacity(1 << 16, file),
            path,
        ))
    }
}

impl<R: Read> HepstreamReader<R> {
    /// Read records from `reader`; `path` names it in errors.
    pub fn new(reader: R, path: &Path) -> Self {
        HepstreamReader {
            reader,
            path: path.to_path_buf(),
            record: 0,
        }
    }
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl<R: Read> HepSource for HepstreamReader<R> {
    fn next_hep(&mut self) -> Result<Option<RecordedHep>, ReplayError> {
        let io_err = |source| ReplayError::Io {
            path: self.path.clone(),
            source,
        };
        let mut len = [0u8; 4];
        let got = read_up_to(&mut self.reader, &mut len).map_err(io_err)?;
        if got == 0 {
            return Ok(None);
        }
        self.record += 1;
        let bad = |why: String| ReplayError::BadRecord {
            path: self.path.clone(),
            record: self.record,
            why,
        };
        if got < 4 {
            return Err(bad("length cut short by the end of the file".into()));
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > hep::MAX_MESSAGE_LEN {
            return Err(bad(format!(
                "length {len} exceeds the HEP maximum of {}",
                hep::MAX_MESSAGE_LEN
            )));
        }
        let mut bytes = vec![0u8; len];
        let got = read_up_to(&mut self.reader, &mut bytes).map_err(|source| ReplayError::Io {
            path: self.path.clone(),
            source,
        })?;
        if got < len {
            return Err(bad("record cut short by the end of the file".into()));
        }
        Ok(Some(RecordedHep {
            time_micros: hep_time(&bytes),
            bytes,
        }))
    }
}

/// Writer of the `.hepstream` format (`--dry-run --out`).
#[derive(Debug)]
pub struct HepstreamWriter<W> {
    writer: W,
}

impl<W: io::Write> HepstreamWriter<W> {
    /// Write records to `writer`.
    pub fn new(writer: W) -> Self {
        HepstreamWriter { writer }
    }

    /// Append one record.
    pub fn write(&mut self, message: &[u8]) -> io::Result<()> {
        let len = u32::try_from(message.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too long"))?;
        self.writer.write_all(&len.to_be_bytes())?;
        self.writer.write_all(message)
    }

    /// Flush the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.writer
    }
}

/// Reader of a folder of `.hep` files.
#[derive(Debug)]
pub struct HepDirReader {
    files: std::vec::IntoIter<PathBuf>,
}

impl HepDirReader {
    /// List the folder's `*.hep` files (sorted by name).
    pub fn open(dir: &Path) -> Result<Self, ReplayError> {
        let entries = std::fs::read_dir(dir).map_err(|source| ReplayError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ReplayError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "hep") && path.is_file() {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(ReplayError::EmptyFolder(dir.to_path_buf()));
        }
        files.sort();
        Ok(HepDirReader {
            files: files.into_iter(),
        })
    }
}

impl HepSource for HepDirReader {
    fn next_hep(&mut self) -> Result<Option<RecordedHep>, ReplayError> {
        let Some(path) = self.files.next() else {
            return Ok(None);
        };
        let file = File::open(&path).map_err(|source| ReplayError::Io {
            path: path.clone(),
            source,
        })?;
        let mut bytes = Vec::new();
        // One HEP message is at most 64 KiB; a larger file is cut there rather than read whole.
        file.take(hep::MAX_MESSAGE_LEN as u64)
            .read_to_end(&mut bytes)
            .map_err(|source| ReplayError::Io { path, source })?;
        Ok(Some(RecordedHep {
            time_micros: hep_time(&bytes),
            bytes,
        }))
    }
}

/// Most messages kept between packets (one TCP segment can complete many messages).
const MAX_QUEUED: usize = 16_384;

/// Reader of HEP carried in a pcap/pcapng capture.
pub struct PcapHepReader<R> {
    path: PathBuf,
    source: CaptureReader<R>,
    defrag: Defragmenter,
    tcp: TcpReassembler,
    framing: Framing,
    finished: bool,
}

/// HEP framing of the reassembled TCP streams, and the messages found but not yet returned.
#[derive(Default)]
struct Framing {
    framers: HashMap<FlowKey, hep::StreamFramer>,
    queue: VecDeque<RecordedHep>,
    /// Bytes the framers skipped as not HEP.
    skipped_bytes: u64,
    /// Messages dropped because too many completed at once.
    overflow: u64,
}

impl<R> std::fmt::Debug for PcapHepReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapHepReader")
            .field("path", &self.path)
            .field("queued", &self.framing.queue.len())
            .finish_non_exhaustive()
    }
}

impl PcapHepReader<BufReader<File>> {
    /// Open a pcap or pcapng file.
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let file = File::open(path).map_err(|source| ReplayError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        PcapHepReader::new(BufReader::with_capacity(1 << 16, file), path)
    }
}

impl<R: Read> PcapHepReader<R> {
    /// Read a capture from `reader`; `path` names it in errors.
    pub fn new(reader: R, path: &Path) -> Result<Self, ReplayError> {
        let source = capture::open(reader).map_err(|source| ReplayError::Capture {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(PcapHepReader {
            path: path.to_path_buf(),
            source,
            defrag: Defragmenter::new(capture::DefragConfig::default()),
            tcp: TcpReassembler::default(),
            framing: Framing::default(),
            finished: false,
        })
    }

    /// Bytes of TCP streams that were not HEP and were skipped.
    pub fn skipped_bytes(&self) -> u64 {
        self.framing.skipped_bytes
    }

    /// Messages dropped because more than 16384 completed within one packet.
    pub fn overflow(&self) -> u64 {
        self.framing.overflow
    }
}

impl Framing {
    fn handle_events(&mut self, events: Vec<StreamEvent<'_>>) {
        for event in events {
            let flow = event.flow();
            match event {
                StreamEvent::Data {
                    timestamp, data, ..
                } => {
                    let framer = self
                        .framers
                        .entry(flow)
                        .or_insert_with(|| hep::StreamFramer::new(hep::FramerConfig::default()));
                    let before = framer.bytes_skipped();
                    for piece in data.chunks(hep::MAX_MESSAGE_LEN) {
                        if framer.push(piece).is_err() {
                            *framer = hep::StreamFramer::new(hep::FramerConfig::default());
                            continue;
                        }
                        while let Some(frame) = framer.next_frame() {
                            if self.queue.len() < MAX_QUEUED {
                                self.queue.push_back(RecordedHep {
                                    time_micros: u64::try_from(timestamp.as_micros()).ok(),
                                    bytes: frame.to_vec(),
                                });
                            } else {
                                self.overflow += 1;
                            }
                        }
                    }
                    self.skipped_bytes += framer.bytes_skipped() - before;
                }
                StreamEvent::Gap { .. } => {
                    // What was pending cannot complete; the framer resynchronises on the next
                    // message after the hole.
                    if let Some(framer) = self.framers.get_mut(&flow) {
                        *framer = hep::StreamFramer::new(hep::FramerConfig::default());
                    }
                }
                StreamEvent::Closed { .. } => {
                    self.framers.remove(&flow);
                }
            }
        }
    }
}

impl<R: Read> HepSource for PcapHepReader<R> {
    fn next_hep(&mut self) -> Result<Option<RecordedHep>, ReplayError> {
        loop {
            if let Some(message) = self.framing.queue.pop_front() {
                return Ok(Some(message));
            }
            if self.finished {
                return Ok(None);
            }
            let packet = match self.source.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    self.finished = true;
                    let events = self.tcp.flush_all();
                    self.framing.handle_events(events);
                    continue;
                }
                Err(source) => {
                    self.finished = true;
                    return Err(ReplayError::Capture {
                        path: self.path.clone(),
                        source,
                    });
                }
            };
            let ts = packet.timestamp;
            let decoded =
                match capture::decode_packet(packet.link_type, ts, packet.data, &mut self.defrag) {
                    Ok(Some(d)) => d,
                    // Fragments awaiting the rest, and packets that are not IP.
                    Ok(None) | Err(_) => continue,
                };
            match decoded.transport {
                Transport::Udp { .. } => {
                    self.framing.queue.push_back(RecordedHep {
                        time_micros: u64::try_from(ts.as_micros()).ok(),
                        bytes: decoded.payload().to_vec(),
                    });
                }
                Transport::Tcp(_) => {
                    if let Some(segment) = TcpSegment::from_decoded(&decoded, ts) {
                        let events = self.tcp.feed(&segment);
                        self.framing.handle_events(events);
                    }
                }
                // HEP travels over UDP, TCP or TLS only.
                _ => {}
            }
        }
    }
}
