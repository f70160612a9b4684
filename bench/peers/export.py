"""The compile-speed peer: build a model in PyTorch and export it with torch.onnx.export (opset 17, dynamic batch).

    /usr/bin/python3 bench/peers/export.py MODEL [-o FILE.onnx] [--threads N]

MODEL is resnet18, resnet50, mobilenet_v2 or fashion_cnn. With --forward-only the script builds the model and runs
one forward pass on a zero batch instead of exporting: what a PyTorch user runs to check a model's shapes, the
peer of `convspec check`. The benchmark times the whole process (interpreter start,
`import torch`, building the model, tracing and writing the file), the same way it times `convspec compile`. The
script also prints one JSON line with its own phases, in seconds: import, build, export.
"""
import argparse
import json
import os
import sys
import tempfile
import time

t0 = time.perf_counter()
import torch  # noqa: E402

t_import = time.perf_counter() - t0
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("-o", "--output", help="ONNX file to write (default: a temporary file, removed)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--forward-only", action="store_true", help="build and run one forward pass, no export")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    t1 = time.perf_counter()
    model = torch_models.build(args.model)
    t2 = time.perf_counter()
    size = 28 if args.model == "fashion_cnn" else 224
    channels = 1 if args.model == "fashion_cnn" else 3
    dummy = torch.zeros(1, channels, size, size)
    if args.forward_only:
        with torch.no_grad():
            shape = list(model(dummy).shape)
        t3 = time.perf_counter()
        print(json.dumps({
            "model": args.model, "source": torch_models.source(), "torch": torch.__version__, "output_shape": shape,
            "import_s": round(t_import, 4), "build_s": round(t2 - t1, 4), "forward_s": round(t3 - t2, 4),
        }))
        return
    output = args.output
    remove = output is None
    if remove:
        fd, output = tempfile.mkstemp(suffix=".onnx")
        os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(
                model, dummy, output,
                opset_version=args.opset,
                input_names=["image"], output_names=["logits"],
                dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}},
                do_constant_folding=True,
            )
        t3 = time.perf_counter()
        size_bytes = os.path.getsize(output)
    finally:
        if remove:
            os.unlink(output)
    print(json.dumps({
        "model": args.model, "source": torch_models.source(), "torch": torch.__version__,
        "params": torch_models.count_params(model), "bytes": size_bytes,
        "import_s": round(t_import, 4), "build_s": round(t2 - t1, 4), "export_s": round(t3 - t2, 4),
    }))


if __name__ == "__main__":
    main()
