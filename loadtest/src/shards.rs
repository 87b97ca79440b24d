//! Shard placement: which CPU each glommio executor is pinned to, and the common executor builder settings.

use glommio::{CpuSet, LocalExecutor, LocalExecutorBuilder, Placement};

/// Registered io_uring buffer memory per executor; we do no file I/O, so keep it small (locked memory is scarce).
const IO_MEMORY: usize = 512 * 1024;

/// How executors are pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinning {
    /// Shard i on the i-th online CPU (servers).
    Lowest,
    /// Shard i on the i-th online CPU counting from the highest (load generators, to stay off the servers' CPUs).
    Highest,
    /// Shard i on `list[i % len]`.
    List(Vec<usize>),
    /// Not pinned.
    None,
}

/// Parses a `--cpus` value: `none`, or a comma-separated list of CPU ids.
pub fn parse_cpus(s: &str) -> Result<Pinning, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Pinning::None);
    }
    let list = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad CPU id {p:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() || list.len() > 4096 {
        return Err("expected 1..4096 CPU ids".into());
    }
    Ok(Pinning::List(list))
}

fn online_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = CpuSet::online()
        .map(|set| set.into_iter().map(|l| l.cpu).collect())
        .unwrap_or_default();
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

/// The placement of shard `index`.
pub fn placement(pinning: &Pinning, index: usize) -> Placement {
    let pick = |cpus: &[usize], i: usize| {
        if cpus.is_empty() {
            Placement::Unbound
        } else {
            Placement::Fixed(cpus[i % cpus.len()])
        }
    };
    match pinning {
        Pinning::None => Placement::Unbound,
        Pinning::List(list) => pick(list, index),
        Pinning::Lowest => pick(&online_cpus(), index),
        Pinning::Highest => {
            let mut cpus = online_cpus();
            cpus.reverse();
            pick(&cpus, index)
        }
    }
}

/// An executor builder for shard `index` named `name-index`.
fn builder(name: &str, pinning: &Pinning, index: usize) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(placement(pinning, index))
        .name(&format!("{name}-{index}"))
        .io_memory(IO_MEMORY)
}

/// Creates shard `index`'s executor on the calling thread, pinned as asked; falls back to unpinned (with a warning) if pinning fails.
pub fn make_executor(name: &str, pinning: &Pinning, index: usize) -> Result<LocalExecutor, String> {
    match builder(name, pinning, index).make() {
        Ok(ex) => Ok(ex),
        Err(e) if *pinning != Pinning::None => {
            eprintln!("keyway-loadtest: {name} shard {index}: cannot pin ({e}); running unpinned");
            builder(name, &Pinning::None, index)
                .make()
                .map_err(|e| format!("{name} shard {index}: cannot start executor: {e}"))
        }
        Err(e) => Err(format!("{name} shard {index}: cannot start executor: {e}")),
    }
}

/// Raises the soft RLIMIT_MEMLOCK (glommio needs at least 512 KiB of lockable memory per process) as far as allowed.
pub fn raise_memlock() {
    const WANT: libc::rlim_t = 64 * 1024 * 1024;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0
            || lim.rlim_cur == libc::RLIM_INFINITY
            || lim.rlim_cur >= WANT
        {
            return;
        }
        // Privileged processes may raise the hard limit too; others stop at it.
        let raised = libc::rlimit {
            rlim_cur: WANT,
            rlim_max: lim.rlim_max.max(WANT),
        };
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) != 0 {
            let capped = libc::rlimit {
                rlim_cur: lim.rlim_max.min(WANT),
                rlim_max: lim.rlim_max,
            };
            let _ = libc::setrlimit(libc::RLIMIT_MEMLOCK, &capped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_parse() {
        assert_eq!(parse_cpus("none").unwrap(), Pinning::None);
        assert_eq!(parse_cpus("0, 2").unwrap(), Pinning::List(vec![0, 2]));
        assert!(parse_cpus("a").is_err());
        assert!(parse_cpus("").is_err());
    }
}
