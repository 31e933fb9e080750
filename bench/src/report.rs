//! The report: a table on stdout, a Markdown table (for the README), the JSON
//! and a hand-written SVG bar chart of each figure against its target.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// Figures shown per scenario, in order.
const SHOWN: &[(&str, &[&str])] = &[
    (
        "dashboard-load",
        &["signin_kb", "fleet_kb", "fleet_ws_kb", "agents"],
    ),
    (
        "dashboard-fleet",
        &[
            "agents",
            "ready_ms",
            "interactive_ms",
            "filter_median_ms",
            "filter_max_ms",
            "open_page_ws_kb_per_s",
            "hub_rss_mib",
        ],
    ),
    (
        "dashboard-logs",
        &[
            "achieved_lines_per_s",
            "lines_written",
            "page_received",
            "downloaded",
            "missing_from_download",
            "longtask_max_ms",
            "longtasks",
            "frame_gap_max_ms",
            "frames_per_s",
        ],
    ),
    (
        "dashboard-heap",
        &[
            "agents",
            "minutes",
            "js_heap_growth_pct",
            "hub_rss_growth_pct",
        ],
    ),
    (
        "capacity",
        &[
            "agents",
            "connect_per_s",
            "hub_rss_mib",
            "hub_rss_per_agent_kib",
            "hub_idle_cpu_pct",
            "paper_agents_8_cores",
            "connect_failures",
        ],
    ),
    (
        "latency",
        &[
            "ping_p50_vs_tcp",
            "ping_p99_vs_tcp",
            "pings_per_s_vs_tcp",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "rps_100_agents",
            "tcp_p50_ms",
            "tcp_p99_ms",
            "tcp_per_s",
        ],
    ),
    (
        "fanout",
        &[
            "vs_tcp_floor",
            "agents",
            "seconds",
            "answered_min",
            "hub_cpu_us_per_agent",
            "sims_cpu_us_per_agent",
            "sims_floor_s",
            "tcp_floor_s",
        ],
    ),
    (
        "throughput",
        &[
            "mb_s",
            "openssh_mb_s",
            "ratio_vs_openssh",
            "best_ratio_vs_openssh_best",
            "cpu_per_mb_vs_openssh",
            "hub_cpu_ms_per_mb",
            "openssh_cpu_ms_per_mb",
            "agent_cpu_ms_per_mb",
            "client_cpu_ms_per_mb",
            "agent_hub_mb_s",
            "agent_hub_ratio_vs_openssh",
        ],
    ),
    (
        "reconnect",
        &[
            "storm_vs_cold_connect",
            "agents",
            "seconds",
            "cold_connect_s",
            "failures",
            "refused_while_starting",
            "hub_peak_rss_mib",
            "hub_peak_cpu_pct",
        ],
    ),
    (
        "agent",
        &[
            "containers",
            "rss_mib",
            "cpu_pct",
            "dockerd_extra_cpu_pct",
            "sweep_ms",
            "binary_mib",
        ],
    ),
    (
        "health",
        &[
            "agents",
            "containers_per_agent",
            "interval_s",
            "snapshots_per_s",
            "expected_snapshots_per_s",
            "dropped_or_late",
            "hub_cpu_pct",
            "ingest_cpu_us_per_point",
            "hub_rss_mib",
            "hub_rss_per_agent_kib",
            "store_growth_mib_per_min",
            "store_bytes_per_point",
            "history_ms_30d_one_container",
            "history_ms_24h_one_agent",
            "ws_request_ms_while_ingesting",
            "ws_request_ms_idle",
            "connect_ms_while_ingesting",
            "connect_ms_idle",
        ],
    ),
];

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.is_nan() => "n/a".into(),
        Some(f) if v.is_u64() || v.is_i64() => format!("{}", f as i64),
        Some(f) if f.abs() >= 100.0 => format!("{f:.0}"),
        Some(f) if f.abs() >= 1.0 => format!("{f:.2}"),
        Some(f) => format!("{f:.3}"),
        None if v.is_null() => "n/a".into(),
        None => v.to_string(),
    }
}

