//! The P-256 work one plain login cannot do without, on both sides of the
//! wire: the floor under the server's and the load generator's CPU per login
//! (docs/benchmarks.md, "The crypto floor of a login").
//!
//! A plain login makes five ECDSA P-256 signatures and five verifications:
//! - the server verifies the pull's device signature and the decision's
//!   device and PIN-key signatures, and signs the envelope and the receipt;
//! - the phone signs its pull and its decision (device key and PIN key) and
//!   verifies the envelope; the relying party verifies the receipt.
//!
//! Each is the protocol crate's own `sign`/`verify`, on messages of a
//! login's size, so the figures are what the product pays per login.
//!
//! Run: `cargo bench -p eid-benches --bench floor -- --warm-up-time 1 --measurement-time 5`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use eid_protocol::crypto::{PublicKey, Signature, SoftwareSigningKey};

/// About the size of a login's signed bytes (an envelope's canonical form).
const MESSAGE_LEN: usize = 300;

/// One key and a signature of it over a login-sized message.
struct Signer {
    key: SoftwareSigningKey,
    public: PublicKey,
    message: Vec<u8>,
    signature: Signature,
}

impl Signer {
    fn new(fill: u8) -> Self {
        let key = SoftwareSigningKey::generate();
        let message = vec![fill; MESSAGE_LEN];
        let signature = key.sign(&message);
        let public = key.public_key().clone();
        Self {
            key,
            public,
            message,
            signature,
        }
    }

    fn sign(&self) -> Signature {
        self.key.sign(black_box(&self.message))
    }

    fn verify(&self) {
        self.public
            .verify(black_box(&self.message), black_box(&self.signature))
            .unwrap();
    }
}

fn floor(c: &mut Criterion) {
    let server = Signer::new(1);
    let device = Signer::new(2);
    let pin = Signer::new(3);
    let mut group = c.benchmark_group("login_crypto");
    group.bench_function("sign", |b| b.iter(|| server.sign()));
    group.bench_function("verify", |b| b.iter(|| device.verify()));
    // The server's share: 3 verifications, 2 signatures.
    group.bench_function("server", |b| {
        b.iter(|| {
            device.verify();
            device.verify();
            pin.verify();
            (server.sign(), server.sign())
        })
    });
    // Both sides: the server's share, then the phone's (3 signatures, the
    // envelope verified) and the relying party's (the receipt verified).
    group.bench_function("both_sides", |b| {
        b.iter(|| {
            device.verify();
            device.verify();
            pin.verify();
            let server_made = (server.sign(), server.sign());
            let phone_made = (device.sign(), device.sign(), pin.sign());
            server.verify();
            server.verify();
            (server_made, phone_made)
        })
    });
    group.finish();
}

criterion_group!(benches, floor);
criterion_main!(benches);
