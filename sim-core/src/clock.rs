//! A node's local clock: `local = offset + (1 + drift) * global`, with jumps.
//!
//! The clock is kept as a piecewise-linear function of global time: a base point
//! `(base_global, base_local)` and a rate in parts per million. Changing the drift or
//! jumping the clock starts a new piece at the current instant, so local time stays a
//! function of global time alone. All arithmetic is integer (i128), so every platform
//! computes the same local instants.

const PPM: i128 = 1_000_000;

/// The largest drift a clock accepts, in parts per million (±50%).
pub const DRIFT_PPM_MAX: i64 = 500_000;

/// One node's clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    base_global_ns: u64,
    base_local_ns: i128,
    drift_ppm: i64,
}

impl Clock {
    /// The current drift in parts per million.
    pub fn drift_ppm(&self) -> i64 {
        self.drift_ppm
    }

    fn local_exact(&self, global_ns: u64) -> i128 {
        let elapsed = i128::from(global_ns) - i128::from(self.base_global_ns);
        self.base_local_ns + elapsed * (PPM + i128::from(self.drift_ppm)) / PPM
    }

    /// Local time at global instant `global_ns`, clamped to `[0, u64::MAX]`.
    pub fn local(&self, global_ns: u64) -> u64 {
        clamp_u64(self.local_exact(global_ns))
    }

    /// The earliest global instant `>= now_ns` at which local time reaches `local_ns`.
    pub fn global_at_local(&self, local_ns: u64, now_ns: u64) -> u64 {
        if self.local_exact(now_ns) >= i128::from(local_ns) {
            return now_ns;
        }
        let rate = PPM + i128::from(self.drift_ppm);
        let needed = i128::from(local_ns) - self.base_local_ns;
        let elapsed = (needed * PPM + rate - 1) / rate;
        let mut global = clamp_u64(i128::from(self.base_global_ns) + elapsed).max(now_ns);
        // Integer rounding can leave us one nanosecond short; step until reached.
        while self.local_exact(global) < i128::from(local_ns) && global < u64::MAX {
            global += 1;
        }
        global
    }

    fn rebase(&mut self, now_ns: u64) {
        self.base_local_ns = self.local_exact(now_ns);
        self.base_global_ns = now_ns;
    }

    /// Moves local time by `delta_ns` at once (a clock jump; negative goes back).
    pub fn jump(&mut self, now_ns: u64, delta_ns: i64) {
        self.rebase(now_ns);
        self.base_local_ns += i128::from(delta_ns);
    }

    /// Sets local time to `global + offset_ns` at this instant (drift continues from here).
    pub fn set_offset(&mut self, now_ns: u64, offset_ns: i64) {
        self.rebase(now_ns);
        self.base_local_ns = i128::from(now_ns) + i128::from(offset_ns);
    }

    /// Changes the rate from this instant on. The caller validates the range.
    pub fn set_drift(&mut self, now_ns: u64, drift_ppm: i64) {
        assert!(drift_ppm.abs() <= DRIFT_PPM_MAX);
        self.rebase(now_ns);
        self.drift_ppm = drift_ppm;
    }
}

fn clamp_u64(value: i128) -> u64 {
    value.clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn drift_stretches_time() {
        let mut clock = Clock::default();
        clock.set_drift(0, 100_000); // +10%
        assert_eq!(clock.local(1_000 * MS), 1_100 * MS);
        // A local second is reached after 1/1.1 global seconds.
        let global = clock.global_at_local(1_000 * MS, 0);
        assert_eq!(global, 909_090_910);
        assert!(clock.local(global) >= 1_000 * MS);
        assert!(clock.local(global - 1) < 1_000 * MS);
    }

    #[test]
    fn jump_and_offset() {
        let mut clock = Clock::default();
        clock.jump(10 * MS, 5_000_000);
        assert_eq!(clock.local(10 * MS), 15 * MS);
        clock.jump(20 * MS, -30_000_000);
        assert_eq!(clock.local(20 * MS), 0);
        assert_eq!(clock.local(40 * MS), 15 * MS);
        clock.set_offset(40 * MS, 0);
        assert_eq!(clock.local(50 * MS), 50 * MS);
    }

    #[test]
    fn global_at_local_never_before_now() {
        let mut clock = Clock::default();
        clock.jump(0, 100_000_000);
        assert_eq!(clock.global_at_local(50 * MS, 7), 7);
    }
}
