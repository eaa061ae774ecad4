//! `eid-loadgen`: runs the full login flow with N simulated phones against a
//! server on loopback and reports logins per second and per-step latency.
//!
//! Each phone loops: the service provider creates a request → the phone pulls
//! (signed, verifies the envelope) → the phone approves (device + PIN key,
//! verifies the receipt) → the service provider reads the result (verifies the
//! receipt). With `--flow oidc` each login is an OpenID Connect login
//! instead (see `oidc`). Bounded in time and count; refuses any target but
//! 127.0.0.0/8.

mod oidc;

/// mimalloc: the request path allocates many small short-lived buffers; it
/// measured faster than glibc malloc under the load generator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use eid_api_client::{
    AdminClient, Endpoint, Http2Connection, ProviderClient, SoftPhone, Transport, verify_receipt,
};
use eid_protocol::wire::RequestStatus;
use eid_protocol::{Outcome, RequestKind};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Load generator for the eID server (loopback only, bounded).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Simulated phones (each its own identity), running concurrently.
    #[arg(long, default_value_t = 64)]
    phones: usize,
    /// Seconds to run (at most 900).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Stop after this many logins (at most 10 million).
    #[arg(long, default_value_t = 1_000_000)]
    max_logins: u64,
    /// Target server (https://127.x.x.x:PORT), as for the `eid` CLI. Without
    /// it, an embedded server runs in this process on a temporary SQLite
    /// database. A target server keeps its own flood limits: turn them off
    /// in its configuration (docs/configuration.md) to measure throughput.
    #[arg(long, env = "EID_SERVER", requires_all = ["spki_pin", "admin_token_file"])]
    server: Option<String>,
    /// The target server's key pin (`sha256/<base64>`, which it prints).
    #[arg(long, env = "EID_SPKI_PIN", value_name = "SERVER_KEY_PIN")]
    spki_pin: Option<String>,
    /// File holding the target server's admin token (never the token in
    /// argv, which every local user sees in `ps`).
    #[arg(long, env = "EID_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<std::path::PathBuf>,
    /// HTTP clients the phones share (round robin). Over HTTP/1.1 each client
    /// keeps a pool (one connection per request in flight); with --http2 each
    /// is one multiplexed connection.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Offer HTTP/2 (ALPN h2) instead of HTTP/1.1. The phones' and the
    /// service provider's calls then go over one bare HTTP/2 connection per
    /// client (`eid_api_client::Http2Connection`: h2 on tokio-rustls, the
    /// same pinned TLS), unless --reqwest is given.
    #[arg(long)]
    http2: bool,
    /// With --http2: send the timed logins' API calls through reqwest (the
    /// pinned client the `eid` CLI and the tests use) instead, as before
    /// the bare connection; it costs this process more CPU per login.
    #[arg(long, requires = "http2")]
    reqwest: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Sample resident memory every N seconds (soak runs): of this process,
    /// or of --rss-pid.
    #[arg(long)]
    rss_every_secs: Option<u64>,
    /// The process whose memory is sampled (the server, when it runs apart).
    #[arg(long, requires = "rss_every_secs")]
    rss_pid: Option<u32>,
    /// Pace logins to this many per second in total (open loop: a login starts
    /// on its slot whatever the previous one did). Without it, as fast as the
    /// phones go.
    #[arg(long)]
    rate: Option<f64>,
    /// Which login: `plain` (the `/v1/rp` API) or `oidc` (PAR, the login
    /// page, the app, the token endpoint, the ID token checked).
    #[arg(long, value_enum, default_value_t = Flow::Plain)]
    flow: Flow,
    /// A server process on this machine whose CPU time (user + system, in
    /// clock ticks from /proc) is reported over the timed logins only: the
    /// set-up before them (identities, activations with their Argon2id
    /// hashes) is left out.
    #[arg(long)]
    cpu_pid: Option<u32>,
}

/// The login each phone repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Flow {
    /// The service-provider API: create, pull, approve, read the receipt.
    Plain,
    /// OpenID Connect through the hosted login page.
    Oidc,
}

const STEPS: [&str; 4] = ["rp_create", "phone_pull", "phone_approve", "rp_result"];

#[derive(Debug, Serialize)]
struct StepReport {
    step: &'static str,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    flow: Flow,
    phones: usize,
    seconds: f64,
    logins: u64,
    errors: u64,
    logins_per_sec: f64,
    steps: Vec<StepReport>,
    login_p50_us: u64,
    login_p99_us: u64,
    rss_kib_samples: Vec<u64>,
    /// The `--cpu-pid` process's user + system clock ticks over the timed
    /// logins (`getconf CLK_TCK` per second).
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_ticks: Option<u64>,
    /// This process's own user + system clock ticks over the timed logins
    /// (it runs the phones' and the service provider's side of every login
    /// on the same machine).
    loadgen_cpu_ticks: u64,
}

