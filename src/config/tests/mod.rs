use std::{collections::HashMap, time::Duration};

use ed25519_dalek::pkcs8::DecodePrivateKey;
use secrecy::ExposeSecret;

use super::{vars::mask_url, *};

mod settings;

/// Reads `pairs`. The account links (`EMAIL_CHANGE_URL`, `ACCOUNT_DELETION_CANCEL_URL`)
/// get https values unless given, so that the tests of other sections need not name
/// them; `production_refuses_plain_http_account_links` checks them.
fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut map: HashMap<String, String> = ACCOUNT_LINKS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.extend(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::from_map(&map)
}

const ACCOUNT_LINKS: [(&str, &str); 2] = [
    (
        "EMAIL_CHANGE_URL",
        "https://app.example/confirm-email?token={token}",
    ),
    (
        "ACCOUNT_DELETION_CANCEL_URL",
        "https://app.example/cancel-deletion?token={token}",
    ),
];

#[test]
fn the_public_url_gives_the_origin_and_whether_cookies_are_secure() {
    let plain = config(&[KEY]).expect("defaults");
    assert_eq!(plain.http.public_origin, "http://localhost:8000");
    assert!(!plain.http.secure_cookies());
    let https = config(&[KEY, ("PUBLIC_URL", "https://id.example:8443/auth/")]).expect("https");
    assert_eq!(https.http.public_url, "https://id.example:8443/auth");
    assert_eq!(https.http.public_origin, "https://id.example:8443");
    assert!(https.http.secure_cookies());
}

#[test]
fn production_refuses_plain_http_account_links() {
    const PROD: (&str, &str) = ("APP_ENV", "production");
    const SMTP: (&str, &str) = ("SMTP_URL", "smtp://127.0.0.1:2525");
    const RESET: (&str, &str) = (
        "PASSWORD_RESET_URL",
        "https://app.example/reset?token={token}",
    );
    for (var, _) in ACCOUNT_LINKS {
        let plain = (var, "http://app.example/x?token={token}");
        let err = config(&[PROD, KEY, SMTP, RESET, VERIFY, plain]).expect_err(var);
        assert_eq!(err.var, var, "{err}");
        config(&[KEY, plain]).expect("plain in development");
        let no_token = (var, "https://app.example/x");
        assert_eq!(config(&[KEY, no_token]).expect_err(var).var, var);
    }
    let defaults = Config::from_map(&HashMap::new()).expect("defaults");
    assert_eq!(
        defaults.account.email_change_url,
        "http://localhost:3000/confirm-email?token={token}"
    );
    assert_eq!(
        defaults.account.deletion_grace,
        Duration::from_secs(1_209_600)
    );
    assert_eq!(defaults.account.reauth_max_age, Duration::from_secs(300));
    let at_once = config(&[KEY, ("ACCOUNT_DELETION_GRACE", "0")]).expect("zero grace");
    assert_eq!(at_once.account.deletion_grace, Duration::ZERO);
    assert_eq!(
        config(&[KEY, ("REAUTH_MAX_AGE", "1")])
            .expect_err("1 s")
            .var,
        "REAUTH_MAX_AGE"
    );
}

const KEY: (&str, &str) = ("SECRET_KEY", "kQ2lN8bVvI1v3s2h3JmW5nS0eXq9rT4yZpB6uC7d");

fn temp_dir() -> String {
    let dir = std::env::temp_dir().join(format!("identity-cfg-{}", uuid::Uuid::new_v4()));
    dir.to_string_lossy().into_owned()
}

#[test]
fn bad_values_name_the_variable() {
    for (var, value) in [
        ("ACCESS_TOKEN_TTL", "fifteen"),
        ("ACCESS_TOKEN_TTL", "0"),
        ("BIND_ADDR", "localhost"),
        ("APP_ENV", "staging"),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://x"),
        ("PASSWORD_RESET_URL", "https://app/reset"),
        ("MAIL_FROM", "not a mailbox"),
        ("RUN_MIGRATIONS", "maybe"),
        ("CORS_ALLOWED_ORIGINS", "*"),
        ("CORS_ALLOWED_ORIGINS", "https://app.example/path"),
        ("PUBLIC_URL", "ftp://id.example"),
        ("PUBLIC_URL", "https://"),
        ("PUBLIC_URL", "https://id.example/?x=1"),
        ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ("JWT_ALGORITHM", "none"),
        ("JWT_ALGORITHM", "RS256"),
        ("RATE_LIMIT_LOGIN_WINDOW", "10"),
        ("SECRET_KEY", "short"),
        ("SECRET_KEY_PREVIOUS", "short"),
    ] {
        let err = config(&[KEY, (var, value)]).expect_err(var);
        assert_eq!(err.var, var, "{err}");
    }
}

