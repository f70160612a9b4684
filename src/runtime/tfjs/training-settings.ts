/**
 * Reads a spec's `train { … }` section (already evaluated into `SettingValue`s by elaboration) as options for
 * `trainModel`, so the CLI and library users get the same meaning for every setting.
 *
 *   epochs: 5   batch: 64   seed: 42   clip: 1.0 (global gradient norm)   label_smoothing: 0.1
 *   loss: cross_entropy | binary_cross_entropy | mse   (also ce, categorical_cross_entropy, bce;
 *         a call such as cross_entropy(label_smoothing: 0.1) sets the smoothing)
 *   optimizer: sgd(lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5e-4) | adam(lr: 1e-3, beta1, beta2, eps,
 *         weight_decay) | adamw(lr, weight_decay: 0.01, …)   (a bare name takes the defaults; lr defaults to 0.01
 *         for SGD and 1e-3 otherwise)
 *   lr: 0.05   (overrides the optimizer's)
 *   schedule: constant | cosine(min_lr: 1e-5, warmup: 2) | step(every: 10, gamma: 0.1) | exponential(gamma: 0.95)
 *         (warmup in epochs; warmup_steps in steps)
 *   early_stopping: 5 (patience) | early_stopping(patience: 5, min_delta: 1e-3, restore: true)
 *   metrics: [accuracy, top5]
 *   augment: [flip, crop(4)]   (horizontal flip; random crop with that padding)
 *   data, validation (fraction held out), classes, normalize: returned for the caller (data loading is the CLI's
 *         business), unchanged.
 *   unfreeze: [[3, "stage4"], [5, "stage3", 0.1]] returned as written; `trainModel` reads it (./layer-groups.ts).
 * Anything else, or a value of the wrong kind, is reported in `problems` (one line each) and otherwise ignored.
 */
import type { SettingValue } from '../../ir/graph.js';
import type { AugmentationOptions } from '../data/dataset.js';
import type { LossKind } from './losses.js';
import type { OptimizerOptions } from './optimizers.js';
import type { ScheduleOptions, WarmupOptions } from './schedules.js';
import type { EarlyStoppingOptions } from './train.js';

export interface TrainingSettings {
  epochs?: number;
  batchSize?: number;
  seed?: number;
  loss?: LossKind;
  labelSmoothing?: number;
  optimizer?: OptimizerOptions;
  schedule?: ScheduleOptions;
  warmup?: WarmupOptions;
  clipNorm?: number;
  earlyStopping?: EarlyStoppingOptions;
  topK?: number[];
  augmentation?: AugmentationOptions;
  /** Settings for the caller, as written. */
  data?: SettingValue;
  validation?: SettingValue;
  classes?: SettingValue;
  normalize?: SettingValue;
  unfreeze?: SettingValue;
}

export interface ReadSettings {
  readonly settings: TrainingSettings;
  readonly problems: string[];
}

type Call = { readonly call: string; readonly args: Readonly<Record<string, SettingValue>> };

function isCall(value: SettingValue): value is Call {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && 'call' in value;
}

/** A bare name or a call, as { name, args }. */
function nameAndArgs(value: SettingValue): { name: string; args: Readonly<Record<string, SettingValue>> } | undefined {
  if (typeof value === 'string') return { name: value, args: {} };
  if (isCall(value)) return { name: value.call, args: value.args };
  return undefined;
}

const LOSS_NAMES: Readonly<Record<string, LossKind>> = {
  cross_entropy: 'cross_entropy',
  ce: 'cross_entropy',
  categorical_cross_entropy: 'cross_entropy',
  softmax_cross_entropy: 'cross_entropy',
  binary_cross_entropy: 'binary_cross_entropy',
  bce: 'binary_cross_entropy',
  mse: 'mse',
};

