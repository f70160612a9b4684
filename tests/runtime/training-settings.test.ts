/**
 * A spec's `train { … }` section read as `trainModel` options (src/runtime/tfjs/training-settings.ts).
 */
import { describe, expect, it } from 'vitest';
import { elaborate } from '../../src/elaborate/elaborate.js';
import { readTrainingSettings } from '../../src/runtime/tfjs/training-settings.js';

function trainSection(body: string) {
  const text = `model T {\n  input x: f32[N, 1, 4, 4]\n  y = x -> flatten -> dense(2)\n  output y\n  train {\n${body}\n  }\n}`;
  const { graph, diagnostics } = elaborate('t.cnn', { text });
  expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return readTrainingSettings(graph!.training);
}

describe('train settings', () => {
  it('reads every setting of a full section', () => {
    const { settings, problems } = trainSection(
      [
        '    data: "fashion-mnist"',
        '    loss: cross_entropy(label_smoothing: 0.1)',
        '    optimizer: sgd(lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5e-4)',
        '    schedule: cosine(min_lr: 1e-5, warmup: 2)',
        '    epochs: 30',
        '    batch: 128',
        '    seed: 7',
        // list items are quoted: elaboration evaluates the names inside a list as values (only a bare name at
        // the top of a setting is read as text)
        '    metrics: ["accuracy", "top5"]',
        '    validation: 0.1',
        '    augment: crop(4)',
        '    early_stopping: early_stopping(patience: 3, min_delta: 0.001)',
        '    clip: 1.0',
      ].join('\n'),
    );
    expect(problems).toEqual([]);
    expect(settings).toEqual({
      data: 'fashion-mnist',
      loss: 'cross_entropy',
      labelSmoothing: 0.1,
      optimizer: { kind: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
      schedule: { kind: 'cosine', minLearningRate: 1e-5 },
      warmup: { epochs: 2 },
      epochs: 30,
      batchSize: 128,
      seed: 7,
      topK: [5],
      validation: 0.1,
      augmentation: { randomCrop: { padding: 4 } },
      earlyStopping: { patience: 3, minDelta: 0.001 },
      clipNorm: 1,
    });
  });

  it('takes bare names, an lr override and a patience number', () => {
    const { settings, problems } = trainSection('    optimizer: adamw\n    lr: 0.003\n    early_stopping: 4\n    schedule: step(every: 10, gamma: 0.5)\n    augment: flip');
    expect(problems).toEqual([]);
    expect(settings.optimizer).toEqual({ kind: 'adamw', learningRate: 0.003 });
    expect(settings.earlyStopping).toEqual({ patience: 4 });
    expect(settings.schedule).toEqual({ kind: 'step', everyEpochs: 10, gamma: 0.5 });
    expect(settings.augmentation).toEqual({ horizontalFlip: true });
  });

  it('reports what it cannot use, one line each', () => {
    const { problems } = trainSection('    loss: hinge\n    optimizer: rmsprop(lr: 0.1)\n    metrics: ["f1"]\n    schedule: cosine(period: 3)');
    expect(problems).toEqual([
      expect.stringMatching(/^loss: expected one of/),
      expect.stringMatching(/^optimizer: expected sgd/),
      'metrics: unknown metric "f1" (accuracy, loss, topK such as top5)',
      expect.stringMatching(/^schedule: unknown argument 'period'/),
    ]);
    // settings built by other means (JSON specs) get the same checks
    expect(readTrainingSettings({ batch: 0, clip: -1, optimizer: { call: 'adam', args: { lr: 0 } } }).problems).toEqual([
      'batch: expected a positive integer, found 0',
      'clip: expected a positive number, found -1',
      'optimizer lr: expected a positive number, found 0',
    ]);
  });
});
