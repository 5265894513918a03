// Parses an AsyncAPI document with the official parser (@asyncapi/parser) and prints what it finds.
// Exit codes: 0 valid (warnings allowed), 1 errors in the document, 2 the file could not be read.
// Usage: node check.mjs ../asyncapi.json
import { readFile } from 'node:fs/promises';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const path = process.argv[2] ?? new URL('../asyncapi.json', import.meta.url).pathname;
let text;
try {
  text = await readFile(path, 'utf8');
} catch (err) {
  console.error(`cannot read ${path}: ${err.message}`);
  process.exit(2);
}

const names = { [DiagnosticSeverity.Error]: 'error', [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info', [DiagnosticSeverity.Hint]: 'hint' };
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text, { source: path });
for (const d of diagnostics) {
  const where = d.path && d.path.length ? d.path.join('/') : '(document)';
  console.log(`${names[d.severity] ?? d.severity}: ${where}: ${d.message} [${d.code}]`);
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
if (document === undefined || errors.length) {
  console.log(`invalid: ${errors.length} error(s) in ${path}`);
  process.exit(1);
}
console.log(`valid: AsyncAPI ${document.version()}, ${document.channels().length} channels, ` +
  `${document.operations().length} operations, ${document.messages().length} messages`);
