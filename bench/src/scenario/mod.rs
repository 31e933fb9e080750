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
