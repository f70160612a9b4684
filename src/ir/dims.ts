/**
 * Symbolic dimensions.
 *
 * A dimension is a number or a polynomial with integer coefficients over atoms, where an atom is a named symbol
 * (`N`, `H`) or `floor(p / d)` of another polynomial p by a positive integer d. This is closed under what shape
 * inference needs — `+`, `−`, `×` and floor/ceil division by constants — so the output height of a strided
 * convolution on a symbolic input stays exact: `floor((H + 2p − k)/s) + 1`, not an opaque "?".
 *
 * Canonical form: terms sorted by the text of their monomial, zero coefficients dropped, and
 * `floor((a + d·q)/d) = floor(a/d) + q` applied, so two equal expressions print (and compare) the same.
 */

export type Atom = { readonly kind: 'symbol'; readonly name: string } | { readonly kind: 'floordiv'; readonly numerator: Poly; readonly divisor: number };

interface Term {
  readonly atoms: readonly Atom[];
  readonly coefficient: number;
}

/** A non-constant polynomial. Constant results are returned as plain numbers. */
export interface Poly {
  readonly kind: 'poly';
  readonly terms: readonly Term[];
  /** The canonical text, also the identity for comparisons. */
  readonly key: string;
}

export type Dim = number | Poly;

export function isSymbolic(d: Dim): d is Poly {
  return typeof d !== 'number';
}

export function symbol(name: string): Poly {
  return make([{ atoms: [{ kind: 'symbol', name }], coefficient: 1 }]);
}

function atomKey(atom: Atom): string {
  return atom.kind === 'symbol' ? atom.name : `floor((${atom.numerator.key})/${atom.divisor})`;
}

function monomialKey(atoms: readonly Atom[]): string {
  return atoms.map(atomKey).join('*');
}

function termsOf(d: Dim): Term[] {
  if (typeof d === 'number') return d === 0 ? [] : [{ atoms: [], coefficient: d }];
  return [...d.terms];
}

/** Sorts, merges like terms and drops zeros; a result without atoms is a number. */
function make(terms: Term[]): Dim & Poly;
function make(terms: Term[]): Dim;
function make(terms: Term[]): Dim {
  const merged = new Map<string, Term>();
  for (const term of terms) {
    const atoms = [...term.atoms].sort((a, b) => (atomKey(a) < atomKey(b) ? -1 : atomKey(a) > atomKey(b) ? 1 : 0));
    const key = monomialKey(atoms);
    const previous = merged.get(key);
    merged.set(key, { atoms, coefficient: (previous?.coefficient ?? 0) + term.coefficient });
  }
  const kept = [...merged.entries()].filter(([, t]) => t.coefficient !== 0).sort(([a], [b]) => compareMonomials(a, b));
  if (kept.length === 0) return 0;
  if (kept.length === 1 && kept[0]![1].atoms.length === 0) return kept[0]![1].coefficient;
  const list = kept.map(([, t]) => t);
  return { kind: 'poly', terms: list, key: render(list) };
}

/** Constant term last, otherwise by monomial text, so `H + 1` rather than `1 + H`. */
function compareMonomials(a: string, b: string): number {
  if (a === b) return 0;
  if (a === '') return 1;
  if (b === '') return -1;
  return a < b ? -1 : 1;
}

function render(terms: readonly Term[]): string {
  let text = '';
  terms.forEach((term, index) => {
    const magnitude = Math.abs(term.coefficient);
    const monomial = monomialKey(term.atoms);
    const body = monomial === '' ? String(magnitude) : magnitude === 1 ? monomial : `${magnitude}*${monomial}`;
    if (index === 0) text = term.coefficient < 0 ? `-${body}` : body;
    else text += term.coefficient < 0 ? ` - ${body}` : ` + ${body}`;
  });
  return text;
}

export function add(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  return make([...termsOf(a), ...termsOf(b)]);
}

export function sub(a: Dim, b: Dim): Dim {
  return add(a, scale(b, -1));
}

export function scale(a: Dim, k: number): Dim {
  if (typeof a === 'number') return a * k;
  return make(a.terms.map((t) => ({ atoms: t.atoms, coefficient: t.coefficient * k })));
}

export function mul(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  const out: Term[] = [];
  for (const x of termsOf(a)) for (const y of termsOf(b)) out.push({ atoms: [...x.atoms, ...y.atoms], coefficient: x.coefficient * y.coefficient });
  return make(out);
}

