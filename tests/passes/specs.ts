/** Small specs shared by the pass tests and their golden files. */

/** The language example: every op family the passes touch, on a 16×16 image. */
export const EXAMPLE = `model M {
  input image: f32[N, 3, 16, 16]
  a = image -> conv(8, 3, pad: 1, bias: false) -> bn -> relu -> dropout(0.2)
  b = a -> dwconv(3, pad: same) -> bn(eps: 1e-3) -> relu6 -> conv(16, 1) -> bn
  c = a -> conv(16, 1, groups: 2) -> bn
  d = relu(b + c) -> pad([[1, 1], [0, 1]]) -> maxpool(2) -> deconv(4, 3, stride: 2, pad: same) -> bn
  logits = d -> globalavgpool -> flatten -> dense(10) -> bn
  output logits
}
`;

/** A residual stage with a shared trunk, a concat, an SE gate and a flatten → dense head (8×8). */
export const RESIDUAL = `model R {
  input image: f32[N, 3, 8, 8]
  stem = image -> pad([[1, 1], [1, 1]]) -> conv(8, 3, bias: false) -> bn -> relu
  branch = stem -> conv(8, 3, pad: 1, bias: false) -> bn -> relu -> conv(8, 3, pad: 1, bias: false) -> bn
  sum = relu(stem + branch)
  side = sum -> dwconv(3, pad: 1, bias: false) -> bn -> relu -> conv(4, 1)
  gate = side -> globalavgpool -> conv(4, 1) -> sigmoid
  cat = concat(sum, side * gate) -> pad([[0, 1], [0, 1]], value: -1e30) -> maxpool(2, stride: 2, pad: 0) -> bn
  logits = cat -> flatten -> dense(5)
  unused = stem -> conv(2, 1) -> relu
  output logits
}
`;