#[test]
fn absurd_values_are_refused_naming_the_variable() {
    const HUGE: &str = "4000000000";
    for var in [
        "ACCESS_TOKEN_TTL",
        "REFRESH_TOKEN_TTL",
        "REFRESH_IDLE_TTL",
        "REFRESH_REUSE_GRACE",
        "PASSWORD_RESET_TTL",
        "HTTP_REQUEST_TIMEOUT",
        "SHUTDOWN_TIMEOUT",
        "DATABASE_ACQUIRE_TIMEOUT",
        "REDIS_TIMEOUT",
        "OUTBOX_POLL_INTERVAL",
        "OUTBOX_RETRY_BASE",
        "OUTBOX_RETRY_MAX",
        "RETENTION_INTERVAL",
        "SESSION_RETENTION",
        "OUTBOX_RETENTION",
        "RATE_LIMIT_LOGIN_BASE_DELAY",
        "RATE_LIMIT_LOGIN_MAX_DELAY",
        "RATE_LIMIT_LOGIN_WINDOW",
        "RATE_LIMIT_RESET_ACCOUNT_WINDOW",
        "DATABASE_MAX_CONNECTIONS",
        "HTTP_BODY_LIMIT_BYTES",
        "GRAPHQL_MAX_BATCH",
        "GRAPHQL_MAX_DEPTH",
        "GRAPHQL_MAX_COMPLEXITY",
        "GRAPHQL_MAX_ALIASES",
        "OUTBOX_MAX_ATTEMPTS",
        "ARGON2_MEMORY_KIB",
        "ARGON2_ITERATIONS",
        "ARGON2_PARALLELISM",
        "PASSWORD_HASH_CONCURRENCY",
        "PASSWORD_HASH_QUEUE",
        "PASSWORD_MIN_LENGTH",
        "RATE_LIMIT_IP_PER_MINUTE",
        "RATE_LIMIT_RESET_PER_IP_PER_MINUTE",
        "RATE_LIMIT_RESET_TOKEN_PER_IP_PER_MINUTE",
        "RATE_LIMIT_LOGIN_FAILURES",
        "RATE_LIMIT_RESET_PER_ACCOUNT",
        "REDIS_POOL_SIZE",
    ] {
        let mut pairs = vec![KEY, (var, HUGE)];
        if var == "REDIS_POOL_SIZE" || var == "REDIS_TIMEOUT" {
            pairs.push(("REDIS_URL", "redis://127.0.0.1:6379"));
        }
        let err = config(&pairs).expect_err(var);
        assert_eq!(err.var, var, "{err}");
        assert!(err.message.contains("at most"), "{err}");
    }
    // The defaults and a value at the bound are accepted.
    config(&[KEY, ("ACCESS_TOKEN_TTL", "86400")]).expect("a day");
}

/// A production verification link (`EMAIL_VERIFY_URL` must be https there).
const VERIFY: (&str, &str) = (
    "EMAIL_VERIFY_URL",
    "https://app.example/verify-email?token={token}",
);

#[test]
fn production_refuses_a_plain_http_verification_link() {
    const PROD: (&str, &str) = ("APP_ENV", "production");
    const SMTP: (&str, &str) = ("SMTP_URL", "smtp://127.0.0.1:2525");
    const HTTPS: (&str, &str) = (
        "PASSWORD_RESET_URL",
        "https://app.example/reset?token={token}",
    );
    let err = config(&[PROD, KEY, SMTP, HTTPS]).expect_err("default verification link");
    assert_eq!(err.var, "EMAIL_VERIFY_URL", "{err}");
    let plain = (
        "EMAIL_VERIFY_URL",
        "http://app.example/verify?token={token}",
    );
    assert_eq!(
        config(&[PROD, KEY, SMTP, HTTPS, plain])
            .expect_err("plain")
            .var,
        plain.0
    );
    config(&[KEY, plain]).expect("plain in development");
    let no_token = ("EMAIL_VERIFY_URL", "https://app.example/verify");
    assert_eq!(
        config(&[KEY, no_token]).expect_err("no placeholder").var,
        no_token.0
    );
    config(&[PROD, KEY, SMTP, HTTPS, VERIFY]).expect("https");
}

