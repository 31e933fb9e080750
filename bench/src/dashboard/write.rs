//! `bench/results/dashboard.{json,md}`: the latest run of each part (a run
//! replaces the parts it ran and keeps the others, each with its own date),
//! and a dated copy of this run's parts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// Merge `report` into `dir/dashboard.json`, write the Markdown beside it
/// and `<date>-dashboard.json`; the paths written.
pub fn write(dir: &Path, report: &Value) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let stamp = report["date"]
        .as_str()
        .unwrap_or("undated")
        .replace(':', "");
    let dated = dir.join(format!("{stamp}-dashboard.json"));
    std::fs::write(&dated, serde_json::to_string_pretty(report)? + "\n")?;
    let merged_path = dir.join("dashboard.json");
    let old: Value = std::fs::read_to_string(&merged_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| json!({"scenarios": []}));
    let mut scenarios: Vec<Value> = Vec::new();
    let new = report["scenarios"].as_array().cloned().unwrap_or_default();
    let name = |s: &Value| s["scenario"].as_str().unwrap_or("").to_string();
    for s in old["scenarios"].as_array().into_iter().flatten() {
        if !new.iter().any(|n| name(n) == name(s)) {
            scenarios.push(s.clone());
        }
    }
    for mut s in new {
        s["date"] = report["date"].clone();
        s["command"] = report["command"].clone();
        s["machine"] = report["machine"].clone();
        s["load1"] = json!([report["load1_before"], report["load1_after"]]);
        scenarios.push(s);
    }
    let order = ["load", "fleet", "logs", "heap"];
    let rank = |s: &Value| {
        order
            .iter()
            .position(|o| name(s) == format!("dashboard-{o}"))
            .unwrap_or(order.len())
    };
    scenarios.sort_by_key(rank);
    let merged = json!({"mode": "dashboard", "scenarios": scenarios});
    std::fs::write(&merged_path, serde_json::to_string_pretty(&merged)? + "\n")?;
    let md_path = dir.join("dashboard.md");
    std::fs::write(&md_path, markdown(&merged))?;
    Ok(vec![merged_path, md_path, dated])
}

fn markdown(merged: &Value) -> String {
    let mut o = String::from("# dashboard (issue 19)\n\nThe latest run of each part: `cargo run --release -p nextdeploy-bench -- dashboard`.\n\n");
    o += &crate::report::markdown(merged);
    for s in merged["scenarios"].as_array().into_iter().flatten() {
        let _ = write!(
            o,
            "\n## {}\n\n{} · `{}` · load {}\n\n",
            s["scenario"].as_str().unwrap_or(""),
            s["date"].as_str().unwrap_or(""),
            s["command"].as_str().unwrap_or(""),
            s["load1"]
        );
        if let Some(e) = s["error"].as_str() {
            let _ = writeln!(o, "FAILED: {e}");
        }
        if let Some(d) = s["definition"].as_str() {
            let _ = writeln!(o, "{d}.\n");
        }
        for (k, title) in [
            ("signin_assets", "sign-in page"),
            ("fleet_assets", "fleet page"),
        ] {
            if let Some(a) = s[k].as_array() {
                let _ = writeln!(
                    o,
                    "{title}:\n\n| response | bytes | encoding |\n|---|---|---|"
                );
                for x in a {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} |",
                        x["url"].as_str().unwrap_or(""),
                        x["bytes"],
                        x["encoding"].as_str().unwrap_or("")
                    );
                }
                o += "\n";
            }
        }
        if let Some(p) = s["points"].as_array() {
            o += "| minute | JS heap (MiB) | DOM nodes | hub RSS (MiB) | agents online |\n|---|---|---|---|---|\n";
            for x in p {
                let f = |k: &str| x[k].as_f64().map_or("n/a".into(), |v| format!("{v:.2}"));
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} |",
                    x["minute"],
                    f("js_heap_mib"),
                    x["dom_nodes"],
                    f("hub_rss_mib"),
                    x["online"]
                );
            }
        }
        if let Some(f) = s["filters"].as_array() {
            let list: Vec<String> = f
                .iter()
                .map(|x| {
                    format!(
                        "{} {:.1} ms",
                        x["selector"].as_str().unwrap_or(""),
                        x["ms"].as_f64().unwrap_or(f64::NAN)
                    )
                })
                .collect();
            let _ = writeln!(o, "Filters: {}.", list.join(", "));
        }
        if let Some(n) = s["notes"].as_array() {
            for x in n {
                let _ = writeln!(o, "- {}", x.as_str().unwrap_or(""));
            }
        }
    }
    o
}
