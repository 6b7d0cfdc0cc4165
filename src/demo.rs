//! Sample data for the demo: a few days of marketplace events for a few cities, written
//! in the Firehose layout, with late, duplicate and malformed records like the real feed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::window::{fmt_dt, fmt_hour};

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoSpec {
    /// Events are generated for the hours before this instant.
    pub at: DateTime<Utc>,
    pub days: u32,
    /// Booking sessions per city and hour (search impressions and payouts follow).
    pub sessions_per_hour: u32,
    pub seed: u64,
    pub env: String,
}

/// What was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    pub files: usize,
    pub events: usize,
    pub duplicates: usize,
    pub late: usize,
    pub malformed: usize,
    pub bytes: u64,
}

pub const CITIES: [&str; 5] = ["austin", "denver", "miami", "portland", "seattle"];
const CURRENCY: &str = "USD";

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

struct Gen {
    rng: ChaCha8Rng,
    env: String,
    /// (dt, hour, event) -> lines
    out: BTreeMap<(String, String, String), Vec<String>>,
    summary: DemoSummary,
    seq: u64,
    now: DateTime<Utc>,
}

impl Gen {
    fn id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}_{:08x}{:04x}", self.seq, self.rng.random::<u16>())
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        event: &str,
        occurred: DateTime<Utc>,
        user: Option<&str>,
        anon: &str,
        session: &str,
        city: &str,
        ids: Value,
        money: Option<i64>,
        payload: Value,
    ) {
        let late = self.rng.random_bool(0.03);
        let delay = if late {
            Duration::minutes(self.rng.random_range(90..300))
        } else {
            Duration::milliseconds(self.rng.random_range(200..20_000))
        };
        let received = occurred + delay;
        if received >= self.now {
            return; // not arrived yet
        }
        if late {
            self.summary.late += 1;
        }
        let mut env = json!({
            "event": event,
            "v": 1,
            "occurred_at": ts(occurred),
            "received_at": ts(received),
            "user_id": user,
            "anon_id": anon,
            "session_id": session,
            "city": city,
            "device": {"ua_hash": format!("ua{:x}", self.rng.random::<u32>() % 4096), "os": if self.rng.random_bool(0.6) { "ios" } else { "android" }, "app_ver": "4.12.0"},
            "context": {"role": if event.starts_with("payout") { "system" } else { "buyer" }, "env": self.env},
            "ids": ids,
            "payload": payload,
        });
        if let Some(cents) = money {
            env["money"] = json!({"amount_cents": cents, "currency": CURRENCY});
        }
        let line = env.to_string();
        let key = (fmt_dt(received), fmt_hour(received), event.to_string());
        let lines = self.out.entry(key).or_default();
        lines.push(line.clone());
        self.summary.events += 1;
        if self.rng.random_bool(0.01) {
            lines.push(line); // Firehose delivers at least once
            self.summary.duplicates += 1;
        }
    }

    /// One `lbg.<state>` event of a booking.
    #[allow(clippy::too_many_arguments)]
    fn booking(
        &mut self,
        state: &str,
        t: DateTime<Utc>,
        user: &str,
        anon: &str,
        session: &str,
        city: &str,
        lbg: &str,
        cents: i64,
    ) {
        let payload = json!({"lbg_id": lbg, "amount_cents": cents, "currency": CURRENCY, "state": state});
        let ids = json!({"lbg_id": lbg});
        self.emit(&format!("lbg.{state}"), t, Some(user), anon, session, city, ids, Some(cents), payload);
    }

    fn session(&mut self, city: &str, start: DateTime<Utc>) {
        let signed_in = self.rng.random_bool(0.7);
        let user = signed_in.then(|| self.id("u"));
        let anon = self.id("a");
        let session = self.id("s");
        let query_hash = format!("q{:04x}", self.rng.random::<u16>() % 512);
        let shown = self.rng.random_range(3..9);
        let mut t = start;
        for pos in 1..=shown {
            t += Duration::seconds(self.rng.random_range(1..20));
            let listing = format!("l_{}_{}", city, self.rng.random_range(1..200));
            self.emit(
                "search.impression",
                t,
                user.as_deref(),
                &anon,
                &session,
                city,
                json!({"listing_id": listing}),
                None,
                json!({"query_hash": query_hash, "result_pos": pos, "listing_id": listing}),
            );
        }
        if !(signed_in && self.rng.random_bool(0.35)) {
            return;
        }
        let user = user.expect("signed in");
        let lbg = self.id("lbg");
        let cents: i64 = self.rng.random_range(20..400) * 500;
        t += Duration::seconds(self.rng.random_range(30..600));
        self.booking("requested", t, &user, &anon, &session, city, &lbg, cents);
        if !self.rng.random_bool(0.75) {
            t += Duration::minutes(self.rng.random_range(5..60));
            self.booking("declined", t, &user, &anon, &session, city, &lbg, cents);
            return;
        }
        t += Duration::minutes(self.rng.random_range(1..30));
        self.booking("confirmed", t, &user, &anon, &session, city, &lbg, cents);
        if self.rng.random_bool(0.08) {
            t += Duration::minutes(self.rng.random_range(10..120));
            self.booking("cancelled", t, &user, &anon, &session, city, &lbg, cents);
            return;
        }
        // Payout legs: the provider's share is paid out after confirmation.
        let legs = self.rng.random_range(1..=2);
        for leg_no in 0..legs {
            let leg = format!("{lbg}-leg{leg_no}");
            let amount = cents * 85 / 100 / legs;
            let provider_ref = format!("po_{:010x}", self.rng.random::<u64>() % (1 << 40));
            let payout = json!({"leg_id": leg, "amount_cents": amount, "provider_ref": provider_ref});
            let ids = json!({"lbg_id": lbg, "leg_id": leg});
            let mut pt = t + Duration::minutes(self.rng.random_range(5..90));
            self.emit(
                "payout.queued",
                pt,
                None,
                &anon,
                &session,
                city,
                ids.clone(),
                Some(amount),
                payout.clone(),
            );
            let roll: f64 = self.rng.random();
            pt += Duration::minutes(self.rng.random_range(20..240));
            if roll < 0.8 {
                self.emit("payout.paid", pt, None, &anon, &session, city, ids, Some(amount), payout);
            } else if roll < 0.86 {
                let mut failed = payout.clone();
                failed["reason"] = json!("account_closed");
                self.emit("payout.failed", pt, None, &anon, &session, city, ids, Some(amount), failed);
            }
        }
    }
}

