//! The control socket between the front and the relay (`SOCK_SEQPACKET`: one message per
//! packet, no framing of our own).
//!
//! Front to relay: `R{"port": N}` ready; `S[records]` messages stored; `M{"requests",
//! "bytes"}` downloads answered since the last `M`. Relay to front:
//! `B{"accounts", "tokens", "total"}` who is at their share of bodies in flight (see
//! `saturation`); `Q`: stop accepting, finish, exit.
//! End of file either way means the other side is gone.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use nix::sys::socket::{
    connect, recv, sendmsg, socket, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr,
};
use serde::Serialize;
use tokio::sync::watch;

use crate::error::Error;
use crate::saturation;
use crate::writer::Record;

/// What the control thread sends for the other threads. Stored messages are not among
/// them: the writer sends those itself (`Control::stored`), before the uploaders are
/// answered, so that the relay knows of a message before its uploader can ask about it.
pub enum Outgoing {
    Ready {
        port: u16,
    },
    /// Downloads were answered: send what `served` counted since the last report.
    Served,
}

#[derive(Serialize)]
struct Ready {
    port: u16,
}

#[derive(Serialize)]
struct Served {
    requests: u64,
    bytes: u64,
}

pub struct Control {
    socket: Arc<OwnedFd>,
}

impl Control {
    pub fn connect(path: &Path) -> Result<Self, Error> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
        Ok(Control {
            socket: Arc::new(fd),
        })
    }

    /// Send everything queued, in order, until every sender is gone (or the relay is).
    pub fn send_all(
        &self,
        queue: Receiver<Outgoing>,
        served: &crate::connection::Served,
    ) -> Result<(), Error> {
        for item in queue {
            match item {
                Outgoing::Ready { port } => self.send(b'R', &json(&Ready { port }))?,
                Outgoing::Served => {
                    let (requests, bytes) = served.take();
                    if requests > 0 {
                        self.send(b'M', &json(&Served { requests, bytes }))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Tell the relay of stored messages; returns once the packet is in the relay's socket
    /// (from any thread: a packet is sent whole).
    pub fn stored(&self, records: &[Record]) -> Result<(), Error> {
        self.send(b'S', &json(&records))
    }

    fn send(&self, kind: u8, payload: &[u8]) -> Result<(), Error> {
        let head = [kind];
        let iov = [IoSlice::new(&head), IoSlice::new(payload)];
        sendmsg::<UnixAddr>(
            self.socket.as_raw_fd(),
            &iov,
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|_| Error::ParentGone)?;
        Ok(())
    }

    /// Wait for `Q` (graceful stop) or the end of the socket (the relay is gone: stop at
    /// once), which set `stop` to `Some(graceful)`; `B{...}` updates `saturation`.
    pub fn watch(&self, stop: &watch::Sender<Option<bool>>, saturation: &saturation::Shared) {
        let fd = self.socket.as_raw_fd();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match recv(fd, &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => {}
                Ok(0) | Err(_) => {
                    stop.send_replace(Some(false));
                    return;
                }
                Ok(_) if buf[0] == b'Q' => {
                    stop.send_replace(Some(true));
                }
                Ok(n) if buf[0] == b'B' => match serde_json::from_slice(&buf[1..n]) {
                    Ok(next) => saturation.replace(next),
                    Err(e) => eprintln!("privastead relay front: bad saturation message: {e}"),
                },
                Ok(_) => {}
            }
        }
    }
}

impl Clone for Control {
    fn clone(&self) -> Self {
        Control {
            socket: Arc::clone(&self.socket),
        }
    }
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}
