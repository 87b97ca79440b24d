//! `keyway-loadtest` command line: clap definitions, argument validation (loopback only), signal handling, dispatch to `upstream` or `run`.

mod attack;
mod chunked;
mod conn;
mod echo;
mod http;
mod load;
mod pattern;
mod report;
mod shards;
mod upstream;

use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "keyway-loadtest",
    version,
    about = "keyway's load generator and fast static/echo upstream (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve a fast HTTP/1.1 upstream; prints `listening on IP:PORT` once ready.
    Upstream(UpstreamArgs),
    /// Generate load against a loopback target and report throughput and latency.
    Run(RunArgs),
    /// Open slow connections (head trickle, slow body, slow reader) from other loopback
    /// addresses, to run beside `run`; reports what the target answered them.
    Attack(AttackArgs),
}

#[derive(Args)]
struct AttackArgs {
    /// Target address, 127.0.0.0/8 or [::1] only.
    #[arg(long, value_name = "IP:PORT")]
    target: String,
    /// Source addresses to connect from, in turn (loopback only), e.g. 127.0.0.2-9 or a list.
    #[arg(long, default_value = "127.0.0.2-9")]
    from: String,
    /// Connections trickling a request head, one byte per interval.
    #[arg(long, default_value_t = 0)]
    trickle: usize,
    /// Connections sending a declared 1 MB body, one byte per interval.
    #[arg(long, default_value_t = 0)]
    slow_body: usize,
    /// Connections reading a response one byte per interval (4 KiB receive buffer).
    #[arg(long, default_value_t = 0)]
    slow_read: usize,
    /// Path of the slow-body POSTs.
    #[arg(long, default_value = "/")]
    body_path: String,
    /// Path of the slow readers' GETs (pick one with a large response).
    #[arg(long, default_value = "/")]
    read_path: String,
    /// Extra request header `name: value` (repeatable), e.g. an API key.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// How long to attack (at most 300s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Pause between two bytes sent or read.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Start every connection at once and send in lockstep (default: starts spread over the
    /// first interval, as independent clients).
    #[arg(long)]
    lockstep: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct UpstreamArgs {
    /// Address to listen on (loopback only); port 0 picks a free port shared by all shards.
    #[arg(long, value_name = "IP:PORT")]
    listen: String,
    /// Answer with N pattern bytes (byte i = 'a' + i % 26) instead of `hello, world\n`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=64 * 1024 * 1024))]
    body_size: Option<u64>,
    /// Answer with a JSON description of each request and enable the /_test/ paths.
    #[arg(long)]
    echo: bool,
    /// Executors (threads), each pinned to a CPU with its own SO_REUSEPORT listener.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    shards: u16,
    /// CPUs to pin shards to (comma-separated ids) or `none`; default: the lowest-numbered online CPUs.
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// Close a connection after this long without input (also bounds each write).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
}

#[derive(Args)]
struct RunArgs {
    /// Target address, 127.0.0.0/8 or [::1] only.
    #[arg(long, value_name = "IP:PORT")]
    target: String,
    /// Concurrent keep-alive connections (all shards together).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=load::MAX_CONNECTIONS as u64))]
    connections: u64,
    /// Measured duration (at most 300s), e.g. 10s, 500ms, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many measured requests.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_requests: u64,
    /// Open loop: requests per second overall, on a fixed schedule; latency counts from the scheduled time.
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Request path (with optional query).
    #[arg(long, default_value = "/")]
    path: String,
    /// Extra request header `name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Unmeasured run-in before the measured duration (at most 60s).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Executors (threads) generating load.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    shards: u16,
    /// CPUs to pin shards to (comma-separated ids) or `none`; default: the highest-numbered online CPUs.
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// Timeout for connecting and for each read/write.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Parses `1.5s`, `500ms`, `2m`, `100us` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (use e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (use us, ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("bad duration {s:?}"))
}

/// True for 127.0.0.0/8 and ::1.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

fn loopback_addr(s: &str, what: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| format!("{what} {s:?} is not IP:PORT (use 127.0.0.1:PORT or [::1]:PORT)"))?;
    if !is_loopback(addr.ip()) {
        return Err(format!(
            "refusing {what} {addr}: only loopback (127.0.0.0/8, ::1) is allowed"
        ));
    }
    Ok(addr)
}

fn pinning(cpus: Option<&str>, default: shards::Pinning) -> Result<shards::Pinning, String> {
    match cpus {
        Some(s) => shards::parse_cpus(s).map_err(|e| format!("--cpus: {e}")),
        None => Ok(default),
    }
}

fn parse_header(h: &str) -> Result<(String, String), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| format!("--header {h:?}: expected `name: value`"))?;
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("--header {h:?}: invalid header name"));
    }
    let value = value.trim();
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!("--header {h:?}: invalid header value"));
    }
    Ok((name.to_string(), value.to_string()))
}

fn upstream_config(a: UpstreamArgs) -> Result<upstream::UpstreamConfig, String> {
    Ok(upstream::UpstreamConfig {
        listen: loopback_addr(&a.listen, "--listen")?,
        body_size: a.body_size.map(|n| n as usize),
        echo: a.echo,
        shards: usize::from(a.shards),
        pinning: pinning(a.cpus.as_deref(), shards::Pinning::Lowest)?,
        idle_timeout: a.idle_timeout.max(Duration::from_millis(1)),
    })
}

