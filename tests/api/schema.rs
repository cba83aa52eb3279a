//! The GraphQL schema: the committed file and the public contract.

/// `schema.graphql` must always equal the schema the server serves.
#[test]
fn schema_file_matches_the_served_schema() {
    let served = identity::graphql::sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == served,
        "schema.graphql differs from the served schema.\n\
         Regenerate it with `cargo run -- print-schema --output schema.graphql` \
         (or `UPDATE_SCHEMA=1 cargo test schema_file`), and review the diff."
    );
}

/// The SDL without descriptions, each field's arguments on its line:
/// `confirmTotpEnrollment(enrollmentId: ID!, code: String!): MfaEnabled!`.
fn signatures(sdl: &str) -> String {
    let mut out = String::new();
    let mut in_description = false;
    let mut open_args = false;
    for line in sdl.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("\"\"\"") {
            // A one-line description opens and closes on the same line.
            let closes_here = trimmed.len() > 3 && trimmed.ends_with("\"\"\"");
            if !closes_here {
                in_description = !in_description;
            }
            continue;
        }
        if in_description || trimmed.is_empty() {
            continue;
        }
        if open_args {
            if trimmed.starts_with(')') {
                out.push_str(trimmed);
                out.push('\n');
                open_args = false;
            } else {
                if !out.ends_with('(') {
                    out.push(' ');
                }
                out.push_str(trimmed);
            }
            continue;
        }
        out.push_str(line);
        if trimmed.ends_with('(') {
            open_args = true;
        } else {
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_schema_has_the_public_contract() {
    let sdl = signatures(&identity::graphql::sdl());
    for line in [
        "me: User!",
        "register(input: RegisterInput!): AuthPayload!",
        "login(input: LoginInput!): AuthPayload!",
        // Wave 2 (cookie mode): the refresh token may come from the cookie.
        "refreshToken(refreshToken: String): AuthPayload!",
        "logout(refreshToken: String): Boolean!",
        "\trefreshToken: String\n",
        "requestPasswordReset(email: String!): Boolean!",
        "resetPassword(input: ResetPasswordInput!): Boolean!",
        "accessToken: String!",
        "expiresIn: Int!",
        "lastLogin: DateTime",
        "dateJoined: DateTime!",
        "passwordConfirm: String!",
        "newPasswordConfirm: String!",
        "scalar DateTime",
        "myData: JSON!",
        "requestAccountDeletion(confirm: String!): DateTime!",
        "cancelAccountDeletion(token: String!): Boolean!",
        "requestEmailChange(newEmail: String!): Boolean!",
        "confirmEmailChange(token: String!): Boolean!",
        "beginTotpEnrollment: TotpEnrollment!",
        "confirmTotpEnrollment(enrollmentId: ID!, code: String!): MfaEnabled!",
        "disableTotp: Boolean!",
        "regenerateRecoveryCodes: [String!]!",
        "verifyMfa(input: VerifyMfaInput!): AuthPayload!",
        "mfaStatus: MfaStatus!",
        // Social login.
        "socialProviders: [SocialProvider!]!",
        "myIdentities: [Identity!]!",
        "startSocialLogin(input: StartSocialLoginInput!): SocialRedirect!",
        "startIdentityLink(input: StartSocialLoginInput!): SocialRedirect!",
        "completeSocialLogin(code: String!, codeVerifier: String!): SocialLoginResult!",
        "linkPendingIdentity(linkToken: String!): Identity!",
        "unlinkIdentity(id: ID!): Boolean!",
        "union SocialLoginResult = AuthPayload | AccountLinkRequired",
        "authorizationUrl: String!",
        "linkToken: String!",
        "codeChallenge: String!",
        "redirectTo: String!",
    ] {
        assert!(sdl.contains(line), "missing `{line}` in:\n{sdl}");
    }
}

/// What GraphiQL's docs explorer and codegen show: every type, field, argument, input
/// field and enum value of ours has a description.
#[tokio::test]
async fn every_type_field_and_argument_is_described() {
    let schema = identity::graphql::schema_builder().finish();
    let query = "{ __schema { types { name kind description
        fields { name description args { name description } }
        inputFields { name description }
        enumValues { name description } } } }";
    let response = schema.execute(query).await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let data = response.data.into_json().unwrap();
    let described = |value: &serde_json::Value| {
        value["description"]
            .as_str()
            .is_some_and(|d| !d.trim().is_empty())
    };
    let mut missing = Vec::new();
    for ty in data["__schema"]["types"].as_array().unwrap() {
        let name = ty["name"].as_str().unwrap();
        // GraphQL's own types and scalars describe themselves (or need not).
        if name.starts_with("__") || ["String", "Boolean", "Int", "Float", "ID"].contains(&name) {
            continue;
        }
        if !described(ty) {
            missing.push(name.to_owned());
        }
        for field in ty["fields"].as_array().into_iter().flatten() {
            let field_name = field["name"].as_str().unwrap();
            if !described(field) {
                missing.push(format!("{name}.{field_name}"));
            }
            for arg in field["args"].as_array().into_iter().flatten() {
                if !described(arg) {
                    missing.push(format!("{name}.{field_name}({})", arg["name"]));
                }
            }
        }
        for list in ["inputFields", "enumValues"] {
            for item in ty[list].as_array().into_iter().flatten() {
                if !described(item) {
                    missing.push(format!("{name}.{}", item["name"].as_str().unwrap()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} without a description:\n{}",
        missing.len(),
        missing.join("\n")
    );
}
