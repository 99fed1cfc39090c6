//! Loading of the dotenv-style `KEY=VALUE` file given to `--env-file`.
//!
//! The format: one `KEY=VALUE` per line, blank lines and `#` comments
//! ignored, an optional `export ` prefix, and an optional pair of single or
//! double quotes around the value. Unquoted values end at a ` #` comment.
//! Double quotes understand `\n`, `\"` and `\\`. Single quotes keep the text
//! as it is. Values are never expanded (`$HOME` stays `$HOME`).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::ConfigError;

/// One `KEY=VALUE` line of an env file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct EnvEntry {
    /// Line number, from 1.
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// Reads and parses an env file, and logs a warning when other users may
/// read it. A malformed line is an error that gives its number but never its
/// text, which may contain the client secret.
pub(super) fn load_env_file(path: &Path) -> Result<Vec<EnvEntry>, ConfigError> {
    let error = |line: usize, reason: String| ConfigError::EnvFile {
        path: path.to_owned(),
        line,
        reason,
    };
    let read_error = |io: std::io::Error| error(0, format!("failed to read the file: {io}"));

    let mut file = File::open(path).map_err(read_error)?;
    warn_if_shared(path, &file);
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_error)?;
    parse_env_text(&text).map_err(|(line, reason)| error(line, reason.to_owned()))
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, file: &File) {
    use std::os::unix::fs::PermissionsExt;

    let Ok(metadata) = file.metadata() else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    if is_shared_mode(mode) {
        log::warn!(
            "env file {} has mode {mode:03o}, so other users may read the client secret in it: run chmod 600 {}",
            path.display(),
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _file: &File) {}

/// Returns whether a unix file mode gives the group or others any access.
#[cfg_attr(not(unix), allow(dead_code))]
fn is_shared_mode(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Parses the text of an env file. The error is a line number and a reason.
fn parse_env_text(text: &str) -> Result<Vec<EnvEntry>, (usize, &'static str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if let Some((key, value)) = parse_line(line).map_err(|reason| (number, reason))? {
            entries.push(EnvEntry {
                line: number,
                key,
                value,
            });
        }
    }
    Ok(entries)
}

/// Parses one line: `None` for a blank line or a comment.
fn parse_line(line: &str) -> Result<Option<(String, String)>, &'static str> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }

    let line = strip_export(line);
    let Some((key, raw_value)) = line.split_once('=') else {
        return Err("expected KEY=VALUE");
    };
    let key = key.trim_end();
    if !is_variable_name(key) {
        return Err("invalid variable name, expected letters, digits and underscores");
    }
    Ok(Some((key.to_owned(), parse_value(raw_value)?)))
}

fn strip_export(line: &str) -> &str {
    match line.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => line,
    }
}

fn is_variable_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses the text after `=`.
fn parse_value(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim_start();
    if let Some(body) = trimmed.strip_prefix('"') {
        return parse_quoted(body, '"');
    }
    if let Some(body) = trimmed.strip_prefix('\'') {
        return parse_quoted(body, '\'');
    }
    Ok(strip_inline_comment(raw).trim().to_owned())
}

/// Cuts an unquoted value at the first `#` that follows whitespace, so that
/// `KEY=a#b` keeps `a#b` but `KEY=a #b` is `a`.
fn strip_inline_comment(raw: &str) -> &str {
    let mut previous_is_space = true;
    for (index, c) in raw.char_indices() {
        if c == '#' && previous_is_space {
            return &raw[..index];
        }
        previous_is_space = c.is_whitespace();
    }
    raw
}

/// Reads a quoted value up to its closing `quote`. `body` starts after the
/// opening quote. Only double quotes process backslash escapes.
fn parse_quoted(body: &str, quote: char) -> Result<String, &'static str> {
    let mut value = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return check_after_quote(chars.as_str()).map(|()| value);
        }
        if c == '\\' && quote == '"' {
            push_escape(&mut value, chars.next().ok_or("unterminated quote")?);
            continue;
        }
        value.push(c);
    }
    Err("unterminated quote")
}

fn push_escape(value: &mut String, escaped: char) {
    match escaped {
        'n' => value.push('\n'),
        '"' | '\\' => value.push(escaped),
        other => {
            value.push('\\');
            value.push(other);
        }
    }
}