fn check_loopback(url: &str) -> anyhow::Result<()> {
    let host = url
        .strip_prefix("https://")
        .context("the server URL must start with https://")?
        .split('/')
        .next()
        .unwrap_or("");
    let host = host
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(host)
        .trim_matches(['[', ']']);
    let ip: IpAddr = host
        .parse()
        .context("the server must be given as a loopback IP address")?;
    if !ip.is_loopback() {
        bail!("refusing to send load to {ip}: only loopback addresses are allowed");
    }
    Ok(())
}

/// User + system clock ticks of process `pid` so far (fields 14 and 15 of
/// /proc/PID/stat, counted after the command name, which may hold spaces).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc stat")?;
    // After the command: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .context("malformed /proc stat")
    };
    Ok(field(14)? + field(15)?)
}

fn rss_kib(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.to_owned())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

struct Worker {
    phone: SoftPhone,
    user_id: String,
}

/// One client: the phones', the service provider's and (OpenID Connect)
/// the browser's calls go through `transport`.
struct Client<T> {
    transport: T,
    provider: ProviderClient<T>,
}

/// What every phone's task reads.
struct Shared {
    /// `https://host:port`, the login page's origin.
    base_url: String,
    step_names: &'static [&'static str],
    server_key: eid_protocol::PublicKey,
    oidc_client: Option<Arc<oidc::Client>>,
    issued: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    max: u64,
    deadline: Instant,
    period: Option<Duration>,
    tokio_started: tokio::time::Instant,
}

/// Latencies in microseconds, kept raw while the timed logins run and put
/// into histograms after this process's CPU time is read: a growing
/// HdrHistogram (one per step and phone) reallocates and zeroes its counts
/// each time its largest value grows, which took about 5 % of the load
/// generator's CPU (fresh pages zeroed by the kernel) inside the timed
/// window.
#[derive(Debug, Default)]
pub(crate) struct Samples(Vec<u32>);

impl Samples {
    fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Keeps one latency.
    pub(crate) fn record(&mut self, micros: u64) {
        self.0.push(u32::try_from(micros).unwrap_or(u32::MAX));
    }

    fn into_histogram(self, into: &mut Histogram<u64>) -> anyhow::Result<()> {
        for v in self.0 {
            into.record(u64::from(v))?;
        }
        Ok(())
    }
}

type Outcomes = (Vec<Samples>, Samples, u64);

