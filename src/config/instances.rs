//! How many instances share the database. With PostgreSQL and no Redis, revocations
//! live in each process alone; production then needs the operator to say there is
//! only one instance.

use super::{AppEnv, ConfigError, DatabaseConfig, RedisConfig, vars::Described, vars::Vars};

pub(super) const VARS: &[&str] = &["SINGLE_INSTANCE"];

/// `SINGLE_INSTANCE`: required (`true`) in production on PostgreSQL without
/// `REDIS_URL`, where a revocation made by one process would reach no other.
pub(super) fn read(
    vars: &Vars<'_>,
    env: AppEnv,
    database: &DatabaseConfig,
    redis: Option<&RedisConfig>,
) -> Result<bool, ConfigError> {
    let single = vars.bool("SINGLE_INSTANCE", false)?;
    if env == AppEnv::Production && !database.is_sqlite() && redis.is_none() && !single {
        return Err(ConfigError::new(
            "SINGLE_INSTANCE",
            "production on PostgreSQL without REDIS_URL keeps revocations in this process \
             only: set REDIS_URL for several instances, or SINGLE_INSTANCE=true to declare \
             that this is the only one",
        ));
    }
    Ok(single)
}

pub(super) fn describe(single_instance: bool) -> Described {
    vec![("SINGLE_INSTANCE", single_instance.to_string())]
}
