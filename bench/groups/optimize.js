/**
 * Int8 quantization and pruning of a ResNet-style Fashion-MNIST model trained by convspec: specs/fashion_resnet.cnn
 * with the weights in bench/models/FashionResNet.safetensors, made by
 *
 *   convspec train specs/fashion_resnet.cnn --data fashion-mnist --epochs 3 -o DIR   (seed 42, wasm, 1 thread)
 *
 * Quantization: `convspec quantize` (MinMax calibration on 10 batches of 32 training images, QDQ, uint8
 * activations and int8 per-channel weights) — accuracy of the float and the int8 file in ONNX Runtime on the whole
 * test split, file sizes, and ONNX Runtime latency at batch 8 with 2 threads. ONNX Runtime's own quantizer is
 * Python-only and not packaged for Debian, so the peer is its published figure (in the notes), not a run.
 *
 * Pruning: `convspec prune` — structured, half of every prunable conv's filters by L1 norm, then 2 epochs of
 * fine-tuning on the first 30,000 training images; unstructured, 80 % of every conv and dense weight with TF-MOT's
 * polynomial schedule during 2 epochs on the first 15,000 (the bench's time budget: about 940 and 470 steps of
 * batch 64, at the spec's constant Adam learning rate; a cosine decay recovered less in both modes). Batch-norm
 * statistics are re-estimated after pruning and after fine-tuning. Accuracy on the whole test split. The peer of
 * each row is the unpruned model, measured by the same command.
 *
 * Targets (issue "passes"): int8 within 0.5 points of float, ≥ 1.5× faster at batch 8 with 2 threads, ≥ 3.5×
 * smaller; structured pruning MACs −40 %, latency −30 %, accuracy within 1 point; unstructured 80 % within 1 point.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { failureReason } from '../lib/proc.js';
import { DEBIAN_FASHION_MNIST, fashionMnistDirectory, writeFashionSubset } from '../lib/train-cli.js';

export const name = 'optimize';
export const title = 'Int8 quantization and pruning';
export const order = 35;
export const peer = 'float model';
export const description =
  'specs/fashion_resnet.cnn (a 3×3 stem and three stages of two basic residual blocks, 16/32/64 channels; 175k parameters) with weights ' +
  'trained by `convspec train` (bench/models/FashionResNet.safetensors). `convspec quantize` and `convspec prune` as a user runs them; ' +
  'accuracies in points on the test split, sizes in bytes of the ONNX file, latencies in ONNX Runtime (median ms, batch 8, 2 threads). ' +
  'The peer column is the float, unpruned model measured by the same command.';

const SPEC = 'specs/fashion_resnet.cnn';
const MODEL = 'FashionResNet';
/** Training images for fine-tuning: structured, unstructured (the unstructured model is 4× dearer per step). */
const FINETUNE_IMAGES = { structured: 30_000, unstructured: 15_000 };
const FINETUNE_EPOCHS = 2;

