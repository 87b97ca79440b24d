//! Failing upstream servers leave the rotation and come back: a group of three with one killed
//! loses (almost) no request, the killed one is tried again once its backoff ends, and a group
//! with every server out answers 503 `upstream_down` with Retry-After. Active health checks
//! take a server out with no traffic and put it back when it passes again.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn group(servers: &[&Named], extra: &str) -> Gateway {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
    Gateway::start(
        &format!(
            "[upstreams.api]\nservers = [{}]\n{extra}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
            list.join(", ")
        ),
        1,
    )
}

/// Sends `n` GETs on one kept-alive connection (a new one after a refusal that closes);
/// returns the answers' bodies, or `status code` for refusals.
fn run(gw: &Gateway, n: usize) -> Vec<String> {
    let mut c = Client::connect(gw.addr);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        c.send(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.read_response("GET");
        if r.status == 200 {
            out.push(String::from_utf8_lossy(&r.body).into_owned());
        } else {
            out.push(format!("{} {}", r.status, r.json()["code"]));
            c = Client::connect(gw.addr);
        }
    }
    out
}

fn count(answers: &[String], what: &str) -> usize {
    answers.iter().filter(|a| *a == what).count()
}

#[test]
fn a_killed_server_leaves_the_rotation_and_is_back_after_its_backoff() {
    let (a, mut b, c) = (Named::start("a"), Named::start("b"), Named::start("c"));
    let gw = group(
        &[&a, &b, &c],
        "eject_after_failures = 2\neject_backoff = \"400ms\"\neject_max_backoff = \"2s\"\n",
    );
    let warm = run(&gw, 30);
    assert_eq!(
        (count(&warm, "a"), count(&warm, "b"), count(&warm, "c")),
        (10, 10, 10),
        "round robin over the three: {warm:?}"
    );

    b.kill();
    let answers = run(&gw, 1000);
    let failed = answers.iter().filter(|a| a.len() > 1).count();
    assert!(
        failed * 100 < answers.len(),
        "{failed} of {} failed after one server of three was killed: {:?}",
        answers.len(),
        answers
            .iter()
            .filter(|a| a.len() > 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(count(&answers, "b"), 0);
    wait_until(Duration::from_secs(5), "the ejection counted", || {
        metric(
            gw.admin,
            "keyway_upstream_ejections_total{upstream=\"api\"}",
        ) >= Some(1.0)
    });

    // Restarted, it gets a trial request once its backoff (at most 2 s) is over, and is back.
    b.restart();
    let back = Instant::now();
    let mut seen = false;
    while !seen && back.elapsed() < Duration::from_secs(5) {
        seen = run(&gw, 3).iter().any(|a| a == "b");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        seen,
        "the restarted server never came back into the rotation"
    );
    assert!(back.elapsed() < Duration::from_millis(2_000 + 1_000));
    let again = run(&gw, 30);
    assert_eq!(count(&again, "b"), 10, "back in the rotation: {again:?}");
}

#[test]
fn with_every_server_out_the_answer_is_503_upstream_down_with_retry_after() {
    let (mut a, mut b) = (Named::start("a"), Named::start("b"));
    let gw = group(
        &[&a, &b],
        "eject_after_failures = 1\neject_backoff = \"30s\"\n",
    );
    assert_eq!(run(&gw, 2), ["a", "b"]);
    a.kill();
    b.kill();
    // The first request finds both refusing (each failure ejects), the next finds none left.
    let first = get(gw.addr, "/x", "");
    assert_eq!(first.status, 502, "{first:?}");
    let r = get(gw.addr, "/x", "");
    assert_problem(
        &r,
        503,
        "upstream_down",
        Some("every server of the upstream is out of the rotation after failing; retry after the Retry-After seconds"),
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "Retry-After: {retry}");
    wait_until(Duration::from_secs(5), "both servers reported out", || {
        metric(gw.admin, "keyway_upstream_servers_out{upstream=\"api\"}") == Some(2.0)
    });
    let down = "keyway_upstream_errors_total{upstream=\"api\",kind=\"down\"}";
    wait_until(Duration::from_secs(5), "the refusal counted", || {
        metric(gw.admin, down) >= Some(1.0)
    });
}

#[test]
fn a_single_server_is_never_ejected() {
    let mut a = Named::start("a");
    let gw = group(&[&a], "eject_after_failures = 1\n");
    a.kill();
    for _ in 0..3 {
        assert_eq!(get(gw.addr, "/x", "").status, 502);
    }
    a.restart();
    assert_eq!(run(&gw, 1), ["a"]);
}

#[test]
fn a_get_that_finds_its_server_hanging_up_is_resent_to_another_and_a_post_is_not() {
    let (a, h) = (Named::start("a"), Named::start("hangup"));
    let gw = group(
        &[&a, &h],
        "eject_after_failures = 3\neject_backoff = \"30s\"\n",
    );
    // Every GET is answered: the one sent to the hanging-up server is resent to `a`, and
    // after three failures in a row that server is out of the rotation.
    let answers = run(&gw, 20);
    assert_eq!(count(&answers, "a"), 20, "{answers:?}");
    wait_until(Duration::from_secs(5), "the resends counted", || {
        metric(gw.admin, "keyway_upstream_retries_total") >= Some(3.0)
    });
    wait_until(Duration::from_secs(5), "the ejection counted", || {
        metric(
            gw.admin,
            "keyway_upstream_ejections_total{upstream=\"api\"}",
        ) == Some(1.0)
    });

    // A POST is never resent: the one that meets the hang-up is a 502.
    let (a2, h2) = (Named::start("a"), Named::start("hangup"));
    let gw = group(&[&h2, &a2], "");
    let post = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi";
    let r = exchange(gw.addr, post);
    assert_problem(
        &r,
        502,
        "upstream_unavailable",
        Some("the upstream closed the connection before answering"),
    );
    assert_eq!(exchange(gw.addr, post).status, 200);
}

#[test]
fn health_checks_take_a_server_out_with_no_traffic_and_put_it_back() {
    let (a, sick, mut b) = (Named::start("a"), Named::start("sick"), Named::start("b"));
    let gw = group(
        &[&a, &sick, &b],
        "eject_after_failures = 2\neject_backoff = \"30s\"\n\
         health_check_path = \"/healthz\"\nhealth_check_interval = \"100ms\"\n\
         health_check_timeout = \"500ms\"\n",
    );
    // The sick server fails its checks (503) and leaves the rotation before any request.
    let out = "keyway_upstream_servers_out{upstream=\"api\"}";
    wait_until(Duration::from_secs(5), "the sick server out", || {
        metric(gw.admin, out) == Some(1.0)
    });
    let server_out = |s: &Named| {
        let series = format!(
            "keyway_upstream_server_out{{upstream=\"api\",server=\"{}\"}}",
            s.addr
        );
        metric(gw.admin, &series)
    };
    assert_eq!((server_out(&sick), server_out(&a)), (Some(1.0), Some(0.0)));
    let answers = run(&gw, 20);
    assert_eq!(count(&answers, "sick"), 0, "{answers:?}");
    assert_eq!(
        count(&answers, "a") + count(&answers, "b"),
        20,
        "{answers:?}"
    );

    // b dies with no traffic: the checks take it out too.
    b.kill();
    wait_until(Duration::from_secs(5), "the killed server out", || {
        metric(gw.admin, out) == Some(2.0)
    });
    assert_eq!(run(&gw, 5), ["a"; 5]);
    // Back up, it passes a check and is in the rotation at once, long before its 30 s
    // backoff would end.
    b.restart();
    wait_until(Duration::from_secs(5), "b back", || {
        run(&gw, 2).iter().any(|x| x == "b")
    });
}
