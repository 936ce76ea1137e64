//! The on-disk layout of a state file: a header page and two fixed-size slots.
//!
//! ```text
//! page 0   "PRVSTATE", u16 format (2), u16 reserved, u32 slot size, zero padding
//! slot 0   u64 seq, u32 length, SHA-256(seq ‖ length ‖ payload), payload, zero padding
//! slot 1   same
//! ```
//!
//! Integers are big-endian. Slot sizes are whole pages. A slot with a zero `seq`, a length that
//! does not fit, or a digest that does not match holds nothing (a torn or wiped write). The
//! live state is the valid slot with the highest `seq`. A file that does not start with the
//! magic is a format-1 file: the whole file is one payload.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub(crate) const MAGIC: &[u8; 8] = b"PRVSTATE";
pub(crate) const FORMAT: u16 = 2;
pub(crate) const PAGE: usize = 4096;
/// Bytes before a slot's payload: seq, length, digest.
pub(crate) const SLOT_HEADER: usize = 8 + 4 + 32;
/// The smallest slot: a fresh identity's state fits several times.
const MIN_SLOT: usize = 4 * PAGE;

/// Where the two slots of a format-2 file lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub slot_size: usize,
}

impl Layout {
    /// A layout with room for `payload_len` bytes and as much again, so the state can grow
    /// for a while before the file has to be rebuilt.
    pub fn for_payload(payload_len: usize) -> Layout {
        let want = (SLOT_HEADER + payload_len).saturating_mul(2).max(MIN_SLOT);
        Layout {
            slot_size: want.div_ceil(PAGE) * PAGE,
        }
    }

    pub fn fits(&self, payload_len: usize) -> bool {
        SLOT_HEADER + payload_len <= self.slot_size
    }

    pub fn offset(&self, slot: usize) -> u64 {
        (PAGE + slot * self.slot_size) as u64
    }

    pub fn file_len(&self) -> usize {
        PAGE + 2 * self.slot_size
    }

    /// The header page.
    pub fn header(&self) -> Vec<u8> {
        let mut page = vec![0u8; PAGE];
        page[..8].copy_from_slice(MAGIC);
        page[8..10].copy_from_slice(&FORMAT.to_be_bytes());
        page[12..16].copy_from_slice(&(self.slot_size as u32).to_be_bytes());
        page
    }

    /// The full image of one slot holding `payload` as state number `seq`.
    pub fn slot_image(&self, seq: u64, payload: &[u8]) -> Zeroizing<Vec<u8>> {
        debug_assert!(self.fits(payload.len()));
        let mut image = Zeroizing::new(vec![0u8; self.slot_size]);
        let len = (payload.len() as u32).to_be_bytes();
        image[..8].copy_from_slice(&seq.to_be_bytes());
        image[8..12].copy_from_slice(&len);
        image[12..SLOT_HEADER].copy_from_slice(&digest(seq, payload));
        image[SLOT_HEADER..SLOT_HEADER + payload.len()].copy_from_slice(payload);
        image
    }
}

fn digest(seq: u64, payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seq.to_be_bytes());
    h.update((payload.len() as u32).to_be_bytes());
    h.update(payload);
    h.finalize().into()
}

/// What a file holds.
pub(crate) enum Contents {
    /// Format 1: the whole file is the payload; the next write converts it.
    Legacy(Zeroizing<Vec<u8>>),
    Slotted {
        layout: Layout,
        /// Index and seq of the live slot, and its payload.
        live: (usize, u64),
        payload: Zeroizing<Vec<u8>>,
        /// The other slot also holds a (older) valid state: a crash came between a write and
        /// the wipe of the slot it replaced.
        stale: Option<usize>,
    },
}

