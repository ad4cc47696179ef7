//! The built-in scenario library, compiled into the binary.

use crate::scenario::{Scenario, ScenarioError, parse};

/// Name and JSON text of every built-in scenario.
pub const BUILT_IN: [(&str, &str); 15] = [
    ("raft", include_str!("../library/raft.json")),
    ("raft-leader-isolation", include_str!("../library/raft-leader-isolation.json")),
    ("raft-minority-partition", include_str!("../library/raft-minority-partition.json")),
    ("raft-crash-restart", include_str!("../library/raft-crash-restart.json")),
    ("raft-figure8", include_str!("../library/raft-figure8.json")),
    ("redis-lock", include_str!("../library/redis-lock.json")),
    ("redis-lock-hostile", include_str!("../library/redis-lock-hostile.json")),
    ("redis-lock-gc-pause", include_str!("../library/redis-lock-gc-pause.json")),
    ("redlock", include_str!("../library/redlock.json")),
    ("redlock-hostile", include_str!("../library/redlock-hostile.json")),
    ("redlock-gc-pause", include_str!("../library/redlock-gc-pause.json")),
    ("redlock-pause-in-acquisition", include_str!("../library/redlock-pause-in-acquisition.json")),
    ("redlock-clock-jump", include_str!("../library/redlock-clock-jump.json")),
    ("redlock-restart-no-persistence", include_str!("../library/redlock-restart-no-persistence.json")),
    ("redlock-delayed-restart", include_str!("../library/redlock-delayed-restart.json")),
];

/// The built-in scenario `name`, if there is one.
pub fn built_in(name: &str) -> Option<&'static str> {
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

/// Every built-in scenario, parsed.
pub fn all() -> Vec<Scenario> {
    BUILT_IN.iter().map(|(name, text)| parse(text, name).expect("built-in scenarios are valid")).collect()
}

/// A scenario named by the user, with the `--variant` flag applied (`correct` for none).
pub fn resolve_with_variant(argument: &str, variant: Option<&str>) -> Result<Scenario, String> {
    let mut scenario = resolve(argument).map_err(|e| e.to_string())?;
    if let Some(variant) = variant {
        scenario.variant = (variant != "correct").then(|| variant.to_owned());
        crate::scenario::validate(&scenario).map_err(|e| format!("--variant: {e}"))?;
    }
    Ok(scenario)
}

/// A scenario named by the user: a built-in name or a file path.
pub fn resolve(argument: &str) -> Result<Scenario, ScenarioError> {
    if let Some(text) = built_in(argument) {
        return parse(text, argument);
    }
    let path = std::path::Path::new(argument);
    if !path.exists() {
        let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        return Err(ScenarioError::new(
            argument,
            format!(
                "no built-in scenario or file of that name (built-in: {}; `dsim list` shows them)",
                names.join(", ")
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::new(argument, format!("cannot read: {e}")))?;
    parse(&text, argument)
}
