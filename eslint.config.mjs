// ESLint for the TypeScript of the program, tools, dev support, tests and benchmarks
// (`npm run lint`, part of `npm test`). The host agents (.mjs) are type-checked strictly
// instead (tsconfig.agents.json), and so are components/forgejo/*.js (CommonJS for the
// engine's provider process; checkJs in tsconfig.json). Formatting is Prettier's (.prettierrc.json).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/**", "bin/**", "**/*.mjs", "**/*.js"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      // Caught errors and deliberately unused parameters are named with a leading underscore.
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      // Test and dev code parses JSON from servers and CLIs; `any` there is explicit, not accidental.
      "@typescript-eslint/no-explicit-any": "off",
      // require() is used for lazy loading of optional parts (the kubernetes SDK, os in tests).
      "@typescript-eslint/no-require-imports": "off",
      // Tests match aligned, printed reports: literal runs of spaces read like the output.
      "no-regex-spaces": "off",
      // \`let x = fallback; try { x = parse() } catch { ... }\` keeps the fallback visible at the
      // declaration even when every catch path throws; not a bug.
      "no-useless-assignment": "off",
    },
  },
);
