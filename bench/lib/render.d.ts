// Types of render.js for the TypeScript tests (the harness itself is plain ESM JavaScript).
export type TargetOperator = '<' | '<=' | '>' | '>=';

export interface Target {
  on: 'ratio' | 'convspec';
  op: TargetOperator;
  value: number;
  text?: string;
}

export interface Row {
  name: string;
  unit?: string;
  convspec: number | null;
  peer: number | null;
  better?: 'lower' | 'higher';
  target?: Target;
  unavailable?: { convspec?: string; peer?: string };
  note?: string;
  peerLabel?: string;
  samples?: { convspec?: number[]; peer?: number[] };
}

export interface GroupResult {
  name: string;
  title?: string;
  description?: string;
  peer?: string;
  rows: Row[];
  notes?: string[];
  charts?: Array<{ title?: string; link: string }>;
  error?: string;
  seconds?: number;
  measuredAt?: string;
}

export interface Machine {
  cpu: string;
  simd?: string[];
  cores: number;
  memoryGiB: number;
  os: string;
  arch: string;
  node: string;
  onnxruntime: string;
  tfjs: string;
  torch: string;
  onnx: string;
  torchvision: string;
  python?: string;
  date: string;
  commit?: string;
  load?: number[];
}

export interface Results {
  machine: Machine;
  options?: { quick?: boolean; only?: string[]; command?: string };
  seconds: number;
  groups: GroupResult[];
}

export type TargetStatus = 'met' | 'unmet' | 'not measured' | 'none';

export function ratioOf(row: Row): number | null;
export function formatNumber(value: number | null | undefined, digits?: number): string;
export function formatValue(value: number | null | undefined, unit?: string): string;
export function formatRatioNumber(ratio: number | null | undefined): string;
export function formatRatio(ratio: number | null | undefined): string;
export function describeTarget(target: Target | undefined, unit?: string): string;
export function evaluateTarget(row: Row): { status: TargetStatus; measured: number | null; text: string };
export function statusCell(row: Row): string;
export function renderTable(group: GroupResult): string[];
export function collectTargets(groups: GroupResult[]): Array<{ group: GroupResult; row: Row; result: ReturnType<typeof evaluateTarget> }>;
export function renderMarkdown(results: Results): string;
export function renderGpu(gpu: Record<string, unknown>): string[];