fn check_after_quote(rest: &str) -> Result<(), &'static str> {
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the closing quote")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entries(text: &str) -> Vec<(String, String)> {
        let parsed = parse_env_text(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
        parsed.into_iter().map(|e| (e.key, e.value)).collect()
    }

    fn single_value(line: &str) -> String {
        let mut parsed = entries(line);
        assert_eq!(parsed.len(), 1, "{line:?}");
        parsed.remove(0).1
    }

    #[test]
    fn values_in_every_quoting_style() {
        let cases = [
            ("A=plain", "plain"),
            ("A = spaced ", "spaced"),
            ("A=", ""),
            ("A=\"double quoted\"", "double quoted"),
            ("A='single quoted'", "single quoted"),
            ("A=\"with # hash\"", "with # hash"),
            ("A='with # hash' # comment", "with # hash"),
            ("A=\"esc \\\"q\\\" \\\\ \\n end\"", "esc \"q\" \\ \n end"),
            ("A=\"keep \\t\"", "keep \\t"),
            ("A='no \\n escapes'", "no \\n escapes"),
            ("A=value # comment", "value"),
            ("A=a#b", "a#b"),
            ("A= #only comment", ""),
            ("A=x=y", "x=y"),
            ("A=$HOME", "$HOME"),
            ("A=it's", "it's"),
            ("export A=exported", "exported"),
            ("export\tA=tab", "tab"),
            ("   A=indented", "indented"),
        ];
        for (line, expected) in cases {
            assert_eq!(single_value(line), expected, "{line:?}");
        }
    }

    #[test]
    fn skips_comments_and_blank_lines() {
        let text = "\u{feff}# header\n\n   \n  # indented comment\nA=1\r\nB=2\n";
        let expected = vec![("A".to_owned(), "1".to_owned()), ("B".into(), "2".into())];
        assert_eq!(entries(text), expected);
    }

    #[test]
    fn keeps_line_numbers() {
        let parsed = parse_env_text("# c\n\nA=1\nB=2").unwrap();
        let lines: Vec<usize> = parsed.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4]);
    }

    #[test]
    fn exporter_is_a_key_not_a_prefix() {
        assert_eq!(entries("exporter=1"), vec![("exporter".into(), "1".into())]);
    }

    #[test]
    fn malformed_lines_give_line_number() {
        let cases = [
            ("A=1\nno equals sign", 2, "expected KEY=VALUE"),
            ("A=1\n\n=value", 3, "invalid variable name"),
            ("1A=x", 1, "invalid variable name"),
            ("A-B=x", 1, "invalid variable name"),
            ("A B=x", 1, "invalid variable name"),
            ("export =x", 1, "invalid variable name"),
            ("A=\"open", 1, "unterminated quote"),
            ("A='open", 1, "unterminated quote"),
            ("A=\"ends in escape\\", 1, "unterminated quote"),
            ("A=\"x\" y", 1, "after the closing quote"),
        ];
        for (text, line, reason) in cases {
            let error = parse_env_text(text).expect_err(text);
            assert_eq!(error.0, line, "{text:?}");
            assert!(error.1.contains(reason), "{text:?}: {}", error.1);
        }
    }

    #[test]
    fn load_reports_path_and_line_without_value() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "A=1\nGENESYS_CLIENT_SECRET hunter2-value").unwrap();

        let error = load_env_file(file.path()).unwrap_err();
        let ConfigError::EnvFile { path, line, .. } = &error else {
            panic!("unexpected error {error:?}");
        };
        assert_eq!(path, file.path());
        assert_eq!(*line, 2);
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
    }

    #[test]
    fn load_of_missing_file_fails() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("absent.env");
        let error = load_env_file(&path).unwrap_err();
        assert!(
            matches!(error, ConfigError::EnvFile { line: 0, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("failed to read"), "{error}");
    }

    #[test]
    fn shared_modes_are_detected() {
        assert!(!is_shared_mode(0o600));
        assert!(!is_shared_mode(0o400));
        assert!(is_shared_mode(0o640));
        assert!(is_shared_mode(0o644));
        assert!(is_shared_mode(0o602));
    }
}
