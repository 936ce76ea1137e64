//! One client connection, for its whole life: each request is either a small upload the
//! front stores itself, or forwarded byte for byte to the Python relay over this
//! connection's own backend connection (a Unix socket), whose answer comes back the same way.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::timeout;

use crate::control::Outgoing;
use crate::date;
use crate::fetch::{self, Body as FetchBody, Found, SMALL_FILE};
use crate::frame::{self, Body, Chunks, Parsed};
use crate::request::{examine, Fetch, Peeked, Upload, HEADER_MAX};
use crate::settings::Settings;
use crate::writer::{Job, Outcome};

/// Largest response head the front reads from the relay.
const RESPONSE_HEAD_MAX: usize = 64 * 1024;
const COPY_BUFFER: usize = 64 * 1024;
const TUNNEL_CHUNK: usize = 16 * 1024;
/// How long the relay's answer may still take once it closed before reading the whole body.
const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// What every connection shares.
pub struct Shared {
    pub settings: Settings,
    pub jobs: mpsc::Sender<Job>,
    pub reader: fetch::Reader,
    /// Downloads answered since the relay was last told (it counts them in its metrics).
    pub served: Arc<Served>,
    pub control: std::sync::mpsc::SyncSender<Outgoing>,
    /// `Some(_)` once the front stops.
    pub stop: watch::Receiver<Option<bool>>,
}

#[derive(Default)]
pub struct Served {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
    /// A report is queued and has not taken the counts yet.
    pending: std::sync::atomic::AtomicBool,
}

impl Served {
    /// Count one download and make sure a report follows. While the control thread is busy,
    /// many downloads share one report; the relay's counts are behind until that thread
    /// runs (on a busy host, a scrape right after a download may not count it yet; stored
    /// messages, which have effects beyond counts, are told before answering instead).
    pub fn add(&self, bytes: u64, control: &std::sync::mpsc::SyncSender<Outgoing>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if !self.pending.swap(true, Ordering::AcqRel) {
            let _ = control.try_send(Outgoing::Served);
        }
    }

    /// (requests, bytes) since the last call.
    pub fn take(&self) -> (u64, u64) {
        self.pending.store(false, Ordering::Release);
        (
            self.requests.swap(0, Ordering::Relaxed),
            self.bytes.swap(0, Ordering::Relaxed),
        )
    }
}

/// The relay's side of one client connection, opened at its first forwarded request.
struct Backend {
    stream: UnixStream,
    idle_since: Instant,
}

enum Head {
    /// An upload of `length` bytes (header and body) the front may store.
    Upload(Upload, usize),
    /// A message fetch of `length` bytes the front may answer.
    Fetch(Fetch, usize),
    /// For the relay.
    Forward(frame::Request),
    /// The client closed the connection.
    Closed,
}

/// After a forwarded exchange: serve the next request, or close.
enum Next {
    Again,
    Close,
}

pub async fn serve(mut client: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let settings = &shared.settings;
    let mut stop = shared.stop.clone();
    let mut backend: Option<Backend> = None;
    loop {
        // Between requests: no buffer held, only the keep-alive timer.
        let (mut buf, seen) = tokio::select! {
            got = timeout(settings.idle(), first_bytes(&client, settings)) => match got {
                Ok(Some(first)) => first,
                _ => return,
            },
            _ = stop.wait_for(Option::is_some) => return,
        };
        let request = match peek_request(&client, &mut buf, seen, settings).await {
            Head::Closed => return,
            Head::Forward(request) => request,
            Head::Upload(upload, length) => {
                let close = upload.close;
                match store(&shared, upload).await {
                    Some(seq) => {
                        let answered =
                            answer_stored(&mut client, &mut buf, length, seq, close, settings);
                        if !answered.await {
                            return;
                        }
                        continue;
                    }
                    // Not the front's to answer (a refusal, a duplicate...): the relay's.
                    None => frame::request(&buf[..length]),
                }
            }
            Head::Fetch(fetch, length) => match shared.reader.find(&fetch, date::unix_now()) {
                Some(found) => {
                    let served =
                        answer_fetch(&mut client, &mut buf, length, &fetch, found, &shared);
                    if !served.await {
                        return;
                    }
                    continue;
                }
                None => frame::request(&buf[..length]),
            },
        };
        drop(buf); // a WebSocket or a long-poll may follow: hold nothing for it
        let Some(link) = connect(&mut backend, peer, settings).await else {
            let _ = client.write_all(&unavailable()).await;
            return;
        };
        let next = match request {
            frame::Request::Length {
                head,
                body,
                head_method,
            } => exchange(&mut client, link, head as u64 + body, head_method).await,
            frame::Request::Tunnel | frame::Request::Incomplete => {
                tunnel(&mut client, link).await;
                Next::Close
            }
        };
        match next {
            Next::Again => {
                if let Some(b) = backend.as_mut() {
                    b.idle_since = Instant::now();
                }
            }
            Next::Close => {
                linger(&mut client).await;
                return;
            }
        }
    }
}

