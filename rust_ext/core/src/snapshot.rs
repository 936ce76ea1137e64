//! The state snapshot: everything a client knows, as one self-checking byte string.
//!
//! Layout (integers big-endian, `bytes` = u32 length + data):
//! magic `PRVSTMLS`, u16 format version, `bytes` openmls version, u16 ciphersuite,
//! `bytes` signer public key, `bytes` name, `bytes` app_data, u64 transaction sequence,
//! u32 count + `bytes` last handshake messages, u32 count + (`bytes` group id, u32 committer
//! leaf index), u32 count + (`bytes` key, `bytes` value) MemoryStorage entries sorted by key,
//! then a SHA-256 of everything before it.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"PRVSTMLS";
const FORMAT_VERSION: u16 = 1;
/// The OpenMLS release whose storage values (serde_json) this snapshot holds. A snapshot from
/// another minor line is refused rather than misread (OpenMLS changed storage tags in 0.8.x).
pub const OPENMLS_VERSION: &str = "0.9.2";
const OPENMLS_LINE: &str = "0.9.";
const DIGEST_LEN: usize = 32;

/// Decoded contents of a snapshot.
#[derive(Default)]
pub(crate) struct Snapshot {
    pub ciphersuite: u16,
    pub signer_public: Vec<u8>,
    pub name: Vec<u8>,
    pub app_data: Zeroizing<Vec<u8>>,
    pub seq: u64,
    pub last_handshake: Vec<Vec<u8>>,
    pub groups: Vec<(Vec<u8>, u32)>,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<()> {
    let len = u32::try_from(b.len()).map_err(|_| Error::Storage("field too large".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

fn put_count(out: &mut Vec<u8>, n: usize) -> Result<()> {
    let n = u32::try_from(n).map_err(|_| Error::Storage("too many entries".into()))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

impl Snapshot {
    /// Serialise, sorting nothing itself: callers pass entries already sorted.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>> {
        let size: usize = 128
            + self.signer_public.len()
            + self.name.len()
            + self.app_data.len()
            + self
                .last_handshake
                .iter()
                .map(|m| m.len() + 4)
                .sum::<usize>()
            + self.groups.iter().map(|(g, _)| g.len() + 8).sum::<usize>()
            + self
                .entries
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(size));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        put_bytes(&mut out, OPENMLS_VERSION.as_bytes())?;
        out.extend_from_slice(&self.ciphersuite.to_be_bytes());
        put_bytes(&mut out, &self.signer_public)?;
        put_bytes(&mut out, &self.name)?;
        put_bytes(&mut out, &self.app_data)?;
        out.extend_from_slice(&self.seq.to_be_bytes());
        put_count(&mut out, self.last_handshake.len())?;
        for m in &self.last_handshake {
            put_bytes(&mut out, m)?;
        }
        put_count(&mut out, self.groups.len())?;
        for (gid, committer) in &self.groups {
            put_bytes(&mut out, gid)?;
            out.extend_from_slice(&committer.to_be_bytes());
        }
        put_count(&mut out, self.entries.len())?;
        for (k, v) in &self.entries {
            put_bytes(&mut out, k)?;
            put_bytes(&mut out, v)?;
        }
        let digest = Sha256::digest(&out[..]);
        out.extend_from_slice(&digest);
        Ok(out)
    }

    /// Parse and verify a snapshot. Any defect is a `Storage` error; nothing is trusted before
    /// the trailer checks out.
    pub fn decode(data: &[u8]) -> Result<Snapshot> {
        if data.len() < MAGIC.len() + 2 + DIGEST_LEN || &data[..MAGIC.len()] != MAGIC {
            return Err(Error::Storage("not a Privastead MLS state file".into()));
        }
        let (body, trailer) = data.split_at(data.len() - DIGEST_LEN);
        if Sha256::digest(body).as_slice() != trailer {
            return Err(Error::Storage(
                "state file is corrupt (checksum mismatch)".into(),
            ));
        }
        let mut r = Reader {
            data: &body[MAGIC.len()..],
        };
        let format = r.u16()?;
        if format != FORMAT_VERSION {
            return Err(Error::Storage(format!(
                "state file format {format} is not supported (expected {FORMAT_VERSION})"
            )));
        }
        let openmls = r.bytes()?;
        if !openmls.starts_with(OPENMLS_LINE.as_bytes()) {
            return Err(Error::Storage(format!(
                "state file was written by openmls {}; this build uses {OPENMLS_VERSION}",
                String::from_utf8_lossy(openmls)
            )));
        }
        let mut s = Snapshot {
            ciphersuite: r.u16()?,
            signer_public: r.bytes()?.to_vec(),
            name: r.bytes()?.to_vec(),
            app_data: Zeroizing::new(r.bytes()?.to_vec()),
            seq: r.u64()?,
            ..Snapshot::default()
        };
        for _ in 0..r.u32()? {
            s.last_handshake.push(r.bytes()?.to_vec());
        }
        for _ in 0..r.u32()? {
            let gid = r.bytes()?.to_vec();
            s.groups.push((gid, r.u32()?));
        }
        for _ in 0..r.u32()? {
            let k = r.bytes()?.to_vec();
            s.entries.push((k, r.bytes()?.to_vec()));
        }
        if !r.data.is_empty() {
            return Err(Error::Storage("state file has trailing bytes".into()));
        }
        Ok(s)
    }
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() < n {
            return Err(Error::Storage("state file is truncated".into()));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            ciphersuite: 1,
            signer_public: vec![1; 32],
            name: b"hub".to_vec(),
            app_data: Zeroizing::new(b"outbox".to_vec()),
            seq: 7,
            last_handshake: vec![b"commit".to_vec()],
            groups: vec![(vec![9; 16], 0)],
            entries: vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec()),
            ],
        }
    }

    #[test]
    fn roundtrip() {
        let bytes = sample().encode().expect("encode");
        let s = Snapshot::decode(&bytes).expect("decode");
        assert_eq!(s.ciphersuite, 1);
        assert_eq!(s.name, b"hub");
        assert_eq!(&s.app_data[..], b"outbox");
        assert_eq!(s.seq, 7);
        assert_eq!(s.last_handshake, vec![b"commit".to_vec()]);
        assert_eq!(s.groups, vec![(vec![9; 16], 0)]);
        assert_eq!(s.entries.len(), 2);
    }

    #[test]
    fn every_single_bit_flip_and_every_truncation_is_refused() {
        let bytes = sample().encode().expect("encode");
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x01;
            assert!(
                matches!(Snapshot::decode(&b), Err(Error::Storage(_))),
                "flip {i}"
            );
            assert!(matches!(
                Snapshot::decode(&bytes[..i]),
                Err(Error::Storage(_))
            ));
        }
    }
}
