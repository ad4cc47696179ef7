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
    let mut scenario = resolve_system(argument)?;
    if let Some(variant) = variant {
        scenario.variant = (variant != "correct").then(|| variant.to_owned());
        crate::scenario::validate(&scenario).map_err(|(_, message)| format!("--variant: {message}"))?;
    }
    Ok(scenario)
}

/// A scenario a command-line argument names: a built-in or a file, or a built-in with
/// settings overrides after a colon (`cap-dynamo-311-sloppy:dynamo.r=2,variant=fencing`;
/// values are JSON, or text), validated like a file.
pub fn resolve_system(argument: &str) -> Result<Scenario, String> {
    if let Ok(scenario) = resolve(argument) {
        return Ok(scenario);
    }
    let Some((name, overrides)) = argument.split_once(':') else {
        return resolve(argument).map_err(|e| e.to_string());
    };
    let mut scenario = resolve(name).map_err(|e| e.to_string())?;
    for assignment in overrides.split(',').filter(|a| !a.is_empty()) {
        let Some((path, value)) = assignment.split_once('=') else {
            return Err(format!("{argument}: override `{assignment}` is not path=value"));
        };
        let value: serde_json::Value =
            serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        if path == "variant" {
            let name = value.as_str().unwrap_or_default().to_owned();
            scenario.variant = (name != "correct").then_some(name);
            continue;
        }
        if !scenario.settings.is_object() {
            scenario.settings = serde_json::Value::Object(serde_json::Map::new());
        }
        let mut target = &mut scenario.settings;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let object = target.as_object_mut().ok_or_else(|| {
                format!("{argument}: override `{path}`: settings.{} is not an object", parts[..i].join("."))
            })?;
            if i + 1 == parts.len() {
                object.insert((*part).to_owned(), value.clone());
                break;
            }
            target = object.entry((*part).to_owned()).or_insert_with(|| serde_json::json!({}));
        }
    }
    // The scenario's name names saved files: the overrides join it in a file-safe form.
    scenario.name = argument
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(100)
        .collect();
    crate::scenario::validate(&scenario).map_err(|(path, message)| {
        let path = path.replace("settings.settings", "settings");
        format!(
            "{argument}: override: {}",
            if message.contains(&path) { message } else { format!("{path}: {message}") }
        )
    })?;
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
        let near = suggestions(argument, &names);
        let hint = if near.is_empty() {
            format!("`dsim list` shows the {} built-ins", names.len())
        } else {
            format!("did you mean {}? (`dsim list` shows all {})", near.join(", "), names.len())
        };
        return Err(ScenarioError::new(argument, format!("no built-in scenario or file of that name; {hint}")));
    }
    let text = crate::output::read_text(path).map_err(|message| ScenarioError::new("", message))?;
    parse(&text, argument)
}

/// Built-in names close to `argument`: those that start with it or contain it (a protocol
/// name finds its scenarios), else those within two edits; at most five.
pub fn suggestions(argument: &str, names: &[&'static str]) -> Vec<&'static str> {
    let argument = argument.to_ascii_lowercase();
    let mut near: Vec<&'static str> = names.iter().copied().filter(|n| n.starts_with(&argument)).collect();
    if near.is_empty() {
        near = names.iter().copied().filter(|n| !argument.is_empty() && n.contains(&argument)).collect();
    }
    if near.is_empty() {
        near = names.iter().copied().filter(|n| edit_distance(n, &argument) <= 2).collect();
    }
    near.sort_by_key(|n| (edit_distance(n, &argument), *n));
    near.truncate(5);
    near
}

/// Levenshtein distance, for suggestions (names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod suggestion_tests {
    use super::*;

    #[test]
    fn a_protocol_name_or_a_typo_finds_its_scenarios() {
        let names = names();
        let near = suggestions("zookeeper", &names);
        assert!(near.contains(&"zookeeper-lock") && near.iter().all(|n| n.starts_with("zookeeper")), "{near:?}");
        assert_eq!(suggestions("raf", &names)[0], "raft");
        assert_eq!(suggestions("redlok", &names), ["redlock"]);
        assert!(suggestions("nothing-like-it", &names).is_empty());
    }
}
