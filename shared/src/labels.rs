//! Labels (`env=prod,role=web`) and selectors over them.

use std::collections::BTreeMap;

use crate::limits::{MAX_LABELS, MAX_LABEL_LEN, MAX_NAME_LEN};

/// An agent's labels, ordered so that output is stable.
pub type Labels = BTreeMap<String, String>;

/// Parse `k=v,k2=v2` (empty text gives no labels).
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut labels = Labels::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("label {part:?} is not of the form key=value"))?;
        validate_label_part(k, "key")?;
        validate_label_part(v, "value")?;
        if labels.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("label key {k:?} is given twice"));
        }
    }
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels are allowed"));
    }
    Ok(labels)
}

fn validate_label_part(part: &str, what: &str) -> Result<(), String> {
    if part.is_empty() && what == "key" {
        return Err("a label key may not be empty".into());
    }
    if part.len() > MAX_LABEL_LEN {
        return Err(format!(
            "label {what} {part:?} is longer than {MAX_LABEL_LEN}"
        ));
    }
    if !part
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return Err(format!(
            "label {what} {part:?} may only hold letters, digits, '-', '_', '.' and '/'"
        ));
    }
    Ok(())
}

/// Render labels as `k=v,k2=v2`.
pub fn format_labels(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A selector: every `k=v` must be present (`k` alone: the key must exist).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(Vec<(String, Option<String>)>);

impl Selector {
    /// Parse `env=prod,role` style selectors. An empty selector is refused: it
    /// would match the whole fleet by accident.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) => {
                    validate_label_part(k, "key")?;
                    validate_label_part(v, "value")?;
                    terms.push((k.to_string(), Some(v.to_string())));
                }
                None => {
                    validate_label_part(part, "key")?;
                    terms.push((part.to_string(), None));
                }
            }
        }
        if terms.is_empty() {
            return Err("the selector is empty".into());
        }
        Ok(Selector(terms))
    }

    /// Whether `labels` satisfy every term.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|(k, v)| match (labels.get(k), v) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        })
    }
}

/// Check an agent name: 1 to 63 of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok_first = name
        .chars()
        .next()
        .map(|c| c.is_ascii_alphanumeric())
        .unwrap_or(false);
    if !ok_first
        || name.len() > MAX_NAME_LEN
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "invalid name {name:?}: 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', starting with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_roundtrip() {
        let l = parse_labels("env=prod, role=web").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(format_labels(&l), "env=prod,role=web");
        assert!(parse_labels("env").is_err());
        assert!(parse_labels("a=1,a=2").is_err());
        assert!(parse_labels("a b=1").is_err());
        assert!(parse_labels("").unwrap().is_empty());
    }

    #[test]
    fn selector_matches() {
        let l = parse_labels("env=prod,role=web").unwrap();
        assert!(Selector::parse("env=prod").unwrap().matches(&l));
        assert!(Selector::parse("env=prod,role").unwrap().matches(&l));
        assert!(!Selector::parse("env=dev").unwrap().matches(&l));
        assert!(!Selector::parse("zone").unwrap().matches(&l));
        assert!(Selector::parse("").is_err());
    }

    #[test]
    fn names() {
        assert!(validate_name("prod-1").is_ok());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("").is_err());
    }
}
