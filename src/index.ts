/**
 * The convspec library. It mirrors the command: everything `convspec` does is available here.
 *
 *   parse → elaborate → checkSpec (shapes, receptive fields, cost, asserts) → runPasses → emitOnnx / emitTfjs
 *                                                                           └→ TfjsEngine (train, run, visualise)
 */
export { parse, type ParseResult } from './parser/index.js';
export type * as Ast from './parser/ast.js';
export { formatProgram } from './parser/format.js';
export { elaborate, type ElaborateOptions, type ElaborateResult } from './elaborate/elaborate.js';
export { loadJsonSpec, SPEC_SCHEMA } from './elaborate/json-spec.js';
export { checkSpec, type CheckResult } from './check.js';
export * from './diagnostics.js';
export type { Graph, Node, OpAttributes, GraphInput, GraphOutput } from './ir/graph.js';
export * as dims from './ir/dims.js';
export { printGraph } from './ir/print.js';
export { verifyGraph } from './ir/verify.js';
export { parametersOf, graphParameters } from './ir/params.js';
export { initializeWeights, randomWeights, checkWeights, DrawnWeight, type Weights, type WeightTensor } from './ir/weights.js';
export { inferReceptiveFields, type ReceptiveField } from './passes/receptive-field.js';
export { computeCost, type CostResult } from './passes/cost.js';
export { runPasses, resolvePassList, passNames, registerPass, type Pass } from './passes/manager.js';
export * as passes from './passes/index.js';
export { emitOnnx } from './codegen/onnx.js';
export { emitTfjs, writeTfjsModel } from './codegen/tfjs.js';
export { importOnnx } from './import/onnx-import.js';
export { printImportedSpec } from './import/print-blocks.js';
export * as tfjsEngine from './runtime/tfjs/index.js';
export { createEngine, TfjsEngine, trainModel, evaluate } from './runtime/tfjs/index.js';
export { OrtEngine } from './runtime/ort/engine.js';
export { readCheckpoint, writeCheckpoint, readSafetensors, writeWeightsFile } from './runtime/checkpoint.js';
export { loadWeightsFile } from './runtime/weights-file.js';
export * as data from './runtime/data/index.js';
