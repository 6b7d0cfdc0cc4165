//! The names everything refers to: layers and model ids. A leaf: it imports nothing of
//! strata, and every module may import it.

use std::fmt;

/// The four layers of the lake, in dependency order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Bronze,
    Silver,
    Gold,
    Ops,
}

impl Layer {
    pub const ALL: [Layer; 4] = [Layer::Bronze, Layer::Silver, Layer::Gold, Layer::Ops];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bronze => "bronze",
            Self::Silver => "silver",
            Self::Gold => "gold",
            Self::Ops => "ops",
        }
    }
}

/// `layer.name`, e.g. `silver.fact_payouts`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelId {
    pub layer: Layer,
    pub name: String,
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer.as_str(), self.name)
    }
}

impl ModelId {
    pub fn parse(s: &str) -> Option<Self> {
        let (layer, name) = s.split_once('.')?;
        let layer = Layer::parse(layer)?;
        (!name.is_empty() && !name.contains('.')).then(|| Self { layer, name: name.into() })
    }
}

/// FNV-1a, 128 bits, of `parts` (each followed by a 0xff separator): a stable hash, the same
/// on every build and machine, for ids derived from their inputs.
pub fn fnv128(parts: &[&str]) -> u128 {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= b as u128;
            h = h.wrapping_mul(0x0000000001000000000000000000013B);
        }
    }
    h
}

/// A new identifier: the instant and a random suffix, sortable and never reused.
pub fn new_id(prefix: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{prefix}{}-{:06x}", now.format("%Y%m%dT%H%M%S%3fZ"), rand::random::<u32>() & 0xff_ffff)
}
