"""Networks exported by torch.onnx.export for tests/import: a torchvision-style ResNet-18 and a small
MobileNet-style network (depthwise convs, ReLU6, inverted residuals), defined here since torchvision may be
missing, and a net of the activations torch.onnx writes as several nodes (SiLU, Hardswish, exact GELU) with an
upsample, whose input and output carry torch's usual names `input` and `output` (keywords of the language).
Usage: python3 torch_models.py OUT_DIR  → OUT_DIR/resnet18.onnx, OUT_DIR/mobilenet.onnx, OUT_DIR/activations.onnx
(Debian's python3-torch at /usr/bin/python3; random weights with non-trivial batch-norm statistics, eval mode.)"""
import sys

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, 2)
        self.layer3 = self._make_layer(256, 2, 2)
        self.layer4 = self._make_layer(512, 2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(BasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def conv_bn(inp, out, kernel, stride, groups=1):
    return nn.Sequential(nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, out, stride, expand):
        super().__init__()
        hidden = inp * expand
        self.use_residual = stride == 1 and inp == out
        self.conv = nn.Sequential(
            conv_bn(inp, hidden, 1, 1),
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, 16, 3, 2),
            InvertedResidual(16, 16, 1, 1),
            InvertedResidual(16, 24, 2, 4),
            InvertedResidual(24, 24, 1, 4),
            InvertedResidual(24, 32, 2, 4),
            InvertedResidual(32, 32, 1, 4),
            conv_bn(32, 128, 1, 1),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(128, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class Activations(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.silu = nn.SiLU()
        self.hardswish = nn.Hardswish()
        self.gelu = nn.GELU()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y = self.up(self.gelu(self.hardswish(self.silu(self.conv(x)))))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def randomize(model):
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def export(model, path, size, names=("image", "logits")):
    torch.onnx.export(model, torch.randn(1, 3, size, size), path, input_names=[names[0]], output_names=[names[1]],
                      dynamic_axes={names[0]: {0: "N"}, names[1]: {0: "N"}}, opset_version=13)


if __name__ == "__main__":
    torch.manual_seed(0)
    export(randomize(ResNet18()), f"{sys.argv[1]}/resnet18.onnx", 64)
    export(randomize(MobileNet()), f"{sys.argv[1]}/mobilenet.onnx", 32)
    export(randomize(Activations()), f"{sys.argv[1]}/activations.onnx", 16, ("input", "output"))
