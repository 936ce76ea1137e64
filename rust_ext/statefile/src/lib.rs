//! One durable, private, exclusively owned state file.
//!
//! A [`StateFile`] holds an advisory lock (`flock`) on a sibling `<name>.lock` file for as long as
//! it lives, so a second process opening the same state gets [`Error::Locked`] instead of two
//! writers forking the MLS state. [`StateFile::write`] replaces the contents atomically:
//! write `<name>.tmp` (mode 0600), `fsync` it, `rename` it over `<name>`, then `fsync` the directory
//! so the rename itself is durable. No old copy is kept: an old snapshot holds keys that MLS
//! deleted for forward secrecy.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a state file could not be opened, read or written.
#[derive(Debug)]
pub enum Error {
    /// Another process (or another handle in this one) holds the lock.
    Locked(PathBuf),
    /// `create` found a state file already there.
    Exists(PathBuf),
    /// `open` found no state file.
    Missing(PathBuf),
    /// Any other I/O failure, with the path it concerns.
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Locked(p) => write!(
                f,
                "state file {} is in use by another process (lock held on {}.lock)",
                p.display(),
                p.display()
            ),
            Error::Exists(p) => write!(f, "state file {} already exists", p.display()),
            Error::Missing(p) => write!(f, "state file {} does not exist", p.display()),
            Error::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for Error {}

/// An open, locked state file. Dropping it releases the lock.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    // Held only for its lock; flock is released when the descriptor closes.
    _lock: File,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::Io(path.to_path_buf(), e)
}

impl StateFile {
    fn lock(path: &Path) -> Result<StateFile, Error> {
        if path.file_name().is_none() {
            return Err(Error::Io(
                path.to_path_buf(),
                io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
            ));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let lock_path = sibling(path, ".lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(Error::Locked(path.to_path_buf())),
            Err(TryLockError::Error(e)) => return Err(Error::Io(lock_path, e)),
        }
        Ok(StateFile {
            path: path.to_path_buf(),
            tmp: sibling(path, ".tmp"),
            dir,
            _lock: lock,
        })
    }

    /// Lock `path` for a new state; fails if a state file is already there.
    /// The caller writes the first contents with [`StateFile::write`].
    pub fn create(path: &Path) -> Result<StateFile, Error> {
        let file = Self::lock(path)?;
        if file.path.exists() {
            return Err(Error::Exists(file.path.clone()));
        }
        file.remove_tmp()?;
        Ok(file)
    }

    /// Lock an existing state file and return it with its contents.
    /// A leftover `.tmp` from a crash mid-write is removed: the rename never happened, so the
    /// state file itself is the last durable state.
    pub fn open(path: &Path) -> Result<(StateFile, Vec<u8>), Error> {
        let file = Self::lock(path)?;
        file.remove_tmp()?;
        let mut data = Vec::new();
        match File::open(&file.path) {
            Ok(mut f) => {
                f.read_to_end(&mut data).map_err(io_err(&file.path))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Missing(file.path.clone()))
            }
            Err(e) => return Err(Error::Io(file.path.clone(), e)),
        }
        Ok((file, data))
    }

    fn remove_tmp(&self) -> Result<(), Error> {
        match fs::remove_file(&self.tmp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io(self.tmp.clone(), e)),
        }
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Durably replace the contents: when this returns `Ok`, `data` survives a power cut.
    pub fn write(&self, data: &[u8]) -> Result<(), Error> {
        let result = self.write_inner(data);
        if result.is_err() {
            // Best effort: leave no partial copy of key material behind.
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }

    fn write_inner(&self, data: &[u8]) -> Result<(), Error> {
        let tmp = &self.tmp;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp)
            .map_err(io_err(tmp))?;
        // The mode given to open() is filtered by the umask and ignored for an existing file.
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err(tmp))?;
        f.write_all(data).map_err(io_err(tmp))?;
        f.sync_all().map_err(io_err(tmp))?;
        drop(f);
        fs::rename(tmp, &self.path).map_err(io_err(&self.path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "privastead-statefile-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn create_write_open_roundtrip_with_mode_0600_and_no_leftovers() {
        let dir = scratch("roundtrip");
        let path = dir.join("state.mls");
        let f = StateFile::create(&path).expect("create");
        f.write(b"one").expect("write");
        f.write(b"two").expect("write");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(f);
        let (_f, data) = StateFile::open(&path).expect("open");
        assert_eq!(data, b"two");
        let mut names: Vec<_> = fs::read_dir(&dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        assert_eq!(names, vec!["state.mls", "state.mls.lock"]);
    }

    #[test]
    fn second_open_is_refused_while_locked_and_allowed_after_drop() {
        let dir = scratch("lock");
        let path = dir.join("s");
        let f = StateFile::create(&path).expect("create");
        f.write(b"x").expect("write");
        assert!(matches!(StateFile::open(&path), Err(Error::Locked(_))));
        assert!(matches!(StateFile::create(&path), Err(Error::Locked(_))));
        drop(f);
        assert!(StateFile::open(&path).is_ok());
    }

    #[test]
    fn create_refuses_existing_and_open_refuses_missing() {
        let dir = scratch("exists");
        let path = dir.join("s");
        assert!(matches!(StateFile::open(&path), Err(Error::Missing(_))));
        let f = StateFile::create(&path).expect("create");
        f.write(b"x").expect("write");
        drop(f);
        assert!(matches!(StateFile::create(&path), Err(Error::Exists(_))));
    }

    #[test]
    fn leftover_tmp_from_a_crash_is_removed_and_state_kept() {
        let dir = scratch("tmp");
        let path = dir.join("s");
        let f = StateFile::create(&path).expect("create");
        f.write(b"durable").expect("write");
        drop(f);
        fs::write(dir.join("s.tmp"), b"torn").expect("tmp");
        let (_f, data) = StateFile::open(&path).expect("open");
        assert_eq!(data, b"durable");
        assert!(!dir.join("s.tmp").exists());
    }

    #[test]
    fn write_into_a_missing_directory_fails_cleanly() {
        let dir = scratch("gone");
        let path = dir.join("s");
        let f = StateFile::create(&path).expect("create");
        fs::remove_dir_all(&dir).expect("rm");
        assert!(matches!(f.write(b"x"), Err(Error::Io(_, _))));
    }
}
