//! The Athena engine: models run as Athena statements, versions are Glue tables, and the
//! published name is switched with one Glue `UpdateTable` guarded by `VersionId`.
//!
//! Layout of a managed model `db.t` (Silver, Gold, ops):
//! - each run writes `s3://<root>/<layer>/t/<version>/` with a CTAS that creates the
//!   version table `db.t__<version>`; an incremental run then registers the partitions it
//!   did not replace, pointing at the older versions' prefixes (nothing is copied);
//! - `db.t` is a view `SELECT * FROM db.t__<version>`; publishing replaces the view with
//!   one compare-and-swap, so readers switch from one complete version to the next;
//! - the view's parameters name the version, its table, the run, and how far its window
//!   reaches (`strata_window_end`): the run state a scheduled tick starts from. Glue keeps
//!   every replaced view as a table version: that is the publish history.
//!
//! Bronze (an external table) is staged as `db.t__<version>` by its DDL and published by
//! copying that definition onto `db.t` with the same compare-and-swap.

mod arrivals;
pub mod glue;
mod history;
mod publish;
pub mod query;
mod s3;
pub mod settings;
pub mod sql;
mod staging;
mod store;

use std::sync::Arc;

use aws_sdk_glue::types::Table;

use self::glue::{Glue, all_columns};
use self::query::{QueryConfig, Statements, api_message};
pub use self::settings::AthenaSettings;
use crate::config::{Settings, Storage};
use crate::engine::EngineError;
use crate::ids::Layer;

/// Parameters strata keeps on a published table.
pub const P_VERSION: &str = "strata_version";
pub const P_TABLE: &str = "strata_table";
pub const P_RUN: &str = "strata_run_id";
pub const P_PUBLISHED_AT: &str = "strata_published_at";
pub const P_WINDOW_END: &str = "strata_window_end";
/// On a run table of a past window: the window end of the version it carries partitions
/// from, which its publish keeps as `strata_window_end` (how far the data reaches).
pub const P_REACHES: &str = "strata_reaches";
pub const P_DDL: &str = "strata_ddl_hash";
/// On the view of an incremental model: its base generation, and the first partition of
/// its hot window (a JSON array of values; the base is read before it, the run's table
/// from it).
pub const P_BASE: &str = "strata_base_table";
pub const P_HOT_FROM: &str = "strata_hot_from";
/// On a version table sealed from backfill windows: the prefix of its window tables.
pub const P_PARTS: &str = "strata_window_tables";

/// The AWS clients of the Athena engine.
#[derive(Debug, Clone)]
pub struct Clients {
    pub athena: aws_sdk_athena::Client,
    pub glue: aws_sdk_glue::Client,
    pub s3: aws_sdk_s3::Client,
}

/// The one retry policy of every AWS client strata makes (Athena, Glue, S3, Step
/// Functions): the SDK's standard mode, which retries throttling errors
/// (`ThrottlingException`, `TooManyRequestsException`, `SlowDown`, ...), 5xx responses and
/// timeouts with exponential backoff and full jitter, and resends the same request, so a
/// `StartQueryExecution` keeps its `ClientRequestToken`. Up to 8 attempts, backoff from
/// 200 ms to 20 s: about a minute of sustained throttling before a call fails. Nothing in
/// strata retries an API call on top of it (a FAILED Athena query is another matter: it is
/// run again as a new attempt by `query::Statements::run`).
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(std::time::Duration::from_millis(200))
        .with_max_backoff(std::time::Duration::from_secs(20))
}

impl Clients {
    /// From the standard AWS chain (environment, profile, SSO, ECS task role), with the
    /// region of `[athena] region` when set and [`retry_config`]. With an endpoint
    /// override (`AWS_ENDPOINT_URL`, e.g. a test server), S3 uses path-style addressing.
    pub async fn from_chain(settings: &Settings, athena: &AthenaSettings) -> Self {
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(retry_config());
        if let Some(region) = &athena.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &settings.aws_endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        let config = loader.load().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(settings.aws_endpoint_url.is_some())
            .build();
        Self {
            athena: aws_sdk_athena::Client::new(&config),
            glue: aws_sdk_glue::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
        }
    }
}

/// The Athena engine of one invocation.
#[derive(Debug, Clone)]
pub struct AthenaEngine {
    statements: Statements,
    glue: Glue,
    s3: aws_sdk_s3::Client,
    storage: Storage,
    /// Database of each layer, for queries that name a layer.
    default_database: String,
    /// Whether the workgroup lets a CTAS name its location, asked once per process.
    workgroup_checked: Arc<tokio::sync::OnceCell<Result<(), String>>>,
    /// Run state under the lake's `_strata/state/`, shared by every task.
    state: Arc<dyn crate::state::RunState>,
}