export function readTrainingSettings(training: Readonly<Record<string, SettingValue>>): ReadSettings {
  const settings: TrainingSettings = {};
  const problems: string[] = [];
  const number = (key: string, value: SettingValue | undefined, check: (v: number) => boolean, expectation: string): number | undefined => {
    if (value === undefined) return undefined;
    if (typeof value === 'number' && check(value)) return value;
    problems.push(`${key}: expected ${expectation}, found ${JSON.stringify(value)}`);
    return undefined;
  };
  const positiveInteger = (key: string, value: SettingValue | undefined) => number(key, value, (v) => Number.isInteger(v) && v > 0, 'a positive integer');
  const positive = (key: string, value: SettingValue | undefined) => number(key, value, (v) => v > 0, 'a positive number');
  const unitInterval = (key: string, value: SettingValue | undefined) => number(key, value, (v) => v >= 0 && v < 1, 'a number in [0, 1)');
  const nonNegative = (key: string, value: SettingValue | undefined) => number(key, value, (v) => v >= 0, 'a non-negative number');
  const boolean = (key: string, value: SettingValue | undefined): boolean | undefined => {
    if (value === undefined) return undefined;
    if (typeof value === 'boolean') return value;
    problems.push(`${key}: expected true or false, found ${JSON.stringify(value)}`);
    return undefined;
  };
  const unknownArguments = (key: string, args: Readonly<Record<string, SettingValue>>, known: readonly string[]) => {
    for (const name of Object.keys(args)) if (!known.includes(name)) problems.push(`${key}: unknown argument '${name}' (known: ${known.join(', ')})`);
  };

  for (const [key, value] of Object.entries(training)) {
    switch (key) {
      case 'epochs': {
        const epochs = number(key, value, (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
        if (epochs !== undefined) settings.epochs = epochs;
        break;
      }
      case 'batch': {
        const batch = positiveInteger(key, value);
        if (batch !== undefined) settings.batchSize = batch;
        break;
      }
      case 'seed': {
        const seed = number(key, value, (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
        if (seed !== undefined) settings.seed = seed;
        break;
      }
      case 'clip': {
        const clip = positive(key, value);
        if (clip !== undefined) settings.clipNorm = clip;
        break;
      }
      case 'label_smoothing': {
        const smoothing = unitInterval(key, value);
        if (smoothing !== undefined) settings.labelSmoothing = smoothing;
        break;
      }
      case 'loss': {
        const parsed = nameAndArgs(value);
        const kind = parsed ? LOSS_NAMES[parsed.name] : undefined;
        if (!parsed || !kind) {
          problems.push(`loss: expected one of ${Object.keys(LOSS_NAMES).join(', ')}, found ${JSON.stringify(value)}`);
          break;
        }
        settings.loss = kind;
        unknownArguments(key, parsed.args, ['label_smoothing']);
        const smoothing = unitInterval('loss label_smoothing', parsed.args['label_smoothing']);
        if (smoothing !== undefined && settings.labelSmoothing === undefined) settings.labelSmoothing = smoothing;
        break;
      }
      case 'optimizer': {
        const parsed = nameAndArgs(value);
        if (!parsed || !['sgd', 'adam', 'adamw'].includes(parsed.name)) {
          problems.push(`optimizer: expected sgd(…), adam(…) or adamw(…), found ${JSON.stringify(value)}`);
          break;
        }
        const a = parsed.args;
        const learningRate = positive('optimizer lr', a['lr']) ?? (parsed.name === 'sgd' ? 0.01 : 1e-3);
        const weightDecay = nonNegative('optimizer weight_decay', a['weight_decay']);
        if (parsed.name === 'sgd') {
          unknownArguments(key, a, ['lr', 'momentum', 'nesterov', 'weight_decay']);
          const momentum = number('optimizer momentum', a['momentum'], (v) => v >= 0 && v < 1, 'a number in [0, 1)');
          const nesterov = boolean('optimizer nesterov', a['nesterov']);
          settings.optimizer = { kind: 'sgd', learningRate, ...(momentum !== undefined ? { momentum } : {}), ...(nesterov !== undefined ? { nesterov } : {}), ...(weightDecay !== undefined ? { weightDecay } : {}) };
        } else {
          unknownArguments(key, a, ['lr', 'beta1', 'beta2', 'eps', 'weight_decay']);
          const beta1 = unitInterval('optimizer beta1', a['beta1']);
          const beta2 = unitInterval('optimizer beta2', a['beta2']);
          const epsilon = positive('optimizer eps', a['eps']);
          settings.optimizer = {
            kind: parsed.name as 'adam' | 'adamw',
            learningRate,
            ...(beta1 !== undefined ? { beta1 } : {}),
            ...(beta2 !== undefined ? { beta2 } : {}),
            ...(epsilon !== undefined ? { epsilon } : {}),
            ...(weightDecay !== undefined ? { weightDecay } : {}),
          };
        }
        break;
      }
      case 'lr':
        break; // applied after the loop, over the optimizer's
      case 'schedule': {
        const parsed = nameAndArgs(value);
        if (!parsed) {
          problems.push(`schedule: expected constant, cosine(…), step(…) or exponential(…), found ${JSON.stringify(value)}`);
          break;
        }
        const a = parsed.args;
        const warmupEpochs = nonNegative('schedule warmup', a['warmup']);
        const warmupSteps = nonNegative('schedule warmup_steps', a['warmup_steps']);
        if (warmupSteps !== undefined) settings.warmup = { steps: warmupSteps };
        else if (warmupEpochs !== undefined) settings.warmup = { epochs: warmupEpochs };
        switch (parsed.name) {
          case 'constant':
            unknownArguments(key, a, ['warmup', 'warmup_steps']);
            settings.schedule = { kind: 'constant' };
            break;
          case 'cosine': {
            unknownArguments(key, a, ['min_lr', 'warmup', 'warmup_steps']);
            const minimum = nonNegative('schedule min_lr', a['min_lr']);
            settings.schedule = { kind: 'cosine', ...(minimum !== undefined ? { minLearningRate: minimum } : {}) };
            break;
          }
          case 'step': {
            unknownArguments(key, a, ['every', 'gamma', 'warmup', 'warmup_steps']);
            const every = positiveInteger('schedule every', a['every']);
            const gamma = positive('schedule gamma', a['gamma']);
            if (every === undefined || gamma === undefined) problems.push('schedule: step needs every (epochs) and gamma');
            else settings.schedule = { kind: 'step', everyEpochs: every, gamma };
            break;
          }
          case 'exponential': {
            unknownArguments(key, a, ['gamma', 'warmup', 'warmup_steps']);
            const gamma = positive('schedule gamma', a['gamma']);
            if (gamma === undefined) problems.push('schedule: exponential needs gamma');
            else settings.schedule = { kind: 'exponential', gamma };
            break;
          }
          default:
            problems.push(`schedule: unknown schedule '${parsed.name}' (constant, cosine, step, exponential)`);
        }
        break;
      }
      case 'early_stopping': {
        if (typeof value === 'number') {
          const patience = positiveInteger(key, value);
          if (patience !== undefined) settings.earlyStopping = { patience };
          break;
        }
        const parsed = nameAndArgs(value);
        if (!parsed || typeof value === 'string') {
          problems.push(`early_stopping: expected a patience or early_stopping(patience: …, min_delta: …, restore: …), found ${JSON.stringify(value)}`);
          break;
        }
        unknownArguments(key, parsed.args, ['patience', 'min_delta', 'restore']);
        const patience = positiveInteger('early_stopping patience', parsed.args['patience']) ?? 5;
        const minDelta = nonNegative('early_stopping min_delta', parsed.args['min_delta']);
        const restore = boolean('early_stopping restore', parsed.args['restore']);
        settings.earlyStopping = { patience, ...(minDelta !== undefined ? { minDelta } : {}), ...(restore !== undefined ? { restoreBest: restore } : {}) };
        break;
      }
      case 'metrics': {
        const items = Array.isArray(value) ? value : [value];
        const topK: number[] = [];
        for (const item of items) {
          const match = typeof item === 'string' ? /^top_?(\d+)$/.exec(item) : null;
          if (item === 'accuracy' || item === 'loss') continue;
          if (match && Number(match[1]) > 0) topK.push(Number(match[1]));
          else problems.push(`metrics: unknown metric ${JSON.stringify(item)} (accuracy, loss, topK such as top5)`);
        }
        if (topK.length > 0) settings.topK = topK;
        break;
      }
      case 'augment': {
        const items = Array.isArray(value) ? value : [value];
        const augmentation: AugmentationOptions = {};
        for (const item of items) {
          const parsed = nameAndArgs(item);
          if (parsed && ['flip', 'hflip', 'horizontal_flip'].includes(parsed.name)) augmentation.horizontalFlip = true;
          else if (parsed && ['crop', 'random_crop'].includes(parsed.name)) {
            const padding = number('augment crop', parsed.args['padding'] ?? parsed.args['0'], (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer padding');
            if (padding !== undefined) augmentation.randomCrop = { padding };
          } else problems.push(`augment: unknown augmentation ${JSON.stringify(item)} (flip, crop(padding))`);
        }
        settings.augmentation = augmentation;
        break;
      }
      case 'data':
      case 'validation':
      case 'classes':
      case 'normalize':
      case 'unfreeze':
        settings[key] = value;
        break;
      default:
        problems.push(`${key}: not a training setting`);
    }
  }
  const lr = positive('lr', training['lr']);
  if (lr !== undefined) settings.optimizer = { ...(settings.optimizer ?? { kind: 'adam', learningRate: lr }), learningRate: lr };
  return { settings, problems };
}
