//! The virtual network's configuration: latency distributions, loss, duplication, FIFO.
//!
//! Configuration is in milliseconds (floating point, as people write scenario files);
//! [`LinkModel`] is its validated, compiled form in integer nanoseconds that the engine
//! samples on every send.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, Exp, LogNormal, Normal, Pareto};
use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::rng::SimRng;

/// Nanoseconds in a millisecond.
pub const MS: u64 = 1_000_000;

/// A one-way message latency distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// Always the same delay.
    Constant { ms: f64 },
    /// Uniform between the bounds (inclusive).
    Uniform { min_ms: f64, max_ms: f64 },
    /// Normal, clamped at `min_ms` (0 unless given).
    Normal {
        mean_ms: f64,
        stddev_ms: f64,
        #[serde(default)]
        min_ms: f64,
    },
    /// Log-normal with the given median and shape `sigma` (the standard deviation of the log).
    LogNormal { median_ms: f64, sigma: f64 },
    /// A fixed base plus an exponential tail with the given mean.
    ExponentialTail { base_ms: f64, tail_mean_ms: f64 },
    /// Pareto with scale `scale_ms` (the smallest value, x_m) and shape `shape` (alpha):
    /// a heavy tail, `P(X > x) = (x_m / x)^alpha`.
    Pareto { scale_ms: f64, shape: f64 },
    /// One of several distributions, chosen at each draw with probability proportional
    /// to its weight (Bailis et al.'s production fits mix a Pareto and an exponential).
    Mixture { parts: Vec<MixturePart> },
}

/// A weighted part of a [`Latency::Mixture`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixturePart {
    pub weight: f64,
    pub latency: Latency,
}

/// The latency of every message of one kind, on every link: protocols name their
/// message kinds (`Ctx::send_as`), so that, say, write requests and read responses can
/// have their own distributions. Loss, duplication and FIFO stay the link's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindLatency {
    pub kind: String,
    pub latency: Latency,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Uniform { min_ms: 1.0, max_ms: 10.0 }
    }
}

/// How one directed link behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    #[serde(default)]
    pub latency: Latency,
    /// Probability that a message is lost.
    #[serde(default)]
    pub drop: f64,
    /// Probability that a message is delivered twice (the copy has its own delay).
    #[serde(default)]
    pub duplicate: f64,
    /// Deliver in send order on this link. Off: independent delays reorder messages.
    #[serde(default)]
    pub fifo: bool,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig { latency: Latency::default(), drop: 0.0, duplicate: 0.0, fifo: false }
    }
}

/// The whole network: a default link and overrides for groups of links.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    #[serde(default)]
    pub default: LinkConfig,
    /// Applied in order after the default; a later override wins.
    #[serde(default)]
    pub links: Vec<LinkOverride>,
    /// Latency by message kind, replacing the link's latency for messages sent as that
    /// kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<KindLatency>,
}

/// A link configuration for every link from a node of `from` to a node of `to`
/// (an empty list means every node).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkOverride {
    #[serde(default)]
    pub from: Vec<usize>,
    #[serde(default)]
    pub to: Vec<usize>,
    pub link: LinkConfig,
}

impl NetworkConfig {
    /// Checks every link's numbers and node ids against a cluster of `nodes` nodes.
    pub fn validate(&self, nodes: usize) -> Result<(), SimError> {
        LinkModel::new(&self.default)?;
        for link in &self.links {
            for node in link.from.iter().chain(&link.to) {
                if *node >= nodes {
                    return Err(SimError::UnknownNode { node: *node, nodes, context: "network links" });
                }
            }
            LinkModel::new(&link.link)?;
        }
        for kind in &self.kinds {
            compile_latency(&kind.latency)?;
        }
        Ok(())
    }

    /// The compiled per-kind latencies.
    pub fn kind_models(&self) -> Result<Vec<(String, KindModel)>, SimError> {
        self.kinds.iter().map(|k| Ok((k.kind.clone(), KindModel { sampler: compile_latency(&k.latency)? }))).collect()
    }
}

