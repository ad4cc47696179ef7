//! The built-in scenario library, compiled into the binary.

use crate::scenario::{Scenario, ScenarioError, parse};

/// Name and JSON text of every built-in scenario: each protocol's, in registry order.
pub fn built_ins() -> impl Iterator<Item = (&'static str, &'static str)> {
    crate::registry::REGISTRY.iter().flat_map(|p| p.scenarios().iter().copied())
}

/// The names of the built-in scenarios.
pub fn names() -> Vec<&'static str> {
    built_ins().map(|(name, _)| name).collect()
}

/// The built-in scenario `name`, if there is one.
pub fn built_in(name: &str) -> Option<&'static str> {
    built_ins().find(|(n, _)| *n == name).map(|(_, text)| text)
}

/// Every built-in scenario, parsed.
pub fn all() -> Vec<Scenario> {
    built_ins().map(|(name, text)| parse(text, name).expect("built-in scenarios are valid")).collect()
}

/// A scenario named by the user, with the `--variant` flag applied (`correct` for none).
pub fn resolve_with_variant(argument: &str, variant: Option<&str>) -> Result<Scenario, String> {
    let mut scenario = resolve(argument).map_err(|e| e.to_string())?;
    if let Some(variant) = variant {
        scenario.variant = (variant != "correct").then(|| variant.to_owned());
        crate::scenario::validate(&scenario).map_err(|(_, message)| format!("--variant: {message}"))?;
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
        let names = names();
        return Err(ScenarioError::new(
            argument,
            format!(
                "no built-in scenario or file of that name (built-in: {}; `dsim list` shows them)",
                names.join(", ")
            ),
        ));
    }
    let text = crate::output::read_text(path).map_err(|message| ScenarioError::new("", message))?;
    parse(&text, argument)
}