/// One task per phone, the phones spread round robin over `clients`.
fn spawn_workers<T>(
    workers: Vec<Worker>,
    clients: Vec<Client<T>>,
    shared: Arc<Shared>,
) -> Vec<tokio::task::JoinHandle<Outcomes>>
where
    T: Transport + Clone + Send + Sync + 'static,
{
    let clients = Arc::new(clients);
    let mut tasks = Vec::new();
    for (i, mut worker) in workers.into_iter().enumerate() {
        let (clients, shared) = (clients.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let client = &clients[i % clients.len()];
            let mut steps: Vec<Samples> = (0..shared.step_names.len())
                .map(|_| Samples::with_capacity(1024))
                .collect();
            let mut total = Samples::with_capacity(1024);
            let mut done = 0u64;
            loop {
                let n = shared.issued.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= shared.deadline || n >= shared.max {
                    break;
                }
                if let Some(period) = shared.period {
                    let slot = shared.tokio_started + period.mul_f64(n as f64);
                    if slot >= tokio::time::Instant::from_std(shared.deadline) {
                        break;
                    }
                    tokio::time::sleep_until(slot).await;
                }
                let login = match &shared.oidc_client {
                    Some(oidc_client) => {
                        oidc::one_login(
                            &client.transport,
                            &shared.base_url,
                            oidc_client,
                            &mut worker.phone,
                            &worker.user_id,
                            &mut steps,
                        )
                        .await
                    }
                    None => {
                        one_login(
                            &client.transport,
                            &client.provider,
                            &shared.server_key,
                            &mut worker,
                            &mut steps,
                        )
                        .await
                    }
                };
                match login {
                    Ok(elapsed) => {
                        total.record(elapsed.as_micros() as u64);
                        done += 1;
                    }
                    Err(e) => {
                        if shared.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("login failed: {e:#}");
                        }
                    }
                }
            }
            (steps, total, done)
        }));
    }
    tasks
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Against a server in another process the phones and the service
    // provider run on one thread: every login's work is still done (each
    // signature made, each envelope and receipt verified), without the
    // cross-thread wake-ups of a multi-threaded runtime, which cost it about
    // a tenth more CPU per login on the two cores it shares with the server.
    // The embedded server keeps the multi-threaded runtime it runs on in
    // production.
    let runtime = if args.server.is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.duration_secs <= 900, "--duration-secs is at most 900");
    anyhow::ensure!(
        args.max_logins <= 10_000_000,
        "--max-logins is at most 10 million"
    );
    anyhow::ensure!((1..=4096).contains(&args.phones), "--phones is 1 to 4096");

    let _embedded_dir;
    let _embedded;
    let (base_url, pin, admin_token) = match &args.server {
        Some(url) => {
            check_loopback(url)?;
            (
                url.clone(),
                args.spki_pin.clone().unwrap_or_default(),
                match &args.admin_token_file {
                    Some(path) => std::fs::read_to_string(path)?.trim().to_owned(),
                    None => String::new(),
                },
            )
        }
        None => {
            let dir = tempfile::tempdir()?;
            let config = eid_server::Config {
                listen: "127.0.0.1:0".parse()?,
                data_dir: dir.path().to_owned(),
                // A few identities approve in a loop: measure throughput,
                // not the MFA-fatigue limits.
                floods: eid_server::config::FloodConfig::rate_limits_off(),
                ..eid_server::Config::default()
            };
            let server = eid_server::start(eid_server::ServerOptions::new(config)).await?;
            let triple = (
                server.base_url(),
                server.spki_pin.clone(),
                server.admin_token.to_string(),
            );
            _embedded_dir = dir;
            _embedded = server;
            triple
        }
    };
    let endpoint = Endpoint::new(&base_url, &pin)?;
    let admin = AdminClient::new(endpoint.clone(), &admin_token);
    // One provider per run: a name is registered once per server, and a
    // target server outlives runs.
    let run_tag = eid_protocol::wire::b64::encode(&eid_protocol::crypto::random_array::<4>());
    let digits: String = run_tag.bytes().map(|b| char::from(b'0' + b % 10)).collect();
    let sp = admin
        .register_service_provider(&format!("Load Test Bank {digits}"))
        .await?;
    let provider = ProviderClient::new(endpoint.clone(), &sp.api_key);
    let server_key = provider.server_key().await?;
    let oidc_client = match args.flow {
        Flow::Oidc => Some(Arc::new(
            oidc::register(&admin, &endpoint, sp.service_provider_id).await?,
        )),
        Flow::Plain => None,
    };
    let step_names: &'static [&'static str] = match args.flow {
        Flow::Plain => &STEPS,
        Flow::Oidc => &oidc::STEPS,
    };

    // Set-up: one identity and one activated phone per simulated person.
    let mut workers = Vec::with_capacity(args.phones);
    for i in 0..args.phones {
        let user_id = format!("load#{run_tag}-{i}x");
        let identity = admin.create_identity(&user_id, None).await?;
        let code = admin.issue_activation_code(identity.identity_id).await?;
        let mut phone = SoftPhone::new();
        phone
            .activate(&endpoint, &user_id, &code.activation_code)
            .await?;
        workers.push(Worker { phone, user_id });
    }

    let cpu_before = args.cpu_pid.map(cpu_ticks).transpose()?;
    let own_cpu_before = cpu_ticks(std::process::id())?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_secs);
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let rss_samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    if let Some(every) = args.rss_every_secs {
        let samples = rss_samples.clone();
        let pid = args.rss_pid;
        tokio::spawn(async move {
            while Instant::now() < deadline {
                samples.lock().expect("samples").push(rss_kib(pid));
                tokio::time::sleep(Duration::from_secs(every.max(1))).await;
            }
        });
    }

    // Several clients, as many phones and service-provider servers would have;
    // one HTTP/2 connection for all phones would serialize on its I/O task.
    if let Some(rate) = args.rate {
        anyhow::ensure!(
            rate.is_finite() && (1.0..=100_000.0).contains(&rate),
            "--rate is 1 to 100000 logins per second"
        );
    }
    let shared = Shared {
        base_url: base_url.clone(),
        step_names,
        server_key,
        oidc_client,
        issued: issued.clone(),
        errors: errors.clone(),
        max: args.max_logins,
        deadline,
        period: args.rate.map(|r| Duration::from_secs_f64(1.0 / r)),
        tokio_started: tokio::time::Instant::from_std(started),
    };
    let count = args.connections.max(1);
    let tasks = if args.http2 && !args.reqwest {
        let mut lean = Vec::new();
        for _ in 0..count {
            let connection = Arc::new(Http2Connection::connect(&base_url, &pin).await?);
            lean.push(Client {
                provider: ProviderClient::new(connection.clone(), &sp.api_key),
                transport: connection,
            });
        }
        spawn_workers(workers, lean, Arc::new(shared))
    } else {
        let mut reqwest = Vec::new();
        for _ in 0..count {
            let e = if args.http2 {
                Endpoint::new_http2(&base_url, &pin)?
            } else {
                Endpoint::new(&base_url, &pin)?
            };
            reqwest.push(Client {
                provider: ProviderClient::new(e.clone(), &sp.api_key),
                transport: e,
            });
        }
        spawn_workers(workers, reqwest, Arc::new(shared))
    };
    let mut samples = Vec::new();
    let mut logins = 0;
    for t in tasks {
        let (s, tot, done) = t.await?;
        samples.push((s, tot));
        logins += done;
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu_ticks = match (args.cpu_pid, cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_ticks(pid)?.saturating_sub(before)),
        _ => None,
    };
    let loadgen_cpu_ticks = cpu_ticks(std::process::id())?.saturating_sub(own_cpu_before);
    let mut steps: Vec<Histogram<u64>> = (0..step_names.len())
        .map(|_| Histogram::new(3).expect("histogram"))
        .collect();
    let mut total = Histogram::<u64>::new(3)?;
    for (s, tot) in samples {
        for (a, b) in steps.iter_mut().zip(s) {
            b.into_histogram(a)?;
        }
        tot.into_histogram(&mut total)?;
    }
    let report = Report {
        phones: args.phones,
        seconds,
        logins,
        errors: errors.load(Ordering::Relaxed),
        logins_per_sec: logins as f64 / seconds,
        flow: args.flow,
        steps: step_names
            .iter()
            .zip(&steps)
            .map(|(step, h)| StepReport {
                step,
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
                max_us: h.max(),
            })
            .collect(),
        login_p50_us: total.value_at_quantile(0.5),
        login_p99_us: total.value_at_quantile(0.99),
        rss_kib_samples: std::mem::take(&mut *rss_samples.lock().expect("samples")),
        server_cpu_ticks,
        loadgen_cpu_ticks,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} phones, {:.1} s: {} logins, {} errors, {:.0} logins/s (login p50 {} µs, p99 {} µs)",
            report.phones,
            report.seconds,
            report.logins,
            report.errors,
            report.logins_per_sec,
            report.login_p50_us,
            report.login_p99_us
        );
        for s in &report.steps {
            println!(
                "  {:<14} p50 {:>7} µs   p99 {:>7} µs   max {:>7} µs",
                s.step, s.p50_us, s.p99_us, s.max_us
            );
        }
        if !report.rss_kib_samples.is_empty() {
            println!("  rss KiB samples: {:?}", report.rss_kib_samples);
        }
    }
    if report.errors > 0 {
        bail!("{} logins failed", report.errors);
    }
    Ok(())
}

