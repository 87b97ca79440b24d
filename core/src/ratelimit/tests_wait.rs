//! Simulations with clients that wait at the margin, as the pipeline does: bursts and
//! credits through one shard get the whole allowance, and the bound still holds under load.

use super::*;

/// A client that sends requests back to back on one shard and, like the gateway, waits on
/// `Wait` (re-asking when told, up to `max_wait` ms) before the request is settled.
struct Client {
    shard: usize,
    /// When the current request may ask (again), and when it stops waiting.
    ready: i64,
    deadline: i64,
    /// Requests it still sends (`u32::MAX`: no end).
    left: u32,
}

#[derive(Default, Debug)]
struct Outcomes {
    admitted: Vec<i64>,
    refused: usize,
    waited: usize,
}

/// Runs `clients` from `start` for `ms` ms; each sends at most `per_ms` requests per ms.
#[allow(clippy::too_many_arguments)]
fn drive_waiting(
    sim: &mut Sim,
    limits: &[LimitSpec],
    credits: Option<&CreditSpec>,
    clients: &mut [Client],
    per_ms: u32,
    max_wait: i64,
    start: i64,
    ms: i64,
) -> Outcomes {
    let key = key_handle("key_hot");
    let mut out = Outcomes::default();
    for t in start..start + ms {
        sim.tick(t);
        for c in clients.iter_mut() {
            let mut sent = 0;
            while c.left > 0 && c.ready <= t && sent < per_ms {
                let l = &mut sim.shards[c.shard];
                let a = if max_wait > 0 && t < c.deadline {
                    l.admit_or_wait(key, limits, credits, 1, t)
                } else {
                    l.admit(key, limits, credits, 1, t)
                };
                match a {
                    Admission::Wait { retry_in_ms } => {
                        if c.deadline == i64::MAX {
                            c.deadline = t + max_wait;
                            out.waited += 1;
                        }
                        c.ready = t + retry_in_ms as i64;
                        break;
                    }
                    Admission::Admitted(_) | Admission::Unlimited => out.admitted.push(t),
                    _ => out.refused += 1,
                }
                c.deadline = i64::MAX;
                c.left -= 1;
                sent += 1;
            }
        }
    }
    out
}

fn clients(shards: &[usize], left: u32) -> Vec<Client> {
    shards
        .iter()
        .map(|&shard| Client {
            shard,
            ready: 0,
            deadline: i64::MAX,
            left,
        })
        .collect()
}

#[test]
fn a_burst_through_one_shard_gets_the_whole_limit() {
    // The peer check: 30 requests back to back on one keep-alive connection, 5/s key.
    for shards in [1usize, 2, 4] {
        for on in 0..shards {
            let mut sim = Sim::new(shards, 10);
            let mut c = clients(&[on], 30);
            let o = drive_waiting(&mut sim, &[lim(5, Second)], None, &mut c, 30, 250, T0, 900);
            assert_eq!(
                (o.admitted.len(), o.refused),
                (5, 25),
                "{shards} shards, burst on shard {on}: {o:?}"
            );
        }
    }
    // Without waiting the reserve refuses early: the 429s this replaces.
    let mut sim = Sim::new(2, 10);
    let mut c = clients(&[0], 30);
    let o = drive_waiting(&mut sim, &[lim(5, Second)], None, &mut c, 30, 0, T0, 900);
    assert!(o.admitted.len() < 5, "{o:?}");
}

#[test]
fn credits_spent_through_one_shard_last_to_the_end() {
    let c = CreditSpec {
        total: 1000,
        refill: None,
    };
    for shards in [2usize, 4] {
        let mut sim = Sim::new(shards, 10);
        let mut cl = clients(&[shards - 1], 1500);
        let o = drive_waiting(&mut sim, &[], Some(&c), &mut cl, 20, 250, T0, 3000);
        assert_eq!(
            (o.admitted.len(), o.refused),
            (1000, 500),
            "{shards} shards: {o:?}"
        );
        // Every refusal came after the last admission: none while credits were left.
        let u = sim.shards[shards - 1].usage(key_handle("key_hot"), &[], Some(&c), T0 + 3000);
        assert_eq!(u.credits_left, Some(0));
    }
}

#[test]
fn waiting_clients_keep_the_bound_under_load() {
    // 16 connections over 2 and 4 shards, far above 100/s, every one of them waiting at the
    // margin: the reserve rule is unchanged, so the bound is too.
    for shards in [2usize, 4] {
        let on: Vec<usize> = (0..16).map(|i| i % shards).collect();
        let mut sim = Sim::new(shards, 10);
        let mut cl = clients(&on, u32::MAX);
        let mut o = drive_waiting(
            &mut sim,
            &[lim(100, Second)],
            None,
            &mut cl,
            1,
            250,
            T0,
            5000,
        );
        let n = o.admitted.len() as i64;
        let bound = 5 * (shards as i64 - 1);
        let max = max_in_window(&mut o.admitted, 1000);
        eprintln!(
            "{shards} shards, 16 waiting clients: admitted {n}, max {max} in 1 s, {} waits",
            o.waited
        );
        assert!(
            (500 * 97 / 100..=(500 + bound) * 103 / 100).contains(&n),
            "admitted {n}"
        );
        assert!(max < 100 + shards, "{max} in one second");
    }
}
