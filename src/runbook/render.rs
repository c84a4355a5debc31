//! The runbook as Markdown, and as one self-contained HTML page.

use std::fmt::Write;

use super::{Measured, Runbook, Step};
use crate::primitives::duration::seconds;
use crate::report::render::{STYLE, escape};

fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), seconds)
}

/// The measured rows: (measure, objective, median, p95, last).
fn measures(r: &Runbook) -> [(&'static str, &Measured); 2] {
    [("RTO", &r.rto), ("RPO", &r.rpo)]
}

fn overview_lines(r: &Runbook) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(d) = &r.description {
        lines.push(format!("Purpose: {d}"));
    }
    if !r.affects.is_empty() {
        lines.push(format!("Affected systems: {}", r.affects.join(", ")));
    }
    if let Some(s) = &r.severity {
        lines.push(format!("Severity: {s}"));
    }
    if let Some(o) = &r.owner {
        lines.push(format!("Owner: {o}"));
    }
    if let Some(c) = &r.incident_channel {
        lines.push(format!("Incident channel: `{c}`"));
    }
    if !r.dependents.is_empty() {
        lines.push(format!("Dependents: {}", r.dependents.join(", ")));
    }
    lines.push(format!(
        "Trigger: the data of `{}` ({}) is lost, damaged or must be rolled back; a `restore_drill` alert of this job, or a report from a user or a dependent.",
        r.job, r.source
    ));
    lines.push(format!("Backups: {} (`{}`).", r.backups, r.kind));
    lines.push(match &r.schedule {
        Some(s) => format!("Drilled on the schedule `{s}`."),
        None => "Drilled only when asked (no schedule).".to_string(),
    });
    lines
}

fn drills_line(r: &Runbook) -> String {
    let last = r.last_drill.as_ref().map_or_else(
        || "no drill on record".to_string(),
        |d| format!("last drill {} ({}, {})", d.outcome, d.run_id, d.finished_at),
    );
    let passed = r.last_passed.as_ref().map_or_else(
        || "no drill passed".to_string(),
        |d| format!("last passed drill {}", d.finished_at),
    );
    format!(
        "Measured by the last {} drill(s): {last}; {passed}.",
        r.drills
    )
}

/// The runbook in Markdown.
pub fn markdown(r: &Runbook) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Runbook: restore `{}`\n", r.job);
    for w in &r.warnings {
        let _ = writeln!(out, "> **Warning:** {w}\n");
    }
    let _ = writeln!(out, "## Overview\n");
    for line in overview_lines(r) {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(out, "\n### RTO and RPO measured\n");
    let _ = writeln!(out, "{}\n", drills_line(r));
    let _ = writeln!(out, "| measure | objective | median | p95 | last |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (name, m) in measures(r) {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            seconds(m.objective),
            figure(m.median),
            figure(m.p95),
            figure(m.last)
        );
    }
    let _ = writeln!(out, "\n## Prerequisites\n");
    let _ = writeln!(out, "Access:\n");
    for a in &r.access {
        let _ = writeln!(out, "- {a}");
    }
    let _ = writeln!(out, "\nTools:\n");
    for t in &r.tools {
        let _ = writeln!(out, "- {t}");
    }
    let _ = writeln!(out, "\nVerified snapshots, newest first:\n");
    if r.verified.is_empty() {
        let _ = writeln!(out, "- none: no drill of this job passed");
    } else {
        let _ = writeln!(out, "| snapshot | point | verified | by drill | RTO |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for v in &r.verified {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                v.snapshot,
                v.point.as_deref().unwrap_or("—"),
                v.verified_at,
                v.run_id,
                figure(v.rto_seconds)
            );
        }
    }
    let _ = writeln!(out, "\n## Execution steps\n");
    for (i, step) in r.steps.iter().enumerate() {
        markdown_step(&mut out, i + 1, step);
    }
    let _ = writeln!(out, "## Post-incident\n");
    for p in &r.post_incident {
        let _ = writeln!(out, "- {p}");
    }
    out
}

