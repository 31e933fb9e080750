//! The scenarios of issue #6, one module each, and the helpers they share.
//! Each returns JSON objects: `scenario`, its figures, and `targets`.

pub mod fleet;
pub mod footprint;
pub mod latency;
pub mod openssh;
pub mod throughput;

use serde_json::{json, Value};

/// Which side of the limit meets a target.
#[derive(Clone, Copy)]
pub enum Target {
    AtMost,
    AtLeast,
}

/// One target: its name, the figure, the limit, met or not.
pub fn target(what: &str, figure: f64, limit: f64, t: Target) -> Value {
    let (met, cmp) = match t {
        Target::AtMost => (figure <= limit, "<="),
        Target::AtLeast => (figure >= limit, ">="),
    };
    json!({"what": what, "figure": figure, "cmp": cmp, "limit": limit, "met": met && figure.is_finite()})
}

/// `target`, beside a reference measured in the same run: what it is, its
/// figure (`None`: it could not be measured) and the figure's multiple of it.
pub fn target_vs(
    what: &str,
    figure: f64,
    limit: f64,
    t: Target,
    reference: &str,
    reference_figure: Option<f64>,
) -> Value {
    let mut v = target(what, figure, limit, t);
    v["reference"] = json!(reference);
    v["reference_figure"] = json!(reference_figure);
    v["vs_reference"] = json!(reference_figure.and_then(|r| ratio(figure, r)));
    v
}

/// `a / b` when both are finite and `b` is positive.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}

/// Median (NaN for no values).
pub fn median(v: &mut [f64]) -> f64 {
    percentile(v, 0.5)
}

/// Nearest-rank percentile `q` in 0..=1 (NaN for no values).
pub fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_needs_two_finite_figures_and_a_positive_reference() {
        assert_eq!(ratio(3.0, 1.5), Some(2.0));
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(1.0, f64::INFINITY), None);
    }

    #[test]
    fn a_target_carries_its_reference_and_multiple() {
        let t = target_vs("p50", 0.5, 0.25, Target::AtMost, "tcp p50", Some(0.1));
        assert_eq!(t["met"], false);
        assert_eq!(t["reference"], "tcp p50");
        assert!((t["vs_reference"].as_f64().unwrap() - 5.0).abs() < 1e-9);
        let t = target_vs("p50", 0.5, 0.25, Target::AtMost, "tcp p50", None);
        assert!(t["reference_figure"].is_null() && t["vs_reference"].is_null());
    }
}
