//! The real disk: std files for segments and memmap2 for indexes.
//!
//! This is the one module of franz-core allowed to call `std::fs`. Reads and writes block
//! the calling thread, as Kafka's request handlers do on a page-cache read or write. Syncs
//! wait for the device, so they run on tokio's blocking threads: the runtime's workers
//! go on serving other connections, whose appends then share the next sync.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use memmap2::MmapMut;

use super::{Disk, DiskFile, MappedFile};

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealDisk;

/// A std file opened for reading and writing.
#[derive(Debug)]
pub struct RealFile {
    /// Shared with the blocking thread that syncs it.
    file: Arc<File>,
}

/// Runs a blocking file operation on tokio's blocking threads.
// madsim marks spawn_blocking deprecated; simulations use `SimDisk`, never this disk.
#[cfg_attr(madsim, allow(deprecated))]
async fn off_the_runtime<T: Send + 'static>(
    operation: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(operation)
        .await
        .map_err(|error| io::Error::other(format!("a blocking file operation did not finish: {error}")))?
}

/// A file mapped read-write with memmap2.
#[derive(Debug)]
pub struct RealMap {
    file: File,
    /// `None` while the file is empty, because a zero-length mapping is invalid.
    map: Option<MmapMut>,
}

impl Disk for RealDisk {
    type File = RealFile;
    type Map = RealMap;

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut entries = fs::read_dir(path)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<io::Result<Vec<_>>>()?;
        entries.sort();
        Ok(entries)
    }

    async fn open(&self, path: &Path, create: bool) -> io::Result<RealFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(RealFile { file: Arc::new(file) })
    }

    async fn map(&self, path: &Path, len: u64) -> io::Result<RealMap> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut map = RealMap { file, map: None };
        map.set_len(len)?;
        Ok(map)
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    async fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let folder = File::open(path)?;
        off_the_runtime(move || folder.sync_all()).await
    }
}

impl DiskFile for RealFile {
    async fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    // TODO: a fetch copies the data from the page cache into this buffer; serving reads
    // from mapped segments or with sendfile would remove that copy.
    async fn read_at(&self, position: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = BytesMut::zeroed(len);
        self.file.read_exact_at(&mut buf, position)?;
        Ok(buf.freeze())
    }

    async fn write_at(&self, position: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, position)
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    async fn sync(&self) -> io::Result<()> {
        let file = self.file.clone();
        off_the_runtime(move || file.sync_data()).await
    }
}

impl MappedFile for RealMap {
    fn len(&self) -> u64 {
        self.map.as_ref().map_or(0, |map| map.len() as u64)
    }

    fn read(&self, position: u64, buf: &mut [u8]) {
        let start = position as usize;
        let map = self.map.as_ref().expect("read from an empty mapped file");
        buf.copy_from_slice(&map[start..start + buf.len()]);
    }

    fn write(&mut self, position: u64, data: &[u8]) {
        let start = position as usize;
        let map = self.map.as_mut().expect("write to an empty mapped file");
        map[start..start + data.len()].copy_from_slice(data);
    }

    fn flush(&self) -> io::Result<()> {
        if let Some(map) = &self.map {
            map.flush()?;
        }
        self.file.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        if let Some(map) = self.map.take() {
            map.flush()?;
        }
        self.file.set_len(len)?;
        if len > 0 {
            // SAFETY: the storage engine is the only writer of its index files, and it holds
            // this map behind `&mut self` for every write. Another process that truncates the
            // file while it is mapped would make reads fault, as with any mmap'd index.
            self.map = Some(unsafe { MmapMut::map_mut(&self.file)? });
        }
        Ok(())
    }
}