/// Figures of one scenario as `k=v` pairs.
fn figures(s: &Value) -> String {
    let name = s["scenario"].as_str().unwrap_or("");
    if s["skipped"].as_bool() == Some(true) {
        return format!("skipped: {}", s["reason"].as_str().unwrap_or(""));
    }
    let keys = SHOWN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
        .unwrap_or(&[]);
    keys.iter()
        .filter(|k| !s[**k].is_null())
        .map(|k| format!("{k}={}", num(&s[*k])))
        .collect::<Vec<_>>()
        .join(" ")
}

fn targets(report: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for s in report["scenarios"].as_array().into_iter().flatten() {
        for t in s["targets"].as_array().into_iter().flatten() {
            out.push((s["scenario"].as_str().unwrap_or("").to_string(), t));
        }
    }
    out
}

/// A target's same-run reference: `2.52x of TCP floor (s) 0.118`, or empty.
fn vs_reference(t: &Value) -> String {
    let Some(what) = t["reference"].as_str() else {
        return String::new();
    };
    if t["vs_reference"].is_null() {
        return format!("n/a ({what}: not measured)");
    }
    format!(
        "{}x of {what} {}",
        num(&t["vs_reference"]),
        num(&t["reference_figure"])
    )
}

/// The table printed at the end of a run.
pub fn text(report: &Value) -> String {
    let mut o = String::new();
    for s in report["scenarios"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "{:<11} {}",
            s["scenario"].as_str().unwrap_or(""),
            figures(s)
        );
    }
    let _ = writeln!(
        o,
        "\n{:<11} {:<45} {:>10} {:>12}  met  beside the same run's reference",
        "scenario", "target", "figure", "limit"
    );
    for (name, t) in targets(report) {
        let _ = writeln!(
            o,
            "{:<11} {:<45} {:>10} {:>2} {:>9}  {:<3}  {}",
            name,
            t["what"].as_str().unwrap_or(""),
            num(&t["figure"]),
            t["cmp"].as_str().unwrap_or(""),
            num(&t["limit"]),
            if t["met"].as_bool() == Some(true) {
                "yes"
            } else {
                "NO"
            },
            vs_reference(t)
        );
    }
    o
}

/// The Markdown version (README).
pub fn markdown(report: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "| scenario | figures |\n|---|---|");
    for s in report["scenarios"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "| {} | {} |",
            s["scenario"].as_str().unwrap_or(""),
            figures(s)
        );
    }
    let _ = writeln!(
        o,
        "\n| scenario | target | figure | limit | met | beside the same run's reference |\n|---|---|---|---|---|---|"
    );
    for (name, t) in targets(report) {
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} {} | {} | {} |",
            t["what"].as_str().unwrap_or(""),
            num(&t["figure"]),
            t["cmp"]
                .as_str()
                .unwrap_or("")
                .replace('<', "&le;")
                .replace(">=", "&ge;")
                .replace("&le;=", "&le;"),
            num(&t["limit"]),
            if t["met"].as_bool() == Some(true) {
                "yes"
            } else {
                "**no**"
            },
            vs_reference(t)
        );
    }
    o
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A bar per target: figure relative to its limit, oriented so that a bar
/// left of the 1.0 line meets the target (shown up to 4x).
pub fn svg(report: &Value) -> String {
    let rows = targets(report);
    let (left, width, bar_h, gap) = (330.0, 420.0, 18.0, 8.0);
    let scale_max = 4.0;
    let h = 60.0 + rows.len() as f64 * (bar_h + gap);
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{h}" font-family="sans-serif" font-size="12">"#,
        left + width + 90.0
    );
    let _ = writeln!(
        o,
        r#"<text x="10" y="20" font-size="14">NextDeploy bench {} ({}): figure / target, left of the line = met</text>"#,
        esc(report["mode"].as_str().unwrap_or("")),
        esc(report["date"].as_str().unwrap_or(""))
    );
    let x1 = left + width / scale_max;
    for (i, (name, t)) in rows.iter().enumerate() {
        let y = 40.0 + i as f64 * (bar_h + gap);
        let f = t["figure"].as_f64().unwrap_or(f64::NAN);
        let l = t["limit"].as_f64().unwrap_or(f64::NAN);
        let score = if t["cmp"] == ">=" {
            l / f
        } else if l == 0.0 {
            if f == 0.0 {
                0.0
            } else {
                scale_max
            }
        } else {
            f / l
        };
        let score = if score.is_finite() {
            score.clamp(0.0, scale_max)
        } else {
            scale_max
        };
        let met = t["met"].as_bool() == Some(true);
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" text-anchor="end">{}: {}</text>"#,
            left - 6.0,
            y + 13.0,
            esc(name),
            esc(t["what"].as_str().unwrap_or(""))
        );
        let _ = writeln!(
            o,
            r#"<rect x="{left}" y="{y}" width="{:.1}" height="{bar_h}" fill="{}"/>"#,
            (score / scale_max * width).max(1.0),
            if met { "#3a9a4a" } else { "#c8453a" }
        );
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}">{} ({} {})</text>"#,
            left + width + 4.0,
            y + 13.0,
            num(&t["figure"]),
            esc(t["cmp"].as_str().unwrap_or("")),
            num(&t["limit"])
        );
    }
    let _ = writeln!(
        o,
        r#"<line x1="{x1}" y1="30" x2="{x1}" y2="{}" stroke="black" stroke-dasharray="4 3"/>"#,
        h - 10.0
    );
    let _ = writeln!(o, "</svg>");
    o
}

