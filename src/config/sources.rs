//! Where settings come from, as etcd reads them: the command line, the
//! `ETCD_*` environment, and the YAML configuration file.

use super::{ConfigError, Setting, SETTINGS};

/// The command line as (flag, value) pairs, `--flag value` or `--flag=value`.
pub(super) fn parse_command_line(
    args: impl IntoIterator<Item = String>,
) -> Result<Vec<Setting>, ConfigError> {
    let mut settings = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(ConfigError::UnknownFlag(arg));
        };
        let (flag, inline) = match flag.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (flag.to_string(), None),
        };
        match flag.as_str() {
            "h" | "help" => return Err(ConfigError::HelpRequested),
            "version" => return Err(ConfigError::VersionRequested),
            _ => {}
        }
        if !SETTINGS.contains(&flag.as_str()) {
            return Err(ConfigError::UnknownFlag(flag));
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| ConfigError::MissingValue(flag.clone()))?;
        settings.push((flag, value));
    }
    Ok(settings)
}

/// `ETCD_<FLAG>` variables for the settings the command line leaves unset.
/// Unknown `ETCD_*` variables are ignored, as etcd does (it only warns).
pub(super) fn env_settings(
    env: impl IntoIterator<Item = (String, String)>,
    command_line: &[Setting],
) -> Vec<Setting> {
    let mut settings: Vec<Setting> = env
        .into_iter()
        .filter_map(|(key, value)| {
            let flag = key
                .strip_prefix("ETCD_")?
                .to_ascii_lowercase()
                .replace('_', "-");
            let known = SETTINGS.contains(&flag.as_str()) && flag != "config-file";
            let on_command_line = command_line.iter().any(|(set, _)| *set == flag);
            (known && !on_command_line).then_some((flag, value))
        })
        .collect();
    settings.sort(); // the environment's order is arbitrary; make it stable
    settings
}

/// etcd's YAML configuration file: top-level keys named as the flags.
/// Keys keel does not know are ignored, as etcd's loader ignores them.
pub(super) fn read_config_file(path: &str) -> Result<Vec<Setting>, ConfigError> {
    use yaml_rust2::{Yaml, YamlLoader};
    let failed = |reason: String| ConfigError::ConfigFile {
        path: path.to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
    let documents = YamlLoader::load_from_str(&text).map_err(|error| failed(error.to_string()))?;
    let Some(document) = documents.into_iter().next() else {
        return Ok(Vec::new()); // an empty file: every default
    };
    let Yaml::Hash(entries) = document else {
        return Err(failed("the top level is not a mapping of settings".into()));
    };
    let mut settings = Vec::new();
    for (key, value) in entries {
        let Some(key) = key.as_str().map(str::to_string) else {
            return Err(failed(format!("a key is not a string: {key:?}")));
        };
        if !SETTINGS.contains(&key.as_str()) || key == "config-file" {
            continue;
        }
        let value = match value {
            Yaml::String(text) | Yaml::Real(text) => text,
            Yaml::Integer(number) => number.to_string(),
            Yaml::Boolean(flag) => flag.to_string(),
            Yaml::Null => continue, // `key:` with no value keeps the default
            other => return Err(failed(format!("{key}: not a single value: {other:?}"))),
        };
        settings.push((key, value));
    }
    Ok(settings)
}
