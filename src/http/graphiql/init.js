// The document GraphiQL opens with: the operations a developer tries first.
const FIRST_DOCUMENT = `# Welcome to the identity API. Run an operation with the ▶ button; put the
# accessToken you get into the Headers tab (Authorization: Bearer …).

mutation Register {
  register(input: {email: "ada@example.com", fullName: "Ada Lovelace",
                   password: "correct horse battery", passwordConfirm: "correct horse battery"}) {
    accessToken refreshToken expiresIn
    user { id email emailVerified }
  }
}

mutation Login {
  login(input: {email: "ada@example.com", password: "correct horse battery"}) {
    accessToken refreshToken expiresIn
  }
}

# With TOTP on, Login answers MFA_REQUIRED with extensions.mfaToken:
mutation SecondStep($mfaToken: String!, $code: String!) {
  verifyMfa(input: {mfaToken: $mfaToken, totpCode: $code}) { accessToken refreshToken }
}

query Me {
  me { id email fullName emailVerified dateJoined lastLogin }
  mfaStatus { totpEnabled passkeyCount recoveryCodesRemaining }
}

mutation Refresh($refreshToken: String!) {
  refreshToken(refreshToken: $refreshToken) { accessToken refreshToken }
}

query Sessions {
  mySessions { id current browser os ipAddress lastUsedAt aal authMethods }
}

mutation Logout($refreshToken: String!) {
  logout(refreshToken: $refreshToken)
}
`;

// Starts GraphiQL against this server's /graphql endpoint. Loaded as a file, not
// inline, so the page's Content-Security-Policy can forbid inline scripts.
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({
      url: new URL("/graphql", window.location.origin).toString(),
    }),
    defaultEditorToolsVisibility: true,
    defaultQuery: FIRST_DOCUMENT,
    defaultHeaders: JSON.stringify({ Authorization: "Bearer <accessToken>" }, null, 2),
  }),
);
