//! One tailed file: its open handle (kept across renames, and after a deletion until it is read
//! to its end), how far it is read, turned into events and committed, and its lines joined into
//! events.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use logstream_core::ingest::multiline::Multiline;

use super::fingerprint::Fingerprint;

/// Most bytes read from one file in one go (so one busy file does not starve the others).
const CHUNK: usize = 1 << 20;

/// Device and inode: which file a handle is, while it is not renamed over.
pub type FileId = (u64, u64);

pub fn file_id(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

pub struct Tracked {
    pub fingerprint: Fingerprint,
    pub path: PathBuf,
    /// The default service of its events, from the path (worked out once per path).
    pub service: Option<String>,
    pub file: Option<File>,
    pub id: Option<FileId>,
    /// Lines before this are read (it is the start of the next line).
    pub read_offset: u64,
    /// Events up to here are taken (in the batch being built, or committed).
    pub taken_offset: u64,
    /// Events up to here are committed to Kafka.
    pub committed_offset: u64,
    pub multiline: Multiline,
    /// When the patterns last named this file (an open file they no longer name was renamed
    /// away or deleted: it is closed once read to its end).
    pub seen: Instant,
    /// Unix seconds of `seen`, for the checkpoint.
    pub seen_unix: i64,
    /// The file as it was before it was truncated (copytruncate): a copy with this fingerprint
    /// continues it, the truncated file itself does not.
    pub truncated_id: Option<FileId>,
    pub size: u64,
    pub events: u64,
    pub last_warning: Option<String>,
    pub warned_utf8: bool,
    /// In the middle of a line longer than the limit: its first bytes (which stand for it, and
    /// are refused as too long), given out once its end is found, with the offset past it.
    pub long_head: Option<Vec<u8>>,
}

/// What reading a file found.
pub enum Found {
    /// Complete lines, each with the offset just past it (its `\n`).
    Lines(Vec<(Vec<u8>, u64)>),
    /// Nothing new.
    AtEnd,
    /// The file is shorter than what was read of it: truncated.
    Truncated { size: u64 },
}

impl Tracked {
    pub fn new(fingerprint: Fingerprint, path: PathBuf, offset: u64, multiline: Multiline) -> Self {
        Self {
            fingerprint,
            path,
            service: None,
            file: None,
            id: None,
            read_offset: offset,
            taken_offset: offset,
            committed_offset: offset,
            multiline,
            seen: Instant::now(),
            seen_unix: chrono::Utc::now().timestamp(),
            truncated_id: None,
            size: 0,
            events: 0,
            last_warning: None,
            warned_utf8: false,
            long_head: None,
        }
    }

    /// Reads the complete lines after `read_offset` (at most [`CHUNK`] bytes; a line longer than
    /// `max_line` is cut there, so a file without newlines cannot stall its reader).
    pub fn read_lines(&mut self, max_line: usize) -> std::io::Result<Found> {
        let Some(file) = self.file.as_mut() else {
            return Ok(Found::AtEnd);
        };
        let size = file.metadata()?.len();
        self.size = size;
        if size < self.read_offset {
            return Ok(Found::Truncated { size });
        }
        if size == self.read_offset {
            return Ok(Found::AtEnd);
        }
        // Truncated and written again past where it was read, faster than it was looked at:
        // its first line tells.
        if super::fingerprint::of_file(file)?.is_some_and(|now| now != self.fingerprint) {
            return Ok(Found::Truncated { size });
        }
        let want = ((size - self.read_offset) as usize).min(CHUNK);
        let mut buffer = vec![0u8; want];
        file.seek(SeekFrom::Start(self.read_offset))?;
        let mut got = 0;
        while got < want {
            match file.read(&mut buffer[got..])? {
                0 => break,
                n => got += n,
            }
        }
        buffer.truncate(got);
        let mut lines = Vec::new();
        let mut start = 0;
        while start < buffer.len() {
            let rest = &buffer[start..];
            let newline = rest.iter().position(|&b| b == b'\n');
            if self.long_head.is_some() {
                // The rest of a line over the limit, up to its end.
                match newline {
                    Some(end) => {
                        start += end + 1;
                        let head = self.long_head.take().unwrap_or_default();
                        lines.push((head, self.read_offset + start as u64));
                    }
                    None => start = buffer.len(),
                }
                continue;
            }
            match newline {
                Some(end) if end <= max_line => {
                    start += end + 1;
                    lines.push((rest[..end].to_vec(), self.read_offset + start as u64));
                }
                // Over the limit: its first max_line + 1 bytes stand for it (and are refused as
                // too long) once its end is found; the rest is skipped.
                _ if rest.len() > max_line => {
                    self.long_head = Some(rest[..=max_line].to_vec());
                    start += max_line + 1;
                }
                // An incomplete last line: read again once its newline is written.
                _ => break,
            }
        }
        self.read_offset += start as u64;
        if lines.is_empty() {
            Ok(Found::AtEnd)
        } else {
            Ok(Found::Lines(lines))
        }
    }

    /// Goes back to the last commit: what follows it is read again.
    pub fn rewind(&mut self) {
        self.read_offset = self.committed_offset;
        self.taken_offset = self.committed_offset;
        self.multiline.clear();
        self.long_head = None;
    }

    /// Lines read but not yet an event are forgotten, to be read again (from a copy, or from
    /// this file once it is open again).
    pub fn forget_unread(&mut self) {
        self.read_offset = self.taken_offset;
        self.multiline.clear();
        self.long_head = None;
    }

    /// The bytes after the last newline, as a last line (the file ended for good without one),
    /// with the offset past them; `None` when there are none, or too many to be a line.
    pub fn last_partial_line(&mut self, max_line: usize) -> Option<(Vec<u8>, u64)> {
        let file = self.file.as_mut()?;
        let size = file.metadata().ok()?.len();
        let rest = size.checked_sub(self.read_offset).filter(|&n| n > 0)? as usize;
        if rest > max_line || self.long_head.is_some() {
            return None;
        }
        let mut line = vec![0u8; rest];
        file.seek(SeekFrom::Start(self.read_offset)).ok()?;
        file.read_exact(&mut line).ok()?;
        self.read_offset = size;
        Some((line, size))
    }

    /// Closes the handle; which file it was.
    pub fn detach(&mut self) -> Option<FileId> {
        self.file = None;
        self.id.take()
    }

    /// Takes `handle` (identified as `id`) as this file's content from `read_offset` on.
    pub fn attach(&mut self, handle: File, id: FileId, path: PathBuf) {
        self.file = Some(handle);
        self.id = Some(id);
        self.set_path(path);
        self.seen = Instant::now();
        self.seen_unix = chrono::Utc::now().timestamp();
    }

    /// Where the file is now (its default service follows the name).
    pub fn set_path(&mut self, path: PathBuf) {
        if path != self.path {
            self.service = None;
        }
        self.path = path;
    }

    pub fn warn(&mut self, warning: String) {
        tracing::warn!(path = %self.path.display(), fingerprint = %self.fingerprint, "{warning}");
        self.last_warning = Some(warning);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logstream_core::ingest::multiline::StartRule;

    #[test]
    fn a_line_over_the_limit_is_one_line_ending_where_it_ends() {
        let path = std::env::temp_dir().join(format!("logstream-tail-{}.log", std::process::id()));
        let long = "L".repeat(50);
        std::fs::write(&path, format!("a\n{long}\nb\npartial")).expect("write");
        let fingerprint = super::super::fingerprint::of_head(b"a\n").expect("fingerprint");
        let mut tracked = Tracked::new(
            fingerprint,
            path.clone(),
            0,
            Multiline::new(StartRule::NotIndented, 10),
        );
        let handle = File::open(&path).expect("open");
        let id = file_id(&handle.metadata().expect("metadata"));
        tracked.attach(handle, id, path.clone());
        let Ok(Found::Lines(lines)) = tracked.read_lines(10) else {
            panic!("lines expected");
        };
        let ends: Vec<u64> = lines.iter().map(|(_, end)| *end).collect();
        assert_eq!(ends, [2, 53, 55]);
        assert_eq!(lines[1].0.len(), 11);
        assert_eq!(tracked.read_offset, 55, "the partial last line waits");
        std::fs::remove_file(&path).ok();
    }
}
