//! The audit report as Markdown, as one self-contained HTML page that prints well, and as
//! JUnit XML (each drill a test case; the daily verified restore and the journal's chain too).

use std::fmt::Write;

use super::{AuditReport, JobReport, Measure};
fn seconds(v: Option<f64>) -> String {
    v.map_or("–".into(), |s| {
        crate::primitives::duration::seconds(s.max(0.0))
    })
}

fn measure_row(name: &str, m: &Measure) -> [String; 6] {
    [
        name.to_string(),
        seconds(m.objective),
        seconds(m.max),
        seconds(m.p95),
        seconds(m.last),
        m.breaches.to_string(),
    ]
}

fn chain_text(job: &JobReport) -> String {
    if job.chain.intact() {
        format!("intact ({} records)", job.chain.records)
    } else {
        format!("BROKEN: {}", job.chain.problems.join("; "))
    }
}

fn days_text(job: &JobReport) -> String {
    let missing = &job.days_without_verified_restore;
    if missing.is_empty() {
        format!("every day of the {} had one", job.days.len())
    } else {
        format!(
            "{} of {} days had none: {}",
            missing.len(),
            job.days.len(),
            missing
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Markdown.
pub fn markdown(report: &AuditReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Restore drills {} to {}\n\nGenerated {} by restore-drill {} from {}.\n",
        report.from,
        report.to,
        report.generated_at.format("%Y-%m-%d %H:%M UTC"),
        report.tool_version,
        report.source
    );
    for job in &report.jobs {
        let _ = writeln!(out, "## {}\n", job.job);
        if let Some(d) = &job.description {
            let _ = writeln!(out, "{d}\n");
        }
        if let Some(o) = &job.owner {
            let _ = writeln!(out, "Owner: {o}\n");
        }
        let _ = writeln!(
            out,
            "| drills | passed | failed | error | aborted |\n|---|---|---|---|---|\n| {} | {} | {} | {} | {} |\n",
            job.drills, job.passed, job.failed, job.error, job.aborted
        );
        let _ = writeln!(out, "- **Verified restore each day:** {}", days_text(job));
        match &job.newest_verified_snapshot {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "- **Newest verified snapshot:** `{}` (version {}, newest commit {}), verified {} by run `{}`",
                    s.id,
                    s.version.map_or("–".into(), |v| v.to_string()),
                    s.commit_timestamp.as_deref().unwrap_or("–"),
                    s.verified_at
                        .map_or("–".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                    s.run_id
                );
            }
            None => {
                let _ = writeln!(out, "- **Newest verified snapshot:** none");
            }
        }
        let _ = writeln!(
            out,
            "- **Drill strength:** {}",
            job.drill_strength.as_ref().map_or(
                "no self-test on record (`restore-drill selftest`)".into(),
                |s| s.sentence()
            )
        );
        let _ = writeln!(out, "- **Journal chain:** {}\n", chain_text(job));
        let _ = writeln!(
            out,
            "| measure | objective | max | p95 | last | above objective |\n|---|---|---|---|---|---|"
        );
        for row in [measure_row("RPO", &job.rpo), measure_row("RTO", &job.rto)] {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let _ = writeln!(out);
        if job.failures.is_empty() {
            let _ = writeln!(out, "No failures.\n");
        } else {
            let _ = writeln!(out, "### Failures\n");
            for f in &job.failures {
                let _ = writeln!(
                    out,
                    "- {} `{}` **{}**{}",
                    f.started_at
                        .map_or("–".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                    f.run_id,
                    f.outcome,
                    f.error
                        .as_deref()
                        .map_or(String::new(), |e| format!(": {e}"))
                );
                for finding in &f.findings {
                    let _ = writeln!(
                        out,
                        "  - {} `{}`: {}",
                        finding.severity, finding.check, finding.message
                    );
                }
            }
            let _ = writeln!(out);
        }
        if !job.restores.is_empty() {
            let _ = writeln!(out, "### Restores\n");
            for r in &job.restores {
                let _ = writeln!(out, "- {}", r.sentence());
            }
            let _ = writeln!(out);
        }
    }
    out
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(crate) const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d1d1f;max-width:60rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
th{background:#f2f2f2}.ok{color:#1a7f37}.bad{color:#b42318;font-weight:600}
.days{display:flex;flex-wrap:wrap;gap:2px;margin:.4rem 0}.day{width:1.6rem;height:1.6rem;font-size:.7rem;display:flex;align-items:center;justify-content:center;border-radius:3px}
.day.v{background:#d1f0d9}.day.n{background:#f7d4d1}code{font-size:.9em}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}section{break-inside:avoid-page}.day.v,.day.n,th{-webkit-print-color-adjust:exact;print-color-adjust:exact}}";

/// One self-contained HTML page (inline style, no scripts, no external resources).
pub fn html(report: &AuditReport) -> String {
    let mut out = String::new();
    let title = format!("Restore drills {} to {}", report.from, report.to);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n<p>Generated {} by restore-drill {} from {}.</p>",
        escape(&title),
        escape(&title),
        report.generated_at.format("%Y-%m-%d %H:%M UTC"),
        escape(&report.tool_version),
        escape(&report.source)
    );
    for job in &report.jobs {
        let _ = writeln!(out, "<section>\n<h2>{}</h2>", escape(&job.job));
        if let Some(d) = &job.description {
            let _ = writeln!(out, "<p>{}</p>", escape(d));
        }
        if let Some(o) = &job.owner {
            let _ = writeln!(out, "<p>Owner: {}</p>", escape(o));
        }
        let _ = writeln!(
            out,
            "<table><tr><th>drills</th><th>passed</th><th>failed</th><th>error</th><th>aborted</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            job.drills, job.passed, job.failed, job.error, job.aborted
        );
        let class = if job.days_without_verified_restore.is_empty() {
            "ok"
        } else {
            "bad"
        };
        let _ = write!(
            out,
            "<p>Verified restore each day: <span class=\"{class}\">{}</span></p>\n<div class=\"days\">",
            escape(&days_text(job))
        );
        for day in &job.days {
            let _ = write!(
                out,
                "<div class=\"day {}\" title=\"{} — {} drill(s)\">{}</div>",
                if day.verified { "v" } else { "n" },
                day.date,
                day.drills,
                day.date.format("%d")
            );
        }
        out.push_str("</div>\n");
        let snapshot = match &job.newest_verified_snapshot {
            Some(s) => format!(
                "<code>{}</code> (version {}, newest commit {}), verified {} by run <code>{}</code>",
                escape(&s.id),
                s.version.map_or("–".into(), |v| v.to_string()),
                escape(s.commit_timestamp.as_deref().unwrap_or("–")),
                s.verified_at
                    .map_or("–".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                escape(&s.run_id)
            ),
            None => "<span class=\"bad\">none</span>".into(),
        };
        let _ = writeln!(out, "<p>Newest verified snapshot: {snapshot}</p>");
        let _ = writeln!(
            out,
            "<p>Drill strength: {}</p>",
            escape(&job.drill_strength.as_ref().map_or(
                "no self-test on record (restore-drill selftest)".into(),
                |s| s.sentence()
            ))
        );
        let chain_class = if job.chain.intact() { "ok" } else { "bad" };
        let _ = writeln!(
            out,
            "<p>Journal chain: <span class=\"{chain_class}\">{}</span></p>",
            escape(&chain_text(job))
        );
        out.push_str("<table><tr><th>measure</th><th>objective</th><th>max</th><th>p95</th><th>last</th><th>above objective</th></tr>");
        for row in [measure_row("RPO", &job.rpo), measure_row("RTO", &job.rto)] {
            out.push_str("<tr>");
            for cell in row {
                let _ = write!(out, "<td>{}</td>", escape(&cell));
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>\n");
        if job.failures.is_empty() {
            out.push_str("<p class=\"ok\">No failures.</p>\n");
        } else {
            out.push_str("<h3>Failures</h3>\n<ul>\n");
            for f in &job.failures {
                let _ = write!(
                    out,
                    "<li>{} <code>{}</code> <span class=\"bad\">{}</span>{}",
                    f.started_at
                        .map_or("–".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                    escape(&f.run_id),
                    escape(&f.outcome),
                    f.error
                        .as_deref()
                        .map_or(String::new(), |e| format!(": {}", escape(e)))
                );
                if !f.findings.is_empty() {
                    out.push_str("<ul>");
                    for finding in &f.findings {
                        let _ = write!(
                            out,
                            "<li>{} <code>{}</code>: {}</li>",
                            escape(&finding.severity),
                            escape(&finding.check),
                            escape(&finding.message)
                        );
                    }
                    out.push_str("</ul>");
                }
                out.push_str("</li>\n");
            }
            out.push_str("</ul>\n");
        }
        if !job.restores.is_empty() {
            out.push_str("<h3>Restores</h3>\n<ul>\n");
            for r in &job.restores {
                let _ = writeln!(out, "<li>{}</li>", escape(&r.sentence()));
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body></html>\n");
    out
}

fn xml(text: &str) -> String {
    escape(text)
}

/// JUnit XML: a test suite per job; each drill a test case (failed drills as failures, erred
/// ones as errors, aborted ones skipped), plus one case for the daily verified restore and one
/// for the journal's chain.
pub fn junit(report: &AuditReport) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total: usize = report.jobs.iter().map(|j| j.drills + 2).sum();
    let failures: usize = report
        .jobs
        .iter()
        .map(|j| {
            j.failed
                + usize::from(!j.days_without_verified_restore.is_empty())
                + usize::from(!j.chain.intact())
        })
        .sum();
    let errors: usize = report.jobs.iter().map(|j| j.error).sum();
    let _ = writeln!(
        out,
        "<testsuites name=\"restore-drill {} to {}\" tests=\"{total}\" failures=\"{failures}\" errors=\"{errors}\">",
        report.from, report.to
    );
    for job in &report.jobs {
        let job_failures = job.failed
            + usize::from(!job.days_without_verified_restore.is_empty())
            + usize::from(!job.chain.intact());
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{job_failures}\" errors=\"{}\" skipped=\"{}\">",
            xml(&job.job),
            job.drills + 2,
            job.error,
            job.aborted
        );
        let class = xml(&format!("restore-drill.{}", job.job));
        for run in &job.runs {
            let name = format!(
                "{} {}",
                run.started_at
                    .map_or("–".into(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
                xml(&run.run_id)
            );
            let failure = job.failures.iter().find(|f| f.run_id == run.run_id);
            let body = match (run.outcome.as_str(), failure) {
                ("passed", _) => String::from("/>"),
                ("aborted", _) => String::from(
                    "><skipped message=\"aborted: the service shut down\"/></testcase>",
                ),
                (outcome, Some(failure)) => {
                    let detail: Vec<String> = failure
                        .findings
                        .iter()
                        .map(|f| format!("{} {}: {}", f.severity, f.check, f.message))
                        .collect();
                    let message = failure
                        .error
                        .clone()
                        .or_else(|| detail.first().cloned())
                        .unwrap_or_else(|| outcome.to_string());
                    let element = if outcome == "error" {
                        "error"
                    } else {
                        "failure"
                    };
                    format!(
                        "><{element} message=\"{}\">{}</{element}></testcase>",
                        xml(&message),
                        xml(&detail.join("\n"))
                    )
                }
                (outcome, None) => format!("><failure message=\"{}\"/></testcase>", xml(outcome)),
            };
            let _ = writeln!(
                out,
                "    <testcase classname=\"{class}\" name=\"{name}\"{body}"
            );
        }
        let checks = [
            (
                "verified restore every day",
                job.days_without_verified_restore.is_empty(),
                days_text(job),
            ),
            ("journal chain intact", job.chain.intact(), chain_text(job)),
        ];
        for (name, holds, text) in checks {
            let body = if holds {
                String::from("/>")
            } else {
                format!("><failure message=\"{}\"/></testcase>", xml(&text))
            };
            let _ = writeln!(
                out,
                "    <testcase classname=\"{class}\" name=\"{name}\"{body}"
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
