//! The deployment files: the container image, docker compose, and `.env.example`.

#[test]
fn the_container_builds_with_the_command_ci_runs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |f: &str| std::fs::read_to_string(format!("{root}/{f}")).unwrap();
    let dockerfile = read("Dockerfile");
    let build = read("scripts/build-release");
    assert!(build.contains("cargo build --locked --release"), "{build}");
    assert!(
        dockerfile.contains("scripts/build-release"),
        "the image builds with the CI script"
    );
    assert!(
        read(".ci/run").contains("scripts/build-release")
            || read("scripts/bench").contains("scripts/build-release")
    );
    for needle in [
        "AS build",
        "AS runtime",
        "--mount=type=cache",
        "USER 10001",
        "EXPOSE 8000",
        "HEALTHCHECK",
        "identity\", \"healthcheck",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle:?}");
    }
    let compose = read("docker-compose.yml");
    for needle in [
        "postgres:",
        "redis:",
        "mailpit",
        "condition: service_healthy",
        "healthcheck:",
        ".env.example",
    ] {
        assert!(
            compose.contains(needle),
            "docker-compose.yml lacks {needle:?}"
        );
    }
}

#[test]
fn env_example_documents_every_setting() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    let mut vars = std::collections::HashMap::new();
    vars.insert(
        "SECRET_KEY".to_owned(),
        "test-secret-key-that-is-long-enough-0123456789".to_owned(),
    );
    vars.insert(
        "DATA_DIR".to_owned(),
        std::env::temp_dir()
            .join("identity-env-example")
            .display()
            .to_string(),
    );
    let config = identity::config::Config::from_map(&vars).unwrap();
    for (name, _) in config.describe() {
        assert!(
            example.contains(name),
            "{name} is not documented in .env.example"
        );
    }
}

#[test]
fn what_building_the_image_for_real_showed_stays_fixed() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |f: &str| std::fs::read_to_string(format!("{root}/{f}")).unwrap();
    // useradd --system warns about a uid above the system range (10001).
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains("useradd --uid 10001") && !dockerfile.contains("useradd --system"),
        "{dockerfile}"
    );
    let compose = read("docker-compose.yml");
    // Over the socket, pg_isready answers ready during first-time initialisation.
    assert!(compose.contains("pg_isready -h 127.0.0.1"), "{compose}");
    // `env_file` with `path:`/`required:` needs Compose 2.24: said where users look.
    assert!(compose.contains("Compose 2.24"));
    assert!(read("README.md").contains("Compose 2.24"));
}

#[test]
fn the_scale_profile_puts_two_instances_behind_the_proxy_config() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |f: &str| std::fs::read_to_string(format!("{root}/{f}")).unwrap();
    let compose = read("docker-compose.yml");
    for needle in [
        "profiles: [scale]",
        "identity-a:",
        "identity-b:",
        "./deploy/nginx.conf:/etc/nginx/identity.conf:ro",
        "TRUSTED_PROXIES: 172.30.240.10/32",
        "ipv4_address: 172.30.240.10",
    ] {
        assert!(
            compose.contains(needle),
            "docker-compose.yml lacks {needle:?}"
        );
    }
    let nginx = read("deploy/nginx.conf");
    for needle in [
        "server identity-a:8000",
        "server identity-b:8000",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "keepalive_timeout 4s;",
        "proxy_next_upstream error timeout;",
    ] {
        assert!(nginx.contains(needle), "deploy/nginx.conf lacks {needle:?}");
    }
    assert!(
        !nginx
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("non_idempotent")),
        "POSTs must not be resent"
    );
}

/// `data:` of a ConfigMap manifest as written in deploy/kubernetes (one `KEY: value` a
/// line, values plain or double-quoted).
fn config_map_data(manifest: &str) -> std::collections::HashMap<String, String> {
    manifest
        .lines()
        .skip_while(|l| *l != "data:")
        .skip(1)
        .take_while(|l| l.starts_with("  ") || l.is_empty())
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.trim().split_once(": ").expect("KEY: value");
            (key.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect()
}

#[test]
fn the_kubernetes_config_map_is_a_valid_production_configuration() {
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/configmap.yaml"
    ))
    .unwrap();
    let mut vars = config_map_data(&manifest);
    assert_eq!(vars["APP_ENV"], "production");
    assert_eq!(vars["RUN_MIGRATIONS"], "false");
    let known = identity::config::known_variables();
    for name in vars.keys() {
        assert!(known.contains(&name.as_str()), "{name} is not a setting");
    }
    // What the Secret `identity-secrets` adds (deploy/kubernetes/README.md).
    for (name, value) in [
        (
            "DATABASE_URL",
            "postgres://identity:pw@db.internal:5432/identity",
        ),
        ("REDIS_URL", "redis://redis.internal:6379"),
        ("SMTP_URL", "smtp://smtp.internal:25"),
        (
            "SECRET_KEY",
            "k8s-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
        ),
    ] {
        vars.insert(name.to_owned(), value.to_owned());
    }
    let config = identity::config::Config::from_map(&vars)
        .unwrap_or_else(|e| panic!("deploy/kubernetes/configmap.yaml: {e}"));
    let described: std::collections::HashMap<_, _> = config.describe().into_iter().collect();
    assert_eq!(described["PASSWORD_HASH_CONCURRENCY"], "2");
}