#[test]
fn production_refuses_a_catch_all_proxy_and_plain_http_reset_links() {
    const PROD: (&str, &str) = ("APP_ENV", "production");
    const SMTP: (&str, &str) = ("SMTP_URL", "smtp://127.0.0.1:2525");
    const HTTPS: (&str, &str) = (
        "PASSWORD_RESET_URL",
        "https://app.example/reset?token={token}",
    );
    for catch_all in ["0.0.0.0/0", "10.0.0.0/8, ::/0"] {
        let err = config(&[
            PROD,
            KEY,
            SMTP,
            HTTPS,
            VERIFY,
            ("TRUSTED_PROXIES", catch_all),
        ])
        .expect_err(catch_all);
        assert_eq!(err.var, "TRUSTED_PROXIES", "{err}");
        // Development keeps accepting it (a laptop behind anything).
        config(&[KEY, ("TRUSTED_PROXIES", catch_all)]).expect(catch_all);
    }
    config(&[
        PROD,
        KEY,
        SMTP,
        HTTPS,
        VERIFY,
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
    ])
    .expect("a subnet");
    for plain in [
        "http://app.example/reset?token={token}",
        "http://localhost:3000/reset?token={token}",
    ] {
        let err = config(&[PROD, KEY, SMTP, ("PASSWORD_RESET_URL", plain)]).expect_err(plain);
        assert_eq!(err.var, "PASSWORD_RESET_URL", "{err}");
        config(&[KEY, ("PASSWORD_RESET_URL", plain)]).expect(plain);
    }
    // The development default (http://localhost) is not a production link either.
    let err = config(&[PROD, KEY, SMTP]).expect_err("default link");
    assert_eq!(err.var, "PASSWORD_RESET_URL", "{err}");
}

#[test]
fn metrics_stay_off_the_public_port_in_production_unless_asked() {
    const PROD: (&str, &str) = ("APP_ENV", "production");
    const SMTP: (&str, &str) = ("SMTP_URL", "smtp://127.0.0.1:2525");
    const HTTPS: (&str, &str) = (
        "PASSWORD_RESET_URL",
        "https://app.example/reset?token={token}",
    );
    assert!(config(&[KEY]).unwrap().http.metrics_public);
    assert!(
        !config(&[PROD, KEY, SMTP, HTTPS, VERIFY])
            .unwrap()
            .http
            .metrics_public
    );
    let asked = config(&[PROD, KEY, SMTP, HTTPS, VERIFY, ("METRICS_PUBLIC", "true")]).unwrap();
    assert!(asked.http.metrics_public);
    let elsewhere = config(&[KEY, ("METRICS_ADDR", "127.0.0.1:9100")]).unwrap();
    assert!(!elsewhere.http.metrics_public);
}

#[test]
fn weak_secrets_are_refused_even_when_long() {
    for weak in [
        "0123456789abcdef0123456789abcdef",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "changeme-changeme-changeme-changeme",
        "passwordpasswordpasswordpassword12",
        "0123456789abcdefghijklmnopqrstuv",
        "password-dragon-letmein-welcome-monkey-sunshine",
    ] {
        let err = config(&[("SECRET_KEY", weak)]).expect_err(weak);
        assert_eq!(err.var, "SECRET_KEY");
        assert!(err.message.contains("guess"), "{err}");
    }
}

#[test]
fn random_and_long_passphrase_secrets_are_accepted() {
    for strong in [
        "kQ2lN8bVvI1v3s2h3JmW5nS0eXq9rT4yZpB6uC7d",
        "Xq3v9LmZt2R8bW1kP6sN0yH4jD7fG5cAx8Vb2Nm4",
        "test-secret-key-that-is-long-enough-0123456789",
        "3f9c2a7e1b8d4f6a0c5e9b2d7f1a3c8e4b6d0f2a9c7e5b1d3f8a6c4e2b0d9f7a",
    ] {
        config(&[("SECRET_KEY", strong)]).expect(strong);
    }
}

