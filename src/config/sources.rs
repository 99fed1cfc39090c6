//! Lookup of a setting in the flags, then in the environment merged with the env file.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::cli::{self, CommandLine, OptionSpec};
use super::env_file::{self, EnvEntry};
use super::url::{self, UrlKind};
use super::{CLIENT_ID_VAR, CLIENT_SECRET_VAR, ConfigError, shorten};

/// Variables meant for the logger and the HTTP client, which this module does
/// not pass on. An env file never changes the process environment, so only
/// the process environment can set them.
const PROCESS_ONLY_VARS: &[&str] = &[
    "RUST_LOG",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
];

/// A value and the flag or variable it came from.
pub(super) struct Setting {
    pub name: String,
    pub value: String,
}

impl Setting {
    pub(super) fn invalid(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            name: self.name.clone(),
            value: shorten(&url::redact_userinfo(&self.value)),
            reason: reason.into(),
        }
    }
}

/// The flags and the merged environment that settings are looked up in.
pub(super) struct Sources {
    flags: HashMap<&'static str, OsString>,
    /// The env file's variables, overlaid with the process environment.
    env: HashMap<String, String>,
}

impl Sources {
    pub(super) fn load(
        line: CommandLine,
        process_env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut env = HashMap::new();
        if let Some(path) = line.values.get(cli::ENV_FILE.flag) {
            let path = PathBuf::from(path);
            let entries = env_file::load_env_file(&path)?;
            warn_about_ignored_entries(&path, &entries);
            env.extend(entries.into_iter().map(|entry| (entry.key, entry.value)));
        }
        // An empty process variable counts as unset, so it does not hide
        // the file's value.
        let set_variables = process_env.iter().filter(|(_, value)| !value.is_empty());
        env.extend(set_variables.map(|(key, value)| (key.clone(), value.clone())));
        Ok(Sources {
            flags: line.values,
            env,
        })
    }

    /// Returns a non-empty environment variable.
    pub(super) fn variable(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .filter(|value| !value.is_empty())
            .cloned()
    }

    /// Returns the flag's value, or else the variable's.
    pub(super) fn setting(&self, option: &OptionSpec) -> Result<Option<Setting>, ConfigError> {
        if let Some(raw) = self.flags.get(option.flag) {
            let name = format!("--{}", option.flag);
            let Some(value) = raw.to_str() else {
                let value = raw.to_string_lossy().into_owned();
                return Err(Setting { name, value }.invalid("not valid UTF-8"));
            };
            let value = value.to_owned();
            return Ok(Some(Setting { name, value }));
        }
        let Some(name) = option.env else {
            return Ok(None);
        };
        let setting = self.variable(name).map(|value| Setting {
            name: name.to_owned(),
            value,
        });
        Ok(setting)
    }

    /// Returns the setting parsed by `parse`, whose error is the reason.
    pub(super) fn parsed<T>(
        &self,
        option: &OptionSpec,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(setting) = self.setting(option)? else {
            return Ok(None);
        };
        parse(&setting.value)
            .map(Some)
            .map_err(|reason| setting.invalid(reason))
    }

    /// Returns a path. A flag's value may be any path the OS accepts, UTF-8 or not.
    pub(super) fn path(&self, option: &OptionSpec) -> Result<Option<PathBuf>, ConfigError> {
        let path = match self.flags.get(option.flag) {
            Some(raw) => Some(PathBuf::from(raw)),
            None => option
                .env
                .and_then(|name| self.variable(name))
                .map(PathBuf::from),
        };
        if path
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            let name = format!("--{}", option.flag);
            let empty = Setting {
                name,
                value: String::new(),
            };
            return Err(empty.invalid("empty path, expected a file or directory path"));
        }
        Ok(path)
    }

    /// Returns a checked URL, and warns when it is unencrypted and not loopback.
    pub(super) fn url(
        &self,
        option: &OptionSpec,
        kind: UrlKind,
    ) -> Result<Option<String>, ConfigError> {
        let Some(setting) = self.setting(option)? else {
            return Ok(None);
        };
        let url = url::check_url(&setting.value, kind).map_err(|reason| setting.invalid(reason))?;
        if url.is_plain_remote() {
            log::warn!(
                "{} {} is unencrypted and {} is not a loopback host, \
                 so tokens and session data cross the network in clear text",
                setting.name,
                url.text,
                url.host
            );
        }
        Ok(Some(url.text))
    }
}

/// Warns about env-file variables that the agent does not read from the file.
/// Names are logged, values never.
fn warn_about_ignored_entries(path: &Path, entries: &[EnvEntry]) {
    for entry in entries {
        let key = entry.key.as_str();
        let location = format!("env file {}, line {}", path.display(), entry.line);
        if PROCESS_ONLY_VARS.contains(&key.to_ascii_uppercase().as_str()) {
            log::warn!(
                "{location}: {key} is read only from the process environment, \
                 so the value in the file is ignored"
            );
        } else if is_agent_variable(key) && !is_known_variable(key) {
            log::warn!("{location}: unknown variable {key} is ignored");
        }
    }
}

fn is_agent_variable(key: &str) -> bool {
    key.starts_with("GENESYS_") || key.starts_with("AGENT_")
}

fn is_known_variable(key: &str) -> bool {
    let is_option = cli::OPTIONS.iter().any(|option| option.env == Some(key));
    is_option || key == CLIENT_ID_VAR || key == CLIENT_SECRET_VAR
}
