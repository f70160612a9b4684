/**
 * The registry of optimisation passes: importing this module registers each one with the pass manager, so
 * `--passes`, `--disable-pass` and the "valid passes" message list them. Order here is the suggested order for
 * an inference export: clean-ups first (fewer nodes for the rest), then pad and BN folding, pruning, and
 * quantization last (it needs calibrated ranges, which `convspec quantize` measures).
 *
 * Not a pass: activation fusion. tfjs fuses conv + bias + activation by itself when it builds fused ops, and the
 * ONNX emitter writes Conv and Relu that ONNX Runtime fuses at session start, so an IR annotation would only
 * duplicate what both runtimes already do.
 */
import { eliminateDeadPass } from './eliminate-dead.js';
import { eliminateDropoutPass } from './eliminate-dropout.js';
import { foldBatchNormPass } from './fold-bn.js';
import { foldPadPass } from './fold-pad.js';
import { registerPass, type Pass } from './manager.js';
import { pruneFiltersPass } from './prune-filters.js';
import { pruneMagnitudePass } from './prune-magnitude.js';
import { quantizePass } from './quantize.js';

export const OPTIMISATION_PASSES: readonly Pass[] = [eliminateDropoutPass, eliminateDeadPass, foldPadPass, foldBatchNormPass, pruneMagnitudePass, pruneFiltersPass, quantizePass];

for (const pass of OPTIMISATION_PASSES) registerPass(pass);

export { eliminateDeadPass, eliminateDropoutPass, foldBatchNormPass, foldPadPass, pruneFiltersPass, pruneMagnitudePass, quantizePass };
export { eliminateDead, liveNodes } from './eliminate-dead.js';
export { eliminateDropout } from './eliminate-dropout.js';
export { foldBatchNorm, batchNormAffine, BATCH_NORM_FOLD_RULES } from './fold-bn.js';
export { foldPad } from './fold-pad.js';
export { pruneFilters, planFilterPruning, ChannelDependencies, pruneGroups, type FilterPruningPlan } from './prune-filters.js';
export { pruneMagnitude } from './prune-magnitude.js';
export { quantize, planQuantization, quantizationTargets, annotateGraph, quantizedTensors, activationParameters, quantizeWeightPerChannel, quantizeBias, fakeQuantizedWeights, sqnrDb } from './quantize.js';
export { ActivationStatistics, calibrationRange, CALIBRATION_METHODS, type CalibrationMethod, type CalibrationRange } from './quantize-calibration.js';
