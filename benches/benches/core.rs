//! Phone-core benchmarks against a real eid-server over TLS on 127.0.0.1
//! (what each one times: `docs/benchmarks.md`).
//!
//! Run: `cargo bench -p eid-benches -- --warm-up-time 1 --measurement-time 5`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use eid_benches::{AUTHENTICATORS, Fixture, PENDING_PER_AUTHENTICATOR, PIN};
use eid_core::KdfCost;
use eid_core::pin::{KDF_DEFAULT_TARGET, calibrate};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    // Two workers: the in-process server runs on them; the benchmarked core
    // calls run on the bench thread through `block_on`.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// App open → display models: 3 authenticators, 5 pending requests each.
fn app_open(c: &mut Criterion, rt: &Runtime, f: &mut Fixture) {
    rt.block_on(f.refill(PENDING_PER_AUTHENTICATOR)).unwrap();
    let expected = AUTHENTICATORS * PENDING_PER_AUTHENTICATOR;
    let mut group = c.benchmark_group("app_open");

    // Cold: open the database, build a new pinned HTTPS client, then one pull
    // (TCP connect + TLS 1.3 handshake + signed pull of 3 authenticators), verify 15
    // envelopes, store them and build the display models. Dropping the core
    // (closing the connection) is not timed.
    group.bench_function("cold", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let phone = f.open_phone().unwrap();
                let views = rt.block_on(phone.refresh()).unwrap();
                total += start.elapsed();
                assert_eq!(views.len(), expected);
                drop(black_box(phone));
            }
            total
        })
    });

    // Cold, and all 15 requests are new to the phone (each envelope's
    // signature is verified; the core skips envelopes it stored before).
    // Untimed per iteration: the 15 previous requests are cancelled and 15
    // new ones created through the service-provider API.
    group.sample_size(10);
    group.bench_function("cold_new_requests", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(f.refill(PENDING_PER_AUTHENTICATOR)).unwrap();
                let start = Instant::now();
                let phone = f.open_phone().unwrap();
                let views = rt.block_on(phone.refresh()).unwrap();
                total += start.elapsed();
                assert_eq!(views.len(), expected);
                drop(black_box(phone));
            }
            total
        })
    });
    group.sample_size(100);

    // Warm: refresh() on an open core whose connection is already up.
    let phone = f.open_phone().unwrap();
    rt.block_on(phone.refresh()).unwrap();
    group.bench_function("warm", |b| {
        b.iter(|| {
            let views = rt.block_on(phone.refresh()).unwrap();
            assert_eq!(views.len(), expected);
            views
        })
    });

    // Warm, with nothing pending: the pull's fixed cost (3 device signatures,
    // server checks, empty answer, local writes).
    rt.block_on(f.refill(0)).unwrap();
    group.bench_function("warm_no_requests", |b| {
        b.iter(|| {
            let views = rt.block_on(phone.refresh()).unwrap();
            assert!(views.is_empty());
            views
        })
    });
    group.finish();
}

/// The bare loopback round trip over the same kind of pinned TLS client.
fn round_trip(c: &mut Criterion, rt: &Runtime, f: &Fixture) {
    let client = f.pinned_probe_client().unwrap();
    let url = format!("{}/healthz", f.base_url());
    let get = || async {
        let r = client.get(&url).send().await.unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap()
    };
    rt.block_on(get());
    c.bench_function("round_trip/healthz_warm", |b| b.iter(|| rt.block_on(get())));
}

/// approve(): sign with the device and PIN keys, submit, verify the receipt,
/// store it. Only the `approve` call is timed; per iteration, untimed: a new
/// request is created through the service-provider API, pulled with refresh() and unlocked
/// (PIN KDF at 1 PBKDF2 iteration: the KDF is benchmarked in `pin_check`).
fn approve(c: &mut Criterion, rt: &Runtime, f: &mut Fixture) {
    rt.block_on(f.refill(PENDING_PER_AUTHENTICATOR)).unwrap();
    let phone = f.open_phone().unwrap();
    rt.block_on(phone.refresh()).unwrap();
    let mut next = 0usize;
    let mut group = c.benchmark_group("approve");
    group.bench_function("approve_excluding_kdf", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let index = next % AUTHENTICATORS;
                next += 1;
                let authenticator = f.authenticators[index].authenticator_id;
                let request = rt.block_on(f.create_request(index)).unwrap();
                rt.block_on(phone.refresh()).unwrap();
                let token = rt
                    .block_on(phone.unlock(&authenticator, &request, PIN))
                    .unwrap();
                let start = Instant::now();
                let receipt = rt.block_on(phone.approve(&token, true, None)).unwrap();
                total += start.elapsed();
                assert_eq!(receipt.receipt.request_id, request);
            }
            total
        })
    });
    group.finish();
}

/// The PIN check through the public API: unlock() with the right PIN
/// (attempt counted durably, PBKDF2 + hardware secret + HKDF, AES-GCM open
/// of the PIN key, attempt counter reset). Repeatable on the same request.
fn pin_check(c: &mut Criterion, rt: &Runtime, f: &mut Fixture, name: &str, samples: usize) {
    rt.block_on(f.refill(1)).unwrap();
    let phone = f.open_phone().unwrap();
    let views = rt.block_on(phone.refresh()).unwrap();
    let (authenticator, request) = (views[0].authenticator_id, views[0].request_id);
    let mut group = c.benchmark_group("pin_check");
    group.sample_size(samples);
    group.bench_function(name, |b| {
        b.iter(|| {
            rt.block_on(phone.unlock(&authenticator, &request, PIN))
                .unwrap()
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    // Small KDF cost: app open, approve and the non-KDF part of the PIN check.
    let mut fast = rt.block_on(Fixture::start(KdfCost::Fixed(1))).unwrap();
    app_open(c, &rt, &mut fast);
    round_trip(c, &rt, &fast);
    approve(c, &rt, &mut fast);
    pin_check(c, &rt, &mut fast, "fixed_1_iteration", 100);
    rt.block_on(fast.shutdown());

    // Production cost: calibrated to the default target on this machine.
    eprintln!(
        "calibrated PBKDF2 iterations for {KDF_DEFAULT_TARGET:?} on this machine: {}",
        calibrate(KDF_DEFAULT_TARGET)
    );
    let mut calibrated = rt.block_on(Fixture::start(KdfCost::default())).unwrap();
    pin_check(c, &rt, &mut calibrated, "calibrated", 10);
    rt.block_on(calibrated.shutdown());
}

criterion_group!(core, benches);
criterion_main!(core);
