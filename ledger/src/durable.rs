//! Replacing a file durably: the one way every file the node rewrites
//! whole (a log's `LOG`, a sealed segment's ids, the `NODE` file,
//! checkpoints and feed cursors, Parquet parts, journals being compacted,
//! tokens, `audit-remote`'s state) is written.
//!
//! The new contents go to a temporary file beside the target
//! (`<name>.tmp`), which is fsync'd, renamed over the target, and then the
//! directory is fsync'd. A crash at any moment leaves the old file or the
//! new one, never a mix or neither; once [`replace`] returns, the new one
//! survives a crash (without the directory's fsync the rename itself could
//! be lost).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Who may read the file: everyone (0644), or only its owner (0600: keys,
/// tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Private,
}

/// The temporary file [`replace`] writes before the rename.
pub fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` (see the module's documentation).
pub fn replace(path: &Path, bytes: &[u8], mode: Mode) -> io::Result<()> {
    replace_with(path, mode, |f| f.write_all(bytes))
}

/// Replaces `path` with what `write` writes into the fresh temporary file.
/// Nothing replaces `path` when `write` fails.
pub fn replace_with(
    path: &Path,
    mode: Mode,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temporary(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(match mode {
            Mode::Shared => 0o644,
            Mode::Private => 0o600,
        })
        .open(&tmp)?;
    write(&mut f)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir(parent(path))
}

/// Makes the directory's entries (creations, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory a file lives in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_leaves_only_the_new_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        replace(&path, b"one", Mode::Shared).unwrap();
        replace(&path, b"two", Mode::Shared).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!temporary(&path).exists());
    }

    #[test]
    fn a_failed_write_replaces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        replace(&path, b"old", Mode::Shared).unwrap();
        let err = replace_with(&path, Mode::Shared, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("the writer failed"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn private_files_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        replace(&path, b"k", Mode::Private).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_temporary_file_keeps_the_whole_name() {
        assert_eq!(
            temporary(Path::new("/d/idempotency.jsonl")),
            Path::new("/d/idempotency.jsonl.tmp")
        );
        assert_eq!(temporary(Path::new("NODE")), Path::new("NODE.tmp"));
    }
}
