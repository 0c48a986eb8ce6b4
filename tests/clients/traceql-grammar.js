#!/usr/bin/env node
// Reads a JSON array of TraceQL queries on stdin and prints a JSON array of booleans:
// whether Grafana's published TraceQL grammar (@grafana/lezer-traceql) parses each query
// without any error node. Used by shared/traceql/tests/corpus.rs.
'use strict';

const { parser } = require('@grafana/lezer-traceql');

function parsesCleanly(query) {
  const tree = parser.parse(query);
  let ok = true;
  tree.iterate({
    enter(node) {
      if (node.type.isError) {
        ok = false;
        return false;
      }
      return ok;
    },
  });
  return ok;
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  input += chunk;
});
process.stdin.on('end', () => {
  const queries = JSON.parse(input);
  if (!Array.isArray(queries) || !queries.every((q) => typeof q === 'string')) {
    process.stderr.write('expected a JSON array of strings on stdin\n');
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(queries.map(parsesCleanly)) + '\n');
});
