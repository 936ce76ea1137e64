//! HTTP/1.1 message framing for forwarding: where a request or a response ends, without
//! changing a byte of it.

/// How the front forwards a request it does not serve itself.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A head of `head` bytes and a body of `body` bytes (Content-Length, or none).
    Length {
        head: usize,
        body: u64,
        head_method: bool,
    },
    /// Forward from here on in both directions until either side closes: an upgrade, a
    /// chunked body, HTTP/1.0, or bytes the front cannot parse (the relay answers those).
    Tunnel,
    /// The head is not complete yet.
    Incomplete,
}

const MAX_HEADERS: usize = 64;

pub fn request(buf: &[u8]) -> Request {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Request::Incomplete,
        Err(_) => return Request::Tunnel,
    };
    if req.version != Some(1) || !canonical(&buf[..head], req.headers) {
        return Request::Tunnel;
    }
    let mut length: Option<u64> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("transfer-encoding") || name.eq_ignore_ascii_case("upgrade") {
            return Request::Tunnel;
        }
        if name.eq_ignore_ascii_case("connection")
            && h.value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        {
            return Request::Tunnel;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = digits(h.value) else {
                return Request::Tunnel;
            };
            if length.is_some_and(|l| l != n) {
                return Request::Tunnel;
            }
            length = Some(n);
        }
    }
    Request::Length {
        head,
        body: length.unwrap_or(0),
        head_method: req.method == Some("HEAD"),
    }
}

/// A head that every HTTP/1.1 parser reads the same way: CRLF line ends only, no control
/// bytes, exactly one `Host`. httparse is more lenient than the relay's parser (a bare LF,
/// a missing or repeated Host); where they could disagree on where a request ends, the front
/// must not decide, so such a connection is the relay's alone (`Request::Tunnel`).
pub fn canonical(head: &[u8], headers: &[httparse::Header<'_>]) -> bool {
    let mut previous = 0u8;
    for &b in head {
        let ok = match b {
            b'\n' => previous == b'\r',
            b'\t' => true,
            0..=31 | 127 => b == b'\r',
            _ => true,
        };
        if !ok || (previous == b'\r' && b != b'\n') {
            return false;
        }
        previous = b;
    }
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count()
        == 1
}

/// How a response's body ends.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    Length(u64),
    Chunked,
    /// At the end of the stream (the connection closes after it).
    UntilClose,
    /// `101 Switching Protocols`: the connection is a tunnel from here on.
    Upgrade,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub head: usize,
    pub status: u16,
    pub body: Body,
    /// The relay closes the connection after this response.
    pub close: bool,
}

pub enum Parsed {
    Complete(Response),
    Incomplete,
    Invalid,
}

pub fn response(buf: &[u8], head_method: bool) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Incomplete,
        Err(_) => return Parsed::Invalid,
    };
    let status = resp.code.unwrap_or(0);
    let mut length = None;
    let mut chunked = false;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = digits(h.value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    let body = if status == 101 {
        Body::Upgrade
    } else if head_method || (100..200).contains(&status) || status == 204 || status == 304 {
        Body::Length(0)
    } else if chunked {
        Body::Chunked
    } else if let Some(n) = length {
        Body::Length(n)
    } else {
        close = true;
        Body::UntilClose
    };
    Parsed::Complete(Response {
        head,
        status,
        body,
        close,
    })
}

