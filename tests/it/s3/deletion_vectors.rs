//! Tables with deletion vectors drilled through S3: source and backup in moto, restored by
//! server-side copy into an S3 sandbox, the vectors copied, checked and applied.

use super::{Moto, check, run_json};
use crate::corpus::{FEATURE_TABLES, test_data};
use crate::helpers::JOB;

/// The tables of the corpus whose rows deletion vectors remove.
const WITH_VECTORS: [&str; 4] = [
    "table-with-dv-small",
    "with-short-dv",
    "table_with_deletion_logs",
    "cdf-table-with-cdc-and-dvs",
];

#[tokio::test(flavor = "multi_thread")]
async fn deletion_vector_tables_drill_clean_through_s3() {
    let moto = Moto::start();
    for name in WITH_VECTORS {
        let rows = FEATURE_TABLES.iter().find(|(t, _)| *t == name).unwrap().1;
        let table = test_data("delta-features").join(name);
        moto.upload("lake", &format!("{name}/"), &table).await;
        moto.upload("backups", &format!("daily/{name}/dv_2026-11-01/"), &table)
            .await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("suite.toml"),
            format!(
                "[[check]]\nid = \"rows\"\nkind = \"row_count\"\nmin = {rows}\nmax = {rows}\nequals_source = true\n"
            ),
        )
        .unwrap();
        let config = dir.path().join("s3.toml");
        std::fs::write(
            &config,
            format!(
                r#"[storage.moto]
endpoint = "{}"
region = "us-east-1"
path_style = true
access_key_id_env = "RD_TEST_KEY_ID"
secret_access_key_env = "RD_TEST_SECRET"

[[job]]
name = "{JOB}"
storage = "moto"
source = "s3://lake/{name}/"
snapshots = {{ kind = "delta_copy", location = "s3://backups/daily/{name}/", pattern = "dv_{{date}}" }}
sandbox = "s3://lake/restore-drill-sandbox/"
suite = "suite.toml"
objectives = {{ rpo = "1000d", rto = "1h" }}
"#,
                moto.endpoint
            ),
        )
        .unwrap();
        let report = run_json(&config, &[], 0);
        assert_eq!(report["outcome"], "passed", "{name}: {report:#}");
        assert_eq!(check(&report, "rows")["observed"], rows, "{name}");
        assert_eq!(check(&report, "fingerprint")["outcome"], "passed", "{name}");
        let structure = &check(&report, "structure")["observed"];
        assert!(
            structure["deletion_vectors_checked"].as_u64().unwrap() > 0,
            "{name}: {structure}"
        );
        assert_eq!(structure["damaged_deletion_vectors"], 0, "{name}");
        assert!(
            moto.keys("lake", "restore-drill-sandbox/").await.is_empty(),
            "{name}: the sandbox was not cleaned up"
        );
    }
}
