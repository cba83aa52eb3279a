// Starts GraphiQL against this server's /graphql endpoint. Loaded as a file, not
// inline, so the page's Content-Security-Policy can forbid inline scripts.
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({
      url: new URL("/graphql", window.location.origin).toString(),
    }),
    defaultEditorToolsVisibility: true,
    defaultHeaders: JSON.stringify({ Authorization: "Bearer <accessToken>" }, null, 2),
  }),
);