/// A stable hash of a definition, as hex, to tell whether it changed.
fn hash_hex(s: &str) -> String {
    format!("{:032x}", query::fnv128(&[s]))
}

fn param<'a>(t: &'a Table, key: &str) -> Option<&'a str> {
    t.parameters().and_then(|p| p.get(key)).map(String::as_str)
}

impl AthenaEngine {
    /// The engine of `settings`, with AWS clients from the standard chain.
    pub async fn open(settings: &Settings) -> Result<Self, EngineError> {
        let athena = AthenaSettings::of(settings).map_err(|e| EngineError::io(e.to_string()))?;
        Self::new(Clients::from_chain(settings, &athena).await, settings, &athena)
    }

    pub fn new(clients: Clients, settings: &Settings, athena: &AthenaSettings) -> Result<Self, EngineError> {
        if !matches!(settings.storage, Storage::S3 { .. }) {
            return Err(EngineError::io(format!(
                "the athena engine needs an s3:// storage root; storage is {}",
                settings.storage.uri("")
            )));
        }
        let a = athena;
        let config = QueryConfig {
            workgroup: a.workgroup.clone().unwrap_or_else(|| "primary".into()),
            catalog: a.catalog.clone().unwrap_or_else(|| "AwsDataCatalog".into()),
            output_location: a.output_location.clone(),
            max_bytes_scanned: a.max_bytes_scanned_per_run,
            ..QueryConfig::default()
        };
        Ok(Self::with_config(
            clients,
            settings.storage.clone(),
            settings.database(Layer::Silver).into(),
            config,
        ))
    }

    /// An engine with explicit statement settings (tests shorten the backoff).
    pub fn with_config(
        clients: Clients,
        storage: Storage,
        default_database: String,
        config: QueryConfig,
    ) -> Self {
        let state: Arc<dyn crate::state::RunState> = match &storage {
            Storage::S3 { bucket, prefix } => {
                Arc::new(crate::state::S3State::new(clients.s3.clone(), bucket, prefix))
            }
            Storage::Local(_) => {
                panic!("AthenaEngine::with_config needs an s3:// storage root (new() checks it)")
            }
        };
        Self {
            statements: Statements::new(clients.athena, config),
            glue: Glue::new(clients.glue),
            s3: clients.s3,
            storage,
            default_database,
            workgroup_checked: Arc::default(),
            state,
        }
    }

    pub fn glue(&self) -> &Glue {
        &self.glue
    }

    /// Bytes scanned by this invocation so far.
    pub fn scanned(&self) -> u64 {
        self.statements.scanned()
    }

    /// Checks, once per process, that the workgroup lets strata choose where a CTAS writes:
    /// a workgroup that enforces its configuration fails every CTAS that names an
    /// `external_location` (Athena docs, "Troubleshoot workgroup errors"; dbt-athena omits
    /// the location when `is_work_group_output_location_enforced`), and strata needs its
    /// own prefixes for versions, retention and gc.
    async fn check_workgroup(&self) -> Result<(), EngineError> {
        let name = self.statements.config().workgroup.clone();
        let client = self.statements.client().clone();
        let checked = self
            .workgroup_checked
            .get_or_init(|| async move {
                let out = client.get_work_group().work_group(&name).send().await
                    .map_err(|e| format!("Athena GetWorkGroup {name}: {}", api_message(&e)))?;
                let enforced = out
                    .work_group()
                    .and_then(|w| w.configuration())
                    .and_then(|c| c.enforce_work_group_configuration())
                    .unwrap_or(false);
                if enforced {
                    return Err(format!(
                        "the Athena workgroup '{name}' enforces its configuration (EnforceWorkGroupConfiguration, \"Override client-side settings\"): Athena fails every CREATE TABLE AS that names an external_location there, and strata writes each version to its own prefix; turn the setting off for this workgroup (infra/catalog.yaml does) or set [athena] workgroup to one that does not enforce it"
                    ));
                }
                Ok(())
            })
            .await;
        checked.clone().map_err(EngineError::aws)
    }
}

/// A table's columns (partition keys last) as (name, type), for [`checks::same_columns`].
fn columns_of(table: &Table) -> Vec<(String, String)> {
    all_columns(table)
        .iter()
        .map(|c| (c.name().to_string(), c.r#type().unwrap_or_default().to_string()))
        .collect()
}
