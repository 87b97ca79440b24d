//! Upstream servers given by host name: resolved through the system resolver (here a
//! private /etc/hosts, bind-mounted in a mount namespace of the gateway's own), and resolved
//! again without a restart, every `resolve_interval` and on reload. A name that does not
//! resolve at start stops the start with a one-line reason.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const NAME: &str = "backend.keyway.test";

/// Writes the hosts file in place (the bind mount follows the inode, not the name).
fn point_name_at(hosts: &Path, ip: &str) {
    std::fs::write(hosts, format!("127.0.0.1 localhost\n{ip} {NAME}\n")).unwrap();
}

/// `keyway serve` in a mount namespace whose /etc/hosts is `hosts`; `None` when this
/// machine cannot make one (not root, or no mount namespaces).
fn gateway_with_hosts(dir: tempfile::TempDir, config: &Path, hosts: &Path) -> Option<Gateway> {
    let works = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        eprintln!("SKIPPED: `unshare -m` is not available here (needs root or user namespaces)");
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/hosts && exec \"$1\" serve --config \"$2\"")
        .arg(hosts)
        .arg(keyway_bin())
        .arg(config)
        .env("KEYWAY_LOG", "info");
    Some(Gateway::start_command(dir, config, cmd))
}

fn answered_by(gw: &Gateway) -> String {
    let r = get(gw.addr, "/x", "");
    assert_eq!(r.status, 200, "{r:?}");
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn a_host_name_follows_its_address_on_the_interval_and_on_reload_without_a_restart() {
    // Two servers on one port of two loopback addresses; the name points at one of them.
    let a = Named::start_at("a", "127.0.0.1:0");
    let port = a.addr.port();
    let b = Named::start_at("b", &format!("127.0.0.2:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    point_name_at(&hosts, "127.0.0.1");
    let rest = |interval: &str| {
        format!(
            "[upstreams.api]\nservers = [\"{NAME}:{port}\"]\nresolve_interval = \"{interval}\"\n\n{}",
            PUBLIC_ALL
        )
    };
    let config = write_config(dir.path(), 2, &rest("1s"));
    let Some(gw) = gateway_with_hosts(dir, &config, &hosts) else {
        return;
    };
    assert_eq!(answered_by(&gw), "a");

    // The name moves: within the interval (and a tick) every request goes to b.
    point_name_at(&hosts, "127.0.0.2");
    poll_until(Duration::from_secs(10), "the name re-resolved", || {
        (answered_by(&gw) == "b").then_some(())
    });
    for _ in 0..20 {
        assert_eq!(answered_by(&gw), "b");
    }
    let (_, status) = admin_get(gw.admin, "/snapshot");
    assert!(status.contains("upstream api changed"), "{status}");
    let log = gw.output.lock().unwrap().join("\n");
    assert!(
        log.contains("upstream host names resolve to other addresses"),
        "{log}"
    );
    drop(b);

    // On reload: the name is looked up again whatever the interval.
    write_config(gw.dir.path(), 2, &rest("1h"));
    point_name_at(&hosts, "127.0.0.1");
    cli_ok(&gw.config, &["reload"]);
    for _ in 0..20 {
        assert_eq!(answered_by(&gw), "a");
    }
}

#[test]
fn a_name_that_does_not_resolve_stops_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        1,
        &format!("[upstreams.api]\nservers = [\"no-such-host.invalid:80\"]\n\n{PUBLIC_ALL}"),
    );
    let out = Command::new("timeout")
        .arg("20")
        .arg(keyway_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot resolve upstreams.api server no-such-host.invalid:80")
            && err.contains("check the name, DNS or /etc/hosts, or give IP:PORT"),
        "{err}"
    );
    let check = Command::new(keyway_bin())
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
}