/// Write latest-<mode>.{json,md,svg} and a dated copy of each into `dir`.
pub fn write(dir: &Path, report: &Value) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mode = report["mode"].as_str().unwrap_or("run");
    let stamp = report["date"]
        .as_str()
        .unwrap_or("undated")
        .replace(':', "");
    let mut written = Vec::new();
    for (ext, body) in [
        ("json", serde_json::to_string_pretty(report)? + "\n"),
        ("md", markdown(report)),
        ("svg", svg(report)),
    ] {
        for name in [
            format!("latest-{mode}.{ext}"),
            format!("{stamp}-{mode}.{ext}"),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, &body)?;
            written.push(p);
        }
    }
    Ok(written)
}

/// Write `report` (JSON) to `to`, else to `bench/results/<name>-latest.json`
/// and `bench/results/<date>-<name>.json`; the paths written. For the
/// scenarios with their own subcommand (`health`, `exec`).
pub fn write_json(
    to: Option<&Path>,
    name: &str,
    report: &Value,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let body = serde_json::to_string_pretty(report)? + "\n";
    let paths = match to {
        Some(p) => vec![p.to_path_buf()],
        None => {
            let dir = crate::hub::workspace().join("bench/results");
            let stamp = report["date"]
                .as_str()
                .unwrap_or("undated")
                .replace(':', "");
            vec![
                dir.join(format!("{name}-latest.json")),
                dir.join(format!("{stamp}-{name}.json")),
            ]
        }
    };
    for p in &paths {
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, &body)?;
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ratios_lead_and_targets_show_their_reference() {
        let report = json!({"scenarios": [
            {"scenario": "latency", "p50_ms": 0.5, "ping_p50_vs_tcp": 5.0, "tcp_p50_ms": 0.1,
             "targets": [crate::scenario::target_vs("ping p50 (ms)", 0.5, 0.25,
                 crate::scenario::Target::AtMost, "TCP echo p50 (ms)", Some(0.1))]},
            {"scenario": "reconnect", "seconds": 4.0, "storm_vs_cold_connect": null,
             "targets": [crate::scenario::target_vs("back: seconds", 4.0, 10.0,
                 crate::scenario::Target::AtMost, "cold connect (s)", None)]},
        ]});
        let t = text(&report);
        assert!(
            t.contains("latency     ping_p50_vs_tcp=5.00 p50_ms=0.500"),
            "{t}"
        );
        assert!(t.contains("5.00x of TCP echo p50 (ms) 0.100"), "{t}");
        assert!(t.contains("n/a (cold connect (s): not measured)"), "{t}");
        let m = markdown(&report);
        assert!(
            m.contains("| **no** | 5.00x of TCP echo p50 (ms) 0.100 |"),
            "{m}"
        );
    }
}
