//! Pausing the reads of a gRPC connection whose requests are being refused.
//!
//! Why: a flooding client replaces each refused stream with a new one as soon as the refusal
//! arrives, so a tenant past its share would keep the server answering refusals as fast as it
//! can send requests. Each refusal is a stream the runtime schedules among everyone's requests,
//! and the other tenants' requests wait behind them. So [`RefuseEarly`](super::RefuseEarly)
//! answers a refusal at once and then pauses the reading of that connection for a moment
//! (`[admission] refused_pause_ms`). Writes go on (the connection's admitted requests are
//! answered, refusals are sent), and what the client sends meanwhile waits in the socket, on
//! its side, until the pause ends. A connection none of whose requests is refused is never
//! paused; a paused connection costs a timer, an idle one a relaxed atomic load per read.
//!
//! Trade-off: every request of a paused connection waits, also another tenant's behind a
//! gateway that multiplexes tenants over one connection, and HTTP/2 control frames (PING,
//! WINDOW_UPDATE) are read late by up to one pause. The pause is a few milliseconds against the
//! refusal's `RetryInfo` of a second, which a well-behaved client waits anyway.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The instant pauses are counted from (nanoseconds after it, so that one atomic holds one).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// When the reads of one connection may go on; shared by the connection and its requests.
#[derive(Debug, Clone, Default)]
pub struct ReadPause {
    /// Nanoseconds after [`epoch`] until which reads wait; 0: not paused.
    until: Arc<AtomicU64>,
}

impl ReadPause {
    /// Pauses reads for `length` from now (a pause already running longer is kept).
    pub fn pause(&self, length: Duration) {
        if length.is_zero() {
            return;
        }
        let until = (epoch().elapsed() + length).as_nanos() as u64;
        self.until.fetch_max(until.max(1), Ordering::Relaxed);
    }

    /// Whether a pause runs now.
    pub fn is_paused(&self) -> bool {
        self.running().is_some()
    }

    /// The end of the running pause, if one runs now.
    fn running(&self) -> Option<Instant> {
        let until = self.until.load(Ordering::Relaxed);
        if until == 0 {
            return None;
        }
        let end = epoch() + Duration::from_nanos(until);
        if end > Instant::now() {
            return Some(end);
        }
        // Ended: back to the one load (unless a new pause was set meanwhile).
        let _ = self
            .until
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
        None
    }
}

/// What tonic inserts into every request of a connection: the TCP addresses tonic's own
/// `TcpConnectInfo` carries, and the connection's [`ReadPause`].
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub tcp: TcpConnectInfo,
    pub pause: ReadPause,
}

/// A connection whose reads wait while its [`ReadPause`] runs; writes are never held.
#[derive(Debug)]
pub struct PausedReads<IO> {
    io: IO,
    pause: ReadPause,
    /// The timer of the running pause, kept for the next one.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<IO> PausedReads<IO> {
    pub fn new(io: IO) -> Self {
        Self {
            io,
            pause: ReadPause::default(),
            sleep: None,
        }
    }
}

impl Connected for PausedReads<TcpStream> {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            tcp: self.io.connect_info(),
            pause: self.pause.clone(),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for PausedReads<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(end) = this.pause.running() {
            let end = tokio::time::Instant::from_std(end);
            let sleep = match &mut this.sleep {
                Some(sleep) => {
                    if sleep.deadline() != end {
                        sleep.as_mut().reset(end);
                    }
                    sleep
                }
                None => this.sleep.insert(Box::pin(tokio::time::sleep_until(end))),
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for PausedReads<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_pause_runs_for_its_length_and_a_shorter_one_does_not_cut_it() {
        let pause = ReadPause::default();
        assert!(pause.running().is_none());
        pause.pause(Duration::from_secs(60));
        let end = pause.running().expect("running");
        pause.pause(Duration::from_millis(1));
        assert_eq!(pause.running(), Some(end));
        pause.pause(Duration::ZERO);
        assert_eq!(pause.running(), Some(end));
    }

    #[tokio::test]
    async fn reads_wait_out_the_pause_while_writes_go_on() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut paused = PausedReads::new(near);
        let pause = paused.pause.clone();
        far.write_all(b"sent during the pause").await.unwrap();
        pause.pause(Duration::from_millis(50));
        let started = Instant::now();

        paused.write_all(b"answer").await.unwrap();
        let mut answer = [0; 6];
        far.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"answer");
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "a write is not held"
        );

        let mut read = vec![0; 21];
        paused.read_exact(&mut read).await.unwrap();
        assert_eq!(read, b"sent during the pause");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