/// Wait for the next request's first bytes and peek at what has come of it: a buffer for
/// the request and how much of it is there; None: the client closed the connection.
///
/// The buffer is taken only once the socket has something (an idle keep-alive connection
/// holds none), and the wait is on readiness alone: one peek per request instead of a
/// one-byte peek that finds nothing, a second that finds the byte, and a third for the rest.
/// A socket may report itself readable before it has a byte; the peek then waits on (the
/// caller's keep-alive timer still runs).
async fn first_bytes(client: &TcpStream, settings: &Settings) -> Option<(Vec<u8>, usize)> {
    client.readable().await.ok()?;
    let mut buf = vec![0u8; HEADER_MAX + settings.body_max];
    match client.peek(&mut buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some((buf, n)),
    }
}

/// The request at the head of the connection, without taking it off the socket; the first
/// `n` bytes of it are already in `buf`.
async fn peek_request(
    client: &TcpStream,
    buf: &mut [u8],
    mut n: usize,
    settings: &Settings,
) -> Head {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let seen = &buf[..n];
        match examine(seen, settings.body_max, settings.max_push_payload) {
            Peeked::Upload { upload, length } => return Head::Upload(upload, length),
            Peeked::Fetch { fetch, length } => return Head::Fetch(fetch, length),
            Peeked::Other => match frame::request(seen) {
                frame::Request::Incomplete if n < buf.len() => {}
                request => return Head::Forward(request),
            },
            Peeked::Incomplete => {}
        }
        // The rest of a request usually follows within a round trip. Peeking again cannot
        // wait for "more" bytes, so poll, backing off; past the hand-over time the relay
        // takes it as it is, and its own timeouts apply.
        if started.elapsed() >= settings.handover() {
            return Head::Forward(frame::request(seen));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
        n = match client.peek(buf).await {
            Ok(0) | Err(_) => return Head::Closed,
            Ok(n) => n,
        };
    }
}

async fn store(shared: &Shared, upload: Upload) -> Option<i64> {
    let (reply, outcome) = oneshot::channel();
    shared.jobs.send(Job { upload, reply }).await.ok()?;
    match outcome.await {
        Ok(Outcome::Stored(seq)) => Some(seq),
        _ => None,
    }
}

/// Take the stored request off the socket and answer it; false: close the connection.
async fn answer_stored(
    client: &mut TcpStream,
    buf: &mut [u8],
    length: usize,
    seq: i64,
    close: bool,
    settings: &Settings,
) -> bool {
    // Only now is the request read: until the commit said "stored", it could still have
    // gone to the relay as it was.
    if client.read_exact(&mut buf[..length]).await.is_err() {
        return false;
    }
    if !write_within(client, &created(seq, close), settings.idle()).await {
        return false;
    }
    if close {
        let _ = client.shutdown().await;
        return false;
    }
    true
}

