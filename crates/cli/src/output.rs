//! Files the commands write: never the same file as one they read or the store they use, and
//! written whole or not at all.
//!
//! `run in.jsonl --output in.jsonl` used to truncate the input before it was read, and
//! `report --db X -o X` replaced the database with a page. [`refuse_aliases`] compares files by
//! identity (device and inode, so a symbolic link, a hard link or `./x` versus `x` is caught),
//! and an output that does not exist yet by its absolute path (two outputs given the same new
//! name). [`Atomic`] writes to a temporary file beside the target and renames it over the target
//! only once everything is written and synced: an interrupted or failed write (a full disk)
//! leaves the old file whole and no partial file behind.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// What a path is, for comparing two of them.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    /// An existing file: device and inode (where the platform has them).
    File(u64, u64),
    /// An existing file on a platform without inodes: its canonical path.
    #[cfg(not(unix))]
    Canonical(PathBuf),
    /// A file that does not exist yet: its absolute path.
    New(PathBuf),
}

fn identity(path: &Path) -> Option<Identity> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                Some(Identity::File(meta.dev(), meta.ino()))
            }
            #[cfg(not(unix))]
            {
                let _ = meta;
                std::fs::canonicalize(path).ok().map(Identity::Canonical)
            }
        }
        Err(_) => {
            let name = path.file_name()?;
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let parent = std::fs::canonicalize(&parent).unwrap_or(parent);
            Some(Identity::New(parent.join(name)))
        }
    }
}

/// The files of an embedded store: the database and SQLite's companions, any of which an output
/// over it would corrupt.
pub fn store_files(db: &Path) -> Vec<PathBuf> {
    let mut files = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files
}

/// Refuses when an output (flag, path) is the same file as a read file (what, path) or as another
/// output. `-` (stdin or stdout) is never a file here.
pub fn refuse_aliases(outputs: &[(&str, &Path)], reads: &[(&str, &Path)]) -> Result<(), CliError> {
    let is_std = |p: &Path| p.as_os_str() == "-";
    for (i, (flag, out)) in outputs.iter().enumerate() {
        if is_std(out) {
            continue;
        }
        let Some(id) = identity(out) else {
            continue;
        };
        for (what, read) in reads {
            if !is_std(read) && identity(read).as_ref() == Some(&id) {
                return Err(CliError::Input {
                    path: out.display().to_string(),
                    message: format!(
                        "{flag} is the same file as {what} {}; writing it would destroy what is \
                         read from it. Nothing was written: choose another output file",
                        read.display()
                    ),
                });
            }
        }
        for (other_flag, other) in &outputs[..i] {
            if !is_std(other) && identity(other).as_ref() == Some(&id) {
                return Err(CliError::Input {
                    path: out.display().to_string(),
                    message: format!(
                        "{flag} and {other_flag} name the same file; nothing was written"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// An output file being written: a temporary file beside the target until [`Atomic::commit`].
/// Dropped without a commit, it is removed and the target is untouched.
pub struct Atomic {
    path: PathBuf,
    writer: BufWriter<tempfile::NamedTempFile>,
}

impl Atomic {
    /// Starts writing `path` (created in its directory, so the final rename stays on one file
    /// system).
    pub fn create(path: &Path) -> Result<Self, CliError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| format!(".{}.", n.to_string_lossy()))
            .unwrap_or_else(|| ".pipeline-output.".into());
        let tmp = tempfile::Builder::new()
            .prefix(&name)
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: BufWriter::new(tmp),
        })
    }

    /// Where the bytes go until the commit.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.writer
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the file over the target. The target keeps its permissions
    /// when it existed; a new one gets the usual `rw-r--r--`.
    pub fn commit(self) -> Result<(), CliError> {
        let path = self.path;
        let tmp = self
            .writer
            .into_inner()
            .map_err(|e| io(&path, e.into_error()))?;
        tmp.as_file().sync_all().map_err(|e| io(&path, e))?;
        let permissions = match std::fs::metadata(&path) {
            Ok(m) => Some(m.permissions()),
            Err(_) => default_permissions(),
        };
        if let Some(p) = permissions {
            std::fs::set_permissions(tmp.path(), p).map_err(|e| io(&path, e))?;
        }
        tmp.persist(&path).map_err(|e| io(&path, e.error))?;
        Ok(())
    }
}

#[cfg(unix)]
fn default_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn default_permissions() -> Option<std::fs::Permissions> {
    None
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let mut out = Atomic::create(path)?;
    out.writer().write_all(bytes).map_err(|e| io(path, e))?;
    out.commit()
}

/// An I/O error on `path`, saying plainly when the disk is full.
pub fn io(path: &Path, e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        return CliError::io(
            path.display().to_string(),
            std::io::Error::new(
                e.kind(),
                format!("no space left on the device ({e}); the old file, if any, is unchanged"),
            ),
        );
    }
    CliError::io(path.display().to_string(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_by_another_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{}\n").unwrap();
        let other = dir.path().join("sub/../in.jsonl");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let link = dir.path().join("link.jsonl");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&input, &link).unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&input, &link).unwrap();
        for out in [&input, &other] {
            assert!(refuse_aliases(&[("--output", out)], &[("input", &input)]).is_err());
        }
        #[cfg(unix)]
        {
            assert!(refuse_aliases(&[("--output", &link)], &[("input", &input)]).is_err());
            // A hard link is the same file under a name that shares nothing with the other.
            let hard = dir.path().join("sub/hard.jsonl");
            std::fs::hard_link(&input, &hard).unwrap();
            assert!(refuse_aliases(&[("--output", &hard)], &[("input", &input)]).is_err());
            assert!(refuse_aliases(&[("--output", &input)], &[("input", &hard)]).is_err());
        }
        let fresh = dir.path().join("out.jsonl");
        refuse_aliases(&[("--output", &fresh)], &[("input", &input)]).unwrap();
        // Two outputs with one new name.
        assert!(refuse_aliases(&[("-o", &fresh), ("--labels", &fresh)], &[]).is_err());
        // The database's companions are the store too.
        let wal = store_files(&input).remove(1);
        std::fs::write(&wal, "").unwrap();
        let files = store_files(&input);
        let reads: Vec<(&str, &Path)> = files.iter().map(|p| ("the store", p.as_path())).collect();
        assert!(refuse_aliases(&[("--output", &wal)], &reads).is_err());
        // stdin and stdout are not files.
        refuse_aliases(
            &[("--output", Path::new("-"))],
            &[("input", Path::new("-"))],
        )
        .unwrap();
    }

    #[test]
    fn a_full_disk_is_named_and_the_old_file_is_said_to_be_whole() {
        // Issue 25, case 16 (the message; a real full disk is not something a test can make
        // without changing the machine).
        let e = io(
            Path::new("report.html"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        let text = e.to_string();
        assert!(
            text.contains("no space left") && text.contains("unchanged"),
            "{text}"
        );
    }

    #[test]
    fn an_uncommitted_write_leaves_the_old_file_whole_and_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("report.html");
        std::fs::write(&target, "old").unwrap();
        {
            let mut out = Atomic::create(&target).unwrap();
            out.writer().write_all(b"half a new").unwrap();
            // Dropped: a failure before the commit.
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
