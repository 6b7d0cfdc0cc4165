//! The deployment against the binary it deploys: every strata command line in infra/ (the
//! ECS task definition, the scheduler's override, the Step Functions tasks, the
//! Dockerfile's CMD) parses with strata's real CLI, every environment variable set there
//! is one strata reads, a task Step Functions waits for gets its task token, and the names
//! the templates share with strata.toml and sql/ agree.
//!
//! `infra/lint.sh [PYTHON]` lints the templates with cfn-lint and writes what they contain
//! (tests/infra_commands.py) to a JSON file; these tests read the file named by
//! STRATA_INFRA_COMMANDS.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;
use strata::cli::Cli;
use strata::config::{EngineKind, Settings};
use strata::ids::Layer;

use crate::common::{TestProject, repo};

/// The variables strata reads (README "Configuration", plus the Step Functions callback
/// token). `AWS_*` belong to the AWS SDK and are allowed as well.
const STRATA_VARIABLES: [&str; 8] = [
    "STRATA_ENGINE",
    "STRATA_PROFILE",
    "STRATA_ENV",
    "STRATA_STORAGE",
    "STRATA_STATE_DIR",
    "STRATA_PROJECT_DIR",
    "STRATA_LOG",
    "STRATA_TASK_TOKEN",
];

/// What infra/lint.sh found in infra/.
#[derive(Debug, Deserialize)]
struct Inventory {
    commands: Vec<CommandLine>,
    environment: Vec<EnvVar>,
    /// Container names of the ECS task definitions.
    containers: Vec<String>,
    /// `Model` dimensions of the FreshnessLagSeconds alarms.
    freshness_models: BTreeSet<String>,
    /// Template parameter defaults that must match strata.toml.
    defaults: BTreeMap<String, String>,
    /// Athena workgroups (template: resource) and whether they enforce their configuration.
    workgroups: BTreeMap<String, bool>,
}

#[derive(Debug, Deserialize)]
struct CommandLine {
    /// task-definition, scheduler, state-machine or dockerfile.
    kind: String,
    /// Template (or Dockerfile) and resource, for messages.
    source: String,
    /// The arguments after `strata`.
    args: Vec<String>,
    /// The container the override targets (None for the Dockerfile).
    container: Option<String>,
    /// Environment variables the same override sets.
    env: Vec<String>,
    /// Started by `ecs:runTask.waitForTaskToken`.
    wait_for_task_token: bool,
    /// Passes `$$.Task.Token` as STRATA_TASK_TOKEN.
    token_passed: bool,
}

#[derive(Debug, Deserialize)]
struct EnvVar {
    source: String,
    name: String,
    /// The value when the template spells it out (not a parameter or an import).
    value: Option<String>,
}

fn inventory() -> Inventory {
    let Some(path) = std::env::var_os("STRATA_INFRA_COMMANDS").map(PathBuf::from) else {
        panic!(
            "STRATA_INFRA_COMMANDS is not set: run `infra/lint.sh [PYTHON]` (PYTHON has cfn-lint; it \
             lints infra/ and writes target/infra-commands.json), then run the tests with \
             STRATA_INFRA_COMMANDS=target/infra-commands.json"
        );
    };
    let path = if path.is_relative() { repo().join(path) } else { path };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (infra/lint.sh writes this file)", path.display()));
    let inventory: Inventory = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {e} (rerun infra/lint.sh)", path.display()));
    assert!(!inventory.commands.is_empty(), "{}: no strata command lines found in infra/", path.display());
    inventory
}

fn subcommand(c: &CommandLine) -> &str {
    c.args.first().map_or("", String::as_str)
}

#[test]
fn every_command_line_in_infra_parses_with_the_cli() {
    let inventory = inventory();
    let rejected: Vec<String> = inventory
        .commands
        .iter()
        .filter_map(|c| {
            let argv = std::iter::once("strata").chain(c.args.iter().map(String::as_str));
            Cli::try_parse_from(argv)
                .err()
                .map(|e| format!("{}:\n  strata {}\n{e}", c.source, c.args.join(" ")))
        })
        .collect();
    assert!(rejected.is_empty(), "command lines in infra/ that strata rejects:\n\n{}", rejected.join("\n"));
}

#[test]
fn the_scheduler_ticks_and_the_state_machines_build_gold_and_backfill() {
    let inventory = inventory();
    let of_kind = |kind: &str| inventory.commands.iter().filter(|c| c.kind == kind).collect::<Vec<_>>();

    let scheduled = of_kind("scheduler");
    assert!(!scheduled.is_empty(), "no EventBridge Scheduler target overrides the command: {inventory:#?}");
    let mut commands: Vec<&str> = scheduled.iter().map(|c| subcommand(c)).collect();
    commands.sort();
    assert_eq!(
        commands,
        ["docs", "gc", "tick"],
        "the schedules run `strata tick`, a daily `strata gc` and the nightly `strata docs`: {scheduled:#?}"
    );
    for c in of_kind("task-definition").into_iter().chain(of_kind("dockerfile")) {
        assert_eq!(
            subcommand(c),
            "tick",
            "{}: the default command is `strata {}`",
            c.source,
            c.args.join(" ")
        );
    }

    let machines = of_kind("state-machine");
    for expected in ["run", "backfill"] {
        assert!(
            machines.iter().any(|c| subcommand(c) == expected),
            "no state machine runs `strata {expected}`: {machines:#?}"
        );
    }
    let backfills: Vec<_> = machines.iter().filter(|c| subcommand(c) == "backfill").collect();
    for flag in ["--from", "--to", "--parallel"] {
        assert!(
            backfills.iter().all(|c| c.args.iter().any(|a| a == flag)),
            "a backfill without {flag}: {backfills:#?}"
        );
    }
    assert!(
        backfills.iter().any(|c| c.args.iter().any(|a| a == "--downstream")),
        "the backfill state machine never passes --downstream: {backfills:#?}"
    );
}

