//! Password-authenticated key exchange for short-code pairing: SPAKE2 over Ed25519.
//!
//! Both ends know a short code (about 20 bits); each sends one message through the relay and
//! derives the same 32-byte key when, and only when, both used the same code. A relay that
//! runs the exchange itself gets one online guess per code: the exchange state is used once,
//! so a second inbound message never reaches the group arithmetic again.
//!
//! The implementation is the `spake2` crate of RustCrypto/PAKEs (the one Magic Wormhole's Rust
//! port uses); this module only fixes the roles, binds a context, and enforces one use.

use spake2::{Ed25519Group, Identity, Password, Spake2};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of an exchange message: one side byte plus a compressed Edwards point.
pub const PAKE_MESSAGE_LEN: usize = 33;
/// Length of the shared key `finish` returns.
pub const PAKE_KEY_LEN: usize = 32;

/// Which end of the pairing this is. The roles are asymmetric (SPAKE2's A and B), so a relay
/// that reflects one side's message back to it is refused instead of agreeing with itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The hub, which shows the code (SPAKE2 side A).
    Hub,
    /// The device, where a person types the code (SPAKE2 side B).
    Device,
}

impl Side {
    /// The side from its wire name (`"hub"` or `"device"`).
    pub fn parse(name: &str) -> Result<Side> {
        match name {
            "hub" => Ok(Side::Hub),
            "device" => Ok(Side::Device),
            other => Err(Error::InvalidArgument(format!(
                "unknown pairing side {other:?}: expected \"hub\" or \"device\""
            ))),
        }
    }
}

/// One side of one exchange. `finish` may be called once; every later call is refused.
pub struct Pake {
    state: Option<Spake2<Ed25519Group>>,
}

impl std::fmt::Debug for Pake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret scalar; only whether the exchange is still open.
        f.debug_struct("Pake")
            .field("open", &self.state.is_some())
            .finish()
    }
}

impl Pake {
    /// Starts an exchange: returns the state and the message to send to the other side.
    ///
    /// `code` is the normalised short code; `context` binds the exchange to one pairing (the
    /// relay and nameplate), so a message from another pairing never agrees with this one.
    pub fn start(side: Side, code: &[u8], context: &[u8]) -> Result<(Pake, Vec<u8>)> {
        if code.is_empty() {
            return Err(Error::InvalidArgument("the pairing code is empty".into()));
        }
        let password = Password::new(Zeroizing::new(code.to_vec()).as_slice());
        let id_hub = Identity::new(&tagged(b"privastead pairing hub\0", context));
        let id_device = Identity::new(&tagged(b"privastead pairing device\0", context));
        let (state, outbound) = match side {
            Side::Hub => Spake2::<Ed25519Group>::start_a(&password, &id_hub, &id_device),
            Side::Device => Spake2::<Ed25519Group>::start_b(&password, &id_hub, &id_device),
        };
        Ok((Pake { state: Some(state) }, outbound))
    }

    /// Whether `finish` may still be called.
    pub fn is_open(&self) -> bool {
        self.state.is_some()
    }

    /// Completes the exchange with the other side's message and returns the shared key.
    ///
    /// A wrong code does not fail here: it yields a key the other side does not have, which
    /// key confirmation then detects. The state is consumed even when the message is refused,
    /// so a malformed message also burns the exchange (no second try on the same secret).
    pub fn finish(&mut self, inbound: &[u8]) -> Result<Zeroizing<[u8; PAKE_KEY_LEN]>> {
        let state = self.state.take().ok_or_else(|| {
            Error::GroupState("this pairing exchange was already used; start a new one".into())
        })?;
        if inbound.len() != PAKE_MESSAGE_LEN {
            return Err(Error::Decode(format!(
                "pairing exchange message has {} bytes, expected {PAKE_MESSAGE_LEN}",
                inbound.len()
            )));
        }
        let key = state.finish(inbound).map_err(|e| {
            Error::Decode(format!(
                "pairing exchange message refused ({e}): not from the other side"
            ))
        })?;
        let key = Zeroizing::new(key);
        let mut out = Zeroizing::new([0u8; PAKE_KEY_LEN]);
        if key.len() != PAKE_KEY_LEN {
            return Err(Error::Internal(
                "SPAKE2 key has an unexpected length".into(),
            ));
        }
        out.copy_from_slice(&key);
        Ok(out)
    }
}

