//! A decision log file: where its chain stands when warden opens it, how
//! big it is, and its size-based rotation. Rotating renames the file to
//! the next free `<name>.NNNNNN` (000001 first, so that a shell glob lists
//! the rotated files oldest first) and starts a new file under the old
//! name; the writer (`log::writer`) seals the old file with a checkpoint
//! first and begins the new one with a line naming the old one, so the
//! chain runs on through every file.

use super::chain::ChainState;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The log file being written.
pub(crate) struct FileTarget {
    path: PathBuf,
    /// Bytes in the file now.
    size: u64,
    /// Rotate once the file holds this many bytes (`None`: never).
    rotate_at: Option<u64>,
}

/// A file opened for appending, with what the writer needs to go on.
pub(crate) struct Opened {
    pub(crate) file: File,
    pub(crate) target: FileTarget,
    /// Where the chain goes on: after the file's last whole line when that
    /// line is chained, else a new chain.
    pub(crate) chain: ChainState,
    /// The file ends in half a line (a write that failed, or a crash).
    pub(crate) torn: bool,
}

impl FileTarget {
    /// Opens `path` for appending (creating it), and reads where its chain
    /// stands.
    pub(crate) fn open(path: &Path, rotate_at: Option<u64>) -> io::Result<Opened> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let size = file.metadata()?.len();
        let (last, torn) = last_whole_line(&file, size)?;
        let chain = last
            .as_deref()
            .and_then(ChainState::after_line)
            .unwrap_or_else(ChainState::genesis);
        Ok(Opened {
            file,
            target: FileTarget {
                path: path.to_path_buf(),
                size,
                rotate_at,
            },
            chain,
            torn,
        })
    }

    /// Whether the file has reached its rotation size.
    pub(crate) fn due(&self) -> bool {
        self.rotate_at
            .is_some_and(|at| self.size >= at && self.size > 0)
    }

    /// Counts bytes written to the file.
    pub(crate) fn wrote(&mut self, bytes: usize) {
        self.size = self
            .size
            .saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// Renames the file to the next free `<name>.NNNNNN` and opens a new,
    /// empty one under its name; returns it and the rotated file's name.
    /// When the new file cannot be opened, the old one is renamed back.
    pub(crate) fn rotate(&mut self) -> io::Result<(File, String)> {
        let rotated = next_rotated_path(&self.path)?;
        std::fs::rename(&self.path, &rotated)?;
        let opened = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path);
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::rename(&rotated, &self.path);
                return Err(e);
            }
        };
        self.size = 0;
        let name = rotated
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok((file, name))
    }
}

/// The first `<path>.NNNNNN` above every one that exists.
fn next_rotated_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{name}.");
    let mut highest = 0u64;
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let file = entry.file_name();
        let Some(suffix) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        if suffix.len() == 6
            && let Ok(n) = suffix.parse::<u64>()
        {
            highest = highest.max(n);
        }
    }
    Ok(dir.join(format!("{name}.{:06}", highest + 1)))
}

/// The file's last whole line (without its newline), if any, and whether
/// half a line follows it. Reads backwards from the end, in growing
/// windows, only as far as the start of that line.
fn last_whole_line(file: &File, size: u64) -> io::Result<(Option<Vec<u8>>, bool)> {
    if size == 0 {
        return Ok((None, false));
    }
    let mut window: u64 = 64 * 1024;
    loop {
        let len = window.min(size);
        let mut data = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut data, size - len)?;
        let whole_file = len == size;
        let torn = data.last() != Some(&b'\n');
        // The end of the last whole line: the last newline.
        let Some(end) = data.iter().rposition(|&b| b == b'\n') else {
            if whole_file {
                return Ok((None, torn));
            }
            window = window.saturating_mul(4);
            continue;
        };
        match data[..end].iter().rposition(|&b| b == b'\n') {
            Some(start) => return Ok((Some(data[start + 1..end].to_vec()), torn)),
            None if whole_file => return Ok((Some(data[..end].to_vec()), torn)),
            None => window = window.saturating_mul(4),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn last(content: &[u8]) -> (Option<Vec<u8>>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, content).unwrap();
        let file = File::open(&path).unwrap();
        last_whole_line(&file, content.len() as u64).unwrap()
    }

    #[test]
    fn the_last_whole_line_is_found_past_a_torn_one_and_across_windows() {
        assert_eq!(last(b""), (None, false));
        assert_eq!(last(b"half"), (None, true));
        assert_eq!(last(b"one\n"), (Some(b"one".to_vec()), false));
        assert_eq!(last(b"one\ntwo\nhal"), (Some(b"two".to_vec()), true));
        let long = vec![b'x'; 200 * 1024];
        let mut content = b"first\n".to_vec();
        content.extend_from_slice(&long);
        content.push(b'\n');
        assert_eq!(last(&content), (Some(long), false));
    }

    #[test]
    fn rotation_takes_the_next_free_number_and_starts_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        std::fs::write(dir.path().join("decisions.log.000007"), b"old\n").unwrap();
        let mut opened = FileTarget::open(&path, Some(4)).unwrap();
        assert!(!opened.target.due());
        opened.file.write_all(b"line\n").unwrap();
        opened.target.wrote(5);
        assert!(opened.target.due());
        let (mut file, name) = opened.target.rotate().unwrap();
        assert_eq!(name, "decisions.log.000008");
        assert!(!opened.target.due());
        file.write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        assert_eq!(
            std::fs::read(dir.path().join("decisions.log.000008")).unwrap(),
            b"line\n"
        );
    }
}
