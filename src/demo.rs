//! Sample data for the demo: a few days of marketplace events for a few cities, written
//! in the Firehose layout, with late, duplicate and malformed records like the real feed.

use std::borrow::Cow;
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
    /// (dt, hour, event, slot) -> lines; slot is the 5-minute arrival slot in the hour for
    /// the streaming generator, 0 otherwise.
    out: BTreeMap<(String, String, String, u32), Vec<String>>,
    /// Minutes per arrival slot (files are cut per slot), or 0 for one slot per hour.
    slot_minutes: u32,
    summary: DemoSummary,
    seq: u64,
    now: DateTime<Utc>,
    /// Whether envelopes come with the quirks of real producers.
    quirks: bool,
}

impl Gen {
    /// The booking sessions that start in `hour`, per city: busier in the evening,
    /// quieter at night.
    fn hour_of_sessions(&mut self, hour: DateTime<Utc>, sessions_per_hour: u32) {
        for city in CITIES {
            let h: u32 = fmt_hour(hour).parse().expect("two digits");
            let load = if (17..23).contains(&h) {
                2
            } else if h < 6 {
                0
            } else {
                1
            };
            let n = sessions_per_hour * (1 + load) / 2 + 1;
            for _ in 0..n {
                let offset = Duration::seconds(self.rng.random_range(0..3600));
                self.session(city, hour + offset);
            }
        }
    }

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
        let line = if self.quirks { self.as_producers_send(env) } else { env.to_string() };
        let slot = chrono::Timelike::minute(&received).checked_div(self.slot_minutes).unwrap_or(0);
        let key = (fmt_dt(received), fmt_hour(received), event.to_string(), slot);
        let lines = self.out.entry(key).or_default();
        lines.push(line.clone());
        self.summary.events += 1;
        if self.rng.random_bool(0.01) {
            lines.push(line); // Firehose delivers at least once
            self.summary.duplicates += 1;
        }
    }

    /// What real producers do to an envelope now and then, all of it valid for the Bronze
    /// table: the city only in the payload (older app versions), keys in another case,
    /// numbers as strings, explicit nulls, fields nobody declared, offsets instead of `Z`.
    fn as_producers_send(&mut self, mut env: Value) -> String {
        let roll: f64 = self.rng.random();
        let o = env.as_object_mut().expect("an envelope is an object");
        if roll < 0.02 {
            if let Some(city) = o.remove("city") {
                o["payload"]["city"] = city;
            }
        } else if roll < 0.03 {
            if let Some(city) = o.remove("city") {
                o.insert("City".into(), city);
            }
            if let Some(v) = o.remove("received_at") {
                o.insert("Received_At".into(), v);
            }
        } else if roll < 0.05 {
            o.insert("v".into(), json!("1"));
            if let Some(cents) = o.get("money").and_then(|m| m["amount_cents"].as_i64()) {
                o["money"]["amount_cents"] = json!(cents.to_string());
            }
            if let Some(cents) = o["payload"].get("amount_cents").and_then(Value::as_i64) {
                o["payload"]["amount_cents"] = json!(cents.to_string());
            }
        } else if roll < 0.06 {
            o.insert("device".into(), Value::Null);
            o.insert("ids".into(), json!({}));
        } else if roll < 0.08 {
            o.insert("trace_id".into(), json!(format!("{:016x}", self.rng.random::<u64>())));
            o.insert("experiment".into(), json!({"id": "search_rank_v2", "arm": "b"}));
        } else if roll < 0.09 {
            for key in ["occurred_at", "received_at"] {
                if let Some(t) = o.get(key).and_then(Value::as_str) {
                    let t = t.trim_end_matches('Z').to_string() + "+00:00";
                    o.insert(key.into(), json!(t));
                }
            }
        }
        env.to_string()
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
        slot_minutes: 0,
        summary: DemoSummary::default(),
        seq: 0,
        now: spec.at,
        quirks: true,
    };
    let end = crate::window::Grain::Hour.floor(spec.at);
    let start = end - Duration::days(spec.days as i64);
    let mut hour = start;
    while hour <= end {
        g.hour_of_sessions(hour, spec.sessions_per_hour);
        hour += Duration::hours(1);
    }
    // Files of at most 400 lines, with a few records that do not parse, as real feeds have.
    let files = StreamSpec {
        start,
        days: spec.days,
        sessions_per_hour: spec.sessions_per_hour,
        seed: spec.seed,
        env: spec.env.clone(),
        lines_per_file: 400,
        slot_minutes: 0,
        malformed: true,
        writers: 1,
        quirks: true,
        high_entropy: false,
    };
    let out = std::mem::take(&mut g.out);
    write_keys(root, &files, out, &mut 0, &mut g.summary)?;
    Ok(g.summary)
}