/// Converts a millisecond figure to nanoseconds, rejecting NaN, infinities and negatives.
pub fn ms_to_ns(what: &'static str, ms: f64) -> Result<u64, SimError> {
    if !ms.is_finite() || !(0.0..=1e12).contains(&ms) {
        return Err(SimError::InvalidDuration { what, value: ms });
    }
    Ok((ms * MS as f64).round() as u64)
}

/// Converts a signed millisecond figure (a clock offset or jump) to nanoseconds.
pub fn signed_ms_to_ns(what: &'static str, ms: f64) -> Result<i64, SimError> {
    if !ms.is_finite() || ms.abs() > 1e12 {
        return Err(SimError::InvalidDuration { what, value: ms });
    }
    Ok((ms * MS as f64).round() as i64)
}

fn probability(what: &'static str, p: f64) -> Result<u64, SimError> {
    if !p.is_finite() || !(0.0..=1.0).contains(&p) {
        return Err(SimError::InvalidProbability { what, value: p });
    }
    // A draw `next_u64() < threshold` happens with probability p; p = 1 must always hit.
    if p >= 1.0 { Ok(u64::MAX) } else { Ok((p * 18_446_744_073_709_551_616.0) as u64) }
}

#[derive(Clone, Debug)]
enum Sampler {
    Constant(u64),
    Uniform {
        min_ns: u64,
        max_ns: u64,
    },
    Normal {
        dist: Normal<f64>,
        min_ns: u64,
    },
    LogNormal(LogNormal<f64>),
    ExponentialTail {
        base_ns: u64,
        tail: Exp<f64>,
    },
    Pareto(Pareto<f64>),
    /// Cumulative weights (summing to 1) and the parts.
    Mixture(Vec<(f64, Sampler)>),
}

impl Sampler {
    fn sample_ns(&self, rng: &mut SimRng) -> u64 {
        match self {
            Sampler::Constant(ns) => *ns,
            Sampler::Uniform { min_ns, max_ns } => rng.random_range(*min_ns..=*max_ns),
            Sampler::Normal { dist, min_ns } => f64_ns(dist.sample(rng) * MS as f64).max(*min_ns),
            Sampler::LogNormal(dist) => f64_ns(dist.sample(rng) * MS as f64),
            Sampler::ExponentialTail { base_ns, tail } => base_ns.saturating_add(f64_ns(tail.sample(rng) * MS as f64)),
            Sampler::Pareto(dist) => f64_ns(dist.sample(rng) * MS as f64),
            Sampler::Mixture(parts) => {
                let draw: f64 = rng.random_range(0.0..1.0);
                let index = parts.iter().position(|(cumulative, _)| draw < *cumulative).unwrap_or(parts.len() - 1);
                parts[index].1.sample_ns(rng)
            }
        }
    }
}

/// A validated latency distribution, ready to sample: a storage sync's or an event's
/// handling time (`crate::costs`).
#[derive(Clone, Debug)]
pub struct Delay {
    sampler: Sampler,
}

impl Delay {
    /// Validates and compiles a latency.
    pub fn new(latency: &Latency) -> Result<Delay, SimError> {
        Ok(Delay { sampler: compile_latency(latency)? })
    }

    /// One draw, in nanoseconds.
    pub fn sample_ns(&self, rng: &mut SimRng) -> u64 {
        self.sampler.sample_ns(rng)
    }
}

/// A compiled per-kind latency.
#[derive(Clone, Debug)]
pub struct KindModel {
    sampler: Sampler,
}

impl KindModel {
    /// One latency draw, in nanoseconds.
    pub fn sample_delay_ns(&self, rng: &mut SimRng) -> u64 {
        self.sampler.sample_ns(rng)
    }
}

/// A validated link, ready to sample.
#[derive(Clone, Debug)]
pub struct LinkModel {
    sampler: Sampler,
    drop_threshold: u64,
    duplicate_threshold: u64,
    pub fifo: bool,
}