fn run_config(a: RunArgs) -> Result<load::RunConfig, String> {
    let target = loopback_addr(&a.target, "target")?;
    if a.duration.is_zero() || a.duration > load::MAX_DURATION {
        return Err("--duration must be between 1ms and 300s".into());
    }
    if a.warmup > load::MAX_WARMUP {
        return Err("--warmup must be at most 60s".into());
    }
    if a.timeout.is_zero() {
        return Err("--timeout must be positive".into());
    }
    if let Some(r) = a.rate {
        if !(0.1..=10_000_000.0).contains(&r) {
            return Err("--rate must be between 0.1 and 10000000".into());
        }
    }
    if !a.path.starts_with('/')
        || a.path
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(format!(
            "--path {:?}: must start with / and contain no spaces or control characters",
            a.path
        ));
    }
    let headers = a
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(load::RunConfig {
        target,
        connections: a.connections as usize,
        duration: a.duration,
        warmup: a.warmup,
        max_requests: a.max_requests,
        rate: a.rate,
        path: a.path,
        headers,
        shards: usize::from(a.shards),
        pinning: pinning(a.cpus.as_deref(), shards::Pinning::Highest)?,
        timeout: a.timeout,
        json: a.json,
    })
}

/// SIGTERM/SIGINT: the upstream exits 0 at once; the generator stops and reports on the first signal, exits 0 on the second.
fn install_signals(exit_at_once: bool) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_none() {
                return;
            }
            if !exit_at_once {
                load::STOP.store(true, Ordering::Relaxed);
                if signals.forever().next().is_none() {
                    return;
                }
            }
            std::process::exit(0);
        })
        .map(drop)
        .map_err(|e| format!("cannot spawn signal thread: {e}"))
}

/// `127.0.0.2-9` (a range in the last octet) or a comma-separated list; loopback only.
fn parse_sources(s: &str) -> Result<Vec<IpAddr>, String> {
    let bad = || format!("--from {s:?}: expected e.g. 127.0.0.2-9 or 127.0.0.2,127.0.0.3");
    let mut out = Vec::new();
    for part in s.split(',') {
        if let Some((first, last)) = part.split_once('-') {
            let first: std::net::Ipv4Addr = first.trim().parse().map_err(|_| bad())?;
            let last: u8 = last.trim().parse().map_err(|_| bad())?;
            let o = first.octets();
            if last < o[3] {
                return Err(bad());
            }
            out.extend((o[3]..=last).map(|d| IpAddr::from([o[0], o[1], o[2], d])));
        } else {
            out.push(part.trim().parse().map_err(|_| bad())?);
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    if let Some(ip) = out.iter().find(|ip| !is_loopback(**ip)) {
        return Err(format!(
            "refusing --from {ip}: only loopback (127.0.0.0/8, ::1) is allowed"
        ));
    }
    Ok(out)
}

fn attack_config(a: AttackArgs) -> Result<attack::AttackConfig, String> {
    if a.duration.is_zero() || a.duration > attack::MAX_DURATION {
        return Err("--duration must be between 1ms and 300s".into());
    }
    if a.interval.is_zero() {
        return Err("--interval must be positive".into());
    }
    if a.trickle + a.slow_body + a.slow_read > 4096 {
        return Err("at most 4096 attack connections in all".into());
    }
    let headers = a
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(attack::AttackConfig {
        target: loopback_addr(&a.target, "target")?,
        sources: parse_sources(&a.from)?,
        trickle: a.trickle,
        slow_body: a.slow_body,
        slow_read: a.slow_read,
        body_path: a.body_path,
        read_path: a.read_path,
        headers,
        duration: a.duration,
        interval: a.interval,
        lockstep: a.lockstep,
        json: a.json,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shards::raise_memlock();
    let res = match cli.cmd {
        Cmd::Upstream(a) => upstream_config(a)
            .and_then(|cfg| install_signals(true).map(|()| cfg))
            .and_then(upstream::run),
        Cmd::Run(a) => run_config(a)
            .and_then(|cfg| install_signals(false).map(|()| cfg))
            .and_then(load::run),
        Cmd::Attack(a) => attack_config(a).and_then(attack::run),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyway-loadtest: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn loopback_only() {
        assert!(loopback_addr("127.0.0.1:80", "t").is_ok());
        assert!(loopback_addr("127.3.4.5:80", "t").is_ok());
        assert!(loopback_addr("[::1]:80", "t").is_ok());
        assert!(loopback_addr("10.0.0.1:80", "t").is_err());
        assert!(loopback_addr("0.0.0.0:80", "t").is_err());
        assert!(loopback_addr("[::]:80", "t").is_err());
        assert!(loopback_addr("localhost:80", "t").is_err());
        assert!(loopback_addr("[::ffff:127.0.0.1]:80", "t").is_err());
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("X-Api-Key:  abc ").unwrap(),
            ("X-Api-Key".to_string(), "abc".to_string())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert!(parse_header("x: a\r\nb").is_err());
    }

    #[test]
    fn attack_sources() {
        let v = parse_sources("127.0.0.2-4").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[2], "127.0.0.4".parse::<IpAddr>().unwrap());
        assert!(parse_sources("10.0.0.1").is_err());
        assert!(parse_sources("127.0.0.5-2").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
