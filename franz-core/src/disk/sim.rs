//! The simulated disk: files in memory, a crash model and injected faults.
//!
//! Every random decision comes from one ChaCha8 stream seeded at construction, so the same
//! seed and the same calls give the same faults. The crash model:
//! - a file's content is durable once [`DiskFile::sync`] or [`MappedFile::flush`] returns;
//! - a file's creation, rename or removal is durable once [`Disk::sync_dir`] on its folder
//!   returns (folders themselves are durable at once);
//! - on [`SimDisk::crash`], each file keeps its durable content plus, with probability
//!   `torn_write_probability`, an in-order prefix of its unsynced writes whose last write
//!   may be cut at a sector boundary. Every handle opened before the crash stops working.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Disk, DiskFile, MappedFile, SECTOR_BYTES};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// Fault rates of a [`SimDisk`]. The default injects nothing but keeps the crash model.
#[derive(Clone, Debug)]
pub struct SimDiskFaults {
    /// Probability that a read fails with EIO.
    pub read_error_probability: f64,
    /// Probability that a write fails with EIO before changing anything.
    pub write_error_probability: f64,
    /// Probability that a sync fails with EIO. The synced data is then not durable.
    pub fsync_error_probability: f64,
    /// Total bytes the disk stores before writes fail with ENOSPC; `None` for no limit.
    pub capacity_bytes: Option<u64>,
    /// Upper bound of a random delay before each read, write or sync; zero for none.
    pub max_io_delay: Duration,
    /// Probability, per file, that a crash keeps part of the unsynced writes (a torn tail)
    /// instead of dropping them all.
    pub torn_write_probability: f64,
}

impl Default for SimDiskFaults {
    fn default() -> Self {
        SimDiskFaults {
            read_error_probability: 0.0,
            write_error_probability: 0.0,
            fsync_error_probability: 0.0,
            capacity_bytes: None,
            max_io_delay: Duration::ZERO,
            torn_write_probability: 0.5,
        }
    }
}

/// An in-memory, deterministic disk that loses unsynced writes on a simulated crash.
///
/// Clones share the same files.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<SimState>>,
}

struct SimState {
    /// The one random stream behind every fault and crash draw.
    rng: ChaCha8Rng,
    /// Fault rates in force.
    faults: SimDiskFaults,
    /// Bumped by every crash so that handles from before it fail.
    generation: u64,
    /// The folder tree as the running process reads it.
    entries: BTreeMap<PathBuf, Entry>,
    /// The folder tree as it would be found after a crash.
    durable_entries: BTreeMap<PathBuf, Entry>,
    /// File contents by inode number; an inode outlives the removal of its last path.
    inodes: BTreeMap<u64, Inode>,
    /// Next inode number to hand out.
    next_inode: u64,
    /// Set by [`SimDisk::fail_next_fsync`]: the next sync fails whatever the rate.
    fail_next_fsync: bool,
    /// File syncs that succeeded, so tests can see group commit at work.
    syncs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(u64),
}

#[derive(Default)]
struct Inode {
    /// Content as the running process reads it.
    data: Vec<u8>,
    /// Content as it would be found after a crash.
    durable: Vec<u8>,
    /// Changes since the last sync, oldest first, replayed in part by a crash.
    unsynced: Vec<Change>,
}

enum Change {
    Write { position: u64, data: Vec<u8> },
    SetLen(u64),
}

impl Inode {
    fn apply(data: &mut Vec<u8>, change: &Change) {
        match change {
            Change::Write { position, data: bytes } => {
                let start = *position as usize;
                let end = start + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[start..end].copy_from_slice(bytes);
            }
            Change::SetLen(len) => data.resize(*len as usize, 0),
        }
    }

    fn change(&mut self, change: Change) {
        Inode::apply(&mut self.data, &change);
        self.unsynced.push(change);
    }

    fn sync(&mut self) {
        self.durable.clone_from(&self.data);
        self.unsynced.clear();
    }

    /// Rolls the content back to what a crash leaves behind.
    fn crash(&mut self, rng: &mut ChaCha8Rng, torn_write_probability: f64) {
        let mut survivor = std::mem::take(&mut self.durable);
        if !self.unsynced.is_empty() && rng.random_bool(torn_write_probability) {
            let kept_changes = rng.random_range(0..self.unsynced.len());
            for change in &self.unsynced[..kept_changes] {
                Inode::apply(&mut survivor, change);
            }
            if let Change::Write { position, data } = &self.unsynced[kept_changes] {
                let end = position + data.len() as u64;
                let last_sector_end = end / SECTOR_BYTES * SECTOR_BYTES;
                if last_sector_end > *position {
                    let torn = Change::Write {
                        position: *position,
                        data: data[..(last_sector_end - position) as usize].to_vec(),
                    };
                    Inode::apply(&mut survivor, &torn);
                }
            }
        }
        self.data.clone_from(&survivor);
        self.durable = survivor;
        self.unsynced.clear();
    }
}