fn markdown_step(out: &mut String, number: usize, step: &Step) {
    let _ = writeln!(out, "### {number}. {}\n", step.title);
    for t in &step.text {
        let _ = writeln!(out, "{t}\n");
    }
    if !step.items.is_empty() {
        for item in &step.items {
            let _ = writeln!(out, "- {item}");
        }
        let _ = writeln!(out);
    }
    if !step.commands.is_empty() {
        let _ = writeln!(out, "```sh");
        for c in &step.commands {
            let _ = writeln!(out, "{}", c.line);
        }
        let _ = writeln!(out, "```\n");
    }
}

/// `text` escaped for HTML, with `code` spans kept as code.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", escape(part));
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

/// The runbook as one HTML page.
pub fn html(r: &Runbook) -> String {
    let mut out = String::new();
    let title = format!("Runbook: restore {}", r.job);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>",
        escape(&title),
        escape(&title)
    );
    for w in &r.warnings {
        let _ = writeln!(
            out,
            "<p class=\"bad\"><strong>Warning:</strong> {}</p>",
            inline(w)
        );
    }
    let _ = writeln!(out, "<h2>Overview</h2>\n<ul>");
    for line in overview_lines(r) {
        let _ = writeln!(out, "<li>{}</li>", inline(&line));
    }
    let _ = writeln!(
        out,
        "</ul>\n<h3>RTO and RPO measured</h3>\n<p>{}</p>",
        inline(&drills_line(r))
    );
    let _ = writeln!(
        out,
        "<table><tr><th>measure</th><th>objective</th><th>median</th><th>p95</th><th>last</th></tr>"
    );
    for (name, m) in measures(r) {
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            seconds(m.objective),
            figure(m.median),
            figure(m.p95),
            figure(m.last)
        );
    }
    let _ = writeln!(
        out,
        "</table>\n<h2>Prerequisites</h2>\n<p>Access:</p>\n<ul>"
    );
    for a in &r.access {
        let _ = writeln!(out, "<li>{}</li>", inline(a));
    }
    let _ = writeln!(out, "</ul>\n<p>Tools:</p>\n<ul>");
    for t in &r.tools {
        let _ = writeln!(out, "<li>{}</li>", inline(t));
    }
    let _ = writeln!(out, "</ul>\n<p>Verified snapshots, newest first:</p>");
    if r.verified.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"bad\">none: no drill of this job passed</p>"
        );
    } else {
        let _ = writeln!(
            out,
            "<table><tr><th>snapshot</th><th>point</th><th>verified</th><th>by drill</th><th>RTO</th></tr>"
        );
        for v in &r.verified {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&v.snapshot),
                escape(v.point.as_deref().unwrap_or("—")),
                escape(&v.verified_at),
                escape(&v.run_id),
                figure(v.rto_seconds)
            );
        }
        let _ = writeln!(out, "</table>");
    }
    let _ = writeln!(out, "<h2>Execution steps</h2>");
    for (i, step) in r.steps.iter().enumerate() {
        let _ = writeln!(out, "<h3>{}. {}</h3>", i + 1, escape(&step.title));
        for t in &step.text {
            let _ = writeln!(out, "<p>{}</p>", inline(t));
        }
        if !step.items.is_empty() {
            let items: Vec<String> = step
                .items
                .iter()
                .map(|i| format!("<li>{}</li>", inline(i)))
                .collect();
            let _ = writeln!(out, "<ul>{}</ul>", items.join(""));
        }
        if !step.commands.is_empty() {
            let lines: Vec<String> = step.commands.iter().map(|c| escape(&c.line)).collect();
            let _ = writeln!(out, "<pre><code>{}</code></pre>", lines.join("\n"));
        }
    }
    let _ = writeln!(out, "<h2>Post-incident</h2>\n<ul>");
    for p in &r.post_incident {
        let _ = writeln!(out, "<li>{}</li>", inline(p));
    }
    let _ = writeln!(out, "</ul>\n</body></html>");
    out
}
