//! `[athena]` of strata.toml: the Athena backend's own section, read by the backend (the
//! core only takes its `storage`, the lake's root when the engine is athena).

use serde::Deserialize;

use crate::config::{ConfigError, EngineKind, Settings, Storage};

/// The section's name in strata.toml (and in a profile, `[profiles.NAME.athena]`).
pub const SECTION: &str = "athena";

/// What `[athena]` may set; an unknown key is refused at its line.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AthenaSettings {
    /// The lake's S3 root when the engine is athena (`s3://bucket[/prefix]`).
    pub storage: Option<String>,
    pub workgroup: Option<String>,
    pub output_location: Option<String>,
    pub region: Option<String>,
    pub catalog: Option<String>,
    /// A run stops starting statements once its statements scanned this many bytes.
    pub max_bytes_scanned_per_run: Option<u64>,
}

impl AthenaSettings {
    /// The section as the invocation's profile leaves it (all defaults when there is none).
    pub fn of(settings: &Settings) -> Result<Self, ConfigError> {
        settings.section(SECTION).map_or_else(|| Ok(Self::default()), |s| s.read())
    }

    /// What is wrong with the section, and, when the engine is athena, with the storage
    /// root (Athena reads and writes S3 only).
    pub fn check(settings: &Settings) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = Self::of(settings) {
            problems.push(e);
        }
        if settings.engine == EngineKind::Athena && !matches!(settings.storage, Storage::S3 { .. }) {
            problems.push(ConfigError::Invalid {
                origin: settings.section(SECTION).map_or_else(|| "strata.toml".into(), |s| s.origin()),
                field: "athena.storage",
                value: settings.storage.uri(""),
                expected: "an s3://bucket[/prefix] root: Athena reads and writes S3",
            });
        }
        problems
    }
}
