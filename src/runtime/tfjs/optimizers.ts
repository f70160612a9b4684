/**
 * Optimizers, written out on tf.Variables so the update rules are exactly those stated here (PyTorch's), their
 * state can be saved in a checkpoint and restored bit for bit, and frozen parameters are never touched.
 *
 * For a parameter w with gradient g at step t (1-based), learning rate η:
 *   SGD        g ← g + λ·w (coupled weight decay λ, when given);  v ← μ·v + g;
 *              w ← w − η·(g + μ·v) with Nesterov, w − η·v without (μ = 0: w − η·g)       [slot momentum_buffer]
 *   Adam       g ← g + λ·w (coupled, when given); m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
 *              w ← w − η·(m/(1 − β1^t)) / (√(v/(1 − β2^t)) + ε)                        [slots exp_avg, exp_avg_sq]
 *   AdamW      w ← w·(1 − η·λ) first (decoupled decay, Loshchilov & Hutter), then Adam without coupling.
 * Weight decay applies by default to conv, transposed-conv and dense kernels only (`decayOn: 'kernels'`), not to
 * biases and batch-norm parameters, the usual practice; `decayOn: 'all'` decays every trainable parameter as
 * PyTorch's default does.
 *
 * State slots are zero-initialised (PyTorch's first-step buffers equal these updates from zero) and kept in the
 * parameter's tfjs layout; `getState`/`setState` exchange them in the IR layout under `<slot>.<parameter>`.
 */
import * as tf from '@tensorflow/tfjs';
import type { WeightTensor } from '../../ir/weights.js';
import { readFromTfjsLayout, toTfjsLayout, type EngineParameter } from './engine.js';

export type OptimizerOptions =
  | { readonly kind: 'sgd'; readonly learningRate: number; readonly momentum?: number; readonly nesterov?: boolean; readonly weightDecay?: number; readonly decayOn?: 'kernels' | 'all' }
  | { readonly kind: 'adam' | 'adamw'; readonly learningRate: number; readonly beta1?: number; readonly beta2?: number; readonly epsilon?: number; readonly weightDecay?: number; readonly decayOn?: 'kernels' | 'all' };

export type OptimizerKind = OptimizerOptions['kind'];

/** Thrown for optimizer settings or state that cannot be used. */
export class OptimizerError extends Error {
  override readonly name = 'OptimizerError';
}

/** The optimizer's settings with every default filled in (what a checkpoint records). */
export function resolvedOptimizerSettings(options: OptimizerOptions): Record<string, number | string | boolean> {
  const decayOn = options.decayOn ?? 'kernels';
  if (options.kind === 'sgd') {
    return { kind: 'sgd', learningRate: options.learningRate, momentum: options.momentum ?? 0, nesterov: options.nesterov ?? false, weightDecay: options.weightDecay ?? 0, decayOn };
  }
  return {
    kind: options.kind,
    learningRate: options.learningRate,
    beta1: options.beta1 ?? 0.9,
    beta2: options.beta2 ?? 0.999,
    epsilon: options.epsilon ?? 1e-8,
    weightDecay: options.weightDecay ?? (options.kind === 'adamw' ? 0.01 : 0),
    decayOn,
  };
}

function slotsOf(options: OptimizerOptions): string[] {
  if (options.kind === 'sgd') return (options.momentum ?? 0) > 0 ? ['momentum_buffer'] : [];
  return ['exp_avg', 'exp_avg_sq'];
}

function isKernel(parameter: EngineParameter): boolean {
  return parameter.spec.role === 'weight' && parameter.spec.shape.length >= 2;
}

export class Optimizer {
  readonly slots: readonly string[];
  /** Steps taken (t of the update rules after the next step is t = step + 1). */
  step = 0;
  private readonly state = new Map<string, Map<string, tf.Variable>>();
  private readonly settings: Record<string, number | string | boolean>;

  constructor(
    readonly options: OptimizerOptions,
    readonly parameters: readonly EngineParameter[],
  ) {
    if (!(options.learningRate > 0)) throw new OptimizerError(`the learning rate must be positive, got ${options.learningRate}`);
    this.settings = resolvedOptimizerSettings(options);
    this.slots = slotsOf(options);
    for (const slot of this.slots) {
      const variables = parameters.map((p) => {
        const zeros = tf.zerosLike(p.variable);
        const variable = tf.variable(zeros, false);
        zeros.dispose(); // the variable holds its own reference to the data
        return [p.spec.name, variable] as const;
      });
      this.state.set(slot, new Map(variables));
    }
  }

