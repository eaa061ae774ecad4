//! Counts the work of one phone-core operation against the in-process
//! server (both sides: one process), for `scripts/core-work.sh`, which runs
//! this under `perf stat` with counters switched on only around the
//! operation (`docs/benchmarks.md`, "Counting the work").
//!
//! `cargo run --release -p eid-benches --example work -- OP ITERATIONS`,
//! OP one of `cold`, `cold_closed`, `warm`, `warm_no_requests`, `approve`. With
//! `EID_PERF_CTL=<control fifo>` and `EID_PERF_ACK=<ack fifo>` (perf stat's
//! `--control fifo:CTL,ACK --delay=-1`), the counters run only while the
//! operation does; without them the example times the operations alone.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use eid_benches::{AUTHENTICATORS, Fixture, PENDING_PER_AUTHENTICATOR, PIN};
use eid_core::KdfCost;

/// perf stat's control and acknowledgement fifos, if run under it.
struct Perf {
    ctl: std::fs::File,
    ack: BufReader<std::fs::File>,
}

impl Perf {
    fn from_env() -> Option<Self> {
        let ctl = std::env::var("EID_PERF_CTL").ok()?;
        let ack = std::env::var("EID_PERF_ACK").ok()?;
        Some(Self {
            ctl: std::fs::OpenOptions::new().write(true).open(ctl).unwrap(),
            ack: BufReader::new(std::fs::File::open(ack).unwrap()),
        })
    }

    fn send(&mut self, what: &str) {
        writeln!(self.ctl, "{what}").unwrap();
        self.ctl.flush().unwrap();
        let mut line = String::new();
        self.ack.read_line(&mut line).unwrap();
    }
}

struct Counted {
    perf: Option<Perf>,
    total: Duration,
    started: Option<Instant>,
    /// Each operation's wall time where timed one by one ([`Counted::time`]):
    /// on a shared machine preemptions move the mean more than the median.
    each: Vec<Duration>,
}

impl Counted {
    fn on(&mut self) {
        if let Some(p) = &mut self.perf {
            p.send("enable");
        }
        self.started = Some(Instant::now());
    }

    /// Times one operation while the counters run.
    fn time<T>(&mut self, op: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = op();
        self.each.push(start.elapsed());
        out
    }

    fn off(&mut self) {
        self.total += self.started.take().unwrap().elapsed();
        if let Some(p) = &mut self.perf {
            p.send("disable");
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let op = args.get(1).map_or("warm", String::as_str).to_owned();
    let n: usize = args.get(2).map_or(200, |s| s.parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut f = rt.block_on(Fixture::start(KdfCost::Fixed(1))).unwrap();
    let expected = AUTHENTICATORS * PENDING_PER_AUTHENTICATOR;
    let mut c = Counted {
        perf: Perf::from_env(),
        total: Duration::ZERO,
        started: None,
        each: Vec::with_capacity(n),
    };
    match op.as_str() {
        "cold" => {
            rt.block_on(f.refill(PENDING_PER_AUTHENTICATOR)).unwrap();
            drop(rt.block_on(f.open_phone().unwrap().refresh()).unwrap());
            // Dropping a core (closing its connection) is not counted, as in
            // the criterion bench.
            let mut opened = Vec::with_capacity(n);
            c.on();
            for _ in 0..n {
                let (phone, views) = c.time(|| {
                    let phone = f.open_phone().unwrap();
                    let views = rt.block_on(phone.refresh()).unwrap();
                    (phone, views)
                });
                assert_eq!(views.len(), expected);
                opened.push(phone);
            }
            c.off();
            drop(opened);
        }
        "cold_closed" => {
            // As the criterion bench: each core is dropped (its connection
            // closed, so the WAL is checkpointed and removed) before the next
            // opens, with the counters off while it closes.
            rt.block_on(f.refill(PENDING_PER_AUTHENTICATOR)).unwrap();
            drop(rt.block_on(f.open_phone().unwrap().refresh()).unwrap());
            for _ in 0..n {
                c.on();
                let (phone, views) = c.time(|| {
                    let phone = f.open_phone().unwrap();
                    let views = rt.block_on(phone.refresh()).unwrap();
                    (phone, views)
                });
                c.off();
                assert_eq!(views.len(), expected);
                drop(phone);
            }
        }
        "warm" | "warm_no_requests" => {
            let pending = if op == "warm" {
                PENDING_PER_AUTHENTICATOR
            } else {
                0
            };
            rt.block_on(f.refill(pending)).unwrap();
            let phone = f.open_phone().unwrap();
            rt.block_on(phone.refresh()).unwrap();
            c.on();
            for _ in 0..n {
                let views = c.time(|| rt.block_on(phone.refresh()).unwrap());
                assert_eq!(views.len(), AUTHENTICATORS * pending);
            }
            c.off();
        }
        "approve" => {
            rt.block_on(f.refill(PENDING_PER_AUTHENTICATOR)).unwrap();
            let phone = f.open_phone().unwrap();
            rt.block_on(phone.refresh()).unwrap();
            for i in 0..n {
                let index = i % AUTHENTICATORS;
                let authenticator = f.authenticators[index].authenticator_id;
                let request = rt.block_on(f.create_request(index)).unwrap();
                rt.block_on(phone.refresh()).unwrap();
                let token = rt
                    .block_on(phone.unlock(&authenticator, &request, PIN))
                    .unwrap();
                c.on();
                let receipt = c.time(|| rt.block_on(phone.approve(&token, true, None)).unwrap());
                c.off();
                assert_eq!(receipt.receipt.request_id, request);
            }
        }
        other => panic!("unknown operation {other}"),
    }
    c.each.sort();
    let median = c.each.get(c.each.len() / 2).map_or(String::new(), |m| {
        format!(", median {:.1} µs", m.as_secs_f64() * 1e6)
    });
    eprintln!(
        "{op}: {n} iterations, {:.1} µs wall per operation{median}",
        c.total.as_secs_f64() * 1e6 / n as f64
    );
    rt.block_on(f.shutdown());
}
