/**
 * BENCHMARKS.md: the machine, a summary of the targets, then one section per benchmark family with its table,
 * notes and charts. Pure functions of the results, so tests can render into a string.
 *
 * A row (what a group's `run` returns, see bench/README.md):
 *   { name, unit, convspec: number|null, peer: number|null, better?: 'lower'|'higher',
 *     target?: { on: 'ratio'|'convspec', op: '<'|'<='|'>'|'>=', value: number, text?: string },
 *     unavailable?: { convspec?: string, peer?: string }, note?: string, peerLabel?: string }
 * ratio = convspec / peer. For times and sizes lower is better (a ratio of 0.1 is ten times faster); for
 * throughputs higher is better. A target is met, unmet, or not measured when a figure it needs is missing.
 */

const OPS = {
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
};

const OP_TEXT = { '<': '<', '<=': '≤', '>': '>', '>=': '≥' };

function isNumber(x) {
  return typeof x === 'number' && Number.isFinite(x);
}

/** convspec / peer, or null when either is missing or the peer is zero. */
export function ratioOf(row) {
  return isNumber(row.convspec) && isNumber(row.peer) && row.peer !== 0 ? row.convspec / row.peer : null;
}

/** Formats a number with `digits` significant digits, thousands separated, no exponent for usual ranges. */
export function formatNumber(value, digits = 3) {
  if (!isNumber(value)) return 'n/a';
  if (value === 0) return '0';
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** A value with its unit: seconds and milliseconds, MiB, MB (file sizes given in bytes), img/s, or bare. */
export function formatValue(value, unit) {
  if (!isNumber(value)) return 'n/a';
  switch (unit) {
    case 's':
      return value < 1 ? `${formatNumber(value * 1000)} ms` : `${formatNumber(value)} s`;
    case 'ms':
      return `${formatNumber(value)} ms`;
    case 'bytes':
      return `${formatNumber(value / 1e6, 4)} MB`;
    case 'MiB':
      return `${formatNumber(value)} MiB`;
    case undefined:
    case '':
      return formatNumber(value);
    default:
      return `${formatNumber(value)} ${unit}`;
  }
}

/** A ratio: three significant digits, or three to four decimals near 1, where 1.0004 must not read "1.000" (or 1.02 "1.0"). */
export function formatRatioNumber(ratio) {
  if (!isNumber(ratio)) return 'n/a';
  const distance = Math.abs(ratio - 1);
  return distance < 0.01 ? ratio.toFixed(4) : distance < 0.1 ? ratio.toFixed(3) : formatNumber(ratio);
}

export function formatRatio(ratio) {
  return isNumber(ratio) ? `${formatRatioNumber(ratio)}×` : 'n/a';
}

/** The target in words: "ratio ≤ 1.02", "convspec < 0.5 s". */
export function describeTarget(target, unit) {
  if (!target) return '';
  if (target.text) return target.text;
  const op = OP_TEXT[target.op] ?? target.op;
  return target.on === 'ratio' ? `ratio ${op} ${target.value}` : `${op} ${formatValue(target.value, unit)}`;
}

/**
 * Evaluates a row's target: { status: 'met'|'unmet'|'not measured'|'none', measured, text }.
 * `measured` is the number compared (the ratio or convspec's figure).
 */
export function evaluateTarget(row) {
  const target = row.target;
  if (!target) return { status: 'none', measured: null, text: '' };
  const compare = OPS[target.op];
  if (!compare) throw new Error(`row '${row.name}': unknown target operator '${target.op}'`);
  const measured = target.on === 'ratio' ? ratioOf(row) : row.convspec;
  if (!isNumber(measured)) return { status: 'not measured', measured: null, text: describeTarget(target, row.unit) };
  return { status: compare(measured, target.value) ? 'met' : 'unmet', measured, text: describeTarget(target, row.unit) };
}

/** The status cell: "✅ met", "❌ unmet: ratio 0.25", "⚪ not measured". */
export function statusCell(row) {
  const result = evaluateTarget(row);
  switch (result.status) {
    case 'none':
      return '—';
    case 'met':
      return '✅ met';
    case 'not measured':
      return '⚪ not measured';
    default:
      return row.target.on === 'ratio'
        ? `❌ unmet: ratio ${formatRatioNumber(result.measured)}`
        : `❌ unmet: ${formatValue(result.measured, row.unit)}`;
  }
}

function cell(text) {
  return String(text).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function valueCell(row, side) {
  const value = row[side];
  if (isNumber(value)) return formatValue(value, row.unit);
  return row.unavailable?.[side] ? 'not available' : '—';
}

/** One family's table (markdown lines). */
export function renderTable(group) {
  const lines = [
    `| benchmark | convspec | ${cell(group.peer ?? 'peer')} | ratio | target | status |`,
    '| --- | ---: | ---: | ---: | --- | --- |',
  ];
  for (const row of group.rows) {
    const name = row.peerLabel ? `${row.name} (vs ${row.peerLabel})` : row.name;
    const target = row.target ? describeTarget(row.target, row.unit) : '—';
    lines.push(`| ${cell(name)} | ${cell(valueCell(row, 'convspec'))} | ${cell(valueCell(row, 'peer'))} | ${cell(formatRatio(ratioOf(row)))} | ${cell(target)} | ${cell(statusCell(row))} |`);
  }
  return lines;
}

/** Every row with a target, across groups: { group, row, result }. */
export function collectTargets(groups) {
  const all = [];
  for (const group of groups) for (const row of group.rows ?? []) if (row.target) all.push({ group, row, result: evaluateTarget(row) });
  return all;
}

function machineLines(machine) {
  const rows = [
    ['CPU', `${machine.cpu}${machine.simd?.length ? ` (${machine.simd.join(', ')})` : ''}`],
    ['cores', String(machine.cores)],
    ['memory', `${machine.memoryGiB} GiB`],
    ['OS', `${machine.os} (${machine.arch})`],
    ['Node', machine.node],
    ['onnxruntime-node', machine.onnxruntime],
    ['TensorFlow.js', machine.tfjs],
    ['PyTorch', machine.torch],
    ['onnx (Python)', machine.onnx],
    ['torchvision', machine.torchvision],
    ['date', machine.date],
  ];
  if (machine.commit) rows.push(['commit', machine.commit]);
  if (machine.load) rows.push(['load average (1 min) at start / end', machine.load.map((l) => l.toFixed(2)).join(' / ') + ` on ${machine.cores} cores`]);
  return ['| | |', '| --- | --- |', ...rows.map(([k, v]) => `| ${cell(k)} | ${cell(v)} |`)];
}

/** The GPU section, from the JSON bench/gpu.sh printed on a GPU machine (bench/gpu-results.json). */
export function renderGpu(gpu) {
  const out = ['## GPU (bench/gpu.sh, measured separately)', ''];
  out.push(
    `On ${gpu.gpu ?? 'an unknown GPU'}, ${gpu.date ?? 'date unknown'}${gpu.command ? `, \`${gpu.command}\`` : ''}. ` +
      'Not part of `npm run bench`; refresh with `bench/gpu.sh > bench/gpu-results.json` on a machine with an NVIDIA GPU.',
    '',
  );
  const backends = gpu.convspec && typeof gpu.convspec === 'object' && !('available' in gpu.convspec) ? Object.entries(gpu.convspec) : [];
  const torch = gpu.pytorch ?? {};
  const columns = [...backends.map(([name]) => `convspec (tfjs ${name})`), `PyTorch ${torch.torch ?? ''} CUDA`.replace('  ', ' ')];
  const ms = (v) => (isNumber(v) ? `${formatNumber(v)} ms` : 'n/a');
  const rowsSpec = [
    ...['resnet18', 'resnet50'].flatMap((m) => [1, 8].map((b) => ({
      label: `${m === 'resnet18' ? 'ResNet-18' : 'ResNet-50'}, batch ${b}, latency`,
      convspec: (f) => ms(f.inference?.ms?.[`${m}_b${b}`]),
      torch: () => ms(torch.inference_ms?.[`${m}_b${b}`]),
    }))),
    {
      label: 'Fashion-MNIST CNN training, batch 64',
      convspec: (f) => (isNumber(f.training?.imagesPerSecond) ? `${formatNumber(f.training.imagesPerSecond)} img/s` : 'n/a'),
      torch: () => (isNumber(torch.training?.images_per_s) ? `${formatNumber(torch.training.images_per_s)} img/s` : 'n/a'),
    },
    {
      label: 'raw tfjs conv 3×3 64→64, batch 8, 56×56 (backend check, not convspec code)',
      convspec: (f) => (isNumber(f.backendConv?.gflops) ? `${formatNumber(f.backendConv.gflops)} GFLOP/s` : 'n/a'),
      torch: () => '—',
    },
  ];
  out.push(`| workload | ${columns.map(cell).join(' | ')} |`, `| --- |${columns.map(() => ' ---: |').join('')}`);
  for (const r of backends.length ? rowsSpec : rowsSpec.slice(0, -1)) out.push(`| ${cell(r.label)} | ${[...backends.map(([, f]) => r.convspec(f)), r.torch()].map(cell).join(' | ')} |`);
  out.push('');
  const reasons = [];
  if (gpu.convspec?.available === false) reasons.push(`- convspec: ${gpu.convspec.reason}`);
  for (const [name, f] of backends) {
    if (f.available === false) reasons.push(`- convspec on tfjs ${name}: ${f.reason}`);
    else {
      if (f.inference?.available === false) reasons.push(`- convspec on tfjs ${name}, inference: ${f.inference.reason}`);
      if (f.training?.available === false) reasons.push(`- convspec on tfjs ${name}, training: ${f.training.reason}`);
    }
  }
  if (torch.available === false) reasons.push(`- PyTorch: ${torch.reason}`);
  if (torch.training?.error) reasons.push(`- PyTorch training: ${torch.training.error}`);
  if (reasons.length) out.push('Not available:', '', ...reasons, '');
  // Figures measured on a GPU machine outside bench/gpu.sh, with where they came from (`notes` in the JSON).
  if (Array.isArray(gpu.notes) && gpu.notes.length) out.push(...gpu.notes.map((n) => `- ${n}`), '');
  return out;
}

/**
 * The whole document. `results`: { machine, options: { quick, only, command }, seconds, groups: [{ name, title,
 * description, peer, rows, notes, charts: [{ link, title }], error, seconds }] }.
 */
export function renderMarkdown(results) {
  const { machine, options = {}, groups } = results;
  const out = [];
  out.push('# Benchmarks', '');
  out.push(
    `Produced by \`${options.command ?? 'npm run bench'}\` (bench/run.js) in ${formatValue(results.seconds, 's')}. Each figure is the median of ` +
      'several repetitions; convspec and its peer are measured side by side in the same run, alternating, on the same machine. ' +
      'ratio = convspec ÷ peer: below 1 convspec takes less time or space, above 1 it is higher (for throughputs, higher is better). ' +
      'A figure that could not be measured says so; none is estimated.' +
      (options.quick ? ' **Quick mode**: fewer repetitions, figures are rough.' : ''),
    '',
  );
  out.push('## Machine', '', ...machineLines(machine), '');
  if (machine.load && Math.max(...machine.load) > 0.5 * machine.cores) {
    out.push(`**The machine was busy during this run** (1-minute load average up to ${Math.max(...machine.load).toFixed(1)} on ${machine.cores} cores): other processes competed for the CPU, so absolute figures, and multi-threaded ones most, are unreliable.`, '');
  }

  const targets = collectTargets(groups);
  const count = (status) => targets.filter((t) => t.result.status === status).length;
  out.push('## Targets', '');
  out.push(`${count('met')} met, ${count('unmet')} unmet, ${count('not measured')} not measured.`, '');
  for (const { group, row, result } of targets) {
    if (result.status === 'met') continue;
    const what = result.status === 'unmet' ? statusCell(row).replace(/^❌ /, '') : 'not measured';
    out.push(`- ${result.status === 'unmet' ? '❌' : '⚪'} ${group.name} / ${row.name}: ${what} (target ${describeTarget(row.target, row.unit)})`);
  }
  if (targets.some((t) => t.result.status !== 'met')) out.push('');

  for (const group of groups) {
    out.push(`## ${group.title ?? group.name}`, '');
    if (group.description) out.push(group.description, '');
    if (group.error) {
      out.push(`**The group failed**: ${group.error}`, '');
      continue;
    }
    if (group.rows?.length) out.push(...renderTable(group), '');
    const missing = [];
    for (const row of group.rows ?? []) {
      for (const side of ['convspec', 'peer']) {
        const reason = row.unavailable?.[side];
        if (reason && !isNumber(row[side])) missing.push(`- ${row.name}, ${side === 'peer' ? (group.peer ?? 'peer') : 'convspec'}: ${reason}`);
      }
    }
    if (missing.length) out.push('Not available:', '', ...missing, '');
    const notes = [...(group.notes ?? []), ...(group.rows ?? []).filter((r) => r.note).map((r) => `${r.name}: ${r.note}`)];
    if (notes.length) out.push(...notes.map((n) => (n.startsWith('- ') || n.startsWith('|') ? n : `- ${n}`)), '');
    for (const chart of group.charts ?? []) out.push(`![${cell(chart.title ?? group.name)}](${chart.link})`, '');
    if (group.seconds !== undefined) out.push(`<sub>${group.name}: ${formatValue(group.seconds, 's')} to measure.</sub>`, '');
  }

  if (results.gpu) out.push(...renderGpu(results.gpu));

  out.push(
    '## Method',
    '',
    '- Whole-process figures (compile, check, export, memory) time the command from spawn to exit, interpreter start-up included, as a user waits for it.',
    '- Inference figures time `session.run` in one onnxruntime-node process for both files, alternating between them, after warm-up runs.',
    '- Peak memory is the maximum resident set size of the process (GNU time `%M`).',
    '- To add a family, see bench/README.md: one module in bench/groups/ exporting `{ name, title, run(context) }`.',
    '',
  );
  return out.join('\n');
}