fn tagged(label: &[u8], context: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(label.len() + context.len());
    v.extend_from_slice(label);
    v.extend_from_slice(context);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(code_hub: &[u8], code_device: &[u8]) -> ([u8; 32], [u8; 32]) {
        let (mut hub, to_device) = Pake::start(Side::Hub, code_hub, b"ctx").expect("start");
        let (mut dev, to_hub) = Pake::start(Side::Device, code_device, b"ctx").expect("start");
        let k_hub = hub.finish(&to_hub).expect("hub finish");
        let k_dev = dev.finish(&to_device).expect("device finish");
        (*k_hub, *k_dev)
    }

    #[test]
    fn matching_codes_agree() {
        let (a, b) = pair(b"7-acid-acorn", b"7-acid-acorn");
        assert_eq!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn each_run_has_a_fresh_key() {
        let (a, _) = pair(b"7-acid-acorn", b"7-acid-acorn");
        let (c, _) = pair(b"7-acid-acorn", b"7-acid-acorn");
        assert_ne!(a, c);
    }

    #[test]
    fn a_wrong_code_disagrees() {
        let (a, b) = pair(b"7-acid-acorn", b"7-acid-acre");
        assert_ne!(a, b);
    }

    #[test]
    fn another_context_disagrees() {
        let (mut hub, to_device) = Pake::start(Side::Hub, b"code", b"relay-a/7").expect("start");
        let (mut dev, to_hub) = Pake::start(Side::Device, b"code", b"relay-b/7").expect("start");
        assert_ne!(
            *hub.finish(&to_hub).expect("finish"),
            *dev.finish(&to_device).expect("finish")
        );
    }

    #[test]
    fn reuse_is_refused() {
        let (mut hub, _) = Pake::start(Side::Hub, b"code", b"ctx").expect("start");
        let (_, to_hub) = Pake::start(Side::Device, b"code", b"ctx").expect("start");
        assert!(hub.is_open());
        hub.finish(&to_hub).expect("first finish");
        assert!(!hub.is_open());
        assert!(matches!(hub.finish(&to_hub), Err(Error::GroupState(_))));
    }

    #[test]
    fn malformed_messages_are_refused_and_burn_the_exchange() {
        let (_, good) = Pake::start(Side::Device, b"code", b"ctx").expect("start");
        let mut bad_len = good.clone();
        bad_len.pop();
        let mut bad_side = good.clone();
        bad_side[0] = 0;
        // A y coordinate with no point on the curve: about half of all values; take the
        // first of a few candidates that fails to decompress.
        let bad_point = (2u8..64)
            .map(|y| {
                let mut m = good.clone();
                m[1..].fill(0);
                m[1] = y;
                m
            })
            .find(|m| {
                let (mut hub, _) = Pake::start(Side::Hub, b"code", b"ctx").expect("start");
                hub.finish(m).is_err()
            })
            .expect("some y values are not on the curve");
        for bad in [Vec::new(), bad_len, bad_side, bad_point] {
            let (mut hub, _) = Pake::start(Side::Hub, b"code", b"ctx").expect("start");
            assert!(matches!(hub.finish(&bad), Err(Error::Decode(_))), "{bad:?}");
            // The state is gone: even the right message cannot be tried afterwards.
            assert!(matches!(hub.finish(&good), Err(Error::GroupState(_))));
        }
    }

    #[test]
    fn a_reflected_message_is_refused() {
        let (mut hub, to_device) = Pake::start(Side::Hub, b"code", b"ctx").expect("start");
        assert!(matches!(hub.finish(&to_device), Err(Error::Decode(_))));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(matches!(
            Pake::start(Side::Hub, b"", b"ctx"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Side::parse("relay"),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(Side::parse("hub").expect("hub"), Side::Hub);
        assert_eq!(Side::parse("device").expect("device"), Side::Device);
    }
}
