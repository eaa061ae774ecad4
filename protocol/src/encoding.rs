//! The canonical signing encoding (version 1).
//!
//! Every signed message is `domain || fields`, where `domain` is a one-byte length
//! followed by an ASCII tag naming the message and its version, and the fields are
//! written in a fixed order with fixed-width or length-prefixed encodings:
//!
//! | type            | bytes                                   |
//! |-----------------|-----------------------------------------|
//! | `u8`            | 1 byte                                  |
//! | `u64`           | 8 bytes, big-endian                     |
//! | fixed `[u8; N]` | N bytes                                 |
//! | bytes, string   | `u32` big-endian length, then the bytes |
//! | optional        | `0x00`, or `0x01` then the value        |
//!
//! The encoding is injective for a given domain: no two different field tuples
//! give the same bytes, and different domains never collide because the tag
//! comes first with its length. See `docs/protocol.md`.

/// Builds canonical message bytes. Field order is the caller's responsibility;
/// each message type in [`crate::messages`] fixes it.
#[derive(Debug)]
pub struct CanonicalWriter {
    buf: Vec<u8>,
}

impl CanonicalWriter {
    /// Starts a message with its domain-separation tag.
    ///
    /// # Panics
    /// If the tag is longer than 255 bytes or not ASCII; tags are constants.
    pub fn new(domain: &'static str) -> Self {
        assert!(
            domain.is_ascii() && domain.len() <= 255,
            "invalid domain tag"
        );
        let mut buf = Vec::with_capacity(256);
        buf.push(domain.len() as u8);
        buf.extend_from_slice(domain.as_bytes());
        Self { buf }
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a fixed-width byte array (its width is part of the message format).
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends length-prefixed bytes.
    ///
    /// # Panics
    /// If `v` is 4 GiB or longer, which no wire message allows.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).expect("field longer than u32::MAX");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a length-prefixed UTF-8 string (its exact bytes, no normalization).
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// Appends an optional string.
    pub fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(s) => self.u8(1).str(s),
        }
    }

    /// Appends a boolean as `0x00` or `0x01`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// The finished message bytes.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}
