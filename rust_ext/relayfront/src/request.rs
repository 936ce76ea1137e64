//! Which requests the front serves itself: a single small upload, complete and unambiguous,
//! and the fetch of one message.
//!
//! The rule is "accept only what is certainly valid": anything the relay might answer
//! otherwise (a header it would read differently, a feature the front does not implement, a
//! value it would reject) is `Peeked::Other`, and the connection goes to the relay, whose
//! answer is then the answer.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Largest request header the front looks at; a longer one goes to the relay.
pub const HEADER_MAX: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;
const TOKEN_PREFIX: &str = "pst_";
const TOKEN_ID_LEN: usize = 16;
const SECRET_LEN: usize = 43;

/// An upload the front may store, as read from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub mailbox: String,
    pub msg_id: String,
    pub token_id: String,
    pub secret: String,
    /// The wake-up payload (`Privastead-Push`), decoded; `Some(empty)` is an empty push.
    pub push: Option<Vec<u8>>,
    pub body: Vec<u8>,
    /// The client asked to close the connection after this answer.
    pub close: bool,
}

/// A message to fetch, as read from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub mailbox: String,
    pub seq: i64,
    pub token_id: String,
    pub secret: String,
    pub close: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Peeked {
    /// A complete upload of `length` bytes (header and body).
    Upload { upload: Upload, length: usize },
    /// A message fetch, its request `length` bytes long.
    Fetch { fetch: Fetch, length: usize },
    /// Could become an upload: more bytes are needed.
    Incomplete,
    /// Anything else: the relay's business.
    Other,
}

/// Look at the bytes at the head of a connection (`buf`, as peeked).
pub fn examine(buf: &[u8], body_max: usize, max_push: usize) -> Peeked {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let header_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= HEADER_MAX || !plausible(buf) {
                Peeked::Other
            } else {
                Peeked::Incomplete
            };
        }
        Err(_) => return Peeked::Other,
    };
    if header_len > HEADER_MAX
        || req.version != Some(1)
        || !crate::frame::canonical(&buf[..header_len], req.headers)
    {
        return Peeked::Other;
    }
    let Some(fields) = Fields::read(req.headers) else {
        return Peeked::Other;
    };
    let Some((token_id, secret)) = fields.auth.and_then(bearer) else {
        return Peeked::Other;
    };
    let path = req.path.unwrap_or("");
    if req.method == Some("GET") {
        let Some((mailbox, seq)) = fetch_path(path) else {
            return Peeked::Other;
        };
        if fields.length.is_some_and(|l| l != "0") {
            return Peeked::Other;
        }
        return Peeked::Fetch {
            fetch: Fetch {
                mailbox: mailbox.to_owned(),
                seq,
                token_id: token_id.to_owned(),
                secret: secret.to_owned(),
                close: fields.close,
            },
            length: header_len,
        };
    }
    if req.method != Some("POST") {
        return Peeked::Other;
    }
    let Some(mailbox) = upload_mailbox(path) else {
        return Peeked::Other;
    };
    let (Some(length), Some(msg_id)) = (fields.length, fields.msg_id) else {
        return Peeked::Other;
    };
    let Some(length) = parse_length(length).filter(|n| (1..=body_max).contains(n)) else {
        return Peeked::Other;
    };
    if !is_message_id(msg_id) {
        return Peeked::Other;
    }
    let push = match fields.push {
        None => None,
        Some(raw) => match decode_push(raw, max_push) {
            Some(payload) => Some(payload),
            None => return Peeked::Other,
        },
    };
    let total = header_len + length;
    if buf.len() < total {
        return Peeked::Incomplete;
    }
    Peeked::Upload {
        upload: Upload {
            mailbox: mailbox.to_owned(),
            msg_id: msg_id.to_owned(),
            token_id: token_id.to_owned(),
            secret: secret.to_owned(),
            push,
            body: buf[header_len..total].to_vec(),
            close: fields.close,
        },
        length: total,
    }
}

/// A partial header worth waiting for: it starts like an upload's request line. Anything
/// else (a GET, a WebSocket, a probe) goes to the relay at once instead of after a wait.
fn plausible(buf: &[u8]) -> bool {
    [&b"POST /v1/mailboxes/"[..], b"GET /v1/mailboxes/"]
        .iter()
        .any(|start| {
            let n = buf.len().min(start.len());
            buf[..n] == start[..n]
        })
}

/// The headers the front reads; each at most once (a repeated one is the relay's call).
#[derive(Default)]
struct Fields<'a> {
    length: Option<&'a str>,
    auth: Option<&'a str>,
    msg_id: Option<&'a str>,
    push: Option<&'a str>,
    close: bool,
}

