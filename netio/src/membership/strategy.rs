//! How joins are placed on helper sockets.
//!
//! The names (`pool`, `single`, `per-group`) come from the variant names alone: clap's
//! [`ValueEnum`] and serde both derive them in kebab-case, and [`fmt::Display`] and
//! [`FromStr`] go through [`ValueEnum`], so no list of names is written out anywhere.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How joins are placed on helper sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Strategy {
    /// Joins spread over as many helper sockets per interface as the limits need.
    #[default]
    Pool,
    /// One helper socket per interface (the legacy design): the kernel's refusal is reported.
    Single,
    /// One helper socket per group (what one socat per stream does).
    PerGroup,
}

impl Strategy {
    /// The name used on the command line, in JSON and in messages.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|value| value.get_name().to_string())
            .unwrap_or_default()
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        <Strategy as ValueEnum>::from_str(text, false).map_err(|_| {
            let known: Vec<String> = Strategy::value_variants()
                .iter()
                .map(|s| s.name())
                .collect();
            format!(
                "unknown membership strategy {text:?}: use one of {}",
                known.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_parse() {
        assert_eq!("pool".parse::<Strategy>().unwrap(), Strategy::Pool);
        assert_eq!("per-group".parse::<Strategy>().unwrap(), Strategy::PerGroup);
        assert!("many".parse::<Strategy>().is_err());
        assert_eq!(Strategy::Single.to_string(), "single");
    }

    #[test]
    fn serde_clap_and_display_agree() {
        for strategy in Strategy::value_variants() {
            let json = serde_json::to_string(strategy).unwrap();
            assert_eq!(json, format!("\"{strategy}\""));
            let back: Strategy = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *strategy);
            assert_eq!(strategy.to_string().parse::<Strategy>().unwrap(), *strategy);
        }
        let names: Vec<String> = Strategy::value_variants()
            .iter()
            .map(|s| s.name())
            .collect();
        assert_eq!(names, ["pool", "single", "per-group"]);
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = "many".parse::<Strategy>().unwrap_err();
        assert!(err.contains("pool, single, per-group"), "{err}");
    }
}
