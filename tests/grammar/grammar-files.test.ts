/**
 * The published grammar files stay in step with the implementation: the JSON Schema file is the schema the
 * validator uses, the TextMate grammar is valid JSON whose regexes compile and which names every op and keyword,
 * and the EBNF names every keyword.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SPEC_SCHEMA } from '../../src/elaborate/json-spec.js';
import { OPS } from '../../src/elaborate/ops.js';
import { ConvspecCstParser } from '../../src/parser/grammar.js';
import { KEYWORDS } from '../../src/parser/index.js';
import { createLexer } from '../../src/parser/tokens.js';

describe('grammar files', () => {
  // The command builds both without chevrotain's validations; they run here instead, and throw on any finding.
  it('the parser passes chevrotain\'s grammar validations (no ambiguity, no left recursion)', () => {
    expect(() => new ConvspecCstParser({ validate: true })).not.toThrow();
  });

  it('the lexer passes chevrotain\'s token-pattern validations', () => {
    expect(() => createLexer({ validate: true })).not.toThrow();
  });

  it('grammar/spec.schema.json is the schema the validator uses', () => {
    const published = JSON.parse(fs.readFileSync('grammar/spec.schema.json', 'utf8'));
    expect(published).toEqual(JSON.parse(JSON.stringify(SPEC_SCHEMA)));
  });

  it('the TextMate grammar compiles and highlights every op and keyword', () => {
    const grammar = JSON.parse(fs.readFileSync('grammar/convspec.tmLanguage.json', 'utf8'));
    const patterns: string[] = [];
    const walk = (node: unknown) => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if ((key === 'match' || key === 'begin' || key === 'end') && typeof value === 'string') patterns.push(value);
          else walk(value);
        }
      }
    };
    walk(grammar);
    for (const pattern of patterns) expect(() => new RegExp(pattern)).not.toThrow();
    const text = JSON.stringify(grammar);
    for (const op of OPS.keys()) expect(text, `op ${op}`).toContain(op);
    for (const keyword of KEYWORDS) expect(text, `keyword ${keyword}`).toContain(keyword);
    const opPattern = new RegExp(patterns.find((p) => p.includes('conv1d'))!);
    expect(opPattern.test('x -> sepconv(64, 3)')).toBe(true);
  });

  it('the EBNF lists every keyword', () => {
    const ebnf = fs.readFileSync('grammar/convspec.ebnf', 'utf8');
    for (const keyword of KEYWORDS) expect(ebnf, keyword).toContain(`"${keyword}"`);
  });
});
