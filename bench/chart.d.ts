// Types of chart.js for the TypeScript tests.
export interface BarChartSpec {
  type?: 'bar';
  title?: string;
  unit?: string;
  log?: boolean;
  categories: string[];
  series: Array<{ name: string; values: Array<number | null | undefined> }>;
  width?: number;
  height?: number;
}

export interface LineChartSpec {
  type: 'line';
  title?: string;
  xLabel?: string;
  yLabel?: string;
  logX?: boolean;
  logY?: boolean;
  series: Array<{ name: string; points: Array<[number, number]> }>;
  width?: number;
  height?: number;
}

export function asciiOnly(text: string): string;
export function tickLabel(value: number): string;
export function linearTicks(max: number, count?: number): number[];
export function logTicks(min: number, max: number): number[];
export function renderBarChart(spec: BarChartSpec): Buffer;
export function renderLineChart(spec: LineChartSpec): Buffer;
export function writeChart(file: string, spec: BarChartSpec | LineChartSpec): string;
