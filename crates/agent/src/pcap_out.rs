//! Rotated pcap files of every captured frame, as read (`hepstack capture --write-pcap DIR`,
//! heplify's `-wf` / `-rt`): a new file when the current one reaches a size or an age, at most
//! a given number of files kept (the oldest are deleted).
//!
//! Files are named `hepstack-<first packet's Unix seconds>-<sequence>.pcap` so that their names
//! sort by time; files of that pattern already in the directory count towards the limit, so a
//! restart does not let the directory grow. Age is measured on packet time, like every other
//! limit of the agent: replaying a file rotates exactly as capturing it live did. A change of
//! link type (several input files) starts a new file, since a pcap file has one.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use capture::{LinkType, PcapWriter, Timestamp, TsResolution};

use crate::counters::Counters;

const FILE_HEADER_BYTES: u64 = 24;
const RECORD_HEADER_BYTES: u64 = 16;
const PREFIX: &str = "hepstack-";
const SUFFIX: &str = ".pcap";
/// Snap length written in the file header: the most a capture takes per packet.
const SNAPLEN: u32 = 262_144;

/// When to start a new file and how many to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRotation {
    /// Directory of the files (created if missing).
    pub dir: PathBuf,
    /// A file is closed before it would grow past this many bytes (0: no size limit). A
    /// single packet larger than that still gets a file of its own.
    pub max_file_bytes: u64,
    /// A file is closed when a packet arrives this long (packet time) after its first one
    /// (0: no age limit).
    pub max_file_age: Duration,
    /// Files kept at most, the current one included (at least 1).
    pub max_files: usize,
}

struct OpenFile {
    writer: PcapWriter<BufWriter<File>>,
    link_type: LinkType,
    first: Timestamp,
    last_flush: Timestamp,
    bytes: u64,
}

/// The writer: owned by the capture thread's [`crate::Pipeline`].
pub struct RotatingPcap {
    cfg: PcapRotation,
    current: Option<OpenFile>,
    /// Our files in the directory, oldest first (the current one last).
    files: VecDeque<PathBuf>,
    seq: u64,
}

impl std::fmt::Debug for RotatingPcap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingPcap")
            .field("cfg", &self.cfg)
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

fn is_ours(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
}

