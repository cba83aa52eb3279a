// Types for every operation in src/ from the service's schema. The output (src/gql/)
// is committed, so `npm run dev` needs no generation step; run `npm run codegen`
// after changing an operation or the schema (scripts/e2e fails if it is stale).
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/**/*.ts", "!src/gql/**"],
  generates: {
    "src/gql/": {
      preset: "client",
      presetConfig: { fragmentMasking: false },
      config: {
        scalars: { DateTime: "string", JSON: "unknown" },
        useTypeImports: true,
        enumsAsTypes: true,
      },
    },
  },
  ignoreNoDocuments: false,
};
export default config;
