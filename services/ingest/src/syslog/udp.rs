//! Syslog over UDP (RFC 5426): one message per datagram. UDP cannot wait, so a message that
//! cannot be handed to Kafka at once (breaker open, producer queue full) is dropped and counted,
//! never hidden; so are datagrams the kernel dropped because the socket's receive buffer was
//! full (read from the socket's drop counter in /proc/net/udp, once a second).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::Syslog;
use crate::accounting::{DropReason, Source};
use crate::publisher::{Acks, SendError};

const SOURCE: Source = Source::SyslogUdp;

/// Binds `addr` with a receive buffer of `recv_buffer` bytes (as much as the kernel allows).
pub fn bind(addr: SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(recv_buffer) {
        tracing::warn!(error = %e, "cannot set the syslog udp receive buffer");
    }
    // Linux reports double the size it grants (bookkeeping included).
    let doubled = if cfg!(target_os = "linux") { 2 } else { 1 };
    let got = socket.recv_buffer_size().unwrap_or(0) / doubled;
    if got < recv_buffer {
        tracing::warn!(
            asked = recv_buffer,
            got,
            "syslog udp receive buffer capped by the kernel (net.core.rmem_max)"
        );
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

pub async fn run(socket: UdpSocket, syslog: Arc<Syslog>, shutdown: CancellationToken) {
    let acks = Acks::new(SOURCE);
    let mut buffer = vec![0u8; 65_536];
    let inode = socket_inode(&socket);
    let mut kernel_drops = inode.and_then(drops_of);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                count_kernel_drops(&syslog, inode, &mut kernel_drops);
                continue;
            }
            received = socket.recv_from(&mut buffer) => match received {
                Ok(got) => got,
                Err(e) => {
                    tracing::warn!(error = %e, "syslog udp receive failed");
                    continue;
                }
            },
        };
        take(&syslog, &buffer[..n], peer, &acks);
    }
    count_kernel_drops(&syslog, inode, &mut kernel_drops);
}

/// Counts one datagram and sends its event at once, or drops or rejects it.
fn take(syslog: &Syslog, datagram: &[u8], peer: SocketAddr, acks: &Arc<Acks>) {
    let accounting = &syslog.accounting;
    accounting.received(SOURCE, 1);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let record = match syslog.record(datagram.to_vec(), peer, now_ms) {
        Ok(record) => record,
        Err(e) => {
            accounting.rejected(SOURCE, e.reason);
            tracing::debug!(%peer, error = %e, "syslog udp message rejected");
            return;
        }
    };
    if !syslog.publisher.available() {
        accounting.dropped(SOURCE, DropReason::Unavailable, 1);
        return;
    }
    match syslog.publisher.try_send(&record, None, acks) {
        Ok(()) => {}
        Err(SendError::Full) => accounting.dropped(SOURCE, DropReason::Overflow, 1),
        Err(SendError::Refused(e)) => {
            syslog.publisher.refused(SOURCE, &e);
            tracing::warn!(%peer, error = %e, "kafka refused a syslog udp message");
        }
    }
}

/// Adds the datagrams the kernel dropped since last time to received and dropped.
fn count_kernel_drops(syslog: &Syslog, inode: Option<u64>, last: &mut Option<u64>) {
    let Some(now) = inode.and_then(drops_of) else {
        return;
    };
    let new = now.saturating_sub(last.unwrap_or(now));
    *last = Some(now);
    if new > 0 {
        syslog.accounting.received(SOURCE, new);
        syslog
            .accounting
            .dropped(SOURCE, DropReason::ReceiveBuffer, new);
        tracing::warn!(
            dropped = new,
            "the kernel dropped syslog udp datagrams: receive buffer full (LOGSTREAM_SYSLOG_UDP_RECV_BUFFER_BYTES, net.core.rmem_max)"
        );
    }
}

/// The inode of the socket (how /proc/net/udp names it).
fn socket_inode(socket: &UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The kernel's drop counter of the socket with `inode` (Linux; None elsewhere).
fn drops_of(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|path| {
        let table = std::fs::read_to_string(path).ok()?;
        drops_in(&table, inode)
    })
}

fn drops_in(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|row| {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let this: u64 = fields.get(9)?.parse().ok()?;
        (this == inode).then(|| fields.last()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::drops_in;

    #[test]
    fn the_drop_counter_is_read_from_the_socket_s_row() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
 1675: 0100007F:158A 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 576563 2 00000000050f72a2 108\n\
 1676: 0100007F:158B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 576564 2 00000000050f72a3 7\n";
        assert_eq!(drops_in(table, 576563), Some(108));
        assert_eq!(drops_in(table, 576564), Some(7));
        assert_eq!(drops_in(table, 1), None);
    }
}