export async function run(ctx) {
  const weights = path.join(ctx.root, 'bench', 'models', `${MODEL}.safetensors`);
  if (!existsSync(weights)) ctx.unavailable(`${path.relative(ctx.root, weights)} is missing: train it with \`convspec train ${SPEC} --data fashion-mnist --epochs 3 -o bench/models\``);
  const source = fashionMnistDirectory(ctx.root);
  const full = source === DEBIAN_FASHION_MNIST;
  const images = (mode) => (ctx.quick ? 3_000 : FINETUNE_IMAGES[mode]);
  const subset = (mode) => writeFashionSubset(source, ctx.tmp(`optimize/data-${mode}`), images(mode), 10_000);
  const data = { structured: subset('structured'), unstructured: subset('unstructured') };
  const notes = [
    `Data: ${full ? "Fashion-MNIST from Debian's dataset-fashion-mnist" : 'the embedded Fashion-MNIST subset'}; fine-tuning ${FINETUNE_EPOCHS} epochs on the first ${images('structured').toLocaleString('en-US')} (structured) or ${images('unstructured').toLocaleString('en-US')} (unstructured) training images; accuracy on up to 10,000 test images.`,
  ];
  const rows = [];

  const report = async (args, file, what) => {
    const out = ctx.tmp(`optimize/${what}`);
    const result = await ctx.convspec([...args, '-o', out], { timeoutMs: 900_000 });
    if (result.code !== 0) ctx.unavailable(`\`convspec ${args.slice(0, 2).join(' ')}\`: ${failureReason(result)}`);
    return JSON.parse(readFileSync(path.join(out, file), 'utf8'));
  };
  const points = (accuracy) => accuracy * 100;
  const pair = (convspec, peer) => ({ convspec: { value: convspec }, peer: { value: peer } });

  ctx.log('optimize: quantize');
  const quantized = await report(['quantize', SPEC, '--weights', weights, '--calib', data.unstructured, '--data', data.unstructured, '--backend', 'wasm'], `${MODEL}.quantize.json`, 'quantize');
  const { accuracy, size, latency } = quantized;
  rows.push(ctx.row('int8 accuracy (ONNX Runtime)', '%', pair(points(accuracy.int8Ort), points(accuracy.floatOrt)), {
    target: { on: 'convspec', op: '>=', value: points(accuracy.floatOrt) - 0.5, text: 'within 0.5 points of float' },
    better: 'higher',
  }));
  rows.push(ctx.row('int8 file size', 'bytes', pair(size.int8Bytes, size.floatBytes), { target: { on: 'ratio', op: '<=', value: 1 / 3.5, text: '≥ 3.5× smaller (ratio ≤ 0.286)' } }));
  if (latency) {
    rows.push(ctx.row(`int8 latency, batch ${latency.batch}, ${latency.threads} threads`, 'ms', pair(latency.int8.medianMs, latency.float.medianMs), {
      target: { on: 'ratio', op: '<=', value: 1 / 1.5, text: '≥ 1.5× faster (ratio ≤ 0.667)' },
    }));
  }
  notes.push(
    `Quantization: ${accuracy.samples.toLocaleString('en-US')} test images; ONNX Runtime ran ${Object.entries(quantized.ortKernels?.int8 ?? {}).map(([op, n]) => `${n} ${op}`).join(', ') || 'no int8 kernels'} in the int8 file. ` +
      "Peer, published: ONNX Runtime's static QDQ quantizer on ResNet-18 (ImageNette) gives a 3.95× smaller file for a 0.10-point accuracy loss; Intel Neural Compressor's ONNX Runtime QDQ results report 1.3–2.5× throughput on ResNet-class CNNs.",
  );

  ctx.log('optimize: structured pruning');
  const common = ['--weights', weights, '--finetune-epochs', String(FINETUNE_EPOCHS), '--backend', 'wasm'];
  const structured = await report(['prune', SPEC, ...common, '--data', data.structured, '--structured', '--sparsity', '0.5'], `${MODEL}.prune.json`, 'prune-structured');
  const b = structured.before;
  const a = structured.after;
  rows.push(ctx.row('structured 50 %: MACs', 'MACs', pair(a.macs, b.macs), { target: { on: 'ratio', op: '<=', value: 0.6, text: 'down ≥ 40 % (ratio ≤ 0.6)' } }));
  if (a.latency && b.latency) {
    rows.push(ctx.row(`structured 50 %: latency, batch ${b.latency.batch}, ${b.latency.threads} threads`, 'ms', pair(a.latency.medianMs, b.latency.medianMs), {
      target: { on: 'ratio', op: '<=', value: 0.7, text: 'down ≥ 30 % (ratio ≤ 0.7)' },
    }));
  }
  rows.push(ctx.row(`structured 50 % + ${FINETUNE_EPOCHS} epochs: accuracy`, '%', pair(points(a.accuracy), points(b.accuracy)), {
    target: { on: 'convspec', op: '>=', value: points(b.accuracy) - 1, text: 'within 1 point' },
    better: 'higher',
  }));

  ctx.log('optimize: unstructured pruning');
  const unstructured = await report(['prune', SPEC, ...common, '--data', data.unstructured, '--sparsity', '0.8', '--no-latency'], `${MODEL}.prune.json`, 'prune-unstructured');
  rows.push(ctx.row(`unstructured 80 % + ${FINETUNE_EPOCHS} epochs: accuracy`, '%', pair(points(unstructured.after.accuracy), points(unstructured.before.accuracy)), {
    target: { on: 'convspec', op: '>=', value: points(unstructured.before.accuracy) - 1, text: 'within 1 point' },
    better: 'higher',
  }));
  notes.push(
    `Pruning: structured kept ${(structured.ratios.params * 100).toFixed(1)} % of the parameters (ONNX file ${(structured.ratios.onnxBytes * 100).toFixed(1)} % of the size); ` +
      `unstructured left ${(100 * (1 - unstructured.after.nonZeroParams / unstructured.before.nonZeroParams)).toFixed(1)} % of the weights at zero. ` +
      `Right after pruning (batch norm re-estimated, before fine-tuning): structured ${points(structured.prunedAccuracy ?? Number.NaN).toFixed(1)} %, unstructured ${points(unstructured.prunedAccuracy ?? Number.NaN).toFixed(1)} %. ` +
      'Peer practice: Torch-Pruning and TF-MOT fine-tune for several epochs after pruning; here two epochs on part of the training split.',
  );
  return { rows, notes };
}
