//! The publish policy (`strata::materialize`) against a fake in-memory table store: the
//! policy decides from what the store reports, whatever holds the tables. The same policy
//! runs on the local engine and the Athena stand-in in `run_state.rs` and `athena.rs`
//! (backfills sealed, refused, resumed).

use std::sync::Mutex;

use async_trait::async_trait;
use strata::engine::{EngineError, Job, JobKind, Partitions};
use strata::materialize::store::{StoredPartition, StoredVersion, TableStore, VersionOf};

/// Tables in memory: a published version with its swap token, what a backfill's windows
/// wrote, and what was staged.
#[derive(Default)]
struct Memory {
    published: Option<(String, VersionOf<Memory>)>,
    written: Option<VersionOf<Memory>>,
    staged: Mutex<Vec<(String, VersionOf<Memory>)>>,
}

#[async_trait]
impl TableStore for Memory {
    /// A definition's name.
    type Definition = String;
    /// A partition's location.
    type Partition = String;

    async fn published(&self, _: &Job) -> Result<(Option<String>, Option<VersionOf<Self>>), EngineError> {
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
        published: Some(("token-7".into(), published)),
        written: Some(version("b", &["v", "dt"], &[("2", 3, "b/2")])),
        ..Memory::default()
    };
    // The backfill replaced 2..4: it wrote 2, nothing for 3 (which held rows) or 4 (empty).
    let (job, window) = backfill_job(&["2", "3", "4"]);
    let s = strata::materialize::seal(&store, &job, &window).await.unwrap();
    assert_eq!(s.expected.as_deref(), Some("token-7"), "the publish swaps on the token read");
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
    let store = Memory { published: Some(("t".into(), published)), ..Memory::default() };
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
        published: Some(("t".into(), version("v1", &["v", "dt"], &[("1", 5, "v1/1")]))),
        written: Some(version("b", &["v", "extra", "dt"], &[("1", 1, "b/1")])),
        ..Memory::default()
    };
    let (job, window) = backfill_job(&["1"]);
    let e = strata::materialize::seal(&store, &job, &window).await.unwrap_err();
    assert!(e.to_string().contains("extra"), "names the column: {e}");
    assert!(store.staged.lock().unwrap().is_empty(), "nothing staged");
}