#[test]
fn production_requires_keys_and_hides_the_schema() {
    let err = config(&[("APP_ENV", "production")]).expect_err("no key");
    assert_eq!(err.var, "SECRET_KEY");
    const RESET: (&str, &str) = (
        "PASSWORD_RESET_URL",
        "https://app.example/reset?token={token}",
    );
    let err = config(&[("APP_ENV", "production"), KEY, RESET, VERIFY]).expect_err("no SMTP");
    assert_eq!(err.var, "SMTP_URL");
    const SMTP: (&str, &str) = ("SMTP_URL", "smtp://127.0.0.1:2525");
    let ok = config(&[("APP_ENV", "production"), KEY, SMTP, RESET, VERIFY]).expect("key given");
    assert!(!ok.http.graphiql && !ok.http.introspection);
    let enabled = config(&[
        ("APP_ENV", "production"),
        KEY,
        SMTP,
        RESET,
        VERIFY,
        ("GRAPHIQL_ENABLED", "true"),
        ("INTROSPECTION_ENABLED", "true"),
    ])
    .expect("explicitly enabled");
    assert!(enabled.http.graphiql && enabled.http.introspection);
    let err = config(&[
        ("APP_ENV", "production"),
        KEY,
        SMTP,
        RESET,
        VERIFY,
        ("JWT_ALGORITHM", "EdDSA"),
    ])
    .expect_err("no private key");
    assert_eq!(err.var, "JWT_PRIVATE_KEY");
}

