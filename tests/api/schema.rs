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

#[test]
fn the_schema_has_the_public_contract() {
    let sdl = identity::graphql::sdl();
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
    ] {
        assert!(sdl.contains(line), "missing `{line}` in:\n{sdl}");
    }
}
