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