#[test]
fn generated_keys_are_kept_and_reused() {
    let dir = temp_dir();
    let vars = [("DATA_DIR", dir.as_str()), ("JWT_ALGORITHM", "EdDSA")];
    let a = config(&vars).expect("first");
    let b = config(&vars).expect("second");
    assert_eq!(
        a.tokens.secret_key.expose_secret(),
        b.tokens.secret_key.expose_secret()
    );
    assert!(a.tokens.secret_key.expose_secret().len() >= MIN_SECRET_BYTES);
    let key = |c: &Config| match &c.tokens.signing {
        JwtSigning::EdDsa { key, .. } => key.to_bytes(),
        JwtSigning::Hs256 { .. } => panic!("EdDSA expected"),
    };
    assert_eq!(key(&a), key(&b));
    // Kept as a PKCS#8 PEM, the key in use.
    let pem = std::fs::read_to_string(std::path::Path::new(&dir).join("jwt-ed25519.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let kept = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(kept.to_bytes(), key(&a));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_ed25519_key_names_its_variable() {
    let err = config(&[
        KEY,
        ("JWT_ALGORITHM", "EdDSA"),
        (
            "JWT_PRIVATE_KEY",
            "-----BEGIN PRIVATE KEY-----\\nnot base64\\n-----END PRIVATE KEY-----",
        ),
    ])
    .expect_err("bad key");
    assert_eq!(err.var, "JWT_PRIVATE_KEY");
    let err = config(&[
        KEY,
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY", "/nonexistent/key.pem"),
    ])
    .expect_err("missing file");
    assert_eq!(err.var, "JWT_PRIVATE_KEY");
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = config(&[KEY]).expect("defaults");
    assert_eq!(c.http.bind_addr.to_string(), "127.0.0.1:8000");
    assert_eq!(c.tokens.access_ttl, Duration::from_secs(900));
    assert_eq!(c.tokens.refresh_ttl, Duration::from_secs(604_800));
    assert_eq!(c.tokens.refresh_reuse_grace, Duration::from_secs(10));
    assert_eq!(c.reset.ttl, Duration::from_secs(3600));
    assert!(c.database.is_sqlite() && c.redis.is_none() && c.mail.smtp_url.is_none());
    assert!(matches!(c.tokens.signing, JwtSigning::Hs256 { ref previous } if previous.is_empty()));
    assert!(c.http.trusted_proxies.is_empty() && c.http.cors_allowed_origins.is_empty());
}

#[test]
fn trusted_proxies_take_cidrs_and_addresses() {
    let c = config(&[KEY, ("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7 ,::1")]).expect("proxies");
    let shown: Vec<String> = c
        .http
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
}

#[test]
fn urls_are_masked() {
    assert_eq!(
        mask_url("postgres://app:hunter2@db/identity"),
        "postgres://app:***@db/identity"
    );
    assert_eq!(mask_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    assert_eq!(
        mask_url("redis://host/?password=secret"),
        "redis://host/?password=***"
    );
    assert_eq!(
        mask_url("rediss://u:pw@host:6380/0?Password=secret&timeout=5"),
        "rediss://u:***@host:6380/0?Password=***&timeout=5"
    );
    assert_eq!(
        mask_url("postgres://db/identity?sslmode=require&password=secret#x"),
        "postgres://db/identity?sslmode=require&password=***#x"
    );
    assert_eq!(
        mask_url(
            "redis-sentinel://:pw@s1:26379?sentinelServiceName=m&sentinelPassword=s&node=s2:26379"
        ),
        "redis-sentinel://:***@s1:26379?sentinelServiceName=m&sentinelPassword=***&node=s2:26379"
    );
}

#[test]
fn a_key_that_is_not_pem_is_not_echoed() {
    let err = keys::read_pem("JWT_PRIVATE_KEY", "MC4CAQAwBQYDK2VwBCIEIsecretkeybytes")
        .expect_err("not PEM, not a file");
    assert_eq!(err.var, "JWT_PRIVATE_KEY");
    assert!(!err.message.contains("secretkeybytes"), "{err}");
}

#[test]
fn production_on_postgres_without_redis_needs_a_declared_single_instance() {
    const SMTP: (&str, &str) = ("SMTP_URL", "smtp://127.0.0.1:2525");
    const PG: (&str, &str) = ("DATABASE_URL", "postgres://app:pw@db/identity");
    const LINK: (&str, &str) = ("PASSWORD_RESET_URL", "https://app.example/reset?t={token}");
    let err =
        config(&[("APP_ENV", "production"), KEY, SMTP, LINK, VERIFY, PG]).expect_err("no Redis");
    assert_eq!(err.var, "SINGLE_INSTANCE");
    assert!(
        err.to_string().contains("REDIS_URL") && err.to_string().contains("SINGLE_INSTANCE=true"),
        "{err}"
    );
    let single = config(&[
        ("APP_ENV", "production"),
        KEY,
        SMTP,
        LINK,
        VERIFY,
        PG,
        ("SINGLE_INSTANCE", "true"),
    ])
    .expect("declared single");
    assert!(single.single_instance);
    config(&[
        ("APP_ENV", "production"),
        KEY,
        SMTP,
        LINK,
        VERIFY,
        PG,
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ])
    .expect("shared through Redis");
    // SQLite is one process by nature; development keeps its defaults.
    config(&[("APP_ENV", "production"), KEY, SMTP, LINK, VERIFY]).expect("SQLite");
    config(&[PG]).expect("development");
}

#[test]
fn webauthn_origins_belong_to_the_rp_id() {
    let defaults = Config::from_map(&HashMap::new()).expect("defaults");
    assert_eq!(defaults.webauthn.rp_id, "localhost");
    assert_eq!(
        defaults.webauthn.origins[0].as_str(),
        "http://localhost:3000/"
    );
    let site = config(&[
        KEY,
        ("WEBAUTHN_RP_ID", "example.com"),
        (
            "WEBAUTHN_ORIGINS",
            "https://example.com, https://app.example.com:8443",
        ),
    ])
    .expect("own origins");
    assert_eq!(site.webauthn.origins.len(), 2);
    for bad in [
        "https://example.org",
        "https://notexample.com",
        "http://example.com",
        "https://example.com/login",
        "not a url",
    ] {
        let err = config(&[
            KEY,
            ("WEBAUTHN_RP_ID", "example.com"),
            ("WEBAUTHN_ORIGINS", bad),
        ])
        .expect_err(bad);
        assert_eq!(err.var, "WEBAUTHN_ORIGINS", "{bad}: {err}");
    }
    let err = config(&[KEY, ("WEBAUTHN_RP_ID", "https://example.com")]).expect_err("url");
    assert_eq!(err.var, "WEBAUTHN_RP_ID");
}

#[test]
fn social_providers_are_read_with_their_defaults() {
    let social = config(&[
        KEY,
        ("SOCIAL_PROVIDERS", "Google, github"),
        (
            "SOCIAL_REDIRECT_URLS",
            "https://app.example/cb,http://localhost:3000/cb",
        ),
        ("SOCIAL_GOOGLE_KIND", "oidc"),
        ("SOCIAL_GOOGLE_ISSUER", "https://accounts.google.com"),
        ("SOCIAL_GOOGLE_CLIENT_ID", "id-g"),
        ("SOCIAL_GOOGLE_CLIENT_SECRET", "secret-g"),
        ("SOCIAL_GOOGLE_TRUST_EMAIL", "true"),
        ("SOCIAL_GITHUB_KIND", "github"),
        ("SOCIAL_GITHUB_CLIENT_ID", "id-h"),
        ("SOCIAL_GITHUB_CLIENT_SECRET", "secret-h"),
        ("SOCIAL_GITHUB_SCOPES", "openid,user:email"),
    ])
    .expect("valid")
    .social;
    let [google, github] = social.providers.as_slice() else {
        panic!("two providers: {:?}", social.providers);
    };
    assert_eq!(
        (google.id.as_str(), google.name.as_str()),
        ("google", "Google")
    );
    assert_eq!(google.scopes, ["email", "profile"]);
    assert!(google.trust_email);
    assert!(
        matches!(&google.kind, ProviderKind::Oidc { issuer } if issuer.as_str() == "https://accounts.google.com/")
    );
    assert_eq!(github.name, "Github");
    assert!(
        !github.trust_email,
        "trusting a provider's addresses is a choice"
    );
    assert_eq!(
        github.scopes,
        ["user:email"],
        "openid is never a scope of ours to add"
    );
    let ProviderKind::Github { api_url, .. } = &github.kind else {
        panic!("github");
    };
    assert_eq!(api_url.as_str(), "https://api.github.com/");
    assert_eq!(social.redirect_urls.len(), 2);
}

#[test]
fn social_settings_name_the_variable_at_fault() {
    let google = [
        ("SOCIAL_PROVIDERS", "google"),
        ("SOCIAL_REDIRECT_URLS", "https://app.example/cb"),
        ("SOCIAL_GOOGLE_KIND", "oidc"),
        ("SOCIAL_GOOGLE_ISSUER", "https://accounts.google.com"),
        ("SOCIAL_GOOGLE_CLIENT_ID", "id"),
        ("SOCIAL_GOOGLE_CLIENT_SECRET", "secret"),
    ];
    let with = |changes: &[(&'static str, &'static str)]| {
        let mut pairs: Vec<(&str, &str)> = vec![KEY];
        pairs.extend(
            google
                .iter()
                .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k)),
        );
        pairs.extend(changes.iter().filter(|(_, v)| !v.is_empty()));
        config(&pairs).map(|_| ()).unwrap_err().var
    };
    assert_eq!(
        with(&[("SOCIAL_GOOGLE_KIND", "saml")]),
        "SOCIAL_GOOGLE_KIND"
    );
    assert_eq!(
        with(&[("SOCIAL_GOOGLE_CLIENT_ID", "")]),
        "SOCIAL_GOOGLE_CLIENT_ID"
    );
    assert_eq!(
        with(&[("SOCIAL_GOOGLE_ISSUER", "")]),
        "SOCIAL_GOOGLE_ISSUER"
    );
    assert_eq!(
        with(&[("SOCIAL_GOOGLE_ISSUER", "http://idp.example")]),
        "SOCIAL_GOOGLE_ISSUER",
        "plain http only with SOCIAL_ALLOW_INSECURE_HTTP"
    );
    assert_eq!(
        with(&[("SOCIAL_REDIRECT_URLS", "")]),
        "SOCIAL_REDIRECT_URLS"
    );
    assert_eq!(
        with(&[("SOCIAL_REDIRECT_URLS", "http://app.example/cb")]),
        "SOCIAL_REDIRECT_URLS"
    );
    assert_eq!(
        with(&[("SOCIAL_PROVIDERS", "google,google")]),
        "SOCIAL_PROVIDERS"
    );
    assert_eq!(with(&[("SOCIAL_PROVIDERS", "goo-gle")]), "SOCIAL_PROVIDERS");
    assert_eq!(
        with(&[("SOCIAL_GOOGLE_TRUST_EMAIL", "maybe")]),
        "SOCIAL_GOOGLE_TRUST_EMAIL"
    );
}