/// What the streaming generator writes: whole days of events at a steady rate, files
/// written as generation goes (memory holds about half a day of events, whatever the
/// number of days), optionally cut into arrival slots the way Firehose buffers by time.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// First hour of events (floored to the hour); events received at or after
    /// `start + days` are not written.
    pub start: DateTime<Utc>,
    pub days: u32,
    /// Booking sessions per city and hour, before the daily load curve.
    pub sessions_per_hour: u32,
    pub seed: u64,
    pub env: String,
    /// Lines per file at most.
    pub lines_per_file: usize,
    /// Cut files per arrival slot of this many minutes (`part-<slot>-<n>`), or 0 for
    /// files per hour.
    pub slot_minutes: u32,
    /// Add the malformed lines real feeds have (about one file in 97).
    pub malformed: bool,
    /// Threads that compress and write files.
    pub writers: usize,
    /// Envelopes with the quirks of real producers (city in the payload, keys in another
    /// case, numbers as strings, nulls, undeclared fields, `+00:00` offsets).
    pub quirks: bool,
    /// Envelopes as production streams carry them (see [`high_entropy`]): random-looking
    /// ids, hashes, user agents and free text, compressing 5-7x instead of about 14x.
    pub high_entropy: bool,
}

/// Events arrive at most this long after their session starts (late ones included).
const MAX_SPREAD_HOURS: i64 = 12;

/// Writes `spec`'s events under `<root>/bronze/events/` in the Firehose layout, streaming:
/// deterministic for a seed, like [`generate`], but never holding more than about
/// [`MAX_SPREAD_HOURS`] of events. Returns what was written and the uncompressed bytes.
pub fn generate_stream(root: &Path, spec: &StreamSpec) -> std::io::Result<(DemoSummary, u64)> {
    let start = crate::window::Grain::Hour.floor(spec.start);
    let end = start + Duration::days(spec.days as i64);
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(spec.seed),
        env: spec.env.clone(),
        out: BTreeMap::new(),
        slot_minutes: spec.slot_minutes,
        summary: DemoSummary::default(),
        seq: 0,
        now: end,
        quirks: spec.quirks,
    };
    let mut flushed = 0usize;
    let mut raw = 0u64;
    let mut hour = start;
    while hour < end {
        g.hour_of_sessions(hour, spec.sessions_per_hour);
        hour += Duration::hours(1);
        // Every event received before this hour has been generated.
        let done = hour - Duration::hours(MAX_SPREAD_HOURS);
        let cut = (fmt_dt(done), fmt_hour(done), String::new(), 0);
        let rest = g.out.split_off(&cut);
        let ready = std::mem::replace(&mut g.out, rest);
        raw += write_keys(root, spec, ready, &mut flushed, &mut g.summary)?;
    }
    let ready = std::mem::take(&mut g.out);
    raw += write_keys(root, spec, ready, &mut flushed, &mut g.summary)?;
    Ok((g.summary, raw))
}

type Keyed = BTreeMap<(String, String, String, u32), Vec<String>>;

