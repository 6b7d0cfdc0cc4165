//! The publish policy (`strata::materialize`) against a fake in-memory table store: the
//! policy decides from what the store reports, whatever holds the tables. The same policy
//! runs on the local engine and the Athena stand-in in `run_state.rs` and `athena.rs`
//! (backfills sealed, refused, resumed).

use std::sync::Mutex;

use async_trait::async_trait;
use strata::engine::{EngineError, Job, JobKind, Partitions, SwapToken};
use strata::materialize::layered::{Base, Current, LayeredStore, Layout};
use strata::materialize::store::{StoredPartition, StoredVersion, TableStore, VersionOf};

/// Tables in memory: a published version with its swap token, what a backfill's windows
/// wrote, and what was staged.
#[derive(Default)]
struct Memory {
    published: Option<(SwapToken, VersionOf<Memory>)>,
    written: Option<VersionOf<Memory>>,
    staged: Mutex<Vec<(String, VersionOf<Memory>)>>,
    /// The published version's layout (base generation, from) when it is layered.
    layout: Option<Layout>,
    /// Base generations' partitions.
    bases: Vec<(String, Vec<StoredPartition<String>>)>,
}

#[async_trait]
impl TableStore for Memory {
    /// A definition's name.
    type Definition = String;
    /// A partition's location.
    type Partition = String;

    async fn published(&self, _: &Job) -> Result<(Option<SwapToken>, Option<VersionOf<Self>>), EngineError> {
        Ok(match &self.published {
            Some((token, v)) => (Some(token.clone()), Some(v.clone())),
            None => (None, None),
        })
    }

    async fn parts_written(&self, _: &Job) -> Result<Option<VersionOf<Self>>, EngineError> {
        Ok(self.written.clone())
    }

    async fn record_staged(&self, job: &Job, version: VersionOf<Self>) -> Result<(), EngineError> {
        self.staged.lock().unwrap().push((job.version.clone(), version));
        Ok(())
    }
}

#[async_trait]
impl LayeredStore for Memory {
    async fn current_layered(&self, _: &Job) -> Result<Option<Current<String>>, EngineError> {
        Ok(self.published.as_ref().map(|(token, v)| Current {
            version: token.as_str().to_string(),
            columns: v.columns.clone(),
            layout: self.layout.clone(),
            partitions: v.partitions.clone(),
        }))
    }

    async fn base_partitions(
        &self,
        _: &Job,
        base: &str,
        before: &[String],
    ) -> Result<Vec<StoredPartition<String>>, EngineError> {
        let parts = self.bases.iter().find(|(b, _)| b == base).map(|(_, p)| p.clone()).unwrap_or_default();
        Ok(parts.into_iter().filter(|p| p.values.as_slice() < before).collect())
    }
}

/// The layered plan over what `store` publishes, read as staging reads it.
async fn plan_on<S: LayeredStore>(
    store: &S,
    job: &Job,
    window: &Partitions,
    columns: &[(String, String)],
    written: &[StoredPartition<S::Partition>],
) -> Result<strata::materialize::layered::Plan<S::Partition>, EngineError> {
    let current = store.current_layered(job).await?;
    strata::materialize::layered::plan(store, job, window, current, columns, written).await
}

fn version(definition: &str, columns: &[&str], parts: &[(&str, u64, &str)]) -> VersionOf<Memory> {
    StoredVersion {
        definition: definition.into(),
        columns: columns.iter().map(|c| (c.to_string(), "bigint".to_string())).collect(),
        partitions: parts
            .iter()
            .map(|(dt, rows, at)| StoredPartition {
                values: vec![dt.to_string()],
                rows: Some(*rows),
                handle: at.to_string(),
            })
            .collect(),
    }
}

fn backfill_job(replaces: &[&str]) -> (Job, Partitions) {
    let mut job = crate::publish::job(1, Vec::new());
    let window: Partitions = replaces.iter().map(|d| vec![d.to_string()]).collect();
    if let JobKind::Select { replaces, .. } = &mut job.kind {
        *replaces = Some(window.clone());
    }
    (job, window)
}

/// What the staged version holds: (partition, location) in order.
fn staged(store: &Memory) -> (String, Vec<(String, String)>) {
    let staged = store.staged.lock().unwrap();
    let (_, v) = staged.last().expect("a version was staged");
    (v.definition.clone(), v.partitions.iter().map(|p| (p.values[0].clone(), p.handle.clone())).collect())
}

#[tokio::test]
async fn a_seal_takes_its_window_from_what_it_wrote_and_every_other_partition_from_the_published() {
    let published = version(
        "v1",
        &["v", "dt"],
        &[("1", 5, "v1/1"), ("2", 5, "v1/2"), ("3", 5, "v1/3"), ("4", 0, "v1/4")],
    );
    let store = Memory {
        published: Some((SwapToken::new("token-7"), published)),
        written: Some(version("b", &["v", "dt"], &[("2", 3, "b/2")])),
        ..Memory::default()
    };
    // The backfill replaced 2..4: it wrote 2, nothing for 3 (which held rows) or 4 (empty).
    let (job, window) = backfill_job(&["2", "3", "4"]);
    let s = strata::materialize::seal(&store, &job, &window).await.unwrap();
    assert_eq!(s.expected, Some(SwapToken::new("token-7")), "the publish swaps on the token read");
    assert_eq!(s.emptied, vec![vec!["3".to_string()]], "only a partition that held rows is emptied");
    assert_eq!(s.stats.rows, 8, "1 kept (5 rows) and 2 written (3 rows)");
    let (definition, parts) = staged(&store);
    assert_eq!(definition, "b", "the definition of what was written");
    assert_eq!(
        parts,
        vec![("1".into(), "v1/1".into()), ("2".into(), "b/2".into())],
        "1 by reference, 2 written"
    );
}

