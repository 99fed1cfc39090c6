//! The `--help` text, built from the options table so that it lists every option.

use super::cli::{OPTIONS, OptionSpec};
use crate::region::REGIONS;

/// Width that every line of the help text fits in.
pub(super) const HELP_WIDTH: usize = 80;

/// Right margin left free by wrapped text, so that no line reaches the last
/// column, where some terminals wrap.
const RIGHT_MARGIN: usize = 2;

/// Indent of an option's description under its flag line.
const DESCRIPTION_INDENT: &str = "      ";

const HEADER: &str = "\
genesys-video-agent: keeps Genesys Cloud video conference sessions valid

usage: genesys-video-agent [COMMAND] [OPTIONS]

commands:
  run              run the agent until stopped (the default)
  check            load the configuration, fetch a token, open and close the
                   event stream, and print a report
  validate [FILE]  validate event lines offline, one verdict per line; reads
                   standard input when FILE is missing or -
  replay FILE      send the states in a dead-letter file again

options (before or after the command; a flag wins over its environment
variable, which wins over the default):
  -h, --help
      print this help and exit
  -V, --version
      print the version and exit
";

const FOOTER: &str = "\
Durations are a number with a unit: 500ms, 30s, 5m, 1h, or a bare number of
seconds such as 30 or 1.5.

credentials (read only from the environment or the --env-file file):
  GENESYS_CLIENT_ID      OAuth client id, required
  GENESYS_CLIENT_SECRET  OAuth client secret, required, never logged

other environment variables:
  RUST_LOG               log level on standard error: error, warn, info,
                         debug or trace; default info
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY
                         proxy URL for outgoing connections
  NO_PROXY               comma-separated hosts to reach without the proxy

exit codes:
  0   clean stop: SIGINT or SIGTERM, --run-for elapsed, --exit-on-stream-end,
      or another instance already holds the lock (then silent)
  1   validate found an invalid line
  64  bad command line
  70  internal error
  77  the OAuth server rejected the credentials at start-up
  78  configuration error: missing credentials, unknown region, bad value
";

/// Returns the `--help` text: usage, commands, every option with its
/// environment variable, unit and default, the other environment variables
/// and the exit codes.
pub fn help_text() -> String {
    let mut text = String::from(HEADER);
    for option in OPTIONS {
        push_option(&mut text, option);
    }
    text.push('\n');
    text.push_str(FOOTER);
    text.push('\n');
    push_regions(&mut text);
    text
}

fn push_option(text: &mut String, option: &OptionSpec) {
    let mut line = format!("  --{}", option.flag);
    if let Some(value_name) = option.value_name {
        line.push(' ');
        line.push_str(value_name);
    }
    if let Some(env) = option.env {
        line.push_str(&format!("  [env: {env}]"));
    }
    text.push_str(&line);
    text.push('\n');
    let width = HELP_WIDTH - RIGHT_MARGIN - DESCRIPTION_INDENT.len();
    for description_line in wrap_words(option.help, width) {
        text.push_str(DESCRIPTION_INDENT);
        text.push_str(&description_line);
        text.push('\n');
    }
}

/// Lists the regions two to a line, as name and domain columns.
fn push_regions(text: &mut String) {
    text.push_str("regions (underscores work in place of dashes):\n");
    for pair in REGIONS.chunks(2) {
        let mut line = String::new();
        for (name, domain) in pair {
            line.push_str(&format!("  {name:<15} {domain:<20}"));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
}

/// Splits `text` at spaces into lines of at most `width` characters. A word
/// longer than `width` gets a line of its own.
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let needed = current.chars().count() + 1 + word.chars().count();
        if !current.is_empty() && needed > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_fits_in_eighty_columns() {
        for line in help_text().lines() {
            assert!(line.chars().count() <= HELP_WIDTH, "too long: {line:?}");
        }
    }

    #[test]
    fn help_lists_every_option_and_variable() {
        let help = help_text();
        for option in OPTIONS {
            assert!(
                help.contains(&format!("--{}", option.flag)),
                "{}",
                option.flag
            );
            if let Some(env) = option.env {
                assert!(help.contains(env), "{env}");
            }
            assert!(!option.help.is_empty(), "{} has no help", option.flag);
        }
        let variables = [
            "GENESYS_CLIENT_ID",
            "GENESYS_CLIENT_SECRET",
            "RUST_LOG",
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
        ];
        for variable in variables {
            assert!(help.contains(variable), "{variable}");
        }
    }

    #[test]
    fn help_lists_exit_codes_and_regions() {
        let help = help_text();
        for code in ["  0 ", "  1 ", "  64 ", "  70 ", "  77 ", "  78 "] {
            assert!(help.contains(code), "exit code {code:?}");
        }
        for (name, domain) in REGIONS {
            assert!(help.contains(name), "{name}");
            assert!(help.contains(domain), "{domain}");
        }
    }

    #[test]
    fn wrap_keeps_words_whole() {
        let lines = wrap_words("aa bb cc dddddd", 5);
        assert_eq!(lines, vec!["aa bb", "cc", "dddddd"]);
        assert!(wrap_words("", 5).is_empty());
    }
}
