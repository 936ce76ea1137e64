//! One durable, private, exclusively owned state file.
//!
//! A [`StateFile`] holds an advisory lock (`flock`) on a sibling `<name>.lock` file for as long as
//! it lives, so a second process opening the same state gets [`Error::Locked`] instead of two
//! writers forking the MLS state.
//!
//! [`StateFile::write`] makes new contents durable before it returns, and a reader (after any
//! crash) sees either the previous contents or the new ones, never a mix. The file has two
//! slots (`slots.rs`): a write fills the slot that does not hold the live state, `fdatasync`s
//! it (the file's size and blocks do not change, so this flushes only data: no journal
//! commit, no directory sync), then overwrites the replaced slot with zeros, because an old
//! state holds keys that MLS deleted for forward secrecy. A torn write fails its slot's
//! digest and the other slot is still the last durable state. When the state outgrows its
//! slot (or the file is still in format 1), the whole file is rebuilt the classic way: write
//! `<name>.tmp` (mode 0600), `fsync` it, `rename` it over `<name>`, `fsync` the directory.

mod slots;

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use slots::{Contents, Layout};

/// Why a state file could not be opened, read or written.
#[derive(Debug)]
pub enum Error {
    /// Another process (or another handle in this one) holds the lock.
    Locked(PathBuf),
    /// `create` found a state file already there.
    Exists(PathBuf),
    /// `open` found no state file.
    Missing(PathBuf),
    /// The file holds no readable state (both slots damaged, or not a state file layout).
    Corrupt(PathBuf, String),
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
            Error::Corrupt(p, why) => write!(f, "state file {} is damaged: {why}", p.display()),
            Error::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for Error {}

/// The slotted file this handle writes in place.
#[derive(Debug)]
struct Slotted {
    file: File,
    layout: Layout,
    /// Index and seq of the slot holding the live state.
    live: (usize, u64),
}

/// An open, locked state file. Dropping it releases the lock.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    // Held only for its lock; flock is released when the descriptor closes.
    _lock: File,
    /// `None` until the first write of a new file, or while the file is in format 1.
    slotted: Option<Slotted>,
    /// Durable writes that rebuilt the whole file (rename path), for tests and diagnostics.
    rebuilds: u64,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::Io(path.to_path_buf(), e)
}

