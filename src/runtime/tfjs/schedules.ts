/**
 * Learning-rate schedules, as a pure function of the optimizer step (0-based), so that a resumed run computes
 * the same rates as an uninterrupted one.
 *
 * With base rate η, W warm-up steps, S steps per epoch and T steps in the whole run:
 *   warm-up (step < W)   η·(step + 1)/W, a linear ramp that reaches η at step W − 1;
 *   constant             η;
 *   step                 η·γ^⌊epoch/every⌋ with epoch = ⌊step/S⌋ (PyTorch StepLR per epoch);
 *   exponential          η·γ^epoch;
 *   cosine               η_min + (η − η_min)·(1 + cos(π·t/T′))/2 with t = step − W and T′ = T − W − 1
 *                        (cosine annealing after the warm-up, down to η_min at the last step).
 */
export type ScheduleOptions =
  | { readonly kind: 'constant' }
  | { readonly kind: 'step'; readonly everyEpochs: number; readonly gamma: number }
  | { readonly kind: 'exponential'; readonly gamma: number }
  | { readonly kind: 'cosine'; readonly minLearningRate?: number };

export interface WarmupOptions {
  /** Warm-up length in optimizer steps; or give `epochs`. */
  readonly steps?: number;
  readonly epochs?: number;
}

export interface ScheduleContext {
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
}

/** Warm-up length in steps. */
export function warmupSteps(warmup: WarmupOptions | undefined, context: ScheduleContext): number {
  if (!warmup) return 0;
  return Math.max(0, Math.round(warmup.steps ?? (warmup.epochs ?? 0) * context.stepsPerEpoch));
}

export function learningRateAt(base: number, step: number, schedule: ScheduleOptions | undefined, warmup: WarmupOptions | undefined, context: ScheduleContext): number {
  const warm = warmupSteps(warmup, context);
  if (step < warm) return (base * (step + 1)) / warm;
  const epoch = Math.floor(step / Math.max(1, context.stepsPerEpoch));
  switch (schedule?.kind ?? 'constant') {
    case 'constant':
      return base;
    case 'step': {
      const s = schedule as Extract<ScheduleOptions, { kind: 'step' }>;
      return base * s.gamma ** Math.floor(epoch / s.everyEpochs);
    }
    case 'exponential':
      return base * (schedule as Extract<ScheduleOptions, { kind: 'exponential' }>).gamma ** epoch;
    case 'cosine': {
      const minimum = (schedule as Extract<ScheduleOptions, { kind: 'cosine' }>).minLearningRate ?? 0;
      const span = Math.max(1, context.totalSteps - warm - 1);
      const t = Math.min(step - warm, span);
      return minimum + ((base - minimum) * (1 + Math.cos((Math.PI * t) / span))) / 2;
    }
  }
}
