//! How the shards' io_uring rings are set up. The vendored glommio (vendor/README.md) creates
//! its sleepable rings with `IORING_SETUP_COOP_TASKRUN` and falls back to no flags on a kernel
//! that refuses it, and arms each stream's read readiness poll once, multishot, instead of
//! once per read (falling back to one-shot polls on a kernel that refuses it).
//! `KEYWAY_URING_FLAGS` chooses either or neither (to compare, or to test the fallback path).

/// The environment variable that chooses the ring setup.
pub const ENV: &str = "KEYWAY_URING_FLAGS";

/// What the rings are to be asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// `IORING_SETUP_COOP_TASKRUN` on the sleepable rings.
    pub coop_taskrun: bool,
    /// Multishot read readiness polls (`IORING_POLL_ADD_MULTI`).
    pub multishot: bool,
}

impl Wanted {
    const ALL: Wanted = Wanted {
        coop_taskrun: true,
        multishot: true,
    };

    /// Reads [`ENV`]: unset or empty asks for both; otherwise a comma-separated list of
    /// `coop_taskrun` and `multishot`, or `none` for glommio as published.
    pub fn from_env() -> Result<Wanted, String> {
        Self::parse(std::env::var(ENV).ok().as_deref())
    }

    fn parse(value: Option<&str>) -> Result<Wanted, String> {
        let value = value.map(str::trim).unwrap_or("");
        if value.is_empty() {
            return Ok(Self::ALL);
        }
        if value.eq_ignore_ascii_case("none") {
            return Ok(Wanted {
                coop_taskrun: false,
                multishot: false,
            });
        }
        let mut wanted = Wanted {
            coop_taskrun: false,
            multishot: false,
        };
        for part in value.split(',').map(str::trim) {
            if part.eq_ignore_ascii_case("coop_taskrun") {
                wanted.coop_taskrun = true;
            } else if part.eq_ignore_ascii_case("multishot") {
                wanted.multishot = true;
            } else {
                return Err(format!(
                    "{ENV}={value:?} is not understood; unset it, or set it to none, coop_taskrun, multishot or coop_taskrun,multishot"
                ));
            }
        }
        Ok(wanted)
    }

    /// Makes executors and streams created from now on ask for this setup.
    pub fn apply(self) {
        glommio::set_sleepable_ring_flags(if self.coop_taskrun {
            glommio::IORING_SETUP_COOP_TASKRUN
        } else {
            0
        });
        glommio::set_multishot_read_polls(self.multishot);
    }

    /// What the rings got, once a shard has created them: the startup log line's text and
    /// `/snapshot`'s `io_uring` field.
    pub fn describe(self) -> String {
        let rings = self.describe_granted(glommio::sleepable_ring_flags());
        let polls = if self.multishot {
            "multishot read polls"
        } else {
            "one-shot read polls (KEYWAY_URING_FLAGS)"
        };
        format!("{rings}; {polls}")
    }

    fn describe_granted(self, granted: Option<u32>) -> &'static str {
        match (self.coop_taskrun, granted) {
            (_, None) => "unknown (no ring created yet)",
            (_, Some(f)) if f & glommio::IORING_SETUP_COOP_TASKRUN != 0 => "COOP_TASKRUN",
            (false, Some(_)) => "no setup flags (KEYWAY_URING_FLAGS)",
            (true, Some(_)) => "no setup flags (kernel refused COOP_TASKRUN)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn w(coop_taskrun: bool, multishot: bool) -> Wanted {
        Wanted {
            coop_taskrun,
            multishot,
        }
    }

    #[test]
    fn parses_the_switch() {
        assert_eq!(Wanted::parse(None), Ok(w(true, true)));
        assert_eq!(Wanted::parse(Some(" ")), Ok(w(true, true)));
        assert_eq!(Wanted::parse(Some("COOP_TASKRUN")), Ok(w(true, false)));
        assert_eq!(Wanted::parse(Some("multishot")), Ok(w(false, true)));
        assert_eq!(
            Wanted::parse(Some("coop_taskrun, multishot")),
            Ok(w(true, true))
        );
        assert_eq!(Wanted::parse(Some("none")), Ok(w(false, false)));
        let err = Wanted::parse(Some("defer")).unwrap_err();
        assert!(err.starts_with("KEYWAY_URING_FLAGS=\"defer\" is not understood;"));
        assert!(Wanted::parse(Some("coop_taskrun,none")).is_err());
    }

    #[test]
    fn says_why_there_are_no_flags() {
        let coop = glommio::IORING_SETUP_COOP_TASKRUN;
        assert_eq!(w(true, true).describe_granted(Some(coop)), "COOP_TASKRUN");
        assert_eq!(
            w(true, false).describe_granted(Some(0)),
            "no setup flags (kernel refused COOP_TASKRUN)"
        );
        assert_eq!(
            w(false, true).describe_granted(Some(0)),
            "no setup flags (KEYWAY_URING_FLAGS)"
        );
    }
}