fn injected(code: i32, fault: &str) -> io::Error {
    let error = io::Error::from_raw_os_error(code);
    io::Error::new(error.kind(), format!("simulated {fault}: {error}"))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no such file: {}", path.display()))
}

impl SimDisk {
    /// Creates an empty disk whose faults and crash draws come from `seed`.
    pub fn new(seed: u64) -> SimDisk {
        SimDisk::with_faults(seed, SimDiskFaults::default())
    }

    /// Creates an empty disk with the given fault rates.
    pub fn with_faults(seed: u64, faults: SimDiskFaults) -> SimDisk {
        let root = BTreeMap::from([(PathBuf::from("/"), Entry::Dir)]);
        SimDisk {
            state: Arc::new(Mutex::new(SimState {
                rng: ChaCha8Rng::seed_from_u64(seed),
                faults,
                generation: 0,
                entries: root.clone(),
                durable_entries: root,
                inodes: BTreeMap::new(),
                next_inode: 1,
                fail_next_fsync: false,
                syncs: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while the lock was held already failed the test; the state is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the fault rates.
    pub fn set_faults(&self, faults: SimDiskFaults) {
        self.lock().faults = faults;
    }

    /// Simulates a power loss: unsynced data and folder changes are lost, the last write of
    /// a file may be torn, and every open handle stops working.
    pub fn crash(&self) {
        let mut state = self.lock();
        let state = &mut *state;
        state.generation += 1;
        state.entries.clone_from(&state.durable_entries);
        let probability = state.faults.torn_write_probability;
        for inode in state.inodes.values_mut() {
            inode.crash(&mut state.rng, probability);
        }
        state.fail_next_fsync = false;
    }

    /// Returns how many file syncs have succeeded.
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// Makes the next sync of any file fail with EIO.
    pub fn fail_next_fsync(&self) {
        self.lock().fail_next_fsync = true;
    }

    /// Flips one bit of the file at `path`, in both its current and its durable content,
    /// as bit rot at rest would.
    pub fn flip_bit(&self, path: &Path, position: u64, bit: u8) -> io::Result<()> {
        let mut state = self.lock();
        let inode = state.file_inode(path)?;
        let inode = state.inodes.get_mut(&inode).expect("entry points to a live inode");
        let index = position as usize;
        if index >= inode.data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("position {position} is past the end of {}", path.display()),
            ));
        }
        inode.data[index] ^= 1 << (bit % 8);
        if index < inode.durable.len() {
            inode.durable[index] ^= 1 << (bit % 8);
        }
        Ok(())
    }

    /// Returns the current content of the file at `path`, for tests that inspect it.
    pub fn contents(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.lock();
        let inode = state.file_inode(path)?;
        Ok(state.inodes[&inode].data.clone())
    }

    /// Returns the bytes stored in the files that the running process reads.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// Draws a number from the disk's RNG, for tests that need one more random choice tied
    /// to the same seed.
    pub fn random_below(&self, bound: u64) -> u64 {
        self.lock().rng.random_range(0..bound.max(1))
    }

    async fn delay(&self) {
        let delay = {
            let mut state = self.lock();
            let max = state.faults.max_io_delay;
            if max.is_zero() {
                return;
            }
            let nanos = state.rng.random_range(0..=max.as_nanos() as u64);
            Duration::from_nanos(nanos)
        };
        tokio::time::sleep(delay).await;
    }

    fn handle(&self, inode: u64, path: &Path) -> SimFile {
        SimFile {
            disk: self.clone(),
            inode,
            generation: self.lock().generation,
            path: path.to_path_buf(),
        }
    }
}

impl SimState {
    fn file_inode(&self, path: &Path) -> io::Result<u64> {
        match self.entries.get(path) {
            Some(Entry::File(inode)) => Ok(*inode),
            Some(Entry::Dir) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a folder", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        let parent = path.parent().unwrap_or(Path::new("/"));
        match self.entries.get(parent) {
            Some(Entry::Dir) => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("folder {} does not exist", parent.display()),
            )),
        }
    }

    fn open_inode(&mut self, path: &Path, create: bool) -> io::Result<u64> {
        match self.file_inode(path) {
            Ok(inode) => Ok(inode),
            Err(error) if error.kind() == io::ErrorKind::NotFound && create => {
                self.check_parent(path)?;
                let inode = self.next_inode;
                self.next_inode += 1;
                self.inodes.insert(inode, Inode::default());
                self.entries.insert(path.to_path_buf(), Entry::File(inode));
                Ok(inode)
            }
            Err(error) => Err(error),
        }
    }

    fn used_bytes(&self) -> u64 {
        self.entries
            .values()
            .filter_map(|entry| match entry {
                Entry::File(inode) => Some(self.inodes[inode].data.len() as u64),
                Entry::Dir => None,
            })
            .sum()
    }

    /// Fails a write that would grow the disk past its capacity.
    fn check_space(&self, inode: u64, new_len: u64) -> io::Result<()> {
        let Some(capacity) = self.faults.capacity_bytes else {
            return Ok(());
        };
        let current = self.inodes[&inode].data.len() as u64;
        if new_len > current && self.used_bytes() + (new_len - current) > capacity {
            return Err(injected(ENOSPC, "full disk"));
        }
        Ok(())
    }

    fn draw(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.rng.random_bool(probability.min(1.0))
    }
}

impl Disk for SimDisk {
    type File = SimFile;
    type Map = SimMap;

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        for ancestor in path.ancestors() {
            match state.entries.get(ancestor) {
                Some(Entry::Dir) => continue,
                Some(Entry::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} is a file", ancestor.display()),
                    ))
                }
                None => {
                    state.entries.insert(ancestor.to_path_buf(), Entry::Dir);
                    state.durable_entries.insert(ancestor.to_path_buf(), Entry::Dir);
                }
            }
        }
        Ok(())
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let state = self.lock();
        if state.entries.get(path) != Some(&Entry::Dir) {
            return Err(not_found(path));
        }
        Ok(state
            .entries
            .keys()
            .filter(|entry| entry.parent() == Some(path))
            .cloned()
            .collect())
    }

    async fn open(&self, path: &Path, create: bool) -> io::Result<SimFile> {
        let inode = self.lock().open_inode(path, create)?;
        Ok(self.handle(inode, path))
    }

    async fn map(&self, path: &Path, len: u64) -> io::Result<SimMap> {
        let file = self.open(path, true).await?;
        file.set_len(len).await?;
        Ok(SimMap { file, len })
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().entries.contains_key(path))
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.file_inode(path)?;
        state.entries.remove(path);
        Ok(())
    }

    /// Folders are durable at once here, so a removed one is gone after a crash too.
    async fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.entries.get(path) != Some(&Entry::Dir) {
            return Err(not_found(path));
        }
        if state.entries.keys().any(|entry| entry.parent() == Some(path)) {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{} is not empty", path.display()),
            ));
        }
        state.entries.remove(path);
        state.durable_entries.retain(|entry, _| !entry.starts_with(path));
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let inode = state.file_inode(from)?;
        state.check_parent(to)?;
        state.entries.remove(from);
        state.entries.insert(to.to_path_buf(), Entry::File(inode));
        Ok(())
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.delay().await;
        let mut state = self.lock();
        let state = &mut *state;
        if state.entries.get(path) != Some(&Entry::Dir) {
            return Err(not_found(path));
        }
        state.durable_entries.retain(|entry, _| entry.parent() != Some(path));
        for (entry, kind) in &state.entries {
            if entry.parent() == Some(path) {
                state.durable_entries.insert(entry.clone(), *kind);
            }
        }
        Ok(())
    }
}

