//! The command lines of the docs, and the concrete commands a synopsis line
//! stands for.
//!
//! Lines come from fenced blocks tagged `sh` in README.md, deploy/README.md
//! and docs/*.md (every fenced block must carry a language tag, so a block
//! cannot slip out of the test by being untagged). A trailing `\` joins the
//! next line; a ` # comment` is dropped; a line starting with `{` is input
//! typed into the command above it (websocat), not a command.
//!
//! A synopsis uses `[...]` for an optional part (`[-a]`, `[--server=S |
//! --selector E]`, `host[:22]`) and `a|b` for a choice of words
//! (`stop|restart`, `5s|1m|15m`). [`variants`] turns one line into: the line
//! with every optional part left out and every first choice taken, then one
//! more line per optional part taken (each of its choices) and per other
//! choice of a word. Every option is thus run once, without a cartesian
//! explosion.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// One command line of the docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocLine {
    /// `README.md`, `docs/protocol.md`, ...
    pub file: String,
    /// 1-based line number of its first line.
    pub line: usize,
    /// The command, continuations joined, comment dropped.
    pub text: String,
}

/// Every command line of the project's docs, in file order.
pub fn doc_lines(root: &Path) -> Result<Vec<DocLine>> {
    let mut files = vec!["README.md".to_string(), "deploy/README.md".to_string()];
    let mut docs: Vec<String> = fs::read_dir(root.join("docs"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(root.join(&f)).with_context(|| format!("read {f}"))?;
        out.extend(lines_of(&f, &text)?);
    }
    Ok(out)
}

/// The command lines of one markdown file.
pub fn lines_of(file: &str, markdown: &str) -> Result<Vec<DocLine>> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    let mut pending: Option<DocLine> = None;
    for (i, raw) in markdown.lines().enumerate() {
        let trimmed = raw.trim();
        if let Some(tag) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None if tag.is_empty() => {
                    bail!("{file}:{}: a fenced block without a language tag", i + 1)
                }
                None => Some(tag.to_string()),
            };
            continue;
        }
        if block.as_deref() != Some("sh") {
            continue;
        }
        let text = strip_comment(trimmed);
        let cont = text.ends_with('\\');
        let text = text.trim_end_matches('\\').trim();
        match pending.as_mut() {
            Some(p) => {
                p.text.push(' ');
                p.text.push_str(text);
            }
            None if text.is_empty() || text.starts_with('{') => continue,
            None => {
                pending = Some(DocLine {
                    file: file.to_string(),
                    line: i + 1,
                    text: text.to_string(),
                })
            }
        }
        if !cont {
            out.extend(pending.take());
        }
    }
    Ok(out)
}

/// `text` without a ` # comment` (a `#` at the start or after a blank).
fn strip_comment(text: &str) -> &str {
    if text.starts_with('#') {
        return "";
    }
    match text.find(" #") {
        Some(i) => text[..i].trim_end(),
        None => text,
    }
}

/// A piece of a synopsis.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// A word and its other choices (`stop|restart`); a word with an
    /// optional suffix (`host[:22]`) is the choice of both forms.
    Word(Vec<String>),
    /// An optional part: its alternatives, each a sequence.
    Optional(Vec<Vec<Part>>),
}

/// The concrete lines `synopsis` stands for (see the module doc).
pub fn variants(synopsis: &str) -> Result<Vec<String>> {
    let chars: Vec<char> = synopsis.chars().collect();
    let mut pos = 0;
    let parts = parse_seq(&chars, &mut pos, false)?;
    if pos < chars.len() {
        bail!("unbalanced ']' in `{synopsis}`");
    }
    Ok(expand(&parts).into_iter().map(|w| w.join(" ")).collect())
}

/// Parse parts up to the end (or the closing `]` when `nested`).
fn parse_seq(c: &[char], pos: &mut usize, nested: bool) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    while *pos < c.len() {
        match c[*pos] {
            ' ' => *pos += 1,
            ']' if nested => return Ok(parts),
            ']' => bail!("unbalanced ']'"),
            '[' => {
                *pos += 1;
                parts.push(parse_optional(c, pos)?);
            }
            _ => parts.push(parse_word(c, pos)?),
        }
    }
    if nested {
        bail!("unbalanced '['");
    }
    Ok(parts)
}