/// Take the fetch request off the socket and answer it with the message; false: close.
async fn answer_fetch(
    client: &mut TcpStream,
    buf: &mut [u8],
    length: usize,
    fetch: &Fetch,
    found: Found,
    shared: &Shared,
) -> bool {
    if client.read_exact(&mut buf[..length]).await.is_err() {
        return false;
    }
    let size = found.size;
    let mut answer =
        format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\
         Cache-Control: no-store\r\nPrivastead-Seq: {}\r\nDate: {}\r\n{}\r\n",
        fetch.seq,
        date::now(),
        if fetch.close { "Connection: close\r\n" } else { "" },
    )
        .into_bytes();
    let stall = shared.settings.idle();
    // Counted before the answer goes out, so the relay's metrics have it by the time the
    // client can ask for them.
    shared.served.add(size, &shared.control);
    let sent = match found.body {
        FetchBody::Inline(body) => {
            answer.extend_from_slice(&body);
            write_within(client, &answer, stall).await
        }
        // Small files with their header in one write; larger ones by sendfile.
        FetchBody::File(mut file) if size <= SMALL_FILE => {
            let before = answer.len();
            file.read_to_end(&mut answer).is_ok()
                && (answer.len() - before) as u64 == size
                && write_within(client, &answer, stall).await
        }
        FetchBody::File(file) => {
            write_within(client, &answer, stall).await
                && send_file(client, &file, size, stall).await
        }
    };
    if !sent {
        return false;
    }
    if fetch.close {
        let _ = client.shutdown().await;
        return false;
    }
    true
}

async fn write_within(client: &mut TcpStream, bytes: &[u8], stall: Duration) -> bool {
    matches!(timeout(stall, client.write_all(bytes)).await, Ok(Ok(())))
}

/// `size` bytes of `file` to the client by `sendfile`, as much as the socket takes at a
/// time; false if the client stops reading for `stall` or the file is shorter.
async fn send_file(client: &TcpStream, file: &std::fs::File, size: u64, stall: Duration) -> bool {
    let Ok(size) = nix::libc::off_t::try_from(size) else {
        return false;
    };
    let mut offset: nix::libc::off_t = 0;
    while offset < size {
        if !matches!(timeout(stall, client.writable()).await, Ok(Ok(()))) {
            return false;
        }
        let left = usize::try_from(size - offset)
            .unwrap_or(usize::MAX)
            .min(1 << 20);
        let sent = client.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(client, file, Some(&mut offset), left)
                .map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => return false, // the file is shorter than its row says
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
    }
    true
}

/// This connection's backend connection: the one it had, unless idle for half the relay's
/// keep-alive time (the relay may be closing it), else a new one. Its first line tells the
/// relay who the client is: the relay trusts it because only the front can reach the socket.
async fn connect<'a>(
    slot: &'a mut Option<Backend>,
    peer: SocketAddr,
    settings: &Settings,
) -> Option<&'a mut UnixStream> {
    let fresh = slot
        .as_ref()
        .is_some_and(|b| b.idle_since.elapsed() < settings.idle() / 2);
    if !fresh {
        let mut stream = UnixStream::connect(&settings.backend).await.ok()?;
        let line = format!("PEER {}\n", peer.ip().to_canonical());
        stream.write_all(line.as_bytes()).await.ok()?;
        *slot = Some(Backend {
            stream,
            idle_since: Instant::now(),
        });
    }
    slot.as_mut().map(|b| &mut b.stream)
}