impl RotatingPcap {
    /// Prepares the directory (creating it) and lists the files a previous run left there.
    pub fn open(cfg: PcapRotation) -> std::io::Result<RotatingPcap> {
        std::fs::create_dir_all(&cfg.dir)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&cfg.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_ours(p))
            .collect();
        files.sort();
        Ok(RotatingPcap {
            cfg: PcapRotation {
                max_files: cfg.max_files.max(1),
                ..cfg
            },
            current: None,
            files: files.into(),
            seq: 0,
        })
    }

    /// The files written so far that are still kept, oldest first.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(PathBuf::as_path)
    }

    fn due_for_rotation(&self, link_type: LinkType, timestamp: Timestamp, len: u64) -> bool {
        let Some(f) = &self.current else {
            return false;
        };
        let too_big = self.cfg.max_file_bytes > 0
            && f.bytes > FILE_HEADER_BYTES
            && f.bytes + RECORD_HEADER_BYTES + len > self.cfg.max_file_bytes;
        let too_old = !self.cfg.max_file_age.is_zero()
            && timestamp.saturating_since(f.first) >= self.cfg.max_file_age;
        f.link_type != link_type || too_big || too_old
    }

    fn start_file(
        &mut self,
        link_type: LinkType,
        timestamp: Timestamp,
        counters: &Counters,
    ) -> std::io::Result<()> {
        let (path, file) = loop {
            let name = format!(
                "{PREFIX}{:011}-{:06}{SUFFIX}",
                timestamp.secs().max(0),
                self.seq
            );
            self.seq += 1;
            let path = self.cfg.dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let writer = PcapWriter::new(
            BufWriter::with_capacity(64 * 1024, file),
            link_type,
            TsResolution::Micros,
            SNAPLEN,
        )
        .map_err(std::io::Error::other)?;
        self.files.push_back(path);
        while self.files.len() > self.cfg.max_files {
            if let Some(old) = self.files.pop_front() {
                match std::fs::remove_file(&old) {
                    Ok(()) => Counters::add(&counters.pcap_files_deleted, 1),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(file = %old.display(), %e, "cannot delete an old pcap file");
                        Counters::add(&counters.errors, 1);
                    }
                }
            }
        }
        self.current = Some(OpenFile {
            writer,
            link_type,
            first: timestamp,
            last_flush: timestamp,
            bytes: FILE_HEADER_BYTES,
        });
        Ok(())
    }

    /// Writes one frame, rotating first when due. A write error is logged and counted, and
    /// the next frame starts a new file.
    pub(crate) fn write(
        &mut self,
        link_type: LinkType,
        timestamp: Timestamp,
        frame: &[u8],
        counters: &Counters,
    ) {
        let len = frame.len() as u64;
        if self.due_for_rotation(link_type, timestamp, len) {
            self.close(counters);
        }
        if self.current.is_none() {
            if let Err(e) = self.start_file(link_type, timestamp, counters) {
                tracing::warn!(dir = %self.cfg.dir.display(), %e, "cannot start a pcap file");
                Counters::add(&counters.errors, 1);
                return;
            }
        }
        let Some(f) = &mut self.current else {
            return;
        };
        let written = f
            .writer
            .write_packet(timestamp, frame.len() as u32, frame)
            .and_then(|()| {
                // Flushed at least once per second of traffic, so a reader (or a crash) sees
                // what was captured up to a second ago.
                if timestamp.saturating_since(f.last_flush) >= Duration::from_secs(1) {
                    f.last_flush = timestamp;
                    f.writer.flush()
                } else {
                    Ok(())
                }
            });
        match written {
            Ok(()) => {
                f.bytes += RECORD_HEADER_BYTES + len;
                Counters::add(&counters.pcap_written, 1);
            }
            Err(e) => {
                tracing::warn!(%e, "writing the pcap file failed; starting a new one");
                Counters::add(&counters.errors, 1);
                self.current = None;
            }
        }
    }

    /// Flushes and closes the current file (the next frame starts a new one).
    pub(crate) fn close(&mut self, counters: &Counters) {
        if let Some(mut f) = self.current.take() {
            if let Err(e) = f.writer.flush() {
                tracing::warn!(%e, "flushing the pcap file failed");
                Counters::add(&counters.errors, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Vec<u8> {
        vec![n; 100]
    }

    fn read_back(path: &Path) -> Vec<(Timestamp, Vec<u8>)> {
        use capture::PacketSource as _;
        let file = File::open(path).expect("open");
        let mut r = capture::open(std::io::BufReader::new(file)).expect("pcap");
        let mut out = Vec::new();
        while let Some(p) = r.next_packet().expect("packet") {
            out.push((p.timestamp, p.data.to_vec()));
        }
        out
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = Counters::default();
        let mut w = RotatingPcap::open(PcapRotation {
            dir: dir.path().to_path_buf(),
            // Header + 3 records of 116 bytes.
            max_file_bytes: 24 + 3 * 116,
            max_file_age: Duration::ZERO,
            max_files: 2,
        })
        .expect("open");
        for n in 0..10u8 {
            w.write(
                LinkType::ETHERNET,
                Timestamp::new(1_700_000_000 + i64::from(n), 0),
                &frame(n),
                &c,
            );
        }
        w.close(&c);
        let files: Vec<PathBuf> = w.files().map(Path::to_path_buf).collect();
        assert_eq!(files.len(), 2);
        // 10 packets in files of 3: four files written, the two oldest deleted.
        assert_eq!(Counters::snapshot(&c).pcap_files_deleted, 2);
        assert_eq!(Counters::snapshot(&c).pcap_written, 10);
        let on_disk: Vec<PathBuf> = {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir.path())
                .expect("dir")
                .map(|e| e.expect("entry").path())
                .collect();
            v.sort();
            v
        };
        assert_eq!(on_disk, files);
        let kept: Vec<u8> = files
            .iter()
            .flat_map(|f| read_back(f))
            .map(|(_, d)| d[0])
            .collect();
        assert_eq!(kept, vec![6, 7, 8, 9]);
        for f in &files {
            assert!(std::fs::metadata(f).expect("meta").len() <= 24 + 3 * 116);
        }
    }

    #[test]
    fn rotates_by_packet_time_and_on_a_new_link_type() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = Counters::default();
        let mut w = RotatingPcap::open(PcapRotation {
            dir: dir.path().to_path_buf(),
            max_file_bytes: 0,
            max_file_age: Duration::from_secs(60),
            max_files: 10,
        })
        .expect("open");
        let t0 = 1_700_000_000;
        for (secs, link) in [
            (0, LinkType::ETHERNET),
            (59, LinkType::ETHERNET),
            (60, LinkType::ETHERNET),
            (61, LinkType::LINUX_SLL),
        ] {
            w.write(link, Timestamp::new(t0 + secs, 0), &frame(secs as u8), &c);
        }
        w.close(&c);
        let files: Vec<PathBuf> = w.files().map(Path::to_path_buf).collect();
        let per_file: Vec<Vec<i64>> = files
            .iter()
            .map(|f| read_back(f).iter().map(|(t, _)| t.secs() - t0).collect())
            .collect();
        assert_eq!(per_file, vec![vec![0, 59], vec![60], vec![61]]);
    }

    #[test]
    fn a_restart_counts_the_files_already_there() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = Counters::default();
        let cfg = PcapRotation {
            dir: dir.path().to_path_buf(),
            max_file_bytes: 0,
            max_file_age: Duration::from_secs(1),
            max_files: 3,
        };
        for run in 0..3i64 {
            let mut w = RotatingPcap::open(cfg.clone()).expect("open");
            for s in 0..2i64 {
                w.write(
                    LinkType::ETHERNET,
                    Timestamp::new(1_700_000_000 + run * 10 + s, 0),
                    &frame(0),
                    &c,
                );
            }
            w.close(&c);
        }
        // Foreign files are left alone.
        std::fs::write(dir.path().join("notes.txt"), b"keep").expect("write");
        let w = RotatingPcap::open(cfg).expect("open");
        assert_eq!(w.files().count(), 3);
        assert!(dir.path().join("notes.txt").exists());
    }
}
