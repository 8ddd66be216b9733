//! Which instruction set the kernels run with: detected once, overridable with `EMBER_SIMD`.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

/// An instruction-set level the SIMD kernels are compiled for. Every level is in every build;
/// the one used is chosen at run time ([`level`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `wide`'s 8-lane vectors as this build compiles them (SSE2 on plain x86-64, NEON on
    /// aarch64, AVX2 when the whole build targets it). The reference the others are tested
    /// against, and the only level off x86-64.
    Portable,
    /// 256-bit AVX2 with fused multiply-add (x86-64-v3).
    Avx2,
    /// 512-bit AVX-512F (with AVX2 and FMA).
    Avx512,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 3] = [Level::Portable, Level::Avx2, Level::Avx512];

    /// The name `EMBER_SIMD` takes: `portable`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// The level named `name` (as [`Level::name`] spells it, any case).
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU can run the level.
    pub fn is_available(self) -> bool {
        match self {
            Level::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                Level::Avx2.is_available() && std::arch::is_x86_feature_detected!("avx512f")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The levels this CPU can run, lowest first.
    pub fn available() -> Vec<Level> {
        Level::ALL
            .into_iter()
            .filter(|l| l.is_available())
            .collect()
    }

    /// The best level this CPU can run.
    pub fn detect() -> Level {
        Level::available().pop().unwrap_or(Level::Portable)
    }

    /// The level `EMBER_SIMD` asks for, or [`Level::detect`] when it is unset or empty.
    /// Refuses, with a message naming the variable, a name it does not know and a level
    /// this CPU lacks.
    pub fn from_env() -> Result<Level, String> {
        match std::env::var("EMBER_SIMD") {
            Ok(v) if !v.trim().is_empty() => Level::requested(&v),
            _ => Ok(Level::detect()),
        }
    }

    fn requested(v: &str) -> Result<Level, String> {
        let names = || {
            Level::available()
                .iter()
                .map(|l| l.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let level = Level::parse(v).ok_or_else(|| {
            format!(
                "EMBER_SIMD={v:?}: unknown level (use portable, avx2 or avx512; this CPU has {})",
                names()
            )
        })?;
        if !level.is_available() {
            return Err(format!(
                "EMBER_SIMD={}: this CPU lacks the instructions it needs (it has {}); \
                 unset EMBER_SIMD to use the best available",
                level.name(),
                names()
            ));
        }
        Ok(level)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

static ACTIVE: OnceLock<Level> = OnceLock::new();

thread_local! {
    static FORCED: Cell<Option<Level>> = const { Cell::new(None) };
}

/// Chooses the process-wide level from `EMBER_SIMD` (see [`Level::from_env`]) and returns
/// it; a binary calls this first and exits with the message on `Err`. Without the call, the
/// first kernel makes the same choice, falling back (with a warning on stderr) to the best
/// level the CPU has when `EMBER_SIMD` cannot be honoured.
pub fn init() -> Result<Level, String> {
    let chosen = Level::from_env()?;
    Ok(*ACTIVE.get_or_init(|| chosen))
}

/// The level the kernels use on this thread: the one [`with_level`] forces, else the
/// process-wide choice made once (see [`init`]).
#[inline]
pub fn level() -> Level {
    if let Some(forced) = FORCED.with(Cell::get) {
        return forced;
    }
    *ACTIVE.get_or_init(|| {
        Level::from_env().unwrap_or_else(|msg| {
            eprintln!("warning: {msg}; using {}", Level::detect());
            Level::detect()
        })
    })
}

/// Runs `f` with the kernels called from this thread at `level` (for tests and benchmarks
/// comparing levels; threads `f` starts keep the process-wide level). Panics if the CPU lacks
/// the level.
pub fn with_level<R>(level: Level, f: impl FnOnce() -> R) -> R {
    assert!(
        level.is_available(),
        "simd::with_level: this CPU cannot run {level}"
    );
    struct Restore(Option<Level>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|c| c.replace(Some(level))));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.name()), Some(l));
        }
        assert_eq!(Level::parse(" AVX2 "), Some(Level::Avx2));
        assert_eq!(Level::parse("sse"), None);
    }

    #[test]
    fn requests_are_checked_against_the_cpu() {
        assert_eq!(Level::requested("portable"), Ok(Level::Portable));
        let err = Level::requested("neon").unwrap_err();
        assert!(err.contains("unknown level"), "{err}");
        for l in Level::ALL.into_iter().filter(|l| !l.is_available()) {
            let err = Level::requested(l.name()).unwrap_err();
            assert!(err.contains("lacks"), "{err}");
        }
    }

    #[test]
    fn forcing_is_scoped_to_the_call() {
        let before = level();
        let inside = with_level(Level::Portable, || {
            with_level(Level::detect(), level);
            level()
        });
        assert_eq!(inside, Level::Portable);
        assert_eq!(level(), before);
    }
}