/// Writes finished keys as gzip files (in parallel); returns the uncompressed bytes.
fn write_keys(
    root: &Path,
    spec: &StreamSpec,
    ready: Keyed,
    flushed: &mut usize,
    summary: &mut DemoSummary,
) -> std::io::Result<u64> {
    let mut jobs: Vec<(std::path::PathBuf, Vec<String>)> = Vec::new();
    for ((dt, hour, event, slot), mut lines) in ready {
        let i = *flushed;
        *flushed += 1;
        // Truncated writes and bad types in about one file of 97.
        if spec.malformed && i % 97 == 3 {
            let bad = match i % 3 {
                0 => lines[0][..lines[0].len() / 2].to_string(),
                1 => {
                    "{\"event\": \"payout.paid\", \"v\": \"one\", \"occurred_at\": \"yesterday\"}".to_string()
                }
                _ => "[1, 2, 3]".to_string(),
            };
            lines.push(bad);
            summary.malformed += 1;
        }
        let dir = root
            .join("bronze/events")
            .join(format!("dt={dt}"))
            .join(format!("hour={hour}"))
            .join(format!("env={}", spec.env))
            .join(format!("event={event}"));
        std::fs::create_dir_all(&dir)?;
        let per = spec.lines_per_file.max(1);
        let n_chunks = lines.len().div_ceil(per);
        let mut lines = lines.into_iter();
        for part in 0..n_chunks {
            let chunk: Vec<String> = lines.by_ref().take(per).collect();
            let name = if spec.slot_minutes == 0 {
                format!("part-{part:05}-demo{:x}.json.gz", spec.seed)
            } else {
                format!("part-{slot:02}-{part:05}-demo{:x}.json.gz", spec.seed)
            };
            jobs.push((dir.join(name), chunk));
        }
    }
    let writers = spec.writers.max(1);
    let results: Vec<std::io::Result<(u64, u64, usize)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let jobs = &jobs;
                s.spawn(move || -> std::io::Result<(u64, u64, usize)> {
                    let (mut gz_bytes, mut raw, mut files) = (0u64, 0u64, 0usize);
                    for (path, chunk) in jobs.iter().skip(w).step_by(writers) {
                        let tmp = path.with_extension("tmp");
                        let file = std::fs::File::create(&tmp)?;
                        let out = std::io::BufWriter::with_capacity(256 << 10, file);
                        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                        for line in chunk {
                            let line = if spec.high_entropy {
                                high_entropy(line)
                            } else {
                                Cow::Borrowed(line.as_str())
                            };
                            gz.write_all(line.as_bytes())?;
                            gz.write_all(b"\n")?;
                            raw += line.len() as u64 + 1;
                        }
                        gz.finish()?.into_inner().map_err(|e| e.into_error())?;
                        std::fs::rename(&tmp, path)?;
                        gz_bytes += std::fs::metadata(path)?.len();
                        files += 1;
                    }
                    Ok((gz_bytes, raw, files))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("writer thread")).collect()
    });
    let mut raw = 0;
    for r in results {
        let (gz_bytes, r, files) = r?;
        summary.bytes += gz_bytes;
        summary.files += files;
        raw += r;
    }
    Ok(raw)
}

/// An envelope as a production stream would carry it, derived from the demo's `line` alone
/// (so an exact duplicate stays one, and an id maps to the same new id everywhere): ids
/// become 128-bit random-looking ids, hashes 160- or 256-bit hex, the device gets a full
/// user agent and the payload a request id, a trace id, a client IP and a sentence of free
/// text. Lines that are not JSON objects are left as they are.
pub fn high_entropy(line: &str) -> Cow<'_, str> {
    let Ok(Value::Object(mut env)) = serde_json::from_str::<Value>(line) else {
        return Cow::Borrowed(line);
    };
    let seed = mix(line.as_bytes(), 0x5eed);
    let id = |v: &Value, bits: u32| -> Option<Value> {
        let s = v.as_str()?;
        let prefix = s.split_once('_').map(|(p, _)| p).unwrap_or("");
        let words = (bits / 64) as u64;
        let hex: String = (0..words).map(|k| format!("{:016x}", mix(s.as_bytes(), k))).collect();
        Some(Value::String(if prefix.is_empty() { hex } else { format!("{prefix}_{hex}") }))
    };
    let swap = |obj: &mut serde_json::Map<String, Value>, key: &str, bits: u32| {
        if let Some(new) = obj.get(key).and_then(|v| id(v, bits)) {
            obj.insert(key.to_string(), new);
        }
    };
    for key in ["user_id", "anon_id", "session_id"] {
        swap(&mut env, key, 128);
    }
    if let Some(Value::Object(ids)) = env.get_mut("ids") {
        let keys: Vec<String> = ids.keys().cloned().collect();
        for k in keys {
            swap(ids, &k, 128);
        }
    }
    if let Some(Value::Object(device)) = env.get_mut("device") {
        swap(device, "ua_hash", 128);
        let ua = user_agent(seed, device.get("os").and_then(|v| v.as_str()).unwrap_or("web"));
        device.insert("ua".into(), Value::String(ua));
    }
    if let Some(Value::Object(payload)) = env.get_mut("payload") {
        for key in ["listing_id", "leg_id", "booking_id", "provider_ref", "payout_id"] {
            swap(payload, key, 128);
        }
        swap(payload, "query_hash", 256);
        let uuid = format!("{:016x}{:016x}", mix(line.as_bytes(), 1), mix(line.as_bytes(), 2));
        let uuid =
            format!("{}-{}-4{}-a{}-{}", &uuid[..8], &uuid[8..12], &uuid[13..16], &uuid[17..20], &uuid[20..]);
        payload.insert("request_id".into(), Value::String(uuid));
        payload.insert(
            "trace_id".into(),
            Value::String(format!("{:016x}{:016x}", seed, mix(line.as_bytes(), 3))),
        );
        let ip = mix(line.as_bytes(), 4);
        payload.insert(
            "client_ip".into(),
            Value::String(format!(
                "{}.{}.{}.{}",
                1 + ip % 223,
                (ip >> 8) % 256,
                (ip >> 16) % 256,
                (ip >> 24) % 256
            )),
        );
        payload.insert("note".into(), Value::String(sentence(mix(line.as_bytes(), 5))));
    }
    Cow::Owned(Value::Object(env).to_string())
}

