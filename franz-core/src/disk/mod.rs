//! The disk seam: every file the storage engine reads or writes goes through [`Disk`].
//!
//! Two implementations exist. [`RealDisk`] uses std files and memmap2. [`SimDisk`] keeps
//! files in memory, loses unsynced writes on a simulated crash and injects faults from a
//! seeded RNG, so that the simulation tests can replay any failure from its seed.
//!
//! Nothing outside `real.rs` may touch `std::fs` or memmap2 directly.

mod real;
mod sim;

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

pub use real::RealDisk;
pub use sim::{SimDisk, SimDiskFaults};

/// Size of a disk sector in bytes: the unit in which [`SimDisk`] tears a write on a crash.
pub const SECTOR_BYTES: u64 = 512;

/// A file system holding the partition folders.
///
/// Paths are plain `Path`s. Creating, renaming and removing a file only becomes durable
/// after [`Disk::sync_dir`] on its parent folder.
pub trait Disk: Clone + Send + Sync + 'static {
    /// An open file, read and written by position.
    type File: DiskFile;
    /// A file mapped into memory, used for the offset and time indexes.
    type Map: MappedFile;

    /// Creates `path` and every missing parent folder.
    fn create_dir_all(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;

    /// Lists the entries of the folder `path`, sorted by name.
    fn list_dir(&self, path: &Path) -> impl Future<Output = io::Result<Vec<PathBuf>>> + Send;

    /// Opens the file at `path` for reading and writing, creating it when `create` is set.
    /// Fails with `NotFound` when the file is missing and `create` is not set.
    fn open(&self, path: &Path, create: bool) -> impl Future<Output = io::Result<Self::File>> + Send;

    /// Opens or creates the file at `path`, sets its length to `len` bytes and maps it.
    fn map(&self, path: &Path, len: u64) -> impl Future<Output = io::Result<Self::Map>> + Send;

    /// Returns whether a file or folder exists at `path`.
    fn exists(&self, path: &Path) -> impl Future<Output = io::Result<bool>> + Send;

    /// Removes the file at `path`. Open handles keep working on the removed file.
    fn remove_file(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;

    /// Removes the empty folder `path`.
    fn remove_dir(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;

    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> impl Future<Output = io::Result<()>> + Send;

    /// Makes the creations, renames and removals inside the folder `path` durable.
    fn sync_dir(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
}

/// An open file, read and written by position.
///
/// Writes are durable only after [`DiskFile::sync`] returns `Ok`. A failed sync leaves it
/// unknown which writes reached the disk, so callers must treat it as fatal.
#[allow(clippy::len_without_is_empty)] // A file's emptiness is never asked for.
pub trait DiskFile: Send + Sync + 'static {
    /// Returns the file's length in bytes.
    fn len(&self) -> impl Future<Output = io::Result<u64>> + Send;

    /// Reads `len` bytes at `position`. Fails with `UnexpectedEof` when the file is shorter.
    fn read_at(&self, position: u64, len: usize) -> impl Future<Output = io::Result<Bytes>> + Send;

    /// Writes all of `data` at `position`, growing the file when needed.
    fn write_at(&self, position: u64, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;

    /// Sets the file's length, cutting or zero-filling its end.
    fn set_len(&self, len: u64) -> impl Future<Output = io::Result<()>> + Send;

    /// Makes every write and length change so far durable (fsync).
    fn sync(&self) -> impl Future<Output = io::Result<()>> + Send;
}

/// A file mapped into memory.
///
/// Reads and writes are memory operations and return no errors. Writes are durable only after
/// [`MappedFile::flush`]; the simulated disk loses unflushed writes on a crash.
#[allow(clippy::len_without_is_empty)] // A mapping's emptiness is never asked for.
pub trait MappedFile: Send + Sync + 'static {
    /// Returns the mapped length in bytes.
    fn len(&self) -> u64;

    /// Copies `buf.len()` bytes at `position` into `buf`.
    ///
    /// # Panics
    /// When the range goes past [`MappedFile::len`].
    fn read(&self, position: u64, buf: &mut [u8]);

    /// Writes `data` at `position`.
    ///
    /// # Panics
    /// When the range goes past [`MappedFile::len`].
    fn write(&mut self, position: u64, data: &[u8]);

    /// Makes every write so far durable (msync, then fsync of the file).
    fn flush(&self) -> io::Result<()>;

    /// Changes the file's length and maps it again. Content up to the shorter length stays.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}