/** floor(a / d) for a positive integer d. */
export function floorDiv(a: Dim, d: number): Dim {
  if (!Number.isInteger(d) || d <= 0) throw new Error(`floorDiv by ${d}`);
  if (typeof a === 'number') return Math.floor(a / d);
  if (d === 1) return a;
  // Pull out what divides exactly: whole multiples of d in each coefficient and in the constant.
  const whole: Term[] = [];
  const rest: Term[] = [];
  for (const term of a.terms) {
    const quotient = Math.floor(term.coefficient / d);
    const remainder = term.coefficient - quotient * d;
    if (quotient !== 0) whole.push({ atoms: term.atoms, coefficient: quotient });
    if (remainder !== 0) rest.push({ atoms: term.atoms, coefficient: remainder });
  }
  const remainderPoly = make(rest);
  if (typeof remainderPoly === 'number') return add(make(whole), Math.floor(remainderPoly / d));
  // floor(floor(x/a)/b) = floor(x/(a·b))
  if (remainderPoly.terms.length === 1) {
    const only = remainderPoly.terms[0]!;
    if (only.coefficient === 1 && only.atoms.length === 1 && only.atoms[0]!.kind === 'floordiv') {
      const inner = only.atoms[0]!;
      return add(make(whole), floorDiv(inner.numerator, inner.divisor * d));
    }
  }
  const atom: Atom = { kind: 'floordiv', numerator: remainderPoly, divisor: d };
  return add(make(whole), make([{ atoms: [atom], coefficient: 1 }]));
}

/** ceil(a / d) = floor((a + d − 1) / d). */
export function ceilDiv(a: Dim, d: number): Dim {
  return floorDiv(add(a, d - 1), d);
}

export function equalDims(a: Dim, b: Dim): boolean {
  if (typeof a === 'number' || typeof b === 'number') return a === b;
  return a.key === b.key;
}

export function dimToString(d: Dim): string {
  return typeof d === 'number' ? String(d) : d.key;
}

export function shapeToString(shape: readonly Dim[]): string {
  return `[${shape.map(dimToString).join(', ')}]`;
}

/** JSON form for summaries: numbers stay numbers, symbolic dimensions become their text. */
export function dimToJson(d: Dim): number | string {
  return typeof d === 'number' ? d : d.key;
}

/** Substitutes numbers for symbols; returns a number when every symbol is bound. */
export function evaluateDim(d: Dim, bindings: ReadonlyMap<string, number>): Dim {
  if (typeof d === 'number') return d;
  let result: Dim = 0;
  for (const term of d.terms) {
    let value: Dim = term.coefficient;
    for (const atom of term.atoms) {
      const atomValue: Dim =
        atom.kind === 'symbol' ? (bindings.get(atom.name) ?? symbol(atom.name)) : floorDiv(evaluateDim(atom.numerator, bindings), atom.divisor);
      value = mul(value, atomValue);
    }
    result = add(result, value);
  }
  return result;
}

/** Symbols appearing in a dimension. */
export function symbolsOf(d: Dim, into = new Set<string>()): Set<string> {
  if (typeof d === 'number') return into;
  for (const term of d.terms) {
    for (const atom of term.atoms) {
      if (atom.kind === 'symbol') into.add(atom.name);
      else symbolsOf(atom.numerator, into);
    }
  }
  return into;
}

/** Product of the dimensions, or undefined when a factor is symbolic. */
export function knownProduct(dims: readonly Dim[]): number | undefined {
  let product = 1;
  for (const d of dims) {
    if (typeof d !== 'number') return undefined;
    product *= d;
  }
  return product;
}

/** The dimension in the language's expression syntax (`floordiv(H + 1, 2)`), for printed specs. */
export function dimToExpression(d: Dim): string {
  if (typeof d === 'number') return String(d);
  let text = '';
  d.terms.forEach((term, index) => {
    const magnitude = Math.abs(term.coefficient);
    const factors = term.atoms.map((atom) => (atom.kind === 'symbol' ? atom.name : `floordiv(${dimToExpression(atom.numerator)}, ${atom.divisor})`));
    const body = factors.length === 0 ? String(magnitude) : magnitude === 1 ? factors.join(' * ') : `${magnitude} * ${factors.join(' * ')}`;
    if (index === 0) text = term.coefficient < 0 ? `-${body}` : body;
    else text += term.coefficient < 0 ? ` - ${body}` : ` + ${body}`;
  });
  return text;
}