/// Parse a whole file. `Err` carries a reason for a file no valid state can be read from.
pub(crate) fn parse(file: &[u8]) -> Result<Contents, String> {
    if !file.starts_with(MAGIC) {
        return Ok(Contents::Legacy(Zeroizing::new(file.to_vec())));
    }
    if file.len() < PAGE {
        return Err("truncated header".into());
    }
    let format = u16::from_be_bytes([file[8], file[9]]);
    if format != FORMAT {
        return Err(format!("unknown state file format {format}"));
    }
    let slot_size = u32::from_be_bytes([file[12], file[13], file[14], file[15]]) as usize;
    if slot_size < SLOT_HEADER || !slot_size.is_multiple_of(PAGE) {
        return Err(format!("bad slot size {slot_size}"));
    }
    let layout = Layout { slot_size };
    if file.len() != layout.file_len() {
        return Err(format!(
            "{} bytes where the layout needs {}",
            file.len(),
            layout.file_len()
        ));
    }
    let mut valid: Vec<(usize, u64, &[u8])> = Vec::with_capacity(2);
    for slot in 0..2 {
        let start = PAGE + slot * slot_size;
        if let Some((seq, payload)) = read_slot(&file[start..start + slot_size]) {
            valid.push((slot, seq, payload));
        }
    }
    valid.sort_by_key(|v| std::cmp::Reverse(v.1));
    let Some(&(slot, seq, payload)) = valid.first() else {
        return Err("no slot holds a valid state".into());
    };
    Ok(Contents::Slotted {
        layout,
        live: (slot, seq),
        payload: Zeroizing::new(payload.to_vec()),
        stale: valid.get(1).map(|v| v.0),
    })
}

fn read_slot(slot: &[u8]) -> Option<(u64, &[u8])> {
    let seq = u64::from_be_bytes(slot[..8].try_into().ok()?);
    let len = u32::from_be_bytes(slot[8..12].try_into().ok()?) as usize;
    if seq == 0 || SLOT_HEADER + len > slot.len() {
        return None;
    }
    let payload = &slot[SLOT_HEADER..SLOT_HEADER + len];
    (digest(seq, payload)[..] == slot[12..SLOT_HEADER]).then_some((seq, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(layout: Layout, slots: [Option<(u64, &[u8])>; 2]) -> Vec<u8> {
        let mut file = layout.header();
        for s in slots {
            match s {
                Some((seq, p)) => file.extend_from_slice(&layout.slot_image(seq, p)),
                None => file.extend(std::iter::repeat_n(0u8, layout.slot_size)),
            }
        }
        file
    }

    fn live(c: Contents) -> (usize, u64, Vec<u8>, Option<usize>) {
        match c {
            Contents::Slotted {
                live,
                payload,
                stale,
                ..
            } => (live.0, live.1, payload.to_vec(), stale),
            Contents::Legacy(_) => panic!("not slotted"),
        }
    }

    #[test]
    fn the_highest_valid_seq_wins_and_an_older_valid_slot_is_reported_stale() {
        let l = Layout::for_payload(100);
        assert_eq!(l.slot_size % PAGE, 0);
        let f = file_with(l, [Some((7, b"old")), Some((8, b"new"))]);
        assert_eq!(
            live(parse(&f).expect("parse")),
            (1, 8, b"new".to_vec(), Some(0))
        );
        let f = file_with(l, [Some((9, b"newest")), None]);
        assert_eq!(
            live(parse(&f).expect("parse")),
            (0, 9, b"newest".to_vec(), None)
        );
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_other_and_every_flip_is_caught() {
        let l = Layout::for_payload(64);
        let good = file_with(l, [Some((3, b"durable state")), Some((4, b"torn write"))]);
        // Every single-byte corruption inside slot 1's header or payload invalidates it.
        let start = PAGE + l.slot_size;
        for i in start..start + SLOT_HEADER + 10 {
            let mut f = good.clone();
            f[i] ^= 0x40;
            let (slot, seq, payload, stale) = live(parse(&f).expect("parse"));
            assert_eq!(
                (slot, seq, payload, stale),
                (0, 3, b"durable state".to_vec(), None)
            );
        }
        let mut f = good.clone();
        f[start..start + l.slot_size].fill(0);
        assert_eq!(live(parse(&f).expect("parse")).1, 3);
    }

    #[test]
    fn damaged_files_are_errors_and_other_files_are_format_1() {
        let l = Layout::for_payload(10);
        let both_bad = file_with(l, [None, None]);
        assert!(parse(&both_bad).is_err());
        let good = file_with(l, [Some((1, b"x")), None]);
        assert!(parse(&good[..good.len() - 1]).is_err());
        assert!(parse(&good[..100]).is_err());
        let mut other = good.clone();
        other[9] = 3;
        assert!(parse(&other).is_err());
        assert!(
            matches!(parse(b"PRVSTMLS..."), Ok(Contents::Legacy(p)) if &p[..] == b"PRVSTMLS...")
        );
    }

    #[test]
    fn layouts_leave_room_to_grow() {
        let l = Layout::for_payload(20_000);
        assert!(l.fits(20_000) && l.fits(40_000));
        assert!(!l.fits(l.slot_size));
        assert_eq!(Layout::for_payload(0).slot_size, MIN_SLOT);
    }
}
