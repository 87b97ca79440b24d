//! How the shards' io_uring rings are set up. The vendored glommio (vendor/README.md) creates
//! its sleepable rings with `IORING_SETUP_COOP_TASKRUN` and falls back to no flags on a kernel
//! that refuses it; `KEYWAY_URING_FLAGS=none` asks for no flags (to run on, or test, the
//! fallback path).

/// The environment variable that chooses the ring setup flags.
pub const ENV: &str = "KEYWAY_URING_FLAGS";

/// The setup flags the rings are to be asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    CoopTaskrun,
    None,
}

impl Wanted {
    /// Reads [`ENV`]: unset, empty or `coop_taskrun` ask for `COOP_TASKRUN`, `none` for no flags.
    pub fn from_env() -> Result<Wanted, String> {
        Self::parse(std::env::var(ENV).ok().as_deref())
    }

    fn parse(value: Option<&str>) -> Result<Wanted, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(Wanted::CoopTaskrun),
            Some(v) if v.eq_ignore_ascii_case("coop_taskrun") => Ok(Wanted::CoopTaskrun),
            Some(v) if v.eq_ignore_ascii_case("none") => Ok(Wanted::None),
            Some(v) => Err(format!(
                "{ENV}={v:?} is not understood; unset it, or set it to none (no setup flags) or coop_taskrun"
            )),
        }
    }

    /// Makes executors created from now on ask for these flags.
    pub fn apply(self) {
        glommio::set_sleepable_ring_flags(match self {
            Wanted::CoopTaskrun => glommio::IORING_SETUP_COOP_TASKRUN,
            Wanted::None => 0,
        });
    }

    /// What the rings got, once a shard has created them: the startup log line's text and
    /// `/snapshot`'s `io_uring` field.
    pub fn describe(self) -> &'static str {
        Self::describe_granted(self, glommio::sleepable_ring_flags())
    }

    fn describe_granted(self, granted: Option<u32>) -> &'static str {
        match (self, granted) {
            (_, None) => "unknown (no ring created yet)",
            (_, Some(f)) if f & glommio::IORING_SETUP_COOP_TASKRUN != 0 => "COOP_TASKRUN",
            (Wanted::None, Some(_)) => "no setup flags (KEYWAY_URING_FLAGS=none)",
            (Wanted::CoopTaskrun, Some(_)) => "no setup flags (kernel refused COOP_TASKRUN)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_switch() {
        assert_eq!(Wanted::parse(None), Ok(Wanted::CoopTaskrun));
        assert_eq!(Wanted::parse(Some(" ")), Ok(Wanted::CoopTaskrun));
        assert_eq!(Wanted::parse(Some("COOP_TASKRUN")), Ok(Wanted::CoopTaskrun));
        assert_eq!(Wanted::parse(Some("none")), Ok(Wanted::None));
        let err = Wanted::parse(Some("defer")).unwrap_err();
        assert!(err.starts_with("KEYWAY_URING_FLAGS=\"defer\" is not understood;"));
    }

    #[test]
    fn says_why_there_are_no_flags() {
        let coop = glommio::IORING_SETUP_COOP_TASKRUN;
        assert_eq!(
            Wanted::CoopTaskrun.describe_granted(Some(coop)),
            "COOP_TASKRUN"
        );
        assert_eq!(
            Wanted::CoopTaskrun.describe_granted(Some(0)),
            "no setup flags (kernel refused COOP_TASKRUN)"
        );
        assert_eq!(
            Wanted::None.describe_granted(Some(0)),
            "no setup flags (KEYWAY_URING_FLAGS=none)"
        );
    }
}