  get kind(): OptimizerKind {
    return this.options.kind;
  }

  /** The settings with defaults filled in. */
  describe(): Record<string, number | string | boolean> {
    return { ...this.settings };
  }

  private decays(parameter: EngineParameter): boolean {
    return (this.settings['weightDecay'] as number) > 0 && (this.settings['decayOn'] === 'all' || isKernel(parameter));
  }

  /** One update of every parameter that has a gradient (by variable name), at learning rate `learningRate`. */
  apply(gradients: ReadonlyMap<string, tf.Tensor>, learningRate: number): void {
    this.step += 1;
    const t = this.step;
    const s = this.settings;
    const decay = s['weightDecay'] as number;
    tf.tidy(() => {
      for (const parameter of this.parameters) {
        const w = parameter.variable;
        let g = gradients.get(w.name);
        if (!g) continue;
        if (this.options.kind === 'sgd') {
          if (this.decays(parameter)) g = tf.add(g, tf.mul(w, decay));
          const momentum = s['momentum'] as number;
          let update = g;
          if (momentum > 0) {
            const buffer = this.state.get('momentum_buffer')!.get(parameter.spec.name)!;
            buffer.assign(tf.add(tf.mul(buffer, momentum), g));
            update = s['nesterov'] ? tf.add(g, tf.mul(buffer, momentum)) : buffer;
          }
          w.assign(tf.sub(w, tf.mul(update, learningRate)));
          continue;
        }
        const beta1 = s['beta1'] as number;
        const beta2 = s['beta2'] as number;
        const epsilon = s['epsilon'] as number;
        let current: tf.Tensor = w;
        if (this.decays(parameter)) {
          if (this.options.kind === 'adamw') current = tf.mul(w, 1 - learningRate * decay);
          else g = tf.add(g, tf.mul(w, decay));
        }
        const m = this.state.get('exp_avg')!.get(parameter.spec.name)!;
        const v = this.state.get('exp_avg_sq')!.get(parameter.spec.name)!;
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const mHat = tf.div(m, 1 - beta1 ** t);
        const vHat = tf.div(v, 1 - beta2 ** t);
        w.assign(tf.sub(current, tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), epsilon)), learningRate)));
      }
    });
  }

  /** The state in IR layout, keyed `<slot>.<parameter>`. */
  async getState(): Promise<Map<string, WeightTensor>> {
    const state = new Map<string, WeightTensor>();
    for (const [slot, tensors] of this.state) {
      for (const parameter of this.parameters) state.set(`${slot}.${parameter.spec.name}`, await readFromTfjsLayout(tensors.get(parameter.spec.name)!, parameter.spec.shape));
    }
    return state;
  }

  /** Restores state saved by `getState` (every slot of every parameter must be present with its shape). */
  setState(state: ReadonlyMap<string, WeightTensor>, step: number): void {
    const problems: string[] = [];
    for (const slot of this.slots) {
      for (const parameter of this.parameters) {
        const name = `${slot}.${parameter.spec.name}`;
        const tensor = state.get(name);
        if (!tensor) problems.push(`${name} is missing`);
        else if (tensor.shape.length !== parameter.spec.shape.length || tensor.shape.some((d, i) => d !== parameter.spec.shape[i])) problems.push(`${name} has shape [${tensor.shape.join(', ')}], expected [${parameter.spec.shape.join(', ')}]`);
      }
    }
    if (problems.length > 0) throw new OptimizerError(`the saved ${this.kind} state does not fit the model: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}`);
    tf.tidy(() => {
      for (const slot of this.slots) {
        for (const parameter of this.parameters) {
          this.state.get(slot)!.get(parameter.spec.name)!.assign(toTfjsLayout(state.get(`${slot}.${parameter.spec.name}`)!, parameter.spec.shape));
        }
      }
    });
    this.step = step;
  }

  dispose(): void {
    for (const tensors of this.state.values()) for (const variable of tensors.values()) variable.dispose();
    this.state.clear();
  }
}
