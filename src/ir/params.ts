/**
 * The weight tensors each node owns, named `<node>.<role>` the way PyTorch names them (`stem.conv1.weight`,
 * `stem.bn1.running_var`), so checkpoints, ONNX initializers and weights exported by torch.onnx line up.
 *
 * Shapes: conv [out, in/groups, k…]; transposed conv [in, out/groups, k…] (ONNX ConvTranspose); dense
 * [out, in]; batch norm [C] each. `learnable` is false for BN running statistics, which PyTorch does not count as
 * parameters.
 */
import type { Node } from './graph.js';

export type ParamRole = 'weight' | 'bias' | 'running_mean' | 'running_var';

export interface ParamSpec {
  readonly name: string;
  readonly node: string;
  readonly role: ParamRole;
  readonly shape: readonly number[];
  readonly learnable: boolean;
}

export function parametersOf(node: Node): ParamSpec[] {
  const spec = (role: ParamRole, shape: number[], learnable = true): ParamSpec => ({ name: `${node.name}.${role}`, node: node.name, role, shape, learnable });
  switch (node.op) {
    case 'conv': {
      const list = [spec('weight', [node.filters, node.inChannels / node.groups, ...node.kernel])];
      if (node.bias) list.push(spec('bias', [node.filters]));
      return list;
    }
    case 'conv_transpose': {
      const list = [spec('weight', [node.inChannels, node.filters / node.groups, ...node.kernel])];
      if (node.bias) list.push(spec('bias', [node.filters]));
      return list;
    }
    case 'dense': {
      const list = [spec('weight', [node.units, node.inFeatures])];
      if (node.bias) list.push(spec('bias', [node.units]));
      return list;
    }
    case 'batchnorm':
      return [
        spec('weight', [node.channels]),
        spec('bias', [node.channels]),
        spec('running_mean', [node.channels], false),
        spec('running_var', [node.channels], false),
      ];
    default:
      return [];
  }
}

export function parameterSize(param: ParamSpec): number {
  return param.shape.reduce((a, b) => a * b, 1);
}

/** All parameters of a graph's nodes, in node order. */
export function graphParameters(nodes: readonly Node[]): ParamSpec[] {
  return nodes.flatMap(parametersOf);
}