async fn one_login<T: Transport>(
    endpoint: &T,
    provider: &ProviderClient<T>,
    server_key: &eid_protocol::PublicKey,
    worker: &mut Worker,
    steps: &mut [Samples],
) -> anyhow::Result<Duration> {
    let text = "Log på Load Test Bank";
    let t0 = Instant::now();
    let created = provider
        .create_request(&worker.user_id, RequestKind::Login, text, None)
        .await?;
    let t1 = Instant::now();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let pulled = SoftPhone::pull(endpoint, &[&worker.phone], now_ms).await?;
    let envelope = pulled.accounts[0]
        .requests
        .iter()
        .find(|r| r.envelope.request_id == created.request_id)
        .context("request missing from pull")?
        .envelope
        .clone();
    let t2 = Instant::now();
    let decision = worker.phone.decide(&envelope, Outcome::Approve, None, true);
    worker.phone.submit(endpoint, &decision).await?;
    let t3 = Instant::now();
    let status = provider.status(created.request_id, 0).await?;
    anyhow::ensure!(
        status.status == RequestStatus::Approved,
        "status {:?}",
        status.status
    );
    let receipt = status.receipt.context("no receipt")?;
    verify_receipt(
        server_key,
        &receipt,
        created.request_id,
        &eid_protocol::sha256(text.as_bytes()),
    )?;
    let t4 = Instant::now();
    for (h, d) in steps.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
        h.record(d.as_micros() as u64);
    }
    Ok(t4 - t0)
}