/// A handle to a file of a [`SimDisk`].
pub struct SimFile {
    disk: SimDisk,
    inode: u64,
    /// The disk's crash generation when this handle was opened.
    generation: u64,
    /// The path the handle was opened with, for error messages.
    path: PathBuf,
}

impl SimFile {
    /// Locks the disk, failing when a crash happened since the handle was opened.
    fn lock(&self) -> io::Result<MutexGuard<'_, SimState>> {
        let state = self.disk.lock();
        if state.generation != self.generation {
            return Err(io::Error::other(format!(
                "handle to {} was opened before a simulated crash",
                self.path.display()
            )));
        }
        Ok(state)
    }

    fn read_now(&self, position: u64, buf: &mut [u8]) -> io::Result<()> {
        let state = self.lock()?;
        let data = &state.inodes[&self.inode].data;
        let start = position as usize;
        let end = start + buf.len();
        if end > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {} bytes at {position} passes the end of {} ({} bytes)",
                    buf.len(),
                    self.path.display(),
                    data.len()
                ),
            ));
        }
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }

    fn change_now(&self, change: Change) -> io::Result<()> {
        let mut state = self.lock()?;
        let new_len = match &change {
            Change::Write { position, data } => {
                let end = position + data.len() as u64;
                end.max(state.inodes[&self.inode].data.len() as u64)
            }
            Change::SetLen(len) => *len,
        };
        state.check_space(self.inode, new_len)?;
        state.inodes.get_mut(&self.inode).expect("open inode").change(change);
        Ok(())
    }

    fn sync_now(&self) -> io::Result<()> {
        let mut state = self.lock()?;
        let probability = state.faults.fsync_error_probability;
        if std::mem::take(&mut state.fail_next_fsync) || state.draw(probability) {
            return Err(injected(EIO, "fsync failure"));
        }
        state.inodes.get_mut(&self.inode).expect("open inode").sync();
        state.syncs += 1;
        Ok(())
    }
}

