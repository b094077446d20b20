//! An in-process link shaper: a TCP proxy that paces each direction at a
//! bit rate, delays it by half the round trip, and models packet loss the
//! way TCP experiences it — a lost segment holds back everything behind it
//! for one retransmission timeout (here max(200 ms, the round trip)).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const SEGMENT: usize = 1460;

#[derive(Clone, Copy)]
pub struct Link {
    pub bytes_per_sec: f64,
    pub one_way: Duration,
    /// Probability that a segment is lost once.
    pub loss: f64,
    pub rto: Duration,
}

pub struct Shaper {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Shaper {
    pub async fn start(upstream: SocketAddr, link: Link) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            while let Ok((client, _)) = listener.accept().await {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                tokio::spawn(async move {
                    if let Ok(up) = TcpStream::connect(upstream).await {
                        let (cr, cw) = client.into_split();
                        let (ur, uw) = up.into_split();
                        let a = tokio::spawn(pipe(cr, uw, link, seed));
                        let b = tokio::spawn(pipe(ur, cw, link, seed ^ 0xabcdef));
                        let _ = tokio::join!(a, b);
                    }
                });
            }
        });
        Ok(Self { port, task })
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
    mut rng: u64,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut wire_free = Instant::now();
    let mut last_delivery = Instant::now();
    let mut pending: VecDeque<u8> = VecDeque::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend(&buf[..n]);
        while !pending.is_empty() {
            let take = pending.len().min(SEGMENT);
            let seg: Vec<u8> = pending.drain(..take).collect();
            let start = wire_free.max(Instant::now());
            wire_free = start + Duration::from_secs_f64(seg.len() as f64 / link.bytes_per_sec);
            let mut at = wire_free + link.one_way;
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if ((rng >> 11) as f64 / (1u64 << 53) as f64) < link.loss {
                at += link.rto;
            }
            at = at.max(last_delivery);
            last_delivery = at;
            if tx.send((at, seg)).is_err() {
                return;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
