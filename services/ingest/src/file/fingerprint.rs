//! A file's identity by its content: a checksum of its first line (at most
//! [`FINGERPRINT_BYTES`]). It survives a rename (rotation by rename-and-create) and a copy
//! (rotation by copytruncate: the copy has the same first line, so reading goes on in the copy
//! from where it was), where device and inode do not. Files whose first lines are equal are taken
//! for one file: give such files a first line of their own (a header with the date), or tail
//! them from separate ingest services.

use std::fs::File;
use std::io::Read;

/// How much of the first line the fingerprint covers.
pub const FINGERPRINT_BYTES: usize = 4096;

/// A file's fingerprint, or why it has none yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(Fingerprint)
    }
}

/// The fingerprint of the file open as `file`, read from its start; `None` while its first line
/// is not complete (nothing to tell it apart by yet).
pub fn of_file(file: &mut File) -> std::io::Result<Option<Fingerprint>> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(FINGERPRINT_BYTES);
    file.take(FINGERPRINT_BYTES as u64).read_to_end(&mut head)?;
    Ok(of_head(&head))
}

/// The fingerprint of a file that starts with `head` (at most [`FINGERPRINT_BYTES`] of it).
pub fn of_head(head: &[u8]) -> Option<Fingerprint> {
    let first_line = match head.iter().position(|&b| b == b'\n') {
        Some(end) => &head[..=end],
        None if head.len() >= FINGERPRINT_BYTES => &head[..FINGERPRINT_BYTES],
        None => return None,
    };
    Some(Fingerprint(fnv1a(first_line)))
}

/// FNV-1a, 64 bits: stable across builds and versions (checkpoints outlive the binary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_complete_line_is_the_identity() {
        assert_eq!(of_head(b""), None);
        assert_eq!(of_head(b"partial"), None);
        let a = of_head(b"first\n").expect("fingerprint");
        assert_eq!(of_head(b"first\nsecond\n"), Some(a));
        assert_ne!(of_head(b"other\n"), Some(a));
        let long = vec![b'x'; FINGERPRINT_BYTES + 10];
        assert!(of_head(&long[..FINGERPRINT_BYTES]).is_some());
        assert_eq!(a.to_string().parse::<Fingerprint>(), Ok(a));
    }
}
