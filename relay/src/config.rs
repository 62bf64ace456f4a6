//! The `--config FILE` format: a JSON object with a `rules` array. Each rule is either the
//! text form used by `--rule` or an object with `input` and `outputs`:
//!
//! ```json
//! {
//!   "rules": [
//!     "in0:239.1.0.1:5000 -> out0:239.2.0.1:5000, out1:239.3.0.1:6000",
//!     { "input": "in0:239.1.0.2:5000@198.18.1.1",
//!       "outputs": ["out0:239.2.0.2:5000"] }
//!   ]
//! }
//! ```
//! Unknown fields are errors, so a typo never silently drops a rule.

use crate::rule::{Input, Rule};
use anyhow::Context;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RuleSpec {
    Text(String),
    Parts(RuleParts),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleParts {
    input: String,
    outputs: Vec<String>,
}

/// Parses the text of a config file into rules.
pub fn parse_config(text: &str) -> anyhow::Result<Vec<Rule>> {
    let file: ConfigFile = serde_json::from_str(text).context(
        "expected {\"rules\": [\"IF:GROUP:PORT -> IF:GROUP:PORT\", {\"input\": ..., \"outputs\": [...]}]}",
    )?;
    file.rules
        .into_iter()
        .enumerate()
        .map(|(index, spec)| {
            let rule = match spec {
                RuleSpec::Text(text) => text.parse::<Rule>(),
                RuleSpec::Parts(parts) => parts.input.parse::<Input>().and_then(|input| {
                    let outputs = parts
                        .outputs
                        .iter()
                        .map(|o| o.parse())
                        .collect::<Result<Vec<_>, _>>()?;
                    Rule { input, outputs }.validated()
                }),
            };
            rule.with_context(|| format!("rule #{} of the config file", index + 1))
        })
        .collect()
}

/// Reads and parses a config file.
pub fn load_config(path: &Path) -> anyhow::Result<Vec<Rule>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    parse_config(&text).with_context(|| format!("in config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_and_structured_rules() {
        let rules = parse_config(
            r#"{"rules": ["a:239.1.0.1:5000 -> b:239.2.0.1:5000",
                {"input": "a:239.1.0.2:5000@198.18.1.1", "outputs": ["b:239.2.0.2:5000", "c:239.3.0.2:1"]}]}"#,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[1].to_string(),
            "a:239.1.0.2:5000@198.18.1.1 -> b:239.2.0.2:5000, c:239.3.0.2:1"
        );
    }

    #[test]
    fn errors_name_the_rule_and_the_problem() {
        let err = parse_config(r#"{"rules": ["a:239.1.0.1:5000 -> b:239.2.0.1:5000", "a:1.2.3.4:1 -> b:239.2.0.1:1"]}"#)
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("rule #2") && text.contains("multicast"),
            "{text}"
        );
        assert!(parse_config(r#"{"rule": []}"#).is_err());
        assert!(parse_config(r#"{"rules": [{"input": "a:239.1.0.1:1", "outputs": []}]}"#).is_err());
        assert!(parse_config("not json").is_err());
    }
}