/// Forward one request of `length` bytes and its response; the body goes up while the
/// answer may already come down (the relay may refuse before reading it).
async fn exchange(
    client: &mut TcpStream,
    backend: &mut UnixStream,
    length: u64,
    head_method: bool,
) -> Next {
    let (outcome, sent) = {
        let (mut client_r, mut client_w) = client.split();
        let (mut backend_r, mut backend_w) = backend.split();
        let send = copy_exact(&mut client_r, &mut backend_w, length);
        let recv = relay_response(&mut backend_r, &mut client_w, head_method);
        tokio::pin!(send, recv);
        let mut sent = false;
        let outcome = loop {
            tokio::select! {
                done = &mut send, if !sent => match done {
                    Copied::All => sent = true,
                    Copied::SourceEnded => return Next::Close, // the client left mid-request
                    Copied::SinkFailed => break None,
                },
                outcome = &mut recv => break Some(outcome),
            }
        };
        let Some(outcome) = outcome else {
            // The relay answered before reading the whole body (a refusal) and closed. That
            // answer is still on its way; dropping it left the client with a closed
            // connection and no reason. So it is passed on if it comes within a moment.
            let _ = timeout(ANSWER_GRACE, &mut recv).await;
            return Next::Close;
        };
        (outcome, sent)
    };
    match outcome {
        Relayed::Done { close: false } if sent => Next::Again,
        Relayed::Upgraded => {
            // A WebSocket: the rest of the connection belongs to it.
            tunnel(client, backend).await;
            Next::Close
        }
        _ => Next::Close,
    }
}

/// Copy both ways until the relay's side ends (it answered and closed, or the WebSocket
/// ended); the client's end of input is passed on and the relay's answer still copied. A
/// buffer exists only while bytes move: an idle WebSocket holds none.
async fn tunnel(client: &mut TcpStream, backend: &mut UnixStream) {
    let mut client_open = true;
    loop {
        tokio::select! {
            ready = client.readable(), if client_open => {
                if ready.is_err() {
                    return;
                }
                let mut buf = vec![0u8; TUNNEL_CHUNK];
                match client.try_read(&mut buf) {
                    Ok(0) => {
                        client_open = false;
                        let _ = backend.shutdown().await;
                    }
                    Ok(n) => {
                        if backend.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
            ready = backend.readable() => {
                if ready.is_err() {
                    return;
                }
                let mut buf = vec![0u8; TUNNEL_CHUNK];
                match backend.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if client.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        }
    }
}

/// Close after an answer without losing it: a close with unread input would reset the
/// connection, and the client could lose the answer; so say we are done, then read and drop
/// what the client still sends, for a moment (as aiohttp does).
async fn linger(client: &mut TcpStream) {
    const LINGER: Duration = Duration::from_secs(2);
    let _ = client.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = timeout(LINGER, async {
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// How a `copy_exact` ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Copied {
    All,
    /// Reading failed or ended early.
    SourceEnded,
    /// Writing failed: the other side closed (or broke).
    SinkFailed,
}

async fn copy_exact<R, W>(from: &mut R, to: &mut W, mut left: u64) -> Copied
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![
        0u8;
        COPY_BUFFER
            .min(usize::try_from(left).unwrap_or(COPY_BUFFER))
            .max(1)
    ];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
        match from.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => return Copied::SourceEnded,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return Copied::SinkFailed;
                }
                left -= n as u64;
            }
        }
    }
    if to.flush().await.is_ok() {
        Copied::All
    } else {
        Copied::SinkFailed
    }
}

enum Relayed {
    Done { close: bool },
    Upgraded,
    Broken,
}

/// Copy one response (interim `1xx` ones first) from the relay to the client.
async fn relay_response<R, W>(from: &mut R, to: &mut W, head_method: bool) -> Relayed
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let response = loop {
            match frame::response(&buf, head_method) {
                Parsed::Complete(r) => break r,
                Parsed::Invalid => return Relayed::Broken,
                Parsed::Incomplete if buf.len() >= RESPONSE_HEAD_MAX => return Relayed::Broken,
                Parsed::Incomplete => {
                    if !read_more(from, &mut buf).await {
                        return Relayed::Broken;
                    }
                }
            }
        };
        let interim = (100..200).contains(&response.status) && response.status != 101;
        if interim {
            if to.write_all(&buf[..response.head]).await.is_err() {
                return Relayed::Broken;
            }
            buf.drain(..response.head);
            continue;
        }
        return match response.body {
            Body::Upgrade => {
                if to.write_all(&buf).await.is_err() || to.flush().await.is_err() {
                    return Relayed::Broken;
                }
                Relayed::Upgraded
            }
            Body::Length(n) => {
                let have = (buf.len() - response.head) as u64;
                if have > n {
                    return Relayed::Broken; // more than one answer per request
                }
                if to.write_all(&buf).await.is_err()
                    || copy_exact(from, to, n - have).await != Copied::All
                {
                    return Relayed::Broken;
                }
                Relayed::Done {
                    close: response.close,
                }
            }
            Body::Chunked => {
                let mut chunks = Chunks::default();
                let first = &buf[response.head..];
                match chunks.feed(first) {
                    Some(n) if n == first.len() => {}
                    _ => return Relayed::Broken,
                }
                if to.write_all(&buf).await.is_err() {
                    return Relayed::Broken;
                }
                let mut piece = vec![0u8; COPY_BUFFER];
                while !chunks.done() {
                    let n = match from.read(&mut piece).await {
                        Ok(0) | Err(_) => return Relayed::Broken,
                        Ok(n) => n,
                    };
                    match chunks.feed(&piece[..n]) {
                        Some(used) if used == n => {}
                        _ => return Relayed::Broken,
                    }
                    if to.write_all(&piece[..n]).await.is_err() {
                        return Relayed::Broken;
                    }
                }
                if to.flush().await.is_err() {
                    return Relayed::Broken;
                }
                Relayed::Done {
                    close: response.close,
                }
            }
            Body::UntilClose => {
                if to.write_all(&buf).await.is_err() {
                    return Relayed::Broken;
                }
                let _ = tokio::io::copy(from, to).await;
                Relayed::Done { close: true }
            }
        };
    }
}

