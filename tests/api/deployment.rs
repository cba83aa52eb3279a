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
