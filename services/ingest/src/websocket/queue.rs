//! The bounded queue between the upstreams' readers and the parser workers. Each upstream has
//! an equal share of it, in frames and in bytes (`LOGSTREAM_WS_QUEUE_FRAMES` and
//! `LOGSTREAM_WS_MAX_BUFFERED_BYTES` split between the upstreams), held from the moment a frame
//! is queued until a worker is done with it: the frames waiting or being parsed never take more
//! than the setting, and one upstream flooding the service fills only its own share, so it never
//! makes another's frames drop. A frame that does not fit is refused at once (the reader drops
//! and counts it and reads on: a reader never waits for the workers). A queued frame is a copy
//! of its own size: tungstenite's frames are slices of its read buffer, and a frame waiting in
//! the queue would otherwise keep a whole read buffer alive.

use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::Bytes;

use super::status::Upstream;

/// One frame waiting for a worker, holding its place in its upstream's share.
pub struct Queued {
    pub upstream: Arc<Upstream>,
    pub data: Bytes,
    /// A binary frame (its text not checked yet).
    pub binary: bool,
    _frame: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error("the upstream's share of queued frames is full (LOGSTREAM_WS_QUEUE_FRAMES)")]
    Frames,
    #[error("the upstream's share of buffered bytes is full (LOGSTREAM_WS_MAX_BUFFERED_BYTES)")]
    Bytes,
    #[error("the parser workers are gone (shutting down)")]
    Closed,
}

/// One upstream's share of the queue.
#[derive(Clone)]
pub struct Share {
    frames: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

impl Share {
    /// Frames and bytes this share may have queued at once.
    pub fn new(frames: usize, bytes: usize) -> Self {
        Self {
            frames: Arc::new(Semaphore::new(frames)),
            bytes: Arc::new(Semaphore::new(bytes)),
        }
    }

    /// Bytes free in this share now.
    #[cfg(test)]
    pub fn free_bytes(&self) -> usize {
        self.bytes.available_permits()
    }
}

/// The readers' end of the queue.
#[derive(Clone)]
pub struct Queue {
    sender: mpsc::Sender<Queued>,
}

/// A queue room for `frames` frames in all (the sum of the shares' frames), and its workers' end.
pub fn queue(frames: usize) -> (Queue, mpsc::Receiver<Queued>) {
    let (sender, receiver) = mpsc::channel(frames.max(1));
    (Queue { sender }, receiver)
}

impl Queue {
    /// Queues a copy of a frame of `upstream` within `share`, or says why it does not fit
    /// (never waits).
    pub fn try_push(
        &self,
        share: &Share,
        upstream: &Arc<Upstream>,
        data: &[u8],
        binary: bool,
    ) -> Result<(), Full> {
        let size = u32::try_from(data.len()).map_err(|_| Full::Bytes)?;
        let frame = share
            .frames
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Frames)?;
        let bytes = share
            .bytes
            .clone()
            .try_acquire_many_owned(size)
            .map_err(|_| Full::Bytes)?;
        let queued = Queued {
            upstream: upstream.clone(),
            data: Bytes::copy_from_slice(data),
            binary,
            _frame: frame,
            _bytes: bytes,
        };
        // The shares add up to the channel's room, so it is full only when the workers are gone.
        self.sender.try_send(queued).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Full::Frames,
            mpsc::error::TrySendError::Closed(_) => Full::Closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream() -> Arc<Upstream> {
        Arc::new(Upstream::new("ws://h/".into(), "h".into()))
    }

    #[test]
    fn a_share_holds_its_bytes_until_the_worker_is_done() {
        let (queue, mut receiver) = queue(10);
        let share = Share::new(10, 100);
        let u = upstream();
        let frame = |n: usize| vec![b'x'; n];
        assert_eq!(queue.try_push(&share, &u, &frame(60), false), Ok(()));
        assert_eq!(
            queue.try_push(&share, &u, &frame(50), false),
            Err(Full::Bytes)
        );
        assert_eq!(share.free_bytes(), 40);
        assert_eq!(queue.try_push(&share, &u, &frame(40), false), Ok(()));
        let first = receiver.try_recv().expect("queued");
        assert_eq!(first.data.len(), 60);
        // Still being parsed: still counted.
        assert_eq!(
            queue.try_push(&share, &u, &frame(50), false),
            Err(Full::Bytes)
        );
        drop(first);
        assert_eq!(queue.try_push(&share, &u, &frame(50), false), Ok(()));
    }

    #[test]
    fn a_share_holds_at_most_its_frames_and_leaves_the_others_room() {
        let (queue, mut receiver) = queue(4);
        let (flood, calm) = (Share::new(2, 1000), Share::new(2, 1000));
        let u = upstream();
        let frame: &[u8] = b"{}";
        assert_eq!(queue.try_push(&flood, &u, frame, false), Ok(()));
        assert_eq!(queue.try_push(&flood, &u, frame, false), Ok(()));
        assert_eq!(queue.try_push(&flood, &u, frame, false), Err(Full::Frames));
        assert_eq!(queue.try_push(&calm, &u, frame, true), Ok(()));
        assert_eq!(queue.try_push(&calm, &u, &[], true), Ok(()));
        assert!(receiver.try_recv().is_ok());
        assert_eq!(queue.try_push(&flood, &u, frame, false), Ok(()));
        receiver.close();
        while receiver.try_recv().is_ok() {}
        assert_eq!(queue.try_push(&calm, &u, frame, false), Err(Full::Closed));
    }
}