/// Writes the sample under `<root>/bronze/events/`, replacing files of the same name.
pub fn generate(root: &Path, spec: &DemoSpec) -> std::io::Result<DemoSummary> {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(spec.seed),
        env: spec.env.clone(),
        out: BTreeMap::new(),
        summary: DemoSummary::default(),
        seq: 0,
        now: spec.at,
    };
    let end = crate::window::Grain::Hour.floor(spec.at);
    let start = end - Duration::days(spec.days as i64);
    let mut hour = start;
    while hour <= end {
        for city in CITIES {
            // Busier in the evening, quieter at night.
            let h: u32 = fmt_hour(hour).parse().expect("two digits");
            let load = if (17..23).contains(&h) {
                2
            } else if h < 6 {
                0
            } else {
                1
            };
            let n = spec.sessions_per_hour * (1 + load) / 2 + 1;
            for _ in 0..n {
                let offset = Duration::seconds(g.rng.random_range(0..3600));
                g.session(city, hour + offset);
            }
        }
        hour += Duration::hours(1);
    }
    // A few records that do not parse, as real feeds have (truncated writes, bad types).
    let keys: Vec<_> = g.out.keys().cloned().collect();
    for (i, key) in keys.iter().enumerate().filter(|(i, _)| i % 97 == 3) {
        let lines = g.out.get_mut(key).expect("key exists");
        let bad = match i % 3 {
            0 => lines[0][..lines[0].len() / 2].to_string(),
            1 => "{\"event\": \"payout.paid\", \"v\": \"one\", \"occurred_at\": \"yesterday\"}".to_string(),
            _ => "[1, 2, 3]".to_string(),
        };
        lines.push(bad);
        g.summary.malformed += 1;
    }
    for ((dt, hour, event), lines) in &g.out {
        let dir = root
            .join("bronze/events")
            .join(format!("dt={dt}"))
            .join(format!("hour={hour}"))
            .join(format!("env={}", spec.env))
            .join(format!("event={event}"));
        std::fs::create_dir_all(&dir)?;
        for (part, chunk) in lines.chunks(400).enumerate() {
            let path = dir.join(format!("part-{part:05}-demo{:x}.json.gz", spec.seed));
            let tmp = path.with_extension("tmp");
            let file = std::fs::File::create(&tmp)?;
            let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            for line in chunk {
                gz.write_all(line.as_bytes())?;
                gz.write_all(b"\n")?;
            }
            gz.finish()?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            g.summary.bytes += std::fs::metadata(&path)?.len();
            g.summary.files += 1;
        }
    }
    Ok(g.summary)
}
