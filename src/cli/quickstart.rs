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
    let code = crate::serve::serve(config, |b| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "keyway quickstart: gateway on http://{} (admin http://{}), demo upstream on http://{upstream}\n\
             state directory: {}\n\n\
             Try:\n  \
             curl -i http://{0}/public/hello                 # public route: proxied without a key\n  \
             curl -i http://{0}/v1/orders                     # keyed route: 503 until a key table is loaded\n  \
             curl -i http://{0}/nowhere                       # no route: 404 problem+json\n  \
             curl -s http://{1}/metrics | grep keyway_requests_total\n\n\
             Ctrl-C stops it.",
            b.listen,
            b.admin,
            dir.path().display()
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