impl DiskFile for SimFile {
    async fn len(&self) -> io::Result<u64> {
        Ok(self.lock()?.inodes[&self.inode].data.len() as u64)
    }

    async fn read_at(&self, position: u64, len: usize) -> io::Result<Bytes> {
        self.disk.delay().await;
        {
            let mut state = self.lock()?;
            let probability = state.faults.read_error_probability;
            if state.draw(probability) {
                return Err(injected(EIO, "read error"));
            }
        }
        let mut buf = vec![0; len];
        self.read_now(position, &mut buf)?;
        Ok(Bytes::from(buf))
    }

    async fn write_at(&self, position: u64, data: &[u8]) -> io::Result<()> {
        self.disk.delay().await;
        {
            let mut state = self.lock()?;
            let probability = state.faults.write_error_probability;
            if state.draw(probability) {
                return Err(injected(EIO, "write error"));
            }
        }
        self.change_now(Change::Write {
            position,
            data: data.to_vec(),
        })
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.change_now(Change::SetLen(len))
    }

    async fn sync(&self) -> io::Result<()> {
        self.disk.delay().await;
        self.sync_now()
    }
}

/// A mapped file of a [`SimDisk`]: the same crash model as a plain file.
pub struct SimMap {
    file: SimFile,
    /// The mapped length, kept here so that `len` needs no lock.
    len: u64,
}