#[test]
fn every_override_targets_the_strata_container() {
    let inventory = inventory();
    assert!(!inventory.containers.is_empty(), "no ECS task definition in infra/");
    for c in &inventory.commands {
        if let Some(name) = &c.container {
            assert!(
                inventory.containers.contains(name),
                "{}: overrides container '{name}', the task definitions have {:?}",
                c.source,
                inventory.containers
            );
        }
    }
}

#[test]
fn every_task_step_functions_waits_for_gets_its_task_token() {
    let inventory = inventory();
    let waiting: Vec<_> = inventory.commands.iter().filter(|c| c.wait_for_task_token).collect();
    assert!(!waiting.is_empty(), "no state machine starts strata with ecs:runTask.waitForTaskToken");
    for c in waiting {
        assert!(
            c.token_passed && c.env.iter().any(|e| e == "STRATA_TASK_TOKEN"),
            "{}: waits for a callback but does not pass $$.Task.Token as STRATA_TASK_TOKEN, so strata \
             cannot answer and the execution hangs until its heartbeat timeout",
            c.source
        );
    }
    for c in inventory.commands.iter().filter(|c| !c.wait_for_task_token) {
        assert!(
            !c.env.iter().any(|e| e == "STRATA_TASK_TOKEN"),
            "{}: sets STRATA_TASK_TOKEN without waiting for a callback",
            c.source
        );
    }
}

#[test]
fn every_environment_variable_in_infra_is_one_strata_reads() {
    let inventory = inventory();
    let unknown: Vec<String> = inventory
        .environment
        .iter()
        .filter(|v| !STRATA_VARIABLES.contains(&v.name.as_str()) && !v.name.starts_with("AWS_"))
        .map(|v| format!("{}: {}", v.source, v.name))
        .collect();
    assert!(
        unknown.is_empty(),
        "environment variables strata does not read (a typo, or a setting that belongs in strata.toml):\n{}",
        unknown.join("\n")
    );
    for v in inventory.environment.iter().filter(|v| v.name == "STRATA_ENGINE") {
        if let Some(value) = &v.value {
            assert_eq!(
                EngineKind::parse(value),
                Some(EngineKind::Athena),
                "{}: STRATA_ENGINE={value}",
                v.source
            );
        }
    }
}

#[test]
fn the_templates_name_the_workgroup_databases_and_profile_of_strata_toml() {
    let inventory = inventory();
    let default = |name: &str| -> String {
        inventory
            .defaults
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no template parameter {name} with a default"))
    };
    let profile = default("StrataProfile");
    let workgroup = default("WorkGroupName");
    let prefix = default("DatabasePrefix");

    // What the task definition sets (STRATA_STORAGE comes from the storage stack at deploy
    // time; the profile's [athena] storage stands in for it here).
    let env = HashMap::from([
        ("STRATA_ENGINE".to_string(), "athena".to_string()),
        ("STRATA_PROFILE".to_string(), profile.clone()),
    ]);
    let settings = Settings::load(&repo(), &env)
        .unwrap_or_else(|e| panic!("strata.toml with pipeline.yaml's StrataProfile '{profile}': {e}"));
    assert_eq!(
        strata::athena::AthenaSettings::of(&settings).unwrap().workgroup.as_deref(),
        Some(workgroup.as_str()),
        "[athena] workgroup of strata.toml (profile '{profile}') vs catalog.yaml's WorkGroupName"
    );
    for layer in Layer::ALL {
        assert_eq!(
            settings.database(layer),
            format!("{prefix}_{}", layer.as_str()),
            "[databases] {} of strata.toml vs the Glue database catalog.yaml creates (DatabasePrefix '{prefix}')",
            layer.as_str()
        );
    }
}

#[test]
fn every_model_strata_refreshes_has_a_freshness_alarm() {
    let inventory = inventory();
    let project = TestProject::shipped().project();
    let models: BTreeSet<String> =
        project.models.keys().filter(|id| id.layer != Layer::Bronze).map(ToString::to_string).collect();
    assert_eq!(
        inventory.freshness_models, models,
        "models pipeline.yaml's freshness alarms watch (left) vs the Silver, Gold and ops models under sql/ (right)"
    );
}

/// Athena fails every CTAS that names an `external_location` in a workgroup that enforces
/// its configuration ("Troubleshoot workgroup errors"), and strata writes each version to
/// its own prefix: the workgroup the templates create must not enforce it.
#[test]
fn the_workgroup_lets_strata_choose_where_a_ctas_writes() {
    let inventory = inventory();
    assert!(!inventory.workgroups.is_empty(), "the templates create the Athena workgroup");
    for (resource, enforced) in &inventory.workgroups {
        assert!(!enforced, "{resource}: EnforceWorkGroupConfiguration must be false");
    }
}