/// A 64-bit hash of `bytes` (FNV-1a, then splitmix64's finaliser), stable across builds.
fn mix(bytes: &[u8], salt: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn user_agent(seed: u64, os: &str) -> String {
    let n = |k: u32, m: u64| (seed >> k) % m;
    match os {
        "ios" => format!(
            "Mozilla/5.0 (iPhone; CPU iPhone OS {}_{} like Mac OS X) AppleWebKit/605.1.{} (KHTML, like Gecko) Mobile/15E{} Rastup/{}.{}.{}",
            15 + n(0, 4),
            n(4, 7),
            n(8, 20),
            100 + n(12, 900),
            4 + n(22, 2),
            n(24, 20),
            n(30, 10)
        ),
        "android" => format!(
            "Mozilla/5.0 (Linux; Android {}; SM-G{}{}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{}.0.{}.{} Mobile Safari/537.36",
            10 + n(0, 5),
            900 + n(4, 99),
            ["B", "F", "U", "N"][n(12, 4) as usize],
            110 + n(14, 20),
            5000 + n(20, 900),
            n(30, 200)
        ),
        _ => format!(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{}.0.{}.{} Safari/537.36 Edg/{}.0.{}.{}",
            110 + n(0, 20),
            5000 + n(6, 900),
            n(16, 200),
            110 + n(24, 20),
            1000 + n(30, 900),
            n(40, 90)
        ),
    }
}

/// Four to eleven words of a listing-search vocabulary, some with numbers.
fn sentence(seed: u64) -> String {
    const WORDS: [&str; 64] = [
        "cozy",
        "studio",
        "near",
        "downtown",
        "with",
        "parking",
        "quiet",
        "loft",
        "sunny",
        "balcony",
        "pet",
        "friendly",
        "walk",
        "to",
        "beach",
        "modern",
        "kitchen",
        "two",
        "bedroom",
        "apartment",
        "garden",
        "view",
        "rooftop",
        "terrace",
        "fast",
        "wifi",
        "workspace",
        "family",
        "house",
        "pool",
        "shared",
        "private",
        "entrance",
        "late",
        "checkin",
        "early",
        "checkout",
        "washer",
        "dryer",
        "free",
        "metro",
        "station",
        "river",
        "old",
        "town",
        "historic",
        "renovated",
        "bright",
        "spacious",
        "minutes",
        "from",
        "airport",
        "central",
        "square",
        "mountain",
        "cabin",
        "fireplace",
        "hot",
        "tub",
        "ski",
        "lake",
        "dock",
        "bike",
        "storage",
    ];
    let mut x = seed;
    let n = 4 + (x % 8) as usize;
    let mut out = String::new();
    for i in 0..n {
        x = x.rotate_left(7).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64);
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[(x >> 40) as usize % WORDS.len()]);
        if x.is_multiple_of(5) {
            out.push_str(&format!(" {}", (x >> 20) % 1000));
        }
    }
    out
}
