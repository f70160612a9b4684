"""PyTorch on an NVIDIA GPU, the peer of bench/gpu-bench.js: ResNet-18/50 inference latency (batch 1 and 8,
224x224, float32, eval mode, no_grad) and Fashion-MNIST CNN training throughput (batch 64, Adam), on CUDA.

    python3 bench/peers/gpu_torch.py [--reps 30] [--steps 50] [--windows 3] [--quick]

Prints one JSON object. Without CUDA (Debian's python3-torch is CPU-only) it says so: {"available": false, ...}.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args, _ = parser.parse_known_args()  # gpu.sh passes its own options through
    if args.quick:
        args.reps, args.steps, args.windows = 10, 20, 2
    if not torch.cuda.is_available():
        print(json.dumps({"available": False, "torch": torch.__version__,
                          "reason": f"torch {torch.__version__} has no CUDA device (torch.version.cuda = {torch.version.cuda})"}))
        return
    device = torch.device("cuda")
    result = {"available": True, "torch": torch.__version__, "cuda": torch.version.cuda,
              "cudnn": torch.backends.cudnn.version(), "gpu": torch.cuda.get_device_name(0), "inference_ms": {}}
    torch.backends.cudnn.benchmark = True
    for name in ("resnet18", "resnet50"):
        model = torch_models.build(name).to(device)
        for batch in (1, 8):
            x = torch.randn(batch, 3, 224, 224, device=device)
            with torch.no_grad():
                for _ in range(10):
                    model(x)
                torch.cuda.synchronize()
                times = []
                for _ in range(args.reps):
                    start = time.perf_counter()
                    model(x)
                    torch.cuda.synchronize()
                    times.append((time.perf_counter() - start) * 1000)
            result["inference_ms"][f"{name}_b{batch}"] = round(statistics.median(times), 3)
        del model
    train = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_fashion.py")
    data = args.data if os.path.exists(os.path.join(args.data, "train-images-idx3-ubyte.gz")) else \
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "fashion-mnist-subset")
    run = subprocess.run([sys.executable, train, "--device", "cuda", "--steps", str(args.steps),
                          "--windows", str(args.windows), "--warmup", "10", "--data", data],
                         capture_output=True, text=True)
    if run.returncode == 0:
        result["training"] = json.loads(run.stdout.strip().splitlines()[-1])
    else:
        result["training"] = {"error": (run.stderr.strip().splitlines() or ["failed"])[-1]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
