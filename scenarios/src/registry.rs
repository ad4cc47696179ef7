//! The protocol registry: one line per protocol. Everything else in this crate reaches
//! protocols through [`DynProtocol`], so adding a protocol is its folder in `protocols/`
//! and one line in [`REGISTRY`].

use std::marker::PhantomData;

use protocols::protocol::{FieldError, Protocol, Topology, VariantInfo};
use serde::Deserialize;

use crate::runner::{RunOutcome, run_with};
use crate::scenario::Scenario;

/// Every protocol dsim knows, in the order `dsim list` shows them.
pub static REGISTRY: &[&dyn DynProtocol] = &[
    &Entry::<protocols::raft::protocol::Raft>(PhantomData),
    &Entry::<protocols::locks::protocol::RedisLock>(PhantomData),
    &Entry::<protocols::locks::protocol::RedLock>(PhantomData),
    &Entry::<protocols::locks::protocol::DbLock>(PhantomData),
    &Entry::<protocols::locks::zookeeper::protocol::ZooKeeper>(PhantomData),
    &Entry::<protocols::paxos::Paxos>(PhantomData),
    &Entry::<protocols::multipaxos::MultiPaxos>(PhantomData),
    &Entry::<protocols::txn::TwoPc>(PhantomData),
    &Entry::<protocols::txn::PaxosCommit>(PhantomData),
    &Entry::<protocols::outbox::Outbox>(PhantomData),
    &Entry::<protocols::dynamo::Dynamo>(PhantomData),
    &Entry::<protocols::example::Register>(PhantomData),
];

/// The registry entry of protocol `name`.
pub fn find(name: &str) -> Option<&'static dyn DynProtocol> {
    REGISTRY.iter().copied().find(|p| p.name() == name)
}

/// The registered protocols' names.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|p| p.name()).collect()
}

/// A protocol with its types erased, as the CLI, runner and fuzzer see it.
pub trait DynProtocol: Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn variants(&self) -> &'static [VariantInfo];
    /// Built-in scenarios: name and JSON text.
    fn scenarios(&self) -> &'static [(&'static str, &'static str)];
    /// Reads a `"settings"` object's text (for errors with a position).
    fn parse_settings(&self, text: &str) -> Result<(), serde_json::Error>;
    /// The protocol's own validation of a scenario's settings, cluster and variant.
    fn validate(&self, scenario: &Scenario) -> Result<(), FieldError>;
    fn topology(&self, scenario: &Scenario) -> Result<Topology, String>;
    /// One run, recording every trace event into `trace` if given.
    fn run(
        &self,
        scenario: &Scenario,
        seed: u64,
        trace: Option<&crate::recording::Recording>,
    ) -> Result<RunOutcome, String>;
    /// Smaller settings for the shrinker to try.
    fn shrink_settings(&self, scenario: &Scenario) -> Vec<serde_json::Value>;
}

/// The erasing wrapper; `fn() -> P` keeps it `Sync` whatever `P` is.
pub struct Entry<P>(PhantomData<fn() -> P>);

/// A scenario's settings as `P`'s type (defaults when absent).
pub fn settings_of<P: Protocol>(scenario: &Scenario) -> Result<P::Settings, String> {
    if scenario.settings.is_null() {
        return Ok(P::Settings::default());
    }
    P::Settings::deserialize(&scenario.settings).map_err(|e| format!("settings: {e}"))
}

impl<P: Protocol> DynProtocol for Entry<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn description(&self) -> &'static str {
        P::DESCRIPTION
    }

    fn variants(&self) -> &'static [VariantInfo] {
        P::VARIANTS
    }

    fn scenarios(&self) -> &'static [(&'static str, &'static str)] {
        P::SCENARIOS
    }

    fn parse_settings(&self, text: &str) -> Result<(), serde_json::Error> {
        serde_json::from_str::<P::Settings>(text).map(|_| ())
    }

    fn validate(&self, scenario: &Scenario) -> Result<(), FieldError> {
        let settings = settings_of::<P>(scenario).map_err(|m| FieldError::new("", m))?;
        P::validate(&settings, scenario.cluster, scenario.variant_name())
    }

    fn topology(&self, scenario: &Scenario) -> Result<Topology, String> {
        Ok(P::topology(&settings_of::<P>(scenario)?, scenario.cluster))
    }

    fn run(
        &self,
        scenario: &Scenario,
        seed: u64,
        trace: Option<&crate::recording::Recording>,
    ) -> Result<RunOutcome, String> {
        let settings = settings_of::<P>(scenario)?;
        let sink = trace.map(|r| Box::new(Labelled::<P>(r.clone(), PhantomData)) as crate::runner::NodeSink<P::Node>);
        run_with::<P>(&settings, scenario, seed, sink)
    }

    fn shrink_settings(&self, scenario: &Scenario) -> Vec<serde_json::Value> {
        let Ok(settings) = settings_of::<P>(scenario) else { return Vec::new() };
        P::shrink(&settings).iter().filter_map(|s| serde_json::to_value(s).ok()).collect()
    }
}

/// A recording that labels messages the protocol's way.
struct Labelled<P>(crate::recording::Recording, PhantomData<fn() -> P>);

type NodeMsg<P> = <<P as Protocol>::Node as sim_core::Process>::Msg;
type NodeObs<P> = <<P as Protocol>::Node as sim_core::Process>::Obs;

impl<P: Protocol> sim_core::TraceSink<NodeMsg<P>, NodeObs<P>> for Labelled<P> {
    fn record(&mut self, event: &sim_core::TraceEvent<'_, NodeMsg<P>, NodeObs<P>>) {
        let label = match event {
            sim_core::TraceEvent::Send { msg, .. } | sim_core::TraceEvent::Deliver { msg, .. } => P::message_label(msg),
            _ => None,
        };
        self.0.record_labelled(event, label);
    }
}