impl MappedFile for SimMap {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, position: u64, buf: &mut [u8]) {
        assert!(position + buf.len() as u64 <= self.len, "read past the mapped length");
        // A map opened before a crash reads zeros. The storage engine never reads one,
        // because a crash ends the process that opened it.
        if self.file.read_now(position, buf).is_err() {
            buf.fill(0);
        }
    }

    fn write(&mut self, position: u64, data: &[u8]) {
        assert!(position + data.len() as u64 <= self.len, "write past the mapped length");
        // Within the mapped length a write never grows the file, so only a stale handle
        // fails here, and its writes are lost as they would be after a crash.
        let _ = self.file.change_now(Change::Write {
            position,
            data: data.to_vec(),
        });
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_now()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.change_now(Change::SetLen(len))?;
        self.len = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(future)
    }

    fn folder() -> PathBuf {
        PathBuf::from("/data/topic-0")
    }

    #[test]
    fn crash_drops_unsynced_writes() {
        let disk = SimDisk::with_faults(
            7,
            SimDiskFaults {
                torn_write_probability: 0.0,
                ..SimDiskFaults::default()
            },
        );
        block_on(async {
            disk.create_dir_all(&folder()).await.unwrap();
            let path = folder().join("a.log");
            let file = disk.open(&path, true).await.unwrap();
            disk.sync_dir(&folder()).await.unwrap();
            file.write_at(0, b"synced").await.unwrap();
            file.sync().await.unwrap();
            file.write_at(6, b"-lost").await.unwrap();

            disk.crash();

            assert!(file.read_at(0, 1).await.is_err(), "stale handle must fail");
            let file = disk.open(&path, false).await.unwrap();
            assert_eq!(file.len().await.unwrap(), 6);
            assert_eq!(&file.read_at(0, 6).await.unwrap()[..], b"synced");
        });
    }

    #[test]
    fn crash_tears_at_sector_boundary() {
        let disk = SimDisk::with_faults(
            3,
            SimDiskFaults {
                torn_write_probability: 1.0,
                ..SimDiskFaults::default()
            },
        );
        block_on(async {
            disk.create_dir_all(&folder()).await.unwrap();
            let path = folder().join("a.log");
            let file = disk.open(&path, true).await.unwrap();
            disk.sync_dir(&folder()).await.unwrap();
            file.write_at(0, &[1; 100]).await.unwrap();
            file.sync().await.unwrap();
            file.write_at(100, &[2; 2000]).await.unwrap();

            disk.crash();

            let data = disk.contents(&path).unwrap();
            assert!(
                data.len() == 100 || data.len() as u64 % SECTOR_BYTES == 0,
                "len {}",
                data.len()
            );
            assert!(data.len() <= 2048);
            assert_eq!(&data[..100], &[1; 100]);
            assert!(data[100..].iter().all(|byte| *byte == 2));
        });
    }

    #[test]
    fn unsynced_file_creation_is_lost() {
        let disk = SimDisk::new(1);
        block_on(async {
            disk.create_dir_all(&folder()).await.unwrap();
            let kept = folder().join("kept");
            let lost = folder().join("lost");
            disk.open(&kept, true).await.unwrap();
            disk.sync_dir(&folder()).await.unwrap();
            disk.open(&lost, true).await.unwrap();
            disk.remove_file(&kept).await.unwrap();

            disk.crash();

            assert!(disk.exists(&kept).await.unwrap());
            assert!(!disk.exists(&lost).await.unwrap());
        });
    }

    #[test]
    fn injected_fsync_failure_keeps_data_volatile() {
        let disk = SimDisk::with_faults(
            5,
            SimDiskFaults {
                torn_write_probability: 0.0,
                ..SimDiskFaults::default()
            },
        );
        block_on(async {
            disk.create_dir_all(&folder()).await.unwrap();
            let path = folder().join("a.log");
            let file = disk.open(&path, true).await.unwrap();
            disk.sync_dir(&folder()).await.unwrap();
            file.write_at(0, b"data").await.unwrap();
            disk.fail_next_fsync();

            let error = file.sync().await.unwrap_err();
            assert!(error.to_string().contains("fsync"), "{error}");

            disk.crash();
            assert_eq!(disk.contents(&path).unwrap(), b"");
        });
    }

    #[test]
    fn capacity_limit_returns_enospc() {
        let disk = SimDisk::with_faults(
            9,
            SimDiskFaults {
                capacity_bytes: Some(10),
                ..SimDiskFaults::default()
            },
        );
        block_on(async {
            disk.create_dir_all(&folder()).await.unwrap();
            let file = disk.open(&folder().join("a.log"), true).await.unwrap();
            file.write_at(0, &[0; 8]).await.unwrap();
            let error = file.write_at(8, &[0; 8]).await.unwrap_err();
            assert!(error.to_string().contains("No space left"), "{error}");
            assert_eq!(file.len().await.unwrap(), 8);
        });
    }

    #[test]
    fn read_errors_follow_the_seed() {
        let faults = SimDiskFaults {
            read_error_probability: 0.5,
            ..SimDiskFaults::default()
        };
        let outcomes = |seed| {
            let disk = SimDisk::with_faults(seed, faults.clone());
            block_on(async {
                disk.create_dir_all(&folder()).await.unwrap();
                let file = disk.open(&folder().join("a.log"), true).await.unwrap();
                file.write_at(0, &[0; 8]).await.unwrap();
                let mut outcomes = Vec::new();
                for _ in 0..64 {
                    outcomes.push(file.read_at(0, 8).await.is_ok());
                }
                outcomes
            })
        };
        assert_eq!(outcomes(11), outcomes(11));
        assert_ne!(outcomes(11), outcomes(12));
        assert!(outcomes(11).contains(&false));
    }

    #[test]
    fn flipped_bit_survives_crash() {
        let disk = SimDisk::new(2);
        block_on(async {
            disk.create_dir_all(&folder()).await.unwrap();
            let path = folder().join("a.log");
            let file = disk.open(&path, true).await.unwrap();
            disk.sync_dir(&folder()).await.unwrap();
            file.write_at(0, &[0; 4]).await.unwrap();
            file.sync().await.unwrap();
            disk.flip_bit(&path, 2, 1).unwrap();
            disk.crash();
            assert_eq!(disk.contents(&path).unwrap(), [0, 0, 2, 0]);
        });
    }
}
