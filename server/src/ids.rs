//! The ids of the requests the server makes.
//!
//! A request id is 16 bytes: the creation time in Unix milliseconds (48
//! bits, big-endian) and then 80 bits from the system's secure random
//! generator. Ids made one after the other sort one after the other, so the
//! B-trees keyed by a request id (the requests' and the decisions' unique
//! indexes) grow at their right edge: a commit's new entries share a page
//! instead of each dirtying a random one (docs/benchmarks.md, "Fourth
//! pass"). The id shows when the request was made, which its envelope says
//! already; it is no bearer capability (every read of a request needs the
//! provider's API key, the phone's signature or a sealed cookie), and its
//! 80 random bits keep ids unguessable and apart (docs/threat-model.md,
//! "What a request id shows").
//!
//! Every request id the server hands out comes from [`request_id`], the
//! stand-ins for an unknown user ID included, so an id's shape does not
//! tell a real request from a stand-in.

use eid_protocol::RequestId;

/// A new request id made at `now_ms` (the request's `created_at_ms`).
pub(crate) fn request_id(now_ms: u64) -> RequestId {
    let random: [u8; 10] = eid_protocol::crypto::random_array();
    let mut id = [0u8; 16];
    // The low 48 bits of the time: Unix milliseconds fit until the year
    // 10889.
    id[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
    id[6..].copy_from_slice(&random);
    RequestId(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_its_creation_time_then_80_random_bits() {
        let now = 1_764_640_000_123_u64;
        let a = request_id(now);
        let b = request_id(now);
        assert_eq!(a.0[..6], now.to_be_bytes()[2..]);
        assert_eq!(b.0[..6], a.0[..6]);
        // The random part differs (a collision of 80 random bits would be
        // a broken generator).
        assert_ne!(a.0[6..], b.0[6..]);
        assert_eq!(
            u64::from_be_bytes([0, 0, a.0[0], a.0[1], a.0[2], a.0[3], a.0[4], a.0[5]]),
            now
        );
    }

    #[test]
    fn later_request_ids_sort_after_earlier_ones() {
        let mut last = request_id(1_000);
        for now in [1_001, 1_002, 65_536, 1 << 40, (1 << 48) - 1] {
            let next = request_id(now);
            assert!(next > last, "{next} after {last}");
            last = next;
        }
    }

    /// Every request id the server hands out, the stand-ins for an unknown
    /// user ID included, comes from [`request_id`]: an id made another way
    /// (all random) would tell a stand-in from a real request by its shape.
    /// Test code (after a file's `#[cfg(test)]`, and the store's
    /// conformance suite and PostgreSQL tests) may make random ones.
    #[test]
    fn the_server_makes_request_ids_only_here() {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                    continue;
                }
                let name = path.to_string_lossy().into_owned();
                if !name.ends_with(".rs")
                    || name.ends_with("store/conformance.rs")
                    || name.ends_with("postgres/tests.rs")
                    || name.ends_with("src/ids.rs")
                {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                for made in [
                    "RequestId::random(",
                    "RequestId(random_array",
                    "RequestId(eid_protocol::crypto::random_array",
                ] {
                    if code.contains(made) {
                        found.push(format!("{name}: {made}"));
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(
            found.is_empty(),
            "request ids made outside ids::request_id: {found:?}"
        );
    }
}
