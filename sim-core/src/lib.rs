//! sim-core: dsim's deterministic discrete-event engine.
//!
//! A [`Sim`] runs the nodes of one protocol (any type implementing [`Process`]) over a
//! seeded virtual network with faults. Time is virtual (`u64` nanoseconds of global
//! time); each node reads its own [`Clock`]; every random draw comes from a ChaCha stream
//! derived from the root seed by a stable label ([`rng`]); every event is folded into a
//! [`Fingerprint`], so two runs are the same run exactly when their fingerprints match.
//!
//! This crate does no I/O and knows nothing of any protocol or checker.

pub mod bench;
pub mod clock;
pub mod costs;
pub mod engine;
pub mod error;
pub mod fault;
pub mod fingerprint;
pub mod network;
pub mod rng;
pub mod storage;
pub mod trace;

pub use clock::Clock;
pub use costs::{Costs, ProcessingCosts, StorageCosts};
pub use engine::{Core, Ctx, Limits, Metrics, NodeId, Observation, Process, Sim, SimConfig, Step, TimerId};
pub use error::SimError;
pub use fault::{Fault, ScheduledFault};
pub use fingerprint::Fingerprint;
pub use network::{KindLatency, Latency, LinkConfig, LinkOverride, MS, MixturePart, NetworkConfig};
pub use rng::{SimRng, derive_rng};
pub use storage::Storage;
pub use trace::{DropReason, MemorySink, StopReason, TraceEvent, TraceSink};

/// Nanoseconds in a second.
pub const SEC: u64 = 1_000_000_000;