#[tokio::test]
async fn a_seal_that_wrote_nothing_keeps_the_published_definition_or_is_refused_on_a_new_table() {
    let published = version("v1", &["v", "dt"], &[("1", 5, "v1/1"), ("2", 5, "v1/2")]);
    let store = Memory { published: Some((SwapToken::new("t"), published)), ..Memory::default() };
    let (job, window) = backfill_job(&["2"]);
    let s = strata::materialize::seal(&store, &job, &window).await.unwrap();
    assert_eq!(s.emptied, vec![vec!["2".to_string()]]);
    assert_eq!(staged(&store), ("v1".into(), vec![("1".into(), "v1/1".into())]));

    let store = Memory::default();
    let e = strata::materialize::seal(&store, &job, &window).await.unwrap_err();
    assert!(e.to_string().contains("never been published"), "{e}");
    assert!(store.staged.lock().unwrap().is_empty(), "nothing staged");
}

#[tokio::test]
async fn a_seal_that_changes_the_columns_is_refused_and_stages_nothing() {
    let store = Memory {
        published: Some((SwapToken::new("t"), version("v1", &["v", "dt"], &[("1", 5, "v1/1")]))),
        written: Some(version("b", &["v", "extra", "dt"], &[("1", 1, "b/1")])),
        ..Memory::default()
    };
    let (job, window) = backfill_job(&["1"]);
    let e = strata::materialize::seal(&store, &job, &window).await.unwrap_err();
    assert!(e.to_string().contains("extra"), "names the column: {e}");
    assert!(store.staged.lock().unwrap().is_empty(), "nothing staged");
}

fn values<H>(parts: &[StoredPartition<H>]) -> Vec<String> {
    parts.iter().map(|p| p.values[0].clone()).collect()
}

/// The layered layout decided once: a window at or after the published one keeps its base
/// generation, an earlier one starts a new generation from what readers see before it, a
/// past window carries what follows it, and window partitions that held rows and were not
/// written are emptied.
#[tokio::test]
async fn a_window_keeps_its_generation_or_starts_one_and_carries_what_follows_it() {
    fn own<'a>(parts: &[(&'a str, u64)]) -> Vec<(&'a str, u64, &'static str)> {
        parts.iter().map(|(d, r)| (*d, *r, "own")).collect()
    }
    let base_parts: Vec<StoredPartition<String>> =
        version("b", &[], &[("1", 1, "base"), ("2", 1, "base")]).partitions;
    let store = |layout: Option<&str>| Memory {
        published: Some((
            SwapToken::new("t"),
            version("v1", &["v", "dt"], &own(&[("3", 1), ("4", 2), ("5", 0), ("6", 3)])),
        )),
        layout: layout.map(|from| Layout { base: "b".into(), from: vec![from.into()] }),
        bases: vec![("b".into(), base_parts.clone())],
        ..Memory::default()
    };
    let columns = version("x", &["v", "dt"], &[]).columns;
    let wrote = |parts: &[(&str, u64)]| version("w", &["v", "dt"], &own(parts)).partitions;

    // A tick after the published window: the same generation, nothing carried; 4 held
    // rows and was not written, 5 was empty.
    let (job, window) = backfill_job(&["4", "5"]);
    let layered = store(Some("3"));
    let plan = plan_on(&layered, &job, &window, &columns, &[]).await.unwrap();
    assert!(matches!(&plan.base, Base::Current(b) if b == "b"), "{:?}", plan.base);
    assert_eq!(values(&plan.carried), vec!["6"], "what follows the window is carried");
    assert_eq!(plan.emptied, vec![vec!["4".to_string()]]);

    // A past window, before the generation's start: a new generation from what readers see
    // before it (the base's 1, not its 2, which the window replaces), 3..6 carried.
    let (job, window) = backfill_job(&["2"]);
    let plan = plan_on(&layered, &job, &window, &columns, &wrote(&[("2", 7)])).await.unwrap();
    assert!(matches!(&plan.base, Base::New(p) if values(p) == ["1"]), "{:?}", plan.base);
    assert_eq!(values(&plan.carried), vec!["3", "4", "5", "6"]);
    assert!(plan.emptied.is_empty());

    // A table published whole: every partition before the window starts the generation.
    let whole = store(None);
    let (job, window) = backfill_job(&["5", "6"]);
    let plan = plan_on(&whole, &job, &window, &columns, &wrote(&[("5", 1), ("6", 1)])).await.unwrap();
    assert!(matches!(&plan.base, Base::New(p) if values(p) == ["3", "4"]), "{:?}", plan.base);
    assert!(plan.carried.is_empty() && plan.emptied.is_empty());

    // Never published: a new, empty generation.
    let plan = plan_on(&Memory::default(), &job, &window, &columns, &wrote(&[("5", 1)])).await.unwrap();
    assert!(matches!(&plan.base, Base::New(p) if p.is_empty()));

    // Written outside the window, or other columns: refused.
    let e = plan_on(&layered, &job, &window, &columns, &wrote(&[("7", 1)])).await.unwrap_err();
    assert!(e.to_string().contains("7"), "{e}");
    let other = version("x", &["v", "extra", "dt"], &[]).columns;
    let e = plan_on(&layered, &job, &window, &other, &wrote(&[("5", 1)])).await.unwrap_err();
    assert!(e.to_string().contains("extra"), "{e}");
}
