//! Names of everything the lab creates (docs/interfaces.md; docs/architecture.md, safety rule 2).
//!
//! A run id identifies one topology. Random ids are 6 lowercase hex characters; a user may pick
//! 1 to 6 characters of `[a-z0-9]` with `labctl topo up --name`. Every namespace is
//! `mlab-<runid>-<role>`, every interface `ml<runid>-<tag>` (at most 15 bytes, the kernel's
//! `IFNAMSIZ - 1`), the snooping bridge `ml<runid>-br`. Cleanup recognises only these shapes.

use std::fmt;
use std::str::FromStr;

/// Longest interface name the kernel accepts (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;
/// Prefix of every lab namespace.
pub const NAMESPACE_PREFIX: &str = "mlab-";
/// Longest run id.
pub const MAX_RUN_ID_LEN: usize = 6;

/// Why a name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid run name {0:?}: use 1 to 6 characters from a-z and 0-9 (for example `demo1`)")]
    BadRunId(String),
    #[error("interface name {0:?} is longer than 15 bytes; use a shorter tag")]
    IfNameTooLong(String),
    #[error("invalid interface tag {0:?}: use 1 to 6 characters from a-z and 0-9")]
    BadTag(String),
}

/// The id of one lab topology, shared by all its namespaces and interfaces.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// A fresh random id: 6 lowercase hex characters.
    pub fn random() -> Self {
        let value: u32 = rand::random::<u32>() & 0x00ff_ffff;
        RunId(format!("{value:06x}"))
    }

    /// A user-chosen id: 1..=6 characters of `[a-z0-9]`.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let ok = (1..=MAX_RUN_ID_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(RunId(text.to_string()))
        } else {
            Err(NameError::BadRunId(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `mlab-<runid>-<role>`.
    pub fn namespace(&self, role: Role) -> String {
        format!("{NAMESPACE_PREFIX}{}-{}", self.0, role.as_str())
    }

    /// `ml<runid>-<tag>`; the tag is 1..=6 characters of `[a-z0-9]`, so the name always fits.
    pub fn ifname(&self, tag: &str) -> Result<String, NameError> {
        let tag_ok = (1..=6).contains(&tag.len())
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !tag_ok {
            return Err(NameError::BadTag(tag.to_string()));
        }
        let name = format!("ml{}-{tag}", self.0);
        if name.len() > MAX_IFNAME_LEN {
            return Err(NameError::IfNameTooLong(name));
        }
        Ok(name)
    }

    /// The snooping bridge, `ml<runid>-br`.
    pub fn bridge(&self) -> String {
        format!("ml{}-br", self.0)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RunId {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RunId::parse(&s)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl FromStr for RunId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunId::parse(s)
    }
}

/// The hosts of a topology, one namespace each.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The traffic generator (`loadgen send`).
    Gen,
    /// The snooping switch (a Linux bridge).
    Sw,
    /// The system under test.
    Relay,
    /// The receiver (`loadgen sink`).
    Sink,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Gen, Role::Sw, Role::Relay, Role::Sink];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gen => "gen",
            Role::Sw => "sw",
            Role::Relay => "relay",
            Role::Sink => "sink",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: expected gen, sw, relay or sink"))
    }
}

/// Splits a lab namespace name `mlab-<runid>-<role>` into its run id and role.
pub fn parse_namespace(name: &str) -> Option<(RunId, Role)> {
    let rest = name.strip_prefix(NAMESPACE_PREFIX)?;
    let (run, role) = rest.split_once('-')?;
    Some((RunId::parse(run).ok()?, role.parse().ok()?))
}

/// True for any name `labctl clean` may remove as a namespace: it starts with `mlab-`.
pub fn is_lab_namespace(name: &str) -> bool {
    name.starts_with(NAMESPACE_PREFIX) && name.len() > NAMESPACE_PREFIX.len()
}

/// True for a root-namespace link `labctl clean` may remove: `ml` + 6 hex characters + `-`.
pub fn is_lab_link(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 9
        && b.len() <= MAX_IFNAME_LEN
        && b.starts_with(b"ml")
        && b[2..8]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        && b[8] == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_six_hex() {
        for _ in 0..200 {
            let id = RunId::random();
            assert_eq!(id.as_str().len(), 6);
            assert!(
                id.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(RunId::parse(id.as_str()).is_ok());
        }
    }

    #[test]
    fn user_ids_are_validated() {
        assert!(RunId::parse("demo1").is_ok());
        assert!(RunId::parse("a").is_ok());
        assert!(RunId::parse("").is_err());
        assert!(RunId::parse("toolong").is_err());
        assert!(RunId::parse("Demo").is_err());
        assert!(RunId::parse("a-b").is_err());
        assert!(RunId::parse("../x").is_err());
    }

    #[test]
    fn interface_names_fit_and_carry_the_prefix() {
        let id = RunId::parse("abc123").unwrap();
        let longest = id.ifname("e63b").unwrap();
        assert!(longest.len() <= MAX_IFNAME_LEN);
        assert_eq!(id.ifname("l1a").unwrap(), "mlabc123-l1a");
        assert!(is_lab_link(&id.ifname("l1a").unwrap()));
        assert_eq!(id.ifname("abcdef").unwrap().len(), 15);
        assert!(id.ifname("abcdefg").is_err());
        assert!(id.ifname("").is_err());
        assert!(id.ifname("A").is_err());
        assert_eq!(id.bridge(), "mlabc123-br");
    }

    #[test]
    fn namespaces_round_trip() {
        let id = RunId::parse("0f0f0f").unwrap();
        for role in Role::ALL {
            let ns = id.namespace(role);
            assert!(ns.starts_with("mlab-0f0f0f-"));
            assert!(is_lab_namespace(&ns));
            assert_eq!(parse_namespace(&ns), Some((id.clone(), role)));
        }
        assert_eq!(parse_namespace("mlab-0f0f0f-bogus"), None);
        assert_eq!(parse_namespace("other-0f0f0f-gen"), None);
    }

    #[test]
    fn cleanup_patterns_are_strict() {
        assert!(is_lab_link("ml0a1b2c-l1a"));
        assert!(!is_lab_link("ml0a1b2c"));
        assert!(!is_lab_link("eth0"));
        assert!(!is_lab_link("mlxyz123-l1a"));
        assert!(!is_lab_link("ml0a1b2cl1a"));
        assert!(!is_lab_namespace("mlab-"));
        assert!(!is_lab_namespace("netns1"));
    }
}