fn digits(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Finds the end of a chunked body as its bytes pass by.
#[derive(Debug, Default)]
pub struct Chunks {
    state: State,
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

impl Chunks {
    /// Feed the next bytes; returns how many of them belong to the body (all of them
    /// unless the body ended inside), or None when the framing is broken.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() && self.state != State::Done {
            let b = bytes[i];
            match self.state {
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = u64::from((b as char).to_digit(16)?);
                        self.size = self.size.checked_mul(16)?.checked_add(digit)?;
                    }
                    b';' | b' ' | b'\t' => self.state = State::Extension,
                    b'\r' => self.state = State::SizeLf,
                    _ => return None,
                },
                State::Extension => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return None;
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let take =
                        (bytes.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return None;
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return None;
                    }
                    self.state = State::Size;
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' {
                        State::EndLf
                    } else {
                        State::TrailerLine
                    };
                }
                State::TrailerLine => {
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return None;
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return None;
                    }
                    self.state = State::Done;
                }
                State::Done => {}
            }
            i += 1;
        }
        Some(i)
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_framing() {
        assert_eq!(
            request(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\nrest"),
            Request::Length {
                head: 28,
                body: 0,
                head_method: false
            }
        );
        assert_eq!(
            request(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n"),
            Request::Length {
                head: 47,
                body: 7,
                head_method: false
            }
        );
        assert_eq!(request(b"GET /x HTTP/1.1\r\nHost"), Request::Incomplete);
        assert_eq!(
            request(b"GET /x HTTP/1.0\r\nHost: a\r\n\r\n"),
            Request::Tunnel
        );
        // Where parsers could disagree on the request's end, the relay alone reads it.
        assert_eq!(
            request(b"GET /x HTTP/1.1\nHost: a\r\n\r\n"),
            Request::Tunnel
        );
        assert_eq!(
            request(b"GET /x HTTP/1.1\r\nHost: a\n\r\n"),
            Request::Tunnel
        );
        assert_eq!(request(b"GET /x HTTP/1.1\r\n\r\n"), Request::Tunnel);
        assert_eq!(
            request(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Request::Tunnel
        );
        assert_eq!(
            request(b"GET /x HTTP/1.1\r\nHost: a\rX: y\r\n\r\n"),
            Request::Tunnel
        );
        assert_eq!(request(b"\x16\x03\x01garbage\r\n\r\n"), Request::Tunnel);
        assert_eq!(
            request(b"GET /v1/ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
            Request::Tunnel
        );
        assert_eq!(
            request(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Request::Tunnel
        );
        assert_eq!(
            request(b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Request::Tunnel
        );
    }

    #[test]
    fn response_framing() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        match response(ok, false) {
            Parsed::Complete(r) => {
                assert_eq!((r.head, r.body, r.close), (38, Body::Length(5), false))
            }
            _ => panic!("not parsed"),
        }
        match response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true) {
            Parsed::Complete(r) => assert_eq!(r.body, Body::Length(0)),
            _ => panic!("not parsed"),
        }
        match response(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            false,
        ) {
            Parsed::Complete(r) => assert_eq!(r.body, Body::Upgrade),
            _ => panic!("not parsed"),
        }
        match response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            false,
        ) {
            Parsed::Complete(r) => assert_eq!((r.body, r.close), (Body::Chunked, true)),
            _ => panic!("not parsed"),
        }
        match response(b"HTTP/1.1 200 OK\r\n\r\n", false) {
            Parsed::Complete(r) => assert_eq!((r.body, r.close), (Body::UntilClose, true)),
            _ => panic!("not parsed"),
        }
        assert!(matches!(
            response(b"HTTP/1.1 200 OK\r\nX", false),
            Parsed::Incomplete
        ));
    }

    #[test]
    fn chunked_end_is_found_in_any_split() {
        let body =
            b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let mut c = Chunks::default();
            let a = c.feed(&body[..split]).unwrap_or(usize::MAX);
            assert_eq!(a, split.min(end));
            if !c.done() {
                let b = c.feed(&body[split..]).unwrap_or(usize::MAX);
                assert_eq!(split + b, end, "split {split}");
            }
            assert!(c.done());
        }
        let mut c = Chunks::default();
        assert_eq!(c.feed(b"0\r\n\r\n"), Some(5));
        assert!(c.done());
        assert_eq!(Chunks::default().feed(b"zz\r\n"), None);
    }
}
