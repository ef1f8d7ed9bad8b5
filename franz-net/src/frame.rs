//! Length-prefixed Kafka frames: a big-endian i32 size, then that many bytes.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Frames up to this size are copied behind their size prefix and written at once.
const SINGLE_WRITE_BYTES: usize = 64 * 1024;

/// A failure to read a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is larger than socket.request.max.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("frame size {size} is negative")]
    NegativeSize { size: i32 },
    #[error("connection closed inside a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame's payload. Returns `None` when the peer closed the connection between
/// frames. A frame larger than `max_bytes` is rejected before its payload is read.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let mut size = [0u8; 4];
    let mut filled = 0;
    while filled < size.len() {
        let read = reader.read(&mut size[filled..]).await?;
        if read == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += read;
    }

    let size = i32::from_be_bytes(size);
    if size < 0 {
        return Err(FrameError::NegativeSize { size });
    }
    let size = size as usize;
    if size > max_bytes {
        return Err(FrameError::TooLarge { size, max: max_bytes });
    }

    let mut payload = BytesMut::zeroed(size);
    reader
        .read_exact(&mut payload)
        .await
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(error),
        })?;
    Ok(Some(payload))
}

/// Writes one frame whose payload is `chunks` in order, without joining them: large
/// chunks (a fetch response's record data) go to the socket as they are.
pub async fn write_frame_chunks<W: AsyncWrite + Unpin>(writer: &mut W, chunks: &[Bytes]) -> std::io::Result<()> {
    if let [payload] = chunks {
        return write_frame(writer, payload).await;
    }
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let size = i32::try_from(total).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("frame of {total} bytes does not fit an i32 size"),
        )
    })?;
    // The size prefix travels with the first chunk, which contains the response header, so
    // that no small write waits on Nagle's algorithm when TCP_NODELAY is off.
    let mut first = Vec::with_capacity(4 + chunks.first().map_or(0, Bytes::len));
    first.extend_from_slice(&size.to_be_bytes());
    if let Some(chunk) = chunks.first() {
        first.extend_from_slice(chunk);
    }
    writer.write_all(&first).await?;
    for chunk in chunks.iter().skip(1) {
        writer.write_all(chunk).await?;
    }
    writer.flush().await
}

/// Writes one frame: the size prefix, then `payload`.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, payload: &[u8]) -> std::io::Result<()> {
    let size = i32::try_from(payload.len()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("frame of {} bytes does not fit an i32 size", payload.len()),
        )
    })?;
    // One write for small frames: a size prefix sent alone waits on Nagle's algorithm
    // and the peer's delayed ACK, about 40 ms on Linux, when TCP_NODELAY is off.
    if payload.len() <= SINGLE_WRITE_BYTES {
        let mut frame = Vec::with_capacity(4 + payload.len());
        frame.extend_from_slice(&size.to_be_bytes());
        frame.extend_from_slice(payload);
        writer.write_all(&frame).await?;
    } else {
        writer.write_all(&size.to_be_bytes()).await?;
        writer.write_all(payload).await?;
    }
    writer.flush().await
}
