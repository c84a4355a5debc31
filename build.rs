//! Records the source revision the binary is built from, for `restore_drill_build_info`: the
//! environment variable `RESTORE_DRILL_REVISION` when set (a container build without `.git`),
//! else `git rev-parse`, else `unknown`.

fn main() {
    println!("cargo:rerun-if-env-changed=RESTORE_DRILL_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let revision = std::env::var("RESTORE_DRILL_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RESTORE_DRILL_REVISION={revision}");
}
