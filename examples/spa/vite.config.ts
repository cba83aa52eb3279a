// The app on http://localhost:3000; /graphql and /oauth go to the service, so the app
// and the API share one origin (no CORS, and the SameSite=Strict cookie just works).
// IDENTITY_API points elsewhere than a local `cargo run` (http://localhost:8000).
import { defineConfig } from "vite";

const api = process.env.IDENTITY_API ?? "http://localhost:8000";
// changeOrigin stays false: the service sees Host: localhost:3000, the page's origin.
const proxy = { "/graphql": { target: api }, "/oauth": { target: api } };

export default defineConfig({
  server: { port: 3000, strictPort: true, proxy },
  preview: { port: 3000, strictPort: true, proxy },
});
