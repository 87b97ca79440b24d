//! `keyway quickstart`: a self-contained demo. It starts a small built-in upstream that
//! answers every request with a JSON echo of what it received (so you can see the headers the
//! gateway adds and removes), writes a demo configuration into a temporary state directory,
//! prints curl lines to try, and serves until Ctrl-C.

use crate::config::Config;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

pub fn run(listen: SocketAddr, admin: SocketAddr) -> i32 {
    let upstream = match start_demo_upstream() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("keyway: cannot start the demo upstream on 127.0.0.1: {e}");
            return 1;
        }
    };
    let dir = match tempfile::Builder::new()
        .prefix("keyway-quickstart-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("keyway: cannot create a temporary state directory: {e}; set TMPDIR to a writable directory");
            return 1;
        }
    };
    let demo = match demo_keys(dir.path()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("keyway: cannot set up the demo keys: {e}");
            return 1;
        }
    };
    let text = demo_config(listen, admin, upstream, dir.path());
    let config_path = dir.path().join("keyway.toml");
    if let Err(e) = std::fs::write(&config_path, &text) {
        eprintln!("keyway: cannot write {}: {e}", config_path.display());
        return 1;
    }
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keyway: demo configuration rejected (a bug, please report): {e}");
            return 1;
        }
    };
    let source = crate::rollout::ConfigSource {
        path: config_path.clone(),
        overrides: Default::default(),
    };
    let code = crate::serve::serve(config, Some(source), |b| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "keyway quickstart: gateway on http://{} (admin http://{}), demo upstream on http://{upstream}\n\
             state directory: {}\n\n\
             Demo keys (shown once, as at creation; the store keeps only their SHA-256):\n  \
             free: {free}\n  \
             pro:  {pro}\n\n\
             These succeed (the upstream echoes what it received: note x-keyway-key-id/-tenant/-plan, no key):\n  \
             curl -i http://{0}/v1/orders -H 'x-api-key: {free}'\n  \
             curl -i http://{0}/v1/orders -H 'Authorization: Bearer {pro}'\n  \
             curl -i http://{0}/public/hello                                   # public route, no key\n\n\
             These fail:\n  \
             curl -i http://{0}/v1/orders                                      # 401 missing_key\n  \
             curl -i http://{0}/v1/orders -H 'x-api-key: {revoked}'  # 401 key_revoked\n  \
             curl -i http://{0}/v1/orders -H 'x-api-key: kw_live_nope'         # 401 malformed_key\n  \
             curl -i http://{0}/nowhere                                        # 404 no_route\n\n\
             Manage keys while it runs (another terminal):\n  \
             {exe} --config {cfg} keys list\n  \
             {exe} --config {cfg} keys create --tenant you --plan pro\n  \
             {exe} --config {cfg} snapshot build && {exe} --config {cfg} reload\n  \
             curl -s http://{1}/metrics | grep keyway_requests_total\n  \
             tail -f {audit}                # one JSON line per request\n\n\
             Ctrl-C stops it.",
            b.listen,
            b.admin,
            dir.path().display(),
            free = demo.free,
            pro = demo.pro,
            revoked = demo.revoked,
            exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "keyway".into()),
            cfg = config_path.display(),
            audit = dir.path().join("audit.jsonl").display(),
        );
        let _ = out.flush();
    });
    match code {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("keyway: {e}");
            1
        }
    }
}

/// The demo keys' secrets (printed once, like `keys create` does).
struct DemoKeys {
    free: String,
    pro: String,
    revoked: String,
}

/// Creates plans `free` and `pro`, one key on each and a revoked one, in a store in
/// `state_dir`, and builds the snapshot the gateway will load.
fn demo_keys(state_dir: &std::path::Path) -> Result<DemoKeys, String> {
    use crate::keys::{format, snapshot, LimitSpec, PlanSpec};
    use crate::store::Store;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut store = Store::open(&state_dir.join("keys.db")).map_err(|e| err(&e))?;
    let limit = |s: &str| s.parse::<LimitSpec>().map_err(|e| err(&e));
    for (name, limits) in [
        ("free", ["5/s", "1000/day"]),
        ("pro", ["100/s", "1000000/day"]),
    ] {
        store
            .set_plan(&PlanSpec {
                name: name.into(),
                limits: limits.iter().map(|l| limit(l)).collect::<Result<_, _>>()?,
                scopes: vec!["* /v1/**".into()],
                ..Default::default()
            })
            .map_err(|e| err(&e))?;
    }
    let make = |plan: &str, name: &str| -> Result<(String, String), String> {
        let secret = format::generate_secret(format::DEFAULT_PREFIX).map_err(|e| err(&e))?;
        let id = format::generate_key_id();
        let key = crate::keys::KeySpec {
            id: id.clone(),
            digest: format::digest(secret.as_bytes()),
            hint: format::hint(&secret),
            tenant: "demo".into(),
            name: name.into(),
            plan: plan.into(),
            enabled: true,
            created_at: crate::clock::unix_now(),
            ..Default::default()
        };
        store.create_key(&key).map_err(|e| err(&e))?;
        Ok((id, secret))
    };
    let (_, free) = make("free", "demo free key")?;
    let (_, pro) = make("pro", "demo pro key")?;
    let (revoked_id, revoked) = make("free", "demo revoked key")?;
    store.revoke_key(&revoked_id).map_err(|e| err(&e))?;
    let (plans, keys) = store.load_all().map_err(|e| err(&e))?;
    let generation = store.next_generation().map_err(|e| err(&e))?;
    let bytes = snapshot::build(generation, crate::clock::unix_now(), &plans, &keys)
        .map_err(|e| err(&e))?;
    snapshot::write_atomic(&state_dir.join("keys.snap"), &bytes).map_err(|e| err(&e))?;
    Ok(DemoKeys { free, pro, revoked })
}

fn demo_config(
    listen: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    state_dir: &std::path::Path,
) -> String {
    format!(
        r#"# Written by `keyway quickstart`.
[server]
listen = "{listen}"
admin_listen = "{admin}"
shards = 1
state_dir = "{state}"

[audit]
path = "audit.jsonl"

[upstreams.demo]
servers = ["{upstream}"]

[[routes]]
path_prefix = "/v1/"
upstream = "demo"

[[routes]]
path_prefix = "/public/"
upstream = "demo"
public = true
"#,
        state = state_dir.display()
    )
}

/// A tiny threaded HTTP/1.1 upstream that echoes each request as JSON.
fn start_demo_upstream() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("keyway-demo-upstream".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = std::thread::Builder::new()
                    .name("keyway-demo-conn".into())
                    .spawn(move || echo_connection(stream));
            }
        })?;
    Ok(addr)
}

fn echo_connection(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let request_line = line.trim_end().to_string();
        let mut headers = Vec::new();
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                let (name, value) = (name.trim().to_string(), value.trim().to_string());
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                }
                if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = true;
                }
                headers.push((name, value));
            }
        }
        let body_bytes = if chunked {
            read_chunked(&mut reader)?
        } else {
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            body.len()
        };
        let body = serde_json::json!({
            "upstream": "keyway quickstart demo",
            "request": request_line,
            "headers": headers,
            "body_bytes": body_bytes,
        })
        .to_string()
            + "\n";
        write!(
            writer,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
    }
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let n =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if n == 0 {
            let mut end = String::new();
            while reader.read_line(&mut end)? > 2 {
                end.clear();
            }
            return Ok(total);
        }
        let mut data = vec![0u8; n + 2];
        reader.read_exact(&mut data)?;
        total += n;
    }
}
