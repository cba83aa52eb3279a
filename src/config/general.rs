//! The runtime: environment, product name, data directory and log format, kept at
//! the top of [`Config`].

use std::path::PathBuf;

use super::{
    Config, ConfigError,
    vars::{Described, Vars},
};

pub(super) const VARS: &[&str] = &["APP_ENV", "SERVICE_NAME", "DATA_DIR", "LOG_FORMAT"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The settings of this section, before they take their places in [`Config`].
pub(super) struct General {
    pub(super) env: AppEnv,
    pub(super) service_name: String,
    pub(super) data_dir: PathBuf,
    pub(super) log_format: LogFormat,
}

impl General {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let env = match vars.choice("APP_ENV", &["development", "production", "dev", "prod"])? {
            "production" | "prod" => AppEnv::Production,
            _ => AppEnv::Development,
        };
        let data_dir = PathBuf::from(vars.get("DATA_DIR").unwrap_or_else(|| "data".into()));
        let log_format = match vars.choice("LOG_FORMAT", &["pretty", "json"])? {
            "json" => LogFormat::Json,
            _ => LogFormat::Pretty,
        };
        let service_name = vars
            .get("SERVICE_NAME")
            .unwrap_or_else(|| "Identity".into());
        Ok(Self {
            env,
            service_name,
            data_dir,
            log_format,
        })
    }
}

pub(super) fn describe(config: &Config) -> Described {
    vec![
        ("APP_ENV", format!("{:?}", config.env).to_lowercase()),
        ("SERVICE_NAME", config.service_name.clone()),
        ("DATA_DIR", config.data_dir.display().to_string()),
        (
            "LOG_FORMAT",
            format!("{:?}", config.log_format).to_lowercase(),
        ),
    ]
}