async fn read_more<R: tokio::io::AsyncRead + Unpin>(from: &mut R, buf: &mut Vec<u8>) -> bool {
    let mut piece = [0u8; 4096];
    match from.read(&mut piece).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&piece[..n]);
            true
        }
    }
}

/// The answer when the relay cannot be reached (it is restarting, say).
fn unavailable() -> Vec<u8> {
    let body = r#"{"error": {"code": "relay_unavailable", "message": "the relay is not answering; retry in a moment"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn created(seq: i64, close: bool) -> Vec<u8> {
    let body = format!("{{\"seq\": {seq}, \"duplicate\": false, \"evicted\": []}}");
    format!(
        "HTTP/1.1 201 Created\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nDate: {}\r\n{}\r\n{}",
        body.len(),
        date::now(),
        if close { "Connection: close\r\n" } else { "" },
        body
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream, UnixStream};

    const REFUSAL: &[u8] = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\
                             Connection: close\r\n\r\n{}";

    /// A client sends a large request; the relay answers after its first bytes and closes
    /// without reading the rest. What the client reads back.
    async fn refused_upload() -> Vec<u8> {
        const LENGTH: usize = 4 << 20;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let client = TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let (mut accepted, _) = listener.accept().await.expect("accept");
        let (mut front_side, mut relay_side) = UnixStream::pair().expect("socket pair");
        let (mut client_r, mut client_w) = client.into_split();
        let sender = tokio::spawn(async move {
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..LENGTH / chunk.len() {
                if client_w.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            client_w
        });
        let relay = tokio::spawn(async move {
            let mut first = vec![0u8; 1024];
            let _ = relay_side.read_exact(&mut first).await;
            let _ = relay_side.write_all(REFUSAL).await;
            // dropped here: closed with the rest of the request unread
        });
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"{}") {
                match client_r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        });
        let _ = super::exchange(&mut accepted, &mut front_side, LENGTH as u64, false).await;
        relay.await.expect("relay task");
        // The front is done with the connection: whatever reached the client has.
        let _ = accepted.shutdown().await;
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
        sender.abort();
        got.map(|r| r.expect("reader task")).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_refusal_before_the_body_is_read_reaches_the_client() {
        // Which of "the body could not be passed on" and "the answer came" the front sees
        // first is up to the scheduler, so the case is tried many times.
        for _ in 0..30 {
            assert_eq!(refused_upload().await, REFUSAL);
        }
    }

    #[test]
    fn the_unavailable_answer_is_well_framed() {
        let answer = super::unavailable();
        let text = std::str::from_utf8(&answer).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
