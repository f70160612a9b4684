/**
 * The tfjs engine's public API: run and train an IR graph (./engine.ts, ./train.ts), the pieces training is made
 * of (losses, optimizers, schedules, the spec's `train` section) and the backend choice (./backend.ts).
 */
export { TfjsEngine, createEngine, EngineError, LoweringError, toInternal, toLogical, fromTfjsLayout, readFromTfjsLayout, toTfjsLayout } from './engine.js';
export type { TensorData, TfjsEngineOptions, PredictOptions, EngineParameter, BatchStatistics, ForwardOptions } from './engine.js';
export { trainModel, evaluate, TrainingError, trainableParameterCount, frozenNodes, chooseGradientEngine, defaultOrtThreads, sampleDimsOf } from './train.js';
export { selectLayers, readUnfreezeSetting, planLayerGroups } from './layer-groups.js';
export type { UnfreezeStep, LearningRateScale, LayerGroupPlan } from './layer-groups.js';
export type { GradientEngine, TrainOptions, TrainCallbacks, BatchProgress, EpochSummary, EvaluationResult, EvaluateOptions, TrainingHistory, StopReason, EarlyStoppingOptions, CheckpointOptions } from './train.js';
export { lossKinds, computeLoss, lossTargets, countCorrect } from './losses.js';
export type { LossKind, LossOptions } from './losses.js';
export { Optimizer, OptimizerError, resolvedOptimizerSettings } from './optimizers.js';
export type { OptimizerOptions, OptimizerKind } from './optimizers.js';
export { learningRateAt, warmupSteps } from './schedules.js';
export type { ScheduleOptions, WarmupOptions, ScheduleContext } from './schedules.js';
export { readTrainingSettings } from './training-settings.js';
export type { TrainingSettings, ReadSettings } from './training-settings.js';
export { selectBackend, backendNames, wasmThreads } from './backend.js';
export type { BackendName, BackendPreference, BackendSelection, BackendOptions } from './backend.js';
