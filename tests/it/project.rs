//! Bad projects: each mistake gives an error that names the file and line and says what
//! to do, and the CLI exits 2.

use crate::common::{TestProject, strata};

const PAYOUTS: &str = "{{ config(materialized='incremental', partitioned_by=['dt', 'hour'], window='hour') }}
SELECT event, dt, hour
FROM {{ source('bronze', 'events') }}
WHERE {{ window_partitions() }}
";

fn bronze() -> String {
    std::fs::read_to_string(crate::common::repo().join("sql/bronze/events.sql")).expect("bronze model")
}

fn errors_of(files: &[(&str, &str)]) -> String {
    let b = bronze();
    let mut all: Vec<(&str, &str)> = vec![("sql/bronze/events.sql", b.as_str())];
    all.extend_from_slice(files);
    let t = TestProject::with_files(&all);
    match strata::project::Project::load(t.settings()) {
        Ok(_) => panic!("project should not load"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_typo_in_a_template_names_file_line_and_expression() {
    let e = errors_of(&[(
        "sql/silver/fact_payouts.sql",
        "{{ config(materialized='table') }}\nSELECT 1 AS x\nWHERE '{{ windw.start }}' > ''\n",
    )]);
    assert!(e.starts_with("sql/silver/fact_payouts.sql:3: "), "{e}");
    assert!(e.contains("windw"), "{e}");
}

#[test]
fn an_unknown_ref_suggests_the_closest_model() {
    let e = errors_of(&[
        ("sql/silver/fact_payouts.sql", PAYOUTS),
        (
            "sql/gold/mart.sql",
            "{{ config(materialized='table') }}\n\nSELECT * FROM {{ ref('silver.fact_payout') }}\n",
        ),
    ]);
    assert_eq!(
        e,
        "sql/gold/mart.sql:3: unknown ref 'silver.fact_payout'; did you mean 'silver.fact_payouts'?"
    );
}

#[test]
fn a_cycle_is_reported_with_its_path() {
    let e = errors_of(&[
        ("sql/gold/a.sql", "{{ config(materialized='table') }}\nSELECT * FROM {{ ref('gold.b') }}\n"),
        ("sql/gold/b.sql", "{{ config(materialized='table') }}\nSELECT * FROM {{ ref('gold.a') }}\n"),
    ]);
    assert!(e.contains("dependency cycle: gold.a -> gold.b -> gold.a"), "{e}");
    assert!(e.starts_with("sql/gold/a.sql:2: "), "{e}");
}

#[test]
fn a_bad_cron_names_the_schedule() {
    let e = errors_of(&[(
        "sql/ops/x.sql",
        "{{ config(\n  materialized='table',\n  schedule='*/5 * * *',\n) }}\nSELECT 1 AS x\n",
    )]);
    assert_eq!(
        e,
        "sql/ops/x.sql:3: schedule '*/5 * * *': cron has 5 fields (minute hour day-of-month month day-of-week), found 4"
    );
    let e = errors_of(&[(
        "sql/ops/x.sql",
        "{{ config(materialized='table', schedule='0 12 L * *') }}\nSELECT 1 AS x\n",
    )]);
    assert!(e.contains("the L, W and # forms are not supported"), "{e}");
    // A day no month has: it parses, and would never fire.
    for never in ["0 0 31 2 *", "0 0 30 2 *", "cron(0 0 31 4 ? *)"] {
        let e = errors_of(&[(
            "sql/ops/x.sql",
            &format!("{{{{ config(materialized='table', schedule='{never}') }}}}\nSELECT 1 AS x\n"),
        )]);
        assert!(e.contains("sql/ops/x.sql:1") && e.contains("never fires"), "{never}: {e}");
    }
}

#[test]
fn partition_columns_must_come_last_and_not_clash() {
    let e = errors_of(&[(
        "sql/silver/s.sql",
        "{{ config(materialized='table', partitioned_by=['dt']) }}\nSELECT\n  dt,\n  event AS name\nFROM {{ source('bronze', 'events') }}\n",
    )]);
    assert!(e.starts_with("sql/silver/s.sql:3: partition columns must be the last columns"), "{e}");
    let e = errors_of(&[(
        "sql/silver/s.sql",
        "{{ config(materialized='table', partitioned_by=['dt']) }}\nSELECT\n  received_at AS dt,\n  event,\n  dt\nFROM {{ source('bronze', 'events') }}\n",
    )]);
    assert!(e.contains("partition column 'dt' clashes with a data column"), "{e}");
}

#[test]
fn two_models_for_one_table_are_an_error() {
    let e = errors_of(&[
        ("sql/ops/a.sql", "{{ config(materialized='table', alias='board') }}\nSELECT 1 AS x\n"),
        ("sql/ops/board.sql", "{{ config(materialized='table') }}\nSELECT 1 AS x\n"),
    ]);
    assert!(e.contains("duplicate table ops.board"), "{e}");
}

#[test]
fn an_unknown_config_key_is_named() {
    let e = errors_of(&[(
        "sql/ops/a.sql",
        "\n{{ config(materialized='table', partition_by=['dt']) }}\nSELECT 1 AS x\n",
    )]);
    assert!(e.starts_with("sql/ops/a.sql:2: config(): unknown field `partition_by`"), "{e}");
}

#[test]
fn every_problem_is_reported_at_once_and_the_cli_exits_2() {
    let b = bronze();
    let t = TestProject::with_files(&[
        ("sql/bronze/events.sql", b.as_str()),
        ("sql/gold/a.sql", "{{ config(materialized='table') }}\nSELECT * FROM {{ ref('silver.nope') }}\n"),
        ("sql/ops/b.sql", "{{ config(materialized='table', schedule='bad') }}\nSELECT 1 AS x\n"),
    ]);
    let (code, _, stderr) = strata(t.path(), &["plan"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("sql/gold/a.sql:2: unknown ref 'silver.nope'"), "{stderr}");
    assert!(stderr.contains("sql/ops/b.sql:1: schedule 'bad'"), "{stderr}");
}