fn open_rw(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))
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
            slotted: None,
            rebuilds: 0,
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
    /// A leftover `.tmp` from a crash mid-rebuild is removed: the rename never happened, so
    /// the state file itself is the last durable state. A replaced slot that a crash kept
    /// from being wiped is wiped now.
    pub fn open(path: &Path) -> Result<(StateFile, Vec<u8>), Error> {
        let mut file = Self::lock(path)?;
        file.remove_tmp()?;
        let mut raw = Zeroizing::new(Vec::new());
        match File::open(&file.path) {
            Ok(mut f) => {
                f.read_to_end(&mut raw).map_err(io_err(&file.path))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Missing(file.path.clone()))
            }
            Err(e) => return Err(Error::Io(file.path.clone(), e)),
        }
        let contents = slots::parse(&raw).map_err(|why| Error::Corrupt(file.path.clone(), why))?;
        let payload = match contents {
            Contents::Legacy(payload) => payload,
            Contents::Slotted {
                layout,
                live,
                payload,
                stale,
            } => {
                let data = open_rw(&file.path)?;
                if let Some(slot) = stale {
                    wipe(&data, &layout, slot).map_err(io_err(&file.path))?;
                    data.sync_data().map_err(io_err(&file.path))?;
                }
                file.slotted = Some(Slotted {
                    file: data,
                    layout,
                    live,
                });
                payload
            }
        };
        Ok((file, payload.to_vec()))
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

    /// How many writes rebuilt the whole file (first write, format-1 conversion, growth).
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// Durably replace the contents: when this returns `Ok`, `data` survives a power cut.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        match &self.slotted {
            Some(s) if s.layout.fits(data.len()) => self.write_in_place(data),
            _ => self.rebuild(data),
        }
    }

    fn write_in_place(&mut self, data: &[u8]) -> Result<(), Error> {
        let path = &self.path;
        let Some(s) = self.slotted.as_mut() else {
            return Err(Error::Io(path.clone(), io::Error::other("not slotted")));
        };
        let (live, seq) = s.live;
        let target = 1 - live;
        let image = s.layout.slot_image(seq + 1, data);
        let written = s
            .file
            .write_all_at(&image, s.layout.offset(target))
            .and_then(|()| s.file.sync_data());
        if let Err(e) = written {
            // Best effort: a write we report as failed must not come back after a crash.
            let _ = wipe(&s.file, &s.layout, target).and_then(|()| s.file.sync_data());
            return Err(Error::Io(path.clone(), e));
        }
        s.live = (target, seq + 1);
        // The replaced state holds deleted keys. Its zeros reach the disk with the next
        // write's fdatasync at the latest; readers of the file see them at once.
        wipe(&s.file, &s.layout, live).map_err(io_err(path))
    }

    /// Write the whole file anew (tmp, fsync, rename, fsync dir) with room for `data`.
    fn rebuild(&mut self, data: &[u8]) -> Result<(), Error> {
        let layout = Layout::for_payload(data.len());
        let seq = self.slotted.as_ref().map_or(0, |s| s.live.1) + 1;
        let mut image = Zeroizing::new(layout.header());
        image.extend_from_slice(&layout.slot_image(seq, data));
        image.resize(layout.file_len(), 0);
        let result = self.replace_file(&image);
        if result.is_err() {
            // Best effort: leave no partial copy of key material behind.
            let _ = fs::remove_file(&self.tmp);
            return result;
        }
        self.rebuilds += 1;
        self.slotted = Some(Slotted {
            file: open_rw(&self.path)?,
            layout,
            live: (0, seq),
        });
        Ok(())
    }

    fn replace_file(&self, image: &[u8]) -> Result<(), Error> {
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
        f.write_all(image).map_err(io_err(tmp))?;
        f.sync_all().map_err(io_err(tmp))?;
        drop(f);
        fs::rename(tmp, &self.path).map_err(io_err(&self.path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        Ok(())
    }
}

fn wipe(file: &File, layout: &Layout, slot: usize) -> io::Result<()> {
    file.write_all_at(&vec![0u8; layout.slot_size], layout.offset(slot))
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
        let mut f = StateFile::create(&path).expect("create");
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
        let mut f = StateFile::create(&path).expect("create");
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
        let mut f = StateFile::create(&path).expect("create");
        f.write(b"x").expect("write");
        drop(f);
        assert!(matches!(StateFile::create(&path), Err(Error::Exists(_))));
    }

    #[test]
    fn leftover_tmp_from_a_crash_is_removed_and_state_kept() {
        let dir = scratch("tmp");
        let path = dir.join("s");
        let mut f = StateFile::create(&path).expect("create");
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
        let mut f = StateFile::create(&path).expect("create");
        fs::remove_dir_all(&dir).expect("rm");
        assert!(matches!(f.write(b"x"), Err(Error::Io(_, _))));
    }

    fn raw(path: &Path) -> Vec<u8> {
        fs::read(path).expect("read")
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn writes_after_the_first_are_in_place_and_the_replaced_state_is_wiped() {
        let dir = scratch("inplace");
        let path = dir.join("s");
        let mut f = StateFile::create(&path).expect("create");
        f.write(b"state number one: key AAAA").expect("write");
        let size = fs::metadata(&path).expect("meta").len();
        for i in 0..20 {
            f.write(format!("state {i}: key {i:04}").as_bytes())
                .expect("write");
            assert_eq!(fs::metadata(&path).expect("meta").len(), size);
        }
        assert_eq!(f.rebuilds(), 1);
        let file = raw(&path);
        assert!(contains(&file, b"state 19: key 0019"));
        for old in [&b"key AAAA"[..], b"key 0018", b"key 0000"] {
            assert!(!contains(&file, old), "an old state is still in the file");
        }
        assert_eq!(
            fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        drop(f);
        assert_eq!(
            StateFile::open(&path).expect("open").1,
            b"state 19: key 0019"
        );
    }

    #[test]
    fn growing_past_a_slot_rebuilds_the_file_and_shrinking_stays_in_place() {
        let dir = scratch("grow");
        let path = dir.join("s");
        let mut f = StateFile::create(&path).expect("create");
        f.write(b"small").expect("write");
        let big = vec![7u8; 100_000];
        f.write(&big).expect("write");
        assert_eq!(f.rebuilds(), 2);
        f.write(b"small again").expect("write");
        assert_eq!(f.rebuilds(), 2);
        assert!(
            !contains(&raw(&path), &big[..64]),
            "the big state was wiped"
        );
        drop(f);
        let (mut f, data) = StateFile::open(&path).expect("open");
        assert_eq!(data, b"small again");
        f.write(&big).expect("write");
        drop(f);
        assert_eq!(StateFile::open(&path).expect("open").1, big);
    }

    #[test]
    fn a_torn_write_leaves_the_previous_state() {
        let dir = scratch("torn");
        let path = dir.join("s");
        let mut f = StateFile::create(&path).expect("create");
        f.write(b"first").expect("write");
        f.write(b"second").expect("write");
        drop(f);
        // A crash in the middle of the third write: garbage in the slot being written.
        let mut file = raw(&path);
        let layout = slots::Layout::for_payload(5);
        let target = layout.offset(0) as usize;
        file[target..target + 300].fill(0xA5);
        fs::write(&path, &file).expect("write");
        let (mut f, data) = StateFile::open(&path).expect("open");
        assert_eq!(data, b"second");
        f.write(b"third").expect("write");
        drop(f);
        assert_eq!(StateFile::open(&path).expect("open").1, b"third");
    }

    #[test]
    fn a_crash_before_the_wipe_keeps_the_newer_state_and_wipes_the_older_at_open() {
        let dir = scratch("stale");
        let path = dir.join("s");
        let mut f = StateFile::create(&path).expect("create");
        f.write(b"older secret").expect("write");
        let with_older = raw(&path);
        f.write(b"newer secret").expect("write");
        drop(f);
        // Put the wiped slot back, as if the crash came before its zeros reached the disk.
        let layout = slots::Layout::for_payload(12);
        let (a, len) = (layout.offset(0) as usize, layout.slot_size);
        let mut file = raw(&path);
        file[a..a + len].copy_from_slice(&with_older[a..a + len]);
        fs::write(&path, &file).expect("write");
        let (_f, data) = StateFile::open(&path).expect("open");
        assert_eq!(data, b"newer secret");
        assert!(!contains(&raw(&path), b"older secret"));
    }

    #[test]
    fn format_1_files_open_and_convert_on_the_first_write() {
        let dir = scratch("v1");
        let path = dir.join("s");
        fs::write(&path, b"PRVSTMLS v1 snapshot").expect("write");
        let (mut f, data) = StateFile::open(&path).expect("open");
        assert_eq!(data, b"PRVSTMLS v1 snapshot");
        f.write(b"converted").expect("write");
        assert_eq!(f.rebuilds(), 1);
        assert!(raw(&path).starts_with(slots::MAGIC));
        drop(f);
        assert_eq!(StateFile::open(&path).expect("open").1, b"converted");
    }

    #[test]
    fn a_file_with_no_valid_slot_is_refused_not_misread() {
        let dir = scratch("corrupt");
        let path = dir.join("s");
        let mut f = StateFile::create(&path).expect("create");
        f.write(b"a").expect("write");
        f.write(b"b").expect("write");
        drop(f);
        let mut file = raw(&path);
        for b in &mut file[slots::PAGE..] {
            *b ^= 0xFF;
        }
        fs::write(&path, &file).expect("write");
        assert!(matches!(StateFile::open(&path), Err(Error::Corrupt(_, _))));
    }
}
