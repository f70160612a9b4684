/**
 * The ONNX Runtime engine: runs an ONNX model (an emitted convspec model or any other) on the CPU through
 * `onnxruntime-node`.
 *
 * Why a wrapper: ONNX Runtime's errors are bare strings without the model they concern, its tensors are a class
 * of its own, and its feeds are checked late and tersely. `OrtEngine` takes plain typed arrays and dims, checks
 * the feed names and sizes before calling into native code, and raises `OrtEngineError` carrying the model's
 * path (or a label for models given as bytes) so a failure in a test or a CLI run points at the file.
 *
 * `run` is the common float32 path; `runTensors` carries the other element types ONNX Runtime supports
 * (int8/uint8 quantized models, int64 indices, bool masks).
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';

/** Raised for any failure to load or run a model; `modelPath` is the file or the label given for bytes. */
export class OrtEngineError extends Error {
  override readonly name = 'OrtEngineError';
  constructor(
    message: string,
    readonly modelPath: string,
    override readonly cause?: unknown,
  ) {
    super(`${modelPath}: ${message}`);
  }
}

export type OrtGraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export type OrtLogSeverity = 'verbose' | 'info' | 'warning' | 'error' | 'fatal';

const LOG_SEVERITY_LEVEL: Readonly<Record<OrtLogSeverity, 0 | 1 | 2 | 3 | 4>> = {
  verbose: 0,
  info: 1,
  warning: 2,
  error: 3,
  fatal: 4,
};

export interface OrtEngineOptions {
  /** Threads inside one op (ONNX Runtime's default: one per physical core). */
  readonly intraOpThreads?: number;
  /** Threads running independent ops in parallel. */
  readonly interOpThreads?: number;
  readonly graphOptimizationLevel?: OrtGraphOptimizationLevel;
  /**
   * Whether idle intra-op threads spin before they sleep (ONNX Runtime's default: yes, which saves a wake-up
   * between ops and runs). Two sessions taking turns on few cores want it off: one's spinning threads take the
   * cores the other runs on (the inference benchmark: ResNet-50, 2 threads on 2 cores, medians 34–53 ms and
   * ratios between two equal files of 1.25–1.57 spinning; 29–31 ms and 0.997–1.004 not).
   */
  readonly spinning?: boolean;
  /** Least severe ONNX Runtime log messages printed to stderr; ONNX Runtime's default is `warning`. */
  readonly logSeverity?: OrtLogSeverity;
  /** Names a model given as bytes in error messages; defaults to `<in-memory model>`. */
  readonly label?: string;
}

/** A float32 tensor: row-major data and its dims. */
export interface OrtFloatTensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** Element types `runTensors` accepts and returns. `bool` data is one byte per element. */
export type OrtElemType = 'float32' | 'float64' | 'int8' | 'uint8' | 'int32' | 'int64' | 'bool';

export type OrtTensorData = Float32Array | Float64Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;

/** A tensor of any supported element type. */
export interface OrtTypedTensor {
  readonly type: OrtElemType;
  readonly data: OrtTensorData;
  readonly dims: readonly number[];
}

const ARRAY_OF_TYPE: Readonly<Record<OrtElemType, (data: OrtTensorData) => boolean>> = {
  float32: (d) => d instanceof Float32Array,
  float64: (d) => d instanceof Float64Array,
  int8: (d) => d instanceof Int8Array,
  uint8: (d) => d instanceof Uint8Array,
  bool: (d) => d instanceof Uint8Array,
  int32: (d) => d instanceof Int32Array,
  int64: (d) => d instanceof BigInt64Array,
};

