//! Opaque 128-bit identifiers. On the wire they are 32 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An identifier string that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an id must be 32 lowercase hexadecimal digits")]
#[non_exhaustive]
pub struct IdParseError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A fresh random id from the system's secure random generator.
            pub fn random() -> Self {
                Self(crate::crypto::random_array())
            }

            /// The raw 16 bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// The id's text (32 lowercase hex digits, as `Display` writes
            /// it) written into `buf`, for a look-up that needs no `String`.
            pub fn hex<'a>(&self, buf: &'a mut [u8; 32]) -> &'a str {
                hex16(&self.0, buf)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(hex16(&self.0, &mut [0; 32]))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex16(s).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serialize_hex16(&self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some("^[0-9a-f]{32}$"))
                    .description(Some(concat!(stringify!($name), ": 32 lowercase hex digits")))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

/// `bytes` as 32 lowercase hex digits written into `buf` (the text of
/// `hex::encode`, without a `String`).
pub(crate) fn hex16<'a>(bytes: &[u8; 16], buf: &'a mut [u8; 32]) -> &'a str {
    // Both lengths are fixed, so neither step can fail: the digits are ASCII.
    hex::encode_to_slice(bytes, buf).expect("32 digits for 16 bytes");
    std::str::from_utf8(buf).expect("hex digits are ASCII")
}

/// Serializes 16 bytes as 32 lowercase hex digits, from a stack buffer.
pub(crate) fn serialize_hex16<S: Serializer>(bytes: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(hex16(bytes, &mut [0; 32]))
}

fn parse_hex16(s: &str) -> Result<[u8; 16], IdParseError> {
    if s.len() != 32
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(IdParseError);
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(s, &mut out).map_err(|_| IdParseError)?;
    Ok(out)
}

id_type!(
    /// A login or signature request created by a relying party.
    RequestId
);
id_type!(
    /// A person's identity at the broker (stable even when the user ID changes).
    IdentityId
);
id_type!(
    /// One activated authenticator (one app installation for one identity).
    AuthenticatorId
);
id_type!(
    /// A registered service provider (relying party).
    ServiceProviderId
);
id_type!(
    /// A self-service change (of phone number, e-mail address or user ID).
    ChangeId
);
id_type!(
    /// A single-use 128-bit nonce (device request authentication).
    Nonce16
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_round_trips_and_refuses_bad_text() {
        let id = RequestId([0xab; 16]);
        let text = id.to_string();
        assert_eq!(text, "ab".repeat(16));
        assert_eq!(text.parse::<RequestId>(), Ok(id));
        assert_eq!("AB".repeat(16).parse::<RequestId>(), Err(IdParseError));
        assert_eq!("ab".repeat(15).parse::<RequestId>(), Err(IdParseError));
        assert_eq!("zz".repeat(16).parse::<RequestId>(), Err(IdParseError));
    }

    /// The ids' text is written without a `String` now: the same digits as
    /// `hex::encode`, in `Display` and in JSON alike, for every byte value.
    #[test]
    fn ids_are_written_as_hex_encode_writes_them() {
        let mut all = [0u8; 256];
        for (i, b) in all.iter_mut().enumerate() {
            *b = i as u8;
        }
        for chunk in all.chunks_exact(16) {
            let id = ServiceProviderId(chunk.try_into().unwrap());
            let hex = hex::encode(chunk);
            assert_eq!(id.to_string(), hex);
            assert_eq!(format!("{id:?}"), format!("ServiceProviderId({hex})"));
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{hex}\""));
            assert_eq!(
                serde_json::to_string(&RequestId(id.0)).unwrap(),
                format!("\"{hex}\"")
            );
        }
    }
}