/// After a `[`: alternatives separated by a lone `|`, up to the `]`.
fn parse_optional(c: &[char], pos: &mut usize) -> Result<Part> {
    let mut alts = Vec::new();
    loop {
        let seq = parse_seq_until_bar(c, pos)?;
        alts.push(seq);
        if *pos < c.len() && c[*pos] == ']' {
            *pos += 1;
            return Ok(Part::Optional(alts));
        }
        *pos += 1; // the lone '|'
    }
}

fn parse_seq_until_bar(c: &[char], pos: &mut usize) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    loop {
        while *pos < c.len() && c[*pos] == ' ' {
            *pos += 1;
        }
        if *pos >= c.len() {
            bail!("unbalanced '['");
        }
        let lone_bar = c[*pos] == '|' && c.get(*pos + 1).is_none_or(|n| *n == ' ');
        if c[*pos] == ']' || lone_bar {
            return Ok(parts);
        }
        if c[*pos] == '[' {
            *pos += 1;
            parts.push(parse_optional(c, pos)?);
        } else {
            parts.push(parse_word(c, pos)?);
        }
    }
}

/// A word up to a blank or a bracket; `a|b` choices; `word[suffix]` attached.
fn parse_word(c: &[char], pos: &mut usize) -> Result<Part> {
    let mut word = String::new();
    while *pos < c.len() && !matches!(c[*pos], ' ' | '[' | ']') {
        word.push(c[*pos]);
        *pos += 1;
    }
    if *pos < c.len() && c[*pos] == '[' && !word.is_empty() {
        let end = c[*pos..]
            .iter()
            .position(|&x| x == ']')
            .context("unbalanced '[' in a word")?;
        let suffix: String = c[*pos + 1..*pos + end].iter().collect();
        *pos += end + 1;
        return Ok(Part::Word(vec![word.clone(), format!("{word}{suffix}")]));
    }
    let choices: Vec<String> = if word.contains('|') && !word.starts_with('|') {
        word.split('|').map(str::to_string).collect()
    } else {
        vec![word]
    };
    Ok(Part::Word(choices))
}

/// The base line (no optional part, first choices) and one line per
/// other option, each as words.
fn expand(parts: &[Part]) -> Vec<Vec<String>> {
    let base: Vec<String> = parts.iter().flat_map(default_words).collect();
    let mut out = vec![base];
    for (i, part) in parts.iter().enumerate() {
        for option in options(part) {
            let mut line: Vec<String> = parts[..i].iter().flat_map(default_words).collect();
            line.extend(option);
            line.extend(parts[i + 1..].iter().flat_map(default_words));
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out
}

/// The words of a part at its default (first choice; optional left out).
fn default_words(part: &Part) -> Vec<String> {
    match part {
        Part::Word(choices) => vec![choices[0].clone()],
        Part::Optional(_) => Vec::new(),
    }
}

/// The non-default renderings of a part.
fn options(part: &Part) -> Vec<Vec<String>> {
    match part {
        Part::Word(choices) => choices[1..].iter().map(|c| vec![c.clone()]).collect(),
        Part::Optional(alts) => alts.iter().flat_map(|seq| expand(seq)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_parts_and_choices_each_run_once() {
        let v = variants("nextdeploy agent stop|restart --server=p web [-t S]").unwrap();
        assert_eq!(
            v,
            [
                "nextdeploy agent stop --server=p web",
                "nextdeploy agent restart --server=p web",
                "nextdeploy agent stop --server=p web -t S",
            ]
        );
        let v = variants("a [--server=p | --selector env=prod] [--pull x|y]").unwrap();
        assert_eq!(
            v,
            [
                "a",
                "a --server=p",
                "a --selector env=prod",
                "a --pull x",
                "a --pull y"
            ]
        );
        let v = variants("install --ssh root@h[:22] [--name n]").unwrap();
        assert_eq!(
            v,
            [
                "install --ssh root@h",
                "install --ssh root@h:22",
                "install --ssh root@h --name n"
            ]
        );
        assert!(variants("a [b").is_err());
        assert!(variants("a b]").is_err());
    }

    #[test]
    fn lines_join_continuations_drop_comments_and_need_tags() {
        let md = "x\n```sh\nnextdeploy a \\\n    --b c   # note\n# only a comment\n{\"id\": 1}\nnextdeploy d\n```\n```text\nnot a command\n```\n";
        let l = lines_of("R.md", md).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].text, "nextdeploy a --b c");
        assert_eq!(l[0].line, 3);
        assert_eq!(l[1].text, "nextdeploy d");
        assert!(lines_of("R.md", "```\nx\n```\n").is_err());
    }
}