function isOrtElemType(type: string): type is OrtElemType {
  return Object.prototype.hasOwnProperty.call(ARRAY_OF_TYPE, type);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class OrtEngine {
  private session: InferenceSession | undefined;

  private constructor(
    session: InferenceSession,
    /** The model file, or the label of a model given as bytes. */
    readonly modelPath: string,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {
    this.session = session;
  }

  /** Loads a model from a file path or from encoded `ModelProto` bytes. */
  static async create(model: Uint8Array | string, options: OrtEngineOptions = {}): Promise<OrtEngine> {
    const modelPath = typeof model === 'string' ? model : (options.label ?? '<in-memory model>');
    const sessionOptions: InferenceSession.SessionOptions = { executionProviders: ['cpu'] };
    for (const [key, value] of [
      ['intraOpThreads', options.intraOpThreads],
      ['interOpThreads', options.interOpThreads],
    ] as const) {
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
        throw new OrtEngineError(`${key} must be a non-negative integer (0 = ONNX Runtime's default), got ${value}`, modelPath);
      }
    }
    if (options.intraOpThreads !== undefined) sessionOptions.intraOpNumThreads = options.intraOpThreads;
    if (options.interOpThreads !== undefined) sessionOptions.interOpNumThreads = options.interOpThreads;
    if (options.graphOptimizationLevel !== undefined) sessionOptions.graphOptimizationLevel = options.graphOptimizationLevel;
    if (options.logSeverity !== undefined) sessionOptions.logSeverityLevel = LOG_SEVERITY_LEVEL[options.logSeverity];
    if (options.spinning !== undefined) {
      // session configuration keys of ONNX Runtime (onnxruntime_session_options_config_keys.h)
      const allow = options.spinning ? '1' : '0';
      sessionOptions.extra = { session: { intra_op: { allow_spinning: allow }, inter_op: { allow_spinning: allow } } };
    }
    let session: InferenceSession;
    try {
      session =
        typeof model === 'string'
          ? await InferenceSession.create(model, sessionOptions)
          : await InferenceSession.create(model, sessionOptions);
    } catch (error) {
      throw new OrtEngineError(`ONNX Runtime cannot load the model: ${describe(error)}`, modelPath, error);
    }
    return new OrtEngine(session, modelPath, [...session.inputNames], [...session.outputNames]);
  }

  /** Runs the model on float32 inputs; every output must be float32 (use `runTensors` otherwise). */
  async run(feeds: Readonly<Record<string, OrtFloatTensor>>): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
    const typed: Record<string, OrtTypedTensor> = {};
    for (const [name, tensor] of Object.entries(feeds)) typed[name] = { type: 'float32', data: tensor.data, dims: tensor.dims };
    const outputs = await this.runTensors(typed);
    const result: Record<string, { data: Float32Array; dims: number[] }> = {};
    for (const [name, tensor] of Object.entries(outputs)) {
      if (!(tensor.data instanceof Float32Array)) {
        throw new OrtEngineError(`output '${name}' is ${tensor.type}, not float32; use runTensors`, this.modelPath);
      }
      result[name] = { data: tensor.data, dims: tensor.dims };
    }
    return result;
  }

  /** Runs the model on tensors of any supported element type and returns every graph output. */
  async runTensors(
    feeds: Readonly<Record<string, OrtTypedTensor>>,
  ): Promise<Record<string, { type: OrtElemType; data: OrtTensorData; dims: number[] }>> {
    const session = this.session;
    if (session === undefined) throw new OrtEngineError('the engine has been disposed', this.modelPath);
    const missing = this.inputNames.filter((name) => !(name in feeds));
    if (missing.length > 0) {
      throw new OrtEngineError(`missing input(s) ${missing.map((n) => `'${n}'`).join(', ')}`, this.modelPath);
    }
    const ortFeeds: Record<string, Tensor> = {};
    for (const [name, tensor] of Object.entries(feeds)) {
      if (!this.inputNames.includes(name)) {
        throw new OrtEngineError(
          `unknown input '${name}' (the model's inputs: ${this.inputNames.map((n) => `'${n}'`).join(', ')})`,
          this.modelPath,
        );
      }
      const { type, data, dims } = tensor;
      if (!isOrtElemType(type) || !ARRAY_OF_TYPE[type](data)) {
        throw new OrtEngineError(`input '${name}': a ${data.constructor.name} cannot carry ${type} data`, this.modelPath);
      }
      if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
        throw new OrtEngineError(`input '${name}': dims [${dims.join(', ')}] are not non-negative integers`, this.modelPath);
      }
      const count = dims.reduce((a, b) => a * b, 1);
      if (count !== data.length) {
        throw new OrtEngineError(
          `input '${name}': dims [${dims.join(', ')}] hold ${count} elements but the data has ${data.length}`,
          this.modelPath,
        );
      }
      ortFeeds[name] = new Tensor(type, data, dims);
    }
    let results: InferenceSession.ReturnType;
    try {
      results = await session.run(ortFeeds);
    } catch (error) {
      throw new OrtEngineError(`ONNX Runtime failed to run the model: ${describe(error)}`, this.modelPath, error);
    }
    const out: Record<string, { type: OrtElemType; data: OrtTensorData; dims: number[] }> = {};
    for (const name of this.outputNames) {
      const value = results[name];
      if (!(value instanceof Tensor)) {
        throw new OrtEngineError(`output '${name}' is not a tensor`, this.modelPath);
      }
      const type = value.type;
      if (!isOrtElemType(type)) {
        throw new OrtEngineError(`output '${name}' has element type ${type}, which the engine does not return`, this.modelPath);
      }
      out[name] = { type, data: value.data as OrtTensorData, dims: [...value.dims] };
    }
    return out;
  }

  /** Releases the native session; later calls raise `OrtEngineError`. Calling it twice is harmless. */
  async dispose(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session !== undefined) {
      try {
        await session.release();
      } catch (error) {
        throw new OrtEngineError(`cannot release the session: ${describe(error)}`, this.modelPath, error);
      }
    }
  }
}
