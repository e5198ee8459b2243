//! `.env` in the working folder: `KEY=value` lines (dotenvy's syntax) that set
//! what the environment does not. Read literally where it matters: a `$` that
//! the syntax would expand as a variable (turning `pa$$word` into `pa` without
//! a word) is refused with the line it is on, and a NUL byte is refused before
//! it reaches the environment. No message shows a value: it may be a password.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Load `p` (when it exists and is the user's own, see `open_settings`).
pub(super) fn load(p: &Path) -> Result<()> {
    let Some(mut f) = super::open_settings(p)? else {
        return Ok(());
    };
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|_| Error::Config(format!("{}: not UTF-8 text", p.display())))?;
    if let Some((line, key)) = expanded_dollar(&text) {
        return Err(Error::Config(format!(
            "{} line {line}: the value of {key} holds `$`, which a .env file expands as a variable: write the value in single quotes ('…') to keep it as it is",
            p.display()
        )));
    }
    let mut pairs = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (k, v) = item.map_err(|e| match e {
            // The line itself is not shown: it may hold a password.
            dotenvy::Error::LineParse(..) => Error::Config(format!(
                "{}: a line does not parse; each line must be KEY=value",
                p.display()
            )),
            _ => Error::Config(format!("{}: it does not parse", p.display())),
        })?;
        if k.is_empty() || k.contains(['\0', '=']) || v.contains('\0') {
            return Err(Error::Config(format!(
                "{}: a line holds a NUL byte or an empty name: remove it",
                p.display()
            )));
        }
        pairs.push((k, v));
    }
    // Only once the whole file is good; the environment wins over the file.
    for (k, v) in pairs {
        if std::env::var_os(&k).is_none() {
            // Settings are read before any thread that reads the environment starts.
            std::env::set_var(k, v);
        }
    }
    Ok(())
}

/// The first line (1-based) whose value has a `$` the syntax would expand
/// (outside single quotes, not escaped), and its key.
fn expanded_dollar(text: &str) -> Option<(usize, String)> {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (mut single, mut double, mut escaped) = (false, false, false);
        let mut after_space = false;
        for c in value.chars() {
            if escaped {
                escaped = false;
            } else if single {
                single = c != '\'';
            } else if c == '\\' {
                escaped = true;
            } else if c == '\'' && !double {
                single = true;
            } else if c == '"' {
                double = !double;
            } else if c == '#' && !double && after_space {
                break;
            } else if c == '$' {
                return Some((n + 1, key.trim().to_string()));
            }
            after_space = c == ' ' || c == '\t';
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::expanded_dollar;

    #[test]
    fn a_dollar_the_syntax_would_expand_is_found_with_its_line() {
        let text = "A=plain\n# B=$comment\nexport PW=pa$$word\n";
        assert_eq!(expanded_dollar(text), Some((3, "PW".into())));
        assert_eq!(expanded_dollar("X=\"a$b\""), Some((1, "X".into())));
        assert_eq!(expanded_dollar("DAYS=${D:-90}"), Some((1, "DAYS".into())));
    }

    #[test]
    fn a_literal_dollar_is_left_alone() {
        for ok in [
            "PW='pa$$word'",
            "PW=pa\\$word",
            "PW=\"pa\\$word\"",
            "A=1 # costs $5",
            "",
            "# only $ in a comment",
            "NOEQUALS $",
        ] {
            assert_eq!(expanded_dollar(ok), None, "{ok:?}");
        }
    }
}