impl LinkModel {
    /// Validates and compiles a link configuration.
    pub fn new(config: &LinkConfig) -> Result<Self, SimError> {
        Ok(LinkModel {
            sampler: compile_latency(&config.latency)?,
            drop_threshold: probability("drop", config.drop)?,
            duplicate_threshold: probability("duplicate", config.duplicate)?,
            fifo: config.fifo,
        })
    }

    /// One latency draw, in nanoseconds.
    #[inline]
    pub fn sample_delay_ns(&self, rng: &mut SimRng) -> u64 {
        self.sampler.sample_ns(rng)
    }

    /// Whether this message is lost. Draws only when loss is possible.
    #[inline]
    pub fn draw_drop(&self, rng: &mut SimRng) -> bool {
        self.drop_threshold != 0 && rng.next_u64() < self.drop_threshold
    }

    /// Whether this message is duplicated. Draws only when duplication is possible.
    #[inline]
    pub fn draw_duplicate(&self, rng: &mut SimRng) -> bool {
        self.duplicate_threshold != 0 && rng.next_u64() < self.duplicate_threshold
    }
}

fn f64_ns(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 { value.min(1e18) as u64 } else { 0 }
}

fn compile_latency(latency: &Latency) -> Result<Sampler, SimError> {
    let bad = |what: &'static str, value: f64| SimError::InvalidDuration { what, value };
    Ok(match latency.clone() {
        Latency::Constant { ms } => Sampler::Constant(ms_to_ns("latency ms", ms)?),
        Latency::Uniform { min_ms, max_ms } => {
            let min_ns = ms_to_ns("latency min_ms", min_ms)?;
            let max_ns = ms_to_ns("latency max_ms", max_ms)?;
            if max_ns < min_ns {
                return Err(SimError::InvalidRange { what: "uniform latency", min: min_ms, max: max_ms });
            }
            Sampler::Uniform { min_ns, max_ns }
        }
        Latency::Normal { mean_ms, stddev_ms, min_ms } => {
            ms_to_ns("latency mean_ms", mean_ms)?;
            ms_to_ns("latency stddev_ms", stddev_ms)?;
            let min_ns = ms_to_ns("latency min_ms", min_ms)?;
            let dist = Normal::new(mean_ms, stddev_ms).map_err(|_| bad("latency stddev_ms", stddev_ms))?;
            Sampler::Normal { dist, min_ns }
        }
        Latency::LogNormal { median_ms, sigma } => {
            ms_to_ns("latency median_ms", median_ms)?;
            if median_ms <= 0.0 {
                return Err(bad("latency median_ms (must be positive)", median_ms));
            }
            if !sigma.is_finite() || sigma < 0.0 {
                return Err(bad("latency sigma", sigma));
            }
            let dist = LogNormal::new(median_ms.ln(), sigma).map_err(|_| bad("latency sigma", sigma))?;
            Sampler::LogNormal(dist)
        }
        Latency::ExponentialTail { base_ms, tail_mean_ms } => {
            let base_ns = ms_to_ns("latency base_ms", base_ms)?;
            ms_to_ns("latency tail_mean_ms", tail_mean_ms)?;
            if tail_mean_ms <= 0.0 {
                return Err(bad("latency tail_mean_ms (must be positive)", tail_mean_ms));
            }
            let tail = Exp::new(1.0 / tail_mean_ms).map_err(|_| bad("latency tail_mean_ms", tail_mean_ms))?;
            Sampler::ExponentialTail { base_ns, tail }
        }
        Latency::Pareto { scale_ms, shape } => {
            ms_to_ns("latency scale_ms", scale_ms)?;
            if scale_ms <= 0.0 {
                return Err(bad("latency scale_ms (must be positive)", scale_ms));
            }
            if !shape.is_finite() || shape <= 0.0 || shape > 1e6 {
                return Err(bad("latency shape (must be positive)", shape));
            }
            Sampler::Pareto(Pareto::new(scale_ms, shape).map_err(|_| bad("latency shape", shape))?)
        }
        Latency::Mixture { parts } => {
            if parts.is_empty() || parts.len() > 64 {
                return Err(SimError::InvalidRange {
                    what: "mixture parts (1 to 64)",
                    min: 1.0,
                    max: parts.len() as f64,
                });
            }
            let total: f64 = parts.iter().map(|p| p.weight).sum();
            if parts.iter().any(|p| !p.weight.is_finite() || p.weight < 0.0) || !(total > 0.0 && total.is_finite()) {
                return Err(bad("mixture weight (must be non-negative, not all zero)", total));
            }
            let mut cumulative = 0.0;
            let mut compiled = Vec::new();
            for part in &parts {
                if matches!(part.latency, Latency::Mixture { .. }) {
                    return Err(bad("mixture part (a mixture inside a mixture)", part.weight));
                }
                cumulative += part.weight / total;
                compiled.push((cumulative, compile_latency(&part.latency)?));
            }
            Sampler::Mixture(compiled)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive_rng;

    fn mean_ms(latency: Latency) -> f64 {
        let model = LinkModel::new(&LinkConfig { latency, ..LinkConfig::default() }).unwrap();
        let mut rng = derive_rng(1, "t");
        let n = 20_000;
        let sum: u64 = (0..n).map(|_| model.sample_delay_ns(&mut rng)).sum();
        sum as f64 / n as f64 / MS as f64
    }

    #[test]
    fn distributions_have_their_means() {
        assert_eq!(mean_ms(Latency::Constant { ms: 3.0 }), 3.0);
        assert!((mean_ms(Latency::Uniform { min_ms: 0.0, max_ms: 10.0 }) - 5.0).abs() < 0.2);
        let normal = Latency::Normal { mean_ms: 20.0, stddev_ms: 2.0, min_ms: 0.0 };
        assert!((mean_ms(normal) - 20.0).abs() < 0.2);
        let tail = Latency::ExponentialTail { base_ms: 1.0, tail_mean_ms: 4.0 };
        assert!((mean_ms(tail) - 5.0).abs() < 0.3);
        // Log-normal mean = median * exp(sigma^2 / 2).
        let lognormal = Latency::LogNormal { median_ms: 10.0, sigma: 0.5 };
        assert!((mean_ms(lognormal) - 10.0 * (0.125f64).exp()).abs() < 0.3);
    }

    #[test]
    fn pareto_and_mixtures_have_their_means() {
        // Pareto mean = shape * scale / (shape - 1).
        assert!((mean_ms(Latency::Pareto { scale_ms: 1.0, shape: 3.0 }) - 1.5).abs() < 0.05);
        let mixture = Latency::Mixture {
            parts: vec![
                MixturePart { weight: 3.0, latency: Latency::Constant { ms: 1.0 } },
                MixturePart { weight: 1.0, latency: Latency::Constant { ms: 9.0 } },
            ],
        };
        assert!((mean_ms(mixture) - 3.0).abs() < 0.1);
        let nested =
            Latency::Mixture { parts: vec![MixturePart { weight: 1.0, latency: Latency::Mixture { parts: vec![] } }] };
        assert!(LinkModel::new(&LinkConfig { latency: nested, ..LinkConfig::default() }).is_err());
        let zero =
            Latency::Mixture { parts: vec![MixturePart { weight: 0.0, latency: Latency::Constant { ms: 1.0 } }] };
        assert!(LinkModel::new(&LinkConfig { latency: zero, ..LinkConfig::default() }).is_err());
        assert!(
            LinkModel::new(&LinkConfig {
                latency: Latency::Pareto { scale_ms: 0.0, shape: 2.0 },
                ..LinkConfig::default()
            })
            .is_err()
        );
    }

    #[test]
    fn bad_numbers_are_errors() {
        for p in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let config = LinkConfig { drop: p, ..LinkConfig::default() };
            assert!(matches!(LinkModel::new(&config), Err(SimError::InvalidProbability { .. })));
        }
        let config = LinkConfig { latency: Latency::Uniform { min_ms: 5.0, max_ms: 1.0 }, ..LinkConfig::default() };
        assert!(matches!(LinkModel::new(&config), Err(SimError::InvalidRange { .. })));
        assert!(ms_to_ns("x", -1.0).is_err());
        assert!(ms_to_ns("x", f64::NAN).is_err());
    }
}