impl<'a> Fields<'a> {
    fn read(headers: &[httparse::Header<'a>]) -> Option<Self> {
        let mut out = Fields::default();
        let mut connection = false;
        for h in headers {
            let value = std::str::from_utf8(h.value).ok()?;
            if !value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            {
                return None;
            }
            let name = h.name;
            let slot = if name.eq_ignore_ascii_case("content-length") {
                &mut out.length
            } else if name.eq_ignore_ascii_case("authorization") {
                &mut out.auth
            } else if name.eq_ignore_ascii_case("privastead-message-id") {
                &mut out.msg_id
            } else if name.eq_ignore_ascii_case("privastead-push") {
                &mut out.push
            } else if name.eq_ignore_ascii_case("connection") {
                if connection {
                    return None;
                }
                connection = true;
                out.close = connection_close(value)?;
                continue;
            } else if ["transfer-encoding", "expect", "upgrade", "content-encoding"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                return None;
            } else {
                continue;
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(out)
    }
}

/// `Connection:` with only `keep-alive` and `close` tokens; Some(true) when it says close.
fn connection_close(value: &str) -> Option<bool> {
    let mut close = false;
    for token in value.split(',').map(str::trim) {
        if token.eq_ignore_ascii_case("close") {
            close = true;
        } else if !token.eq_ignore_ascii_case("keep-alive") {
            return None;
        }
    }
    Some(close)
}

/// `/v1/mailboxes/{32 lowercase hex}/messages`, exactly (no query string).
fn upload_mailbox(path: &str) -> Option<&str> {
    mailbox_id(
        path.strip_prefix("/v1/mailboxes/")?
            .strip_suffix("/messages")?,
    )
}

/// `/v1/mailboxes/{id}/messages/{seq}`, seq in 1..2^62 without sign or leading zero, no
/// query string (`?presign=` is the relay's).
fn fetch_path(path: &str) -> Option<(&str, i64)> {
    let (id, seq) = path
        .strip_prefix("/v1/mailboxes/")?
        .split_once("/messages/")?;
    let digits = !seq.is_empty() && seq.len() <= 19 && seq.bytes().all(|b| b.is_ascii_digit());
    if !digits || seq.starts_with('0') {
        return None;
    }
    let seq: i64 = seq.parse().ok().filter(|n| *n < 1 << 62)?;
    Some((mailbox_id(id)?, seq))
}

fn mailbox_id(id: &str) -> Option<&str> {
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    (id.len() == 32 && id.bytes().all(hex)).then_some(id)
}

fn parse_length(value: &str) -> Option<usize> {
    if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `Bearer pst_<16 hex>_<43 base64url>` -> (token id, secret).
fn bearer(value: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_matches([' ', '\t']).strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = token.split_at_checked(TOKEN_ID_LEN)?;
    let secret = secret.strip_prefix('_')?;
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (id_ok && secret_ok).then_some((id, secret))
}

fn is_message_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Strict base64 (padded, canonical, no whitespace) within the relay's length bound; the
/// relay decides about anything looser.
fn decode_push(raw: &str, max: usize) -> Option<Vec<u8>> {
    if raw.len() > max.div_ceil(3) * 4 {
        return None;
    }
    let payload = STANDARD.decode(raw).ok()?;
    (payload.len() <= max).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: &str = "0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "pst_0123456789abcdef_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";

    fn upload(extra: &str, body: &str) -> Vec<u8> {
        format!(
            "POST /v1/mailboxes/{MB}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Privastead-Message-Id: m1\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn is_upload(p: &Peeked) -> bool {
        matches!(p, Peeked::Upload { .. })
    }

    #[test]
    fn a_plain_upload_is_taken_whole() {
        let mut buf = upload("", "hello");
        let full = buf.len();
        buf.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        match examine(&buf, 16384, 4096) {
            Peeked::Upload { upload, length } => {
                assert_eq!(length, full);
                assert_eq!(upload.body, b"hello");
                assert_eq!(upload.mailbox, MB);
                assert_eq!(upload.token_id, "0123456789abcdef");
                assert_eq!(upload.msg_id, "m1");
                assert_eq!(upload.push, None);
                assert!(!upload.close);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn waits_only_for_what_can_become_an_upload() {
        let buf = upload("", "hello");
        assert_eq!(
            examine(&buf[..buf.len() - 1], 16384, 4096),
            Peeked::Incomplete
        );
        assert_eq!(examine(&buf[..10], 16384, 4096), Peeked::Incomplete);
        assert_eq!(examine(b"GET /v1/ws HT", 16384, 4096), Peeked::Other);
        assert_eq!(examine(b"POST /v1/messages", 16384, 4096), Peeked::Other);
    }

    #[test]
    fn anything_unusual_goes_to_the_relay() {
        for extra in [
            "Expect: 100-continue\r\n",
            "Transfer-Encoding: chunked\r\n",
            "Content-Encoding: gzip\r\n",
            "Connection: upgrade\r\n",
            "Content-Length: 5\r\n",
            "Privastead-Message-Id: m2\r\n",
            "Authorization: Bearer x\r\n",
            "Privastead-Push: !!\r\n",
            "X-Odd: caf\u{e9}\r\n",
        ] {
            assert_eq!(
                examine(&upload(extra, "hello"), 16384, 4096),
                Peeked::Other,
                "{extra}"
            );
        }
        let lf = String::from_utf8(upload("", "hello"))
            .unwrap_or_default()
            .replacen("Host: x\r\n", "Host: x\n", 1);
        assert_eq!(examine(lf.as_bytes(), 16384, 4096), Peeked::Other);
        let hostless = String::from_utf8(upload("", "hello"))
            .unwrap_or_default()
            .replacen("Host: x\r\n", "", 1);
        assert_eq!(examine(hostless.as_bytes(), 16384, 4096), Peeked::Other);
        assert_eq!(
            examine(&upload("Host: y\r\n", "hello"), 16384, 4096),
            Peeked::Other
        );
        let big = "x".repeat(100);
        assert_eq!(examine(&upload("", &big), 99, 4096), Peeked::Other);
        assert_eq!(examine(&upload("", ""), 16384, 4096), Peeked::Other);
        let http10 = String::from_utf8(upload("", "hello"))
            .unwrap_or_default()
            .replace("HTTP/1.1", "HTTP/1.0");
        assert_eq!(examine(http10.as_bytes(), 16384, 4096), Peeked::Other);
        let query = String::from_utf8(upload("", "hello"))
            .unwrap_or_default()
            .replace("/messages ", "/messages?message_id=x ");
        assert_eq!(examine(query.as_bytes(), 16384, 4096), Peeked::Other);
    }

    #[test]
    fn fetches_are_read() {
        let get = |path: &str, extra: &str| {
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n{extra}\r\n"
            )
        };
        let ok = get(&format!("/v1/mailboxes/{MB}/messages/42"), "");
        match examine(ok.as_bytes(), 16384, 4096) {
            Peeked::Fetch { fetch, length } => {
                assert_eq!((fetch.seq, length), (42, ok.len()));
                assert_eq!(fetch.mailbox, MB);
            }
            other => panic!("{other:?}"),
        }
        for path in [
            format!("/v1/mailboxes/{MB}/messages/042"),
            format!("/v1/mailboxes/{MB}/messages/0"),
            format!("/v1/mailboxes/{MB}/messages/+4"),
            format!("/v1/mailboxes/{MB}/messages/4611686018427387904"),
            format!("/v1/mailboxes/{MB}/messages/4?presign=1"),
            format!("/v1/mailboxes/{MB}/messages"),
        ] {
            assert_eq!(
                examine(get(&path, "").as_bytes(), 16384, 4096),
                Peeked::Other,
                "{path}"
            );
        }
        let with_body = get(
            &format!("/v1/mailboxes/{MB}/messages/4"),
            "Content-Length: 2\r\n",
        );
        assert_eq!(examine(with_body.as_bytes(), 16384, 4096), Peeked::Other);
    }

    #[test]
    fn push_and_close_are_read() {
        let buf = upload("Privastead-Push: aGk=\r\nConnection: close\r\n", "hello");
        match examine(&buf, 16384, 4096) {
            Peeked::Upload { upload, .. } => {
                assert_eq!(upload.push.as_deref(), Some(&b"hi"[..]));
                assert!(upload.close);
            }
            other => panic!("{other:?}"),
        }
        let empty = upload("Privastead-Push: \r\n", "hello");
        assert!(is_upload(&examine(&empty, 16384, 4096)));
        assert_eq!(
            examine(&upload("Privastead-Push: aGk=\r\n", "x"), 16384, 1),
            Peeked::Other
        );
    }

    #[test]
    fn tokens_are_checked_for_shape() {
        assert!(bearer(&format!("Bearer {TOKEN}")).is_some());
        assert!(bearer(&format!("bearer  {TOKEN} ")).is_some());
        assert!(bearer(&format!("Basic {TOKEN}")).is_none());
        assert!(bearer(&format!("Bearer {TOKEN}x")).is_none());
        assert!(
            bearer("Bearer pst_0123456789ABCDEF_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ")
                .is_none()
        );
    }
}
