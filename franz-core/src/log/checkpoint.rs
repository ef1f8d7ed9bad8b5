//! The partition checkpoint: log start offset, recovery point and whether the last
//! shutdown was clean, in one small text file replaced atomically.
//!
//! ```text
//! franz-log-checkpoint 1
//! log_start_offset 0
//! recovery_point 1200
//! clean_shutdown false
//! crc32c 3f2a91c4
//! ```
//!
//! The CRC covers every line above it. A file that fails to parse is ignored, so the next
//! start recovers from the first segment.

use std::path::Path;

use crate::disk::{Disk, DiskFile};

use super::LogError;

pub(crate) const CHECKPOINT_FILE: &str = "partition.checkpoint";
const TEMPORARY_SUFFIX: &str = ".tmp";
const HEADER: &str = "franz-log-checkpoint 1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub log_start_offset: i64,
    /// Every offset below this one was synced.
    pub recovery_point: i64,
    /// Set by a clean close, cleared as soon as the log opens.
    pub clean_shutdown: bool,
}

impl Checkpoint {
    fn body(&self) -> String {
        format!(
            "{HEADER}\nlog_start_offset {}\nrecovery_point {}\nclean_shutdown {}\n",
            self.log_start_offset, self.recovery_point, self.clean_shutdown
        )
    }

    fn encode(&self) -> String {
        let body = self.body();
        let crc = crc32c::crc32c(body.as_bytes());
        format!("{body}crc32c {crc:08x}\n")
    }

    fn decode(text: &str) -> Result<Checkpoint, String> {
        let lines: Vec<&str> = text.lines().collect();
        let [header, start, recovery, clean, crc] = lines[..] else {
            return Err(format!("expected 5 lines, found {}", lines.len()));
        };
        if header != HEADER {
            return Err(format!("unknown header {header:?}"));
        }
        let field = |line: &str, name: &str| -> Result<String, String> {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| format!("expected field {name}, found {line:?}"))
        };
        let number = |line: &str, name: &str| -> Result<i64, String> {
            let value = field(line, name)?;
            value.parse().map_err(|_| format!("{name} {value:?} is not a number"))
        };
        let checkpoint = Checkpoint {
            log_start_offset: number(start, "log_start_offset")?,
            recovery_point: number(recovery, "recovery_point")?,
            clean_shutdown: match field(clean, "clean_shutdown")?.as_str() {
                "true" => true,
                "false" => false,
                other => return Err(format!("clean_shutdown {other:?} is not true or false")),
            },
        };
        let stored = field(crc, "crc32c")?;
        let computed = format!("{:08x}", crc32c::crc32c(checkpoint.body().as_bytes()));
        if stored != computed {
            return Err(format!("crc32c mismatch: stored {stored}, computed {computed}"));
        }
        Ok(checkpoint)
    }

    /// Reads the checkpoint of the partition folder `dir`. Returns `None` when the file is
    /// missing or invalid; an invalid one is logged.
    pub async fn read<D: Disk>(disk: &D, dir: &Path) -> Result<Option<Checkpoint>, LogError> {
        let path = dir.join(CHECKPOINT_FILE);
        let file = match disk.open(&path, false).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LogError::io("open checkpoint", &path, source)),
        };
        let len = file
            .len()
            .await
            .map_err(|source| LogError::io("read checkpoint", &path, source))?;
        let bytes = file
            .read_at(0, len as usize)
            .await
            .map_err(|source| LogError::io("read checkpoint", &path, source))?;
        let decoded = std::str::from_utf8(&bytes)
            .map_err(|error| error.to_string())
            .and_then(Checkpoint::decode);
        match decoded {
            Ok(checkpoint) => Ok(Some(checkpoint)),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring invalid checkpoint; recovering from the first segment");
                Ok(None)
            }
        }
    }

    /// Replaces the checkpoint durably: writes a temporary file, syncs it, renames it over
    /// the old one and syncs the folder.
    pub async fn write<D: Disk>(&self, disk: &D, dir: &Path) -> Result<(), LogError> {
        let path = dir.join(CHECKPOINT_FILE);
        let temporary = dir.join(format!("{CHECKPOINT_FILE}{TEMPORARY_SUFFIX}"));
        let write_error = |source| LogError::io("write checkpoint", &temporary, source);
        let file = disk.open(&temporary, true).await.map_err(write_error)?;
        let text = self.encode();
        file.set_len(0).await.map_err(write_error)?;
        file.write_at(0, text.as_bytes()).await.map_err(write_error)?;
        file.sync()
            .await
            .map_err(|source| LogError::fatal_io("sync checkpoint", &temporary, source))?;
        disk.rename(&temporary, &path)
            .await
            .map_err(|source| LogError::io("replace checkpoint", &path, source))?;
        disk.sync_dir(dir)
            .await
            .map_err(|source| LogError::fatal_io("sync folder", dir, source))
    }

    /// Returns whether `name` is a leftover of an interrupted [`Checkpoint::write`].
    pub fn is_temporary(name: &str) -> bool {
        name.ends_with(TEMPORARY_SUFFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips() {
        let checkpoint = Checkpoint {
            log_start_offset: 5,
            recovery_point: 1200,
            clean_shutdown: true,
        };
        assert_eq!(Checkpoint::decode(&checkpoint.encode()), Ok(checkpoint));
    }

    #[test]
    fn checkpoint_rejects_changed_value() {
        let checkpoint = Checkpoint {
            log_start_offset: 5,
            recovery_point: 1200,
            clean_shutdown: false,
        };
        let tampered = checkpoint.encode().replace("1200", "1300");
        let error = Checkpoint::decode(&tampered).unwrap_err();
        assert!(error.contains("crc32c mismatch"), "{error}");
    }

    #[test]
    fn checkpoint_rejects_missing_line() {
        let error = Checkpoint::decode("franz-log-checkpoint 1\n").unwrap_err();
        assert!(error.contains("expected 5 lines"), "{error}");
    }
}
